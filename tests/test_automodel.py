"""modmatch.automodel answers as NeMo Automodel 0.7.0: against its plain-re reference
(Hypothesis) and against the real nemo-automodel package where it is installed."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from torch import nn

from modmatch import automodel
from modmatch.engine.patternset import PatternSet
from modmatch.engine.syntax import AUTOMODEL
from modmatch.reference import automodel as reference
from oracles import oracle
from strategies import AUTOMODEL_PAIRS, AUTOMODEL_PATTERNS, DOTTED, FRAMEWORK_NAMES

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

MODULES = [nn.Linear(1, 1, device="meta"), nn.Conv1d(1, 1, 1, device="meta"), nn.ReLU()]
# The traps of Automodel's ".*" rule, from the measured table in the framework notes.
TRAPS = [
    ("*.layers.0.*.linear_qkv", "decoder.layers.01.self_attention.linear_qkv"),
    ("*.layers.0.*.linear_qkv", "decoder.layers.0Xself_attention.linear_qkv"),
    ("*.b.*", "a.b"),
    ("*.layers.*", "model.layers"),
    ("*.layers.1.*", "model.layers.10.mlp"),
    ("*.layers.1.*", "model.layers.1"),
    ("*layers.1.*", "model.layers.10"),
    ("*.mlp.fc.*", "model.mlp.fc1"),
    ("a.b.c", "aXbXc"),
    ("abc", "abc\n"),
    ("*.*.*", "ab"),
]


def outcome(call: Any) -> tuple[str, Any]:
    """What a call returned, or the type and message of what it raised."""
    try:
        return ("returned", call())
    except Exception as error:
        return ("raised", (type(error), str(error)))


def regex_error(pattern: str) -> re.error | None:
    try:
        re.compile(reference.automodel_regex(pattern))
    except re.error as error:
        return error
    return None


@given(AUTOMODEL_PAIRS)
@example(("layer(", "layer("))
def test_wildcard_match(pair: tuple[str, str]) -> None:
    pattern, name = pair
    error = regex_error(pattern)
    if error is not None:
        with pytest.raises(re.error) as raised:
            automodel.wildcard_match(pattern, name)
        assert type(raised.value) is re.error and str(raised.value) == str(error)
        return
    assert automodel.wildcard_match(pattern, name) is reference.wildcard_match(pattern, name)
    assert automodel.wildcard_match(pattern, None) is False


@pytest.mark.parametrize(("pattern", "name"), TRAPS)
def test_traps(pattern: str, name: str) -> None:
    assert automodel.wildcard_match(pattern, name) is reference.wildcard_match(pattern, name)


@given(
    st.lists(AUTOMODEL_PATTERNS, max_size=6),
    st.lists(FRAMEWORK_NAMES, max_size=6),
    st.randoms(use_true_random=False),
)
def test_patternset_in_any_order(patterns: list[str], names: list[str], rnd: Any) -> None:
    patterns = [p for p in patterns if regex_error(p) is None]
    rnd.shuffle(patterns)
    compiled = PatternSet(patterns, syntax=AUTOMODEL)
    for name in names:
        expected = tuple(i for i, p in enumerate(patterns) if reference.wildcard_match(p, name))
        assert compiled.matches(name) == expected
        assert compiled.match(name) is bool(expected)


_LISTS = st.one_of(
    st.none(),
    st.lists(AUTOMODEL_PATTERNS.filter(lambda p: regex_error(p) is None), max_size=4),
    AUTOMODEL_PATTERNS.filter(lambda p: regex_error(p) is None),
)
_CONFIGS = st.fixed_dictionaries(
    {},
    optional={
        "target_modules": _LISTS,
        "exclude_modules": _LISTS,
        "match_all_linear": st.sampled_from([True, False, 0]),
        "is_causal_lm": st.booleans(),
    },
)
_CALLS = st.tuples(
    st.sampled_from(range(len(MODULES))),
    st.one_of(st.none(), FRAMEWORK_NAMES),
    st.one_of(st.none(), st.just(""), DOTTED),
)


def _matcher(module: Any, config: dict[str, Any]) -> Any:
    return outcome(lambda: module.ModuleMatcher(**config))


@given(_CONFIGS, st.lists(_CALLS, max_size=5))
def test_module_matcher(config: dict[str, Any], calls: list[tuple[int, Any, Any]]) -> None:
    ours, theirs = _matcher(automodel, config), _matcher(reference, config)
    assert ours[0] == theirs[0]
    if ours[0] == "raised":
        assert ours[1][0] is theirs[1][0]
        return
    assert ours[1].target_modules == theirs[1].target_modules
    assert ours[1].exclude_modules == theirs[1].exclude_modules
    for index, name, prefix in calls:
        module = MODULES[index]
        assert ours[1].match(module, name, prefix) is theirs[1].match(module, name, prefix)


@given(
    st.lists(AUTOMODEL_PATTERNS.filter(lambda p: regex_error(p) is None), min_size=1, max_size=3),
    AUTOMODEL_PATTERNS.filter(lambda p: regex_error(p) is None),
    st.lists(FRAMEWORK_NAMES, min_size=1, max_size=4),
)
def test_lists_changed_after_construction(targets: list[str], extra: str, names: list[str]) -> None:
    ours = automodel.ModuleMatcher(target_modules=list(targets))
    theirs = reference.ModuleMatcher(target_modules=list(targets))
    linear = MODULES[0]

    def agree() -> None:
        for name in names:
            assert ours.match(linear, name) is theirs.match(linear, name)

    agree()
    for matcher in (ours, theirs):
        matcher.target_modules.append(extra)
    agree()
    for matcher in (ours, theirs):
        matcher.target_modules[0] = extra
    agree()
    for matcher in (ours, theirs):
        matcher.target_modules = [targets[-1]]
    agree()


def test_a_pattern_the_engine_cannot_take_fails_where_automodel_does() -> None:
    linear = MODULES[0]
    for module in (automodel, real()):
        # The loop stops at q_proj before it reaches the invalid pattern.
        assert module.ModuleMatcher(target_modules=["q_proj", "layer("]).match(linear, "q_proj")
        matcher = module.ModuleMatcher(target_modules=["q_proj"])
        matcher.target_modules = "*_proj"  # a str set later is read by character: `*` matches
        assert matcher.match(linear, "x") is True
        matcher.target_modules = [5]
        assert matcher.match(linear, 5) is True


def test_invalid_pattern_raises_at_match_like_automodel() -> None:
    matcher = automodel.ModuleMatcher(target_modules=["*.q_proj("])
    with pytest.raises(re.error) as raised:
        matcher.match(MODULES[0], "a.q_proj")
    assert str(raised.value) == str(regex_error("*.q_proj("))


# The real package, installed by the test extra (`--no-deps`: it imports with torch alone).
def real() -> Any:
    return oracle("nemo_automodel.components._peft.module_matcher")


@given(AUTOMODEL_PAIRS.filter(lambda pair: regex_error(pair[0]) is None))
@example(("*layers.1.*", "model.layers.10"))
def test_wildcard_match_as_nemo_automodel(pair: tuple[str, str]) -> None:
    pattern, name = pair
    assert automodel.wildcard_match(pattern, name) is real().wildcard_match(pattern, name)


@pytest.mark.parametrize(("pattern", "name"), TRAPS)
def test_traps_as_nemo_automodel(pattern: str, name: str) -> None:
    assert automodel.wildcard_match(pattern, name) is real().wildcard_match(pattern, name)


@given(_CONFIGS, st.lists(_CALLS, max_size=5))
def test_module_matcher_as_nemo_automodel(
    config: dict[str, Any], calls: list[tuple[int, Any, Any]]
) -> None:
    ours, theirs = _matcher(automodel, config), _matcher(real(), config)
    assert ours[0] == theirs[0]
    if ours[0] == "raised":
        assert ours[1] == theirs[1]  # same class, same message
        return
    for index, name, prefix in calls:
        module = MODULES[index]
        assert ours[1].match(module, name, prefix) is theirs[1].match(module, name, prefix)


@pytest.mark.parametrize(
    "config",
    [{}, {"target_modules": []}, {"match_all_linear": True}, {"target_modules": ["q_proj"]}],
)
def test_warnings_as_nemo_automodel(config: dict[str, Any], caplog: Any) -> None:
    module = real()
    with caplog.at_level(logging.WARNING):
        automodel.ModuleMatcher(**config)
        module.ModuleMatcher(**config)
    ours = [r.getMessage() for r in caplog.records if r.name == automodel.__name__]
    theirs = [r.getMessage() for r in caplog.records if r.name == module.__name__]
    assert ours == theirs
