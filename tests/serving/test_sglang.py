"""`modmatch serve ADAPTER --engine sglang`: the command answers as SGLang 0.5.23's own loading
code does.

``sglang_verdicts.json`` is SGLang's answer on each case (``record.py sglang``). Where SGLang is
installed (the environment .ci/serving-sglang builds), the command runs SGLang's own code and
must give the recorded answer, and so must the built-in rules, in every environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import adapters
import pytest
import verdicts

from modmatch.reference import sglang as reference
from modmatch.serving import sglang

Made = Callable[[str], tuple[Path, Path]]
SGLANG = sglang.installed()
if SGLANG is None and os.environ.get("MODMATCH_SERVING") == "sglang":
    # The environment .ci/serving-sglang builds: SGLang's own answer must run there.
    raise RuntimeError("MODMATCH_SERVING=sglang, and SGLang does not import")
needs_sglang = pytest.mark.skipif(
    SGLANG is None, reason="SGLang is not installed: .ci/serving-sglang"
)
CASES = verdicts.cases("sglang")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    root = tmp_path_factory.mktemp("serving")
    return lambda name: adapters.make(root, name)


def _serve(made: Made, name: str, *flags: str) -> dict[str, Any]:
    return verdicts.serve(*made(name), *adapters.CASES[name].flags, *flags, engine="sglang")


def _kept(answer: dict[str, Any]) -> dict[str, Any]:
    return {key: answer[key] for key in verdicts.KEPT}


def _hash_ordered(error: str | None) -> str | None:
    """Which of several mismatched buffers, or of several names it cannot size, SGLang meets
    first follows its set of target names, whose order follows str hashing (PYTHONHASHSEED):
    those messages are compared by kind."""
    if error is None:
        return None
    error = re.sub(r"(AssertionError: LoRA buffer shape) .*", r"\1", error)
    return re.sub(r"(get_hidden_dim not implemented for) \w+", r"\1", error)


def test_every_case_is_recorded_by_the_release_restated() -> None:
    assert sorted(verdicts.recorded("sglang")) == CASES
    assert verdicts.recorded_by("sglang") == reference.VERSION


RULES = ["built-in", pytest.param("installed", marks=needs_sglang)]


@pytest.mark.parametrize("rules", RULES)
@pytest.mark.parametrize("name", CASES)
def test_the_answer_is_sglangs(
    name: str, rules: str, made: Made, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The built-in rules everywhere, and the installed SGLang's own code where it runs, give
    the answer SGLang 0.5.23's code gave on each case."""
    if rules == "built-in":
        monkeypatch.setattr(sglang, "installed", lambda: None)
    found = _serve(made, name)
    assert found["rules"] == rules
    expected, answer = dict(verdicts.recorded("sglang")[name]), _kept(found)
    for key in ("error", "request_error"):
        expected[key], answer[key] = _hash_ordered(expected[key]), _hash_ordered(answer[key])
    assert answer == expected
