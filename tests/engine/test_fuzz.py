"""A bounded fuzz run: patterns and names cut from arbitrary bytes, checked against the reference.

Failing inputs land in the example database under tests/engine/fuzz-corpus/; commit it, and every later
run replays them first, as regression tests.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from modmatch import PatternError, PatternSet, reference
from strategies import compiles, tame

# 20,000 examples whatever the profile, about ten seconds: run by `pytest -m slow` and CI.
pytestmark = pytest.mark.slow

CORPUS = DirectoryBasedExampleDatabase(str(Path(__file__).parent / "fuzz-corpus"))


@settings(
    max_examples=20_000,
    database=CORPUS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(st.binary(min_size=1, max_size=48))
def test_fuzz_bytes(data: bytes) -> None:
    # Invalid UTF-8 becomes lone surrogates, which names and patterns may hold.
    text = data.decode("utf-8", "surrogateescape")
    cut = data[0] % len(text)
    pattern, name = text[1 : cut + 1], text[cut + 1 :]
    if not tame(pattern):  # the reference itself would backtrack for minutes
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not compiles(pattern):
            try:
                PatternSet([pattern])
            except PatternError:
                return
            raise AssertionError(f"{pattern!r} was accepted; the reference rejects it")
        assert PatternSet([pattern]).match(name) is reference.wildcard_match(pattern, name)
