"""Bad input: each case gives the reference's exact result or an early error naming the value."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from modmatch import (
    FallbackWarning,
    ModuleMatcher,
    PatternError,
    PatternSet,
    reference,
    wildcard_match,
)
from modmatch.engine.syntax import AUTOMODEL, MODULES_TO_SAVE, REGEX, SEED, Syntax

LONG = "model." * 16_000 + "q_proj"  # about 100,000 characters
ODD_NAMES = [
    "",
    "\x00",
    "a\x00.q_proj",
    "x.q_proj\n",
    "\n",
    "\U0001f600.q_proj",
    "\ud800.q_proj",
    LONG,
]


@pytest.mark.parametrize(
    ("pattern", "error", "message"),
    [
        (None, TypeError, "index 1 must be a str, got NoneType: None"),
        (3, TypeError, "index 1 must be a str, got int: 3"),
        (b"q_proj", TypeError, "index 1 must be a str, got bytes: b'q_proj'"),
        (["q_proj"], TypeError, r"index 1 must be a str, got list: \['q_proj'\]"),
        ("*.q_proj(", PatternError, r"'\*\.q_proj\(' at index 1: missing \)"),
        ("a{99999999999}", PatternError, "at index 1"),
    ],
)
def test_bad_patterns_fail_early_naming_value_and_position(
    pattern: Any, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        PatternSet(["lm_head", pattern])
    with pytest.raises(error, match=message):
        ModuleMatcher(target_modules=["lm_head", pattern])


@pytest.mark.parametrize(
    "pattern",
    [
        "",
        "\x00",
        "*\x00*",
        "\ud800",
        "*\ud800*",
        "a" * 100_000,
        "*." * 50_000 + "q_proj",
    ],
)
def test_odd_patterns_answer_as_the_reference(pattern: str) -> None:
    matcher = PatternSet([pattern])
    # The reference backtracks for ages with thousands of stars against a long name.
    names = ODD_NAMES if pattern.count("*") < 3 else [n for n in ODD_NAMES if n != LONG]
    for name in names:
        assert matcher.match(name) is reference.wildcard_match(pattern, name), repr(name)[:40]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_names_answer_as_the_reference(name: str) -> None:
    patterns = ["*.q_proj", "", "*", "*\\n", "\\s*", "*[^a-z]*", "x.q_proj$"]
    matcher = PatternSet(patterns)
    assert matcher.matches(name) == tuple(
        i for i, p in enumerate(patterns) if reference.wildcard_match(p, name)
    )


@pytest.mark.parametrize(
    ("name", "type_name"),
    [(3, "int"), (b"q_proj", "bytes"), (None, "NoneType"), (["q_proj"], "list")],
)
def test_names_that_are_not_str_fail_naming_value(name: Any, type_name: str) -> None:
    with pytest.raises(TypeError, match=f"name must be a str, got {type_name}"):
        PatternSet(["*"]).match(name)
    with pytest.raises(TypeError, match=f"name must be a str, got {type_name}"):
        PatternSet(["*"]).matches(name)
    with pytest.raises(TypeError, match=f"name must be a str, got {type_name}"):
        PatternSet(["*"]).filter(["a", name])
    with pytest.raises(TypeError):  # the reference fails too, in `re`
        reference.wildcard_match("*", name if name is not None else 3)
    if name is None:
        assert wildcard_match("*", name) is None  # the seed's rule for a None key


@pytest.mark.parametrize(
    ("targets", "outcome"),
    [
        (("q_proj",), ValueError),  # the seed counts only lists as non-empty
        (None, ValueError),
        ({"q_proj"}, TypeError),
        ({"q_proj": 1}, TypeError),
        ((p for p in ["q_proj"]), TypeError),
    ],
)
def test_target_container_types(targets: Any, outcome: type) -> None:
    with pytest.raises(outcome) as info:
        ModuleMatcher(target_modules=targets)
    if outcome is TypeError:
        assert "target_modules" in str(info.value)
        return
    # With match_all_linear the seed accepts a tuple or None; so does modmatch, with its answers.
    ours = ModuleMatcher(target_modules=targets, match_all_linear=True)
    theirs = reference.ModuleMatcher(target_modules=targets, match_all_linear=True)
    for module in (nn.Linear(1, 1), nn.ReLU()):
        for name in ("q_proj", "o_proj"):
            assert ours.match(module, name, "m") is theirs.match(module, name, "m")


def test_pattern_error_is_re_error_and_value_error() -> None:
    with pytest.raises(re.error):
        PatternSet(["("])
    with pytest.raises(ValueError):
        PatternSet(["("])


@given(st.data(), st.sampled_from([SEED, AUTOMODEL, REGEX, MODULES_TO_SAVE]))
def test_pattern_error_points_into_the_pattern_as_written(data: Any, syntax: Syntax) -> None:
    # Wildcards only where they are wildcards: in a regex a leading `*` is an error of its own.
    plain = st.text(alphabet="ab._1*" if syntax in (SEED, AUTOMODEL) else "ab._1", max_size=8)
    before, after = data.draw(plain), data.draw(plain)
    bad = data.draw(st.sampled_from(["(", ")", "["]))
    pattern = before + bad + after
    with pytest.raises(PatternError) as raised:
        PatternSet(["q_proj", pattern], syntax=syntax)
    error = raised.value
    assert error.pattern == pattern and error.index == 1
    assert error.pos == len(before) and pattern[error.pos] == bad
    assert (error.lineno, error.colno) == (1, len(before) + 1)
    assert str(error).endswith(f"at position {len(before)}")


def test_strict_refuses_what_only_re_can_run_and_survives_pickling() -> None:
    import pickle

    with pytest.raises(PatternError, match=r"at index 0: only Python's re can run it"):
        ModuleMatcher(target_modules=[r"(a)\1"], strict=True)
    with pytest.warns(FallbackWarning):
        loose = ModuleMatcher(target_modules=[r"(a)\1"])
    assert loose.match(None, "aa") is True
    strict = ModuleMatcher(target_modules=["*.q_proj"], strict=True)
    assert pickle.loads(pickle.dumps(strict)) == strict


def test_filter_refuses_a_single_str() -> None:
    with pytest.raises(TypeError, match="not a single str: 'abc'"):
        PatternSet(["a"]).filter("abc")
