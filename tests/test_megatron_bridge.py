"""modmatch.megatron_bridge answers as Megatron-Bridge's matcher, restated in its reference."""

from __future__ import annotations

import copy
import dataclasses
import logging
import pickle
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn

from modmatch import megatron_bridge as mb
from modmatch.reference import megatron_bridge as ref
from strategies import NAMES, PATTERNS

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::modmatch.FallbackWarning"),
]

# The main property runs the profile's count (2,000 in CI, 100,000 deep); the others a quarter
# of it, and at least 150.
_QUARTER = settings(max_examples=max(150, settings.default.max_examples // 4))

# --- Modules and linear classes ------------------------------------------------------------------


class MyLinear(nn.Linear):
    pass


class FakeColumn(nn.Module):
    pass


class FakeRow(nn.Module):
    pass


class FakeTECol(nn.Module):
    pass


class FakeTELNCol(nn.Module):
    pass


class FakeTERow(nn.Module):
    pass


MODULES = {
    "linear": nn.Linear(1, 1),
    "linear subclass": MyLinear(1, 1),
    "conv": nn.Conv1d(1, 1, 1),
    "column": FakeColumn(),
    "row": FakeRow(),
    "te col": FakeTECol(),
    "te ln col": FakeTELNCol(),
    "te row": FakeTERow(),
}
_LINEAR_NAMES = [
    "ColumnParallelLinear",
    "RowParallelLinear",
    "TEColumnParallelLinear",
    "TELayerNormColumnParallelLinear",
    "TERowParallelLinear",
    "HAVE_TE_COL_LINEAR",
    "HAVE_TE_LN_COL_LINEAR",
    "HAVE_TE_ROW_LINEAR",
]


@contextmanager
def linear_classes(values: dict[str, Any]) -> Iterator[None]:
    """The same linear classes in both modules, as Megatron-Bridge's tests patch them."""
    with mock.patch.multiple(mb, **values), mock.patch.multiple(ref, **values):
        yield


# --- Strategies ----------------------------------------------------------------------------------

# Segments that reach the traps: `*.layers.1.*` against `layers.1` and `layers.10`, `*.b.*`
# against `a.b`, and a name "None" that a None short name turns into.
_SEGMENTS = ["decoder", "model", "layers", "1", "10", "0", "a", "b", "self_attention", "mlp"]
_SEGMENTS += ["linear_qkv", "linear_proj", "linear_fc1", "linear_fc2", "None", "l", "q"]
_DOTTED = st.lists(st.sampled_from(_SEGMENTS), min_size=1, max_size=5).map(".".join)
FULL_NAMES = st.one_of(_DOTTED, _DOTTED, _DOTTED, NAMES)

TRAPS = [
    "*.layers.1.*",
    "layers.1",
    "*.layers.10",
    "*.b.*",
    "a.b",
    "b",
    "*",
    "",
    "linear_qkv",
    "linear_fc1",
    "*.linear_*",
    "*.layers.0.*.linear_qkv",
    "model.layers.*.self_attention.linear_*",
    "decoder.layers.1*",
    "*None",
    "*.1",
    "a.b$",
    "1|10",
    "[0-3]",
    "l",
    "q",
    "a",
    "layer(",
    "*(",
]
PATTERN = st.one_of(st.sampled_from(TRAPS), st.sampled_from(TRAPS), PATTERNS)
PATTERN_LISTS = st.lists(PATTERN, max_size=6)


@st.composite
def field_value(draw: st.DrawFn, *, empty_often: bool = False) -> Any:
    """A value for target_modules or exclude_modules, of any shape upstream iterates."""
    kind = draw(
        st.sampled_from(
            ["list"] * 4 + ["empty"] * (6 if empty_often else 1) + ["str", "tuple", "none"]
        )
    )
    if kind == "empty":
        return []
    if kind == "none":
        return None
    if kind == "str":  # iterated by character, as upstream does
        return draw(
            st.sampled_from(["linear_qkv", "ab", "*.", "l", "*", "b*"]) | st.text(max_size=4)
        )
    patterns = draw(PATTERN_LISTS)
    return tuple(patterns) if kind == "tuple" else patterns


@st.composite
def mapping_value(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["default", "default", "empty", "none", "dict", "dict"]))
    if kind == "default":
        return "default"
    if kind == "none":
        return None
    mapping: defaultdict[str, set[Any]] = defaultdict(set)
    if kind == "dict":
        for key in draw(st.lists(PATTERN, max_size=4)):  # insertion order is the match order
            mapping[key].add(key)
    return mapping


class _EqualToAll:
    """A name upstream's ``name == pattern`` finds equal to every pattern."""

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "EQUAL_TO_ALL"


EQUAL_TO_ALL = _EqualToAll()


@st.composite
def call(draw: st.DrawFn) -> tuple[Any, Any]:
    """A (name, prefix) pair: mostly as Megatron-Bridge's walk passes them, some odd ones."""
    full = draw(FULL_NAMES)
    kind = draw(st.integers(0, 12))
    if kind == 0:
        return None, draw(st.sampled_from([None, "", "model", "a.b"]))
    if kind == 1:
        name = draw(st.sampled_from([5, b"linear_qkv", EQUAL_TO_ALL]))
        return name, draw(st.sampled_from([None, "", "m"]))
    if kind == 2:
        return "", draw(st.sampled_from([None, "", "m"]))  # an empty name, recorded as the alias
    if kind == 3:
        cut = draw(st.integers(0, len(full)))
        return full[cut:], draw(st.sampled_from([full[:cut], None, ""]))
    prefix, _, name = full.rpartition(".")
    return name, prefix


def outcome(thunk: Callable[[], Any]) -> tuple[str, Any]:
    """What a call returned, or the exact type of what it raised."""
    try:
        return ("returned", thunk())
    except Exception as error:
        return ("raised", type(error))


def assert_same(ours: tuple[str, Any], theirs: tuple[str, Any], source: Any) -> None:
    """Equal outcomes; a returned pattern is the very element of a list or mapping."""
    assert ours[0] == theirs[0], (ours, theirs)
    if ours[0] == "raised" or theirs[1] is None:
        assert ours[1] is theirs[1], (ours, theirs)
        return
    assert type(ours[1]) is tuple and ours[1] == theirs[1], (ours, theirs)
    assert type(ours[1][0]) is type(theirs[1][0])
    if isinstance(source, (list, dict)):
        assert ours[1][0] is theirs[1][0]


def pair(kwargs: dict[str, Any]) -> tuple[mb.ModuleMatcher, ref.ModuleMatcher]:
    """Both matchers, sharing the very same field objects."""
    return mb.ModuleMatcher(**kwargs), ref.ModuleMatcher(**kwargs)


def source_of(matcher: Any) -> Any:
    """The collection match iterates, as upstream picks it."""
    if len(matcher.canonical_mapping or []) > 0:
        return matcher.canonical_mapping
    return matcher.target_modules


class Captured(logging.Handler):
    """Collects the messages one logger emits."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append((record.levelno, record.getMessage()))


@contextmanager
def captured(logger: logging.Logger) -> Iterator[Captured]:
    handler = Captured()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def bookkeeping(matcher: Any) -> tuple[Any, ...]:
    return (
        dict(matcher._pattern_to_alias),
        dict(matcher._alias_to_pattern),
        dict(matcher._alias_matches),
    )


def assert_same_calls(ours: Any, theirs: Any, calls: list[tuple[Any, Any]], module: Any) -> None:
    for name, prefix in calls:
        expected = outcome(lambda n=name, p=prefix: theirs.match(module, n, p))
        got = outcome(lambda n=name, p=prefix: ours.match(module, n, p))
        assert_same(got, expected, source_of(theirs))
        if got[0] == "returned" and got[1] is not None and not prefix:
            assert got[1][1] is name  # no prefix: the full name is the short name itself


def assert_same_walk(ours: Any, theirs: Any, calls: list[tuple[Any, Any]], module: Any) -> None:
    """PEFT.__call__'s sequence: init, a recording walk, validation, reset; all compared."""
    assert outcome(ours._init_target_match_state) == outcome(theirs._init_target_match_state)
    assert bookkeeping(ours) == bookkeeping(theirs)
    assert_same_calls(ours, theirs, calls, module)
    assert bookkeeping(ours) == bookkeeping(theirs)
    with captured(logging.getLogger(mb.__name__)) as got, captured(ref.logger) as expected:
        assert outcome(ours._validate_target_matches) == outcome(theirs._validate_target_matches)
    assert got.messages == expected.messages
    ours._reset_target_match_state()
    theirs._reset_target_match_state()
    assert bookkeeping(ours) == bookkeeping(theirs)


# --- Differential properties ---------------------------------------------------------------------


@given(
    targets=st.one_of(st.just("default"), field_value()),
    excludes=field_value(empty_often=True),
    mapping=mapping_value(),
    module=st.sampled_from(sorted(MODULES)),
    calls=st.lists(call(), min_size=1, max_size=5),
    rnd=st.randoms(use_true_random=False),
)
@example("default", [], "default", "linear", [("layers.1", "model")], None)
@example(
    ["*.layers.1.*"],
    [],
    "default",
    "linear",
    [("1", "model.layers"), ("mlp", "model.layers.10")],
    None,
)
@example(["*.b.*"], [], "default", "conv", [("b", "a")], None)
@example("linear_qkv", [], "default", "linear", [("linear_qkv", "m"), ("q", "m")], None)
@example([], None, "default", "linear", [("x", "m")], None)
@example(["linear_qkv", "layer("], [], "default", "conv", [("linear_qkv", "m"), ("x", "m")], None)
@example([], ["*.b.*"], "default", "linear", [("b", "a"), (None, "a"), (None, None)], None)
@example(["x"], [], {"*.q": set(), "q": set()}, "conv", [("q", "m")], None)
@example(["*"], [], "default", "conv", [("", None), ("", "")], None)
def test_match_and_bookkeeping(
    targets: Any, excludes: Any, mapping: Any, module: str, calls: Any, rnd: Any
) -> None:
    kwargs: dict[str, Any] = {"exclude_modules": excludes}
    if targets != "default":
        if rnd is not None and isinstance(targets, list):
            rnd.shuffle(targets)  # nothing may rely on the order of the set's answers
        kwargs["target_modules"] = targets
    if mapping != "default":
        kwargs["canonical_mapping"] = mapping
    ours, theirs = pair(kwargs)
    assert ours == mb.ModuleMatcher(**kwargs)
    assert [getattr(ours, f.name) for f in dataclasses.fields(ours)] == [
        getattr(theirs, f.name) for f in dataclasses.fields(theirs)
    ]
    assert_same_walk(ours, theirs, calls, MODULES[module])


_OPS = st.one_of(
    st.tuples(st.just("append"), st.sampled_from(["target_modules", "exclude_modules"]), PATTERN),
    st.tuples(st.just("setitem"), st.sampled_from(["target_modules", "exclude_modules"]), PATTERN),
    st.tuples(st.just("delitem"), st.sampled_from(["target_modules", "exclude_modules"])),
    st.tuples(st.just("reverse"), st.sampled_from(["target_modules", "exclude_modules"])),
    st.tuples(st.just("clear"), st.sampled_from(["target_modules", "exclude_modules"])),
    st.tuples(
        st.just("assign"),
        st.sampled_from(["target_modules", "exclude_modules"]),
        field_value(empty_often=True),
    ),
    st.tuples(st.just("map add"), PATTERN),
    st.tuples(st.just("map del")),
    st.tuples(st.just("map rotate")),
    st.tuples(st.just("map rename"), PATTERN),
    st.tuples(st.just("equal copy"), st.sampled_from(["target_modules", "exclude_modules"])),
    st.tuples(st.just("map clear")),
    st.tuples(st.just("map assign"), mapping_value()),
)


def _apply(op: tuple[Any, ...], ours: Any, theirs: Any) -> None:
    """One change, made once to the objects both matchers share, or assigned to both."""
    kind = op[0]
    if kind == "assign":
        setattr(ours, op[1], op[2])
        setattr(theirs, op[1], op[2])
    elif kind == "map assign":
        value = defaultdict(set) if op[1] == "default" else op[1]
        ours.canonical_mapping = theirs.canonical_mapping = value
    elif kind.startswith("map"):
        mapping = theirs.canonical_mapping
        if not isinstance(mapping, dict):
            return
        if kind == "map add":
            mapping.setdefault(op[1], set()).add("x")
        elif kind == "map del" and mapping:
            del mapping[next(iter(mapping))]
        elif kind == "map rotate" and mapping:
            first = next(iter(mapping))  # to the end: same keys, same length, another order
            mapping[first] = mapping.pop(first)
        elif kind == "map rename" and mapping and op[1] not in mapping:
            del mapping[next(iter(mapping))]  # same length, another key
            mapping[op[1]] = set()
        elif kind == "map clear":
            mapping.clear()
    else:
        value = getattr(theirs, op[1])
        if not isinstance(value, list):
            return
        if kind == "append":
            value.append(op[2])
        elif kind == "setitem" and value:
            value[len(value) // 2] = op[2]
        elif kind == "delitem" and value:
            del value[0]
        elif kind == "equal copy" and value:
            # An equal but distinct str: upstream returns the element the list holds now.
            value[-1] = (
                "".join([value[-1][:1], value[-1][1:]]) if isinstance(value[-1], str) else value[-1]
            )
        elif kind == "reverse":
            value.reverse()
        elif kind == "clear":
            value.clear()


# Mappings with keys to reorder and rename.
_KEYED = st.lists(PATTERN, min_size=2, max_size=4, unique=True).map(
    lambda keys: defaultdict(set, {key: set() for key in keys})
)


@_QUARTER
@given(
    targets=st.lists(PATTERN, max_size=4),
    excludes=st.sampled_from([[], [], ["*.b.*"], ["linear_fc1"]]),
    mapping=st.one_of(mapping_value(), _KEYED),
    ops=st.lists(_OPS, min_size=1, max_size=5),
    module=st.sampled_from(sorted(MODULES)),
    calls=st.lists(call(), min_size=1, max_size=3),
)
@example(
    ["a"],
    [],
    "default",
    [("append", "target_modules", "*.layers.1.*")],
    "linear",
    [("1", "x.layers")],
)
@example(["a", "b"], [], "default", [("setitem", "target_modules", "*")], "linear", [("x", "m")])
@example(["a"], [], "default", [("map add", "*.q")], "linear", [("q", "m")])
@example([], [], "default", [("append", "exclude_modules", "*.b")], "linear", [("b", "a")])
@example(["a"], [], {"q": set(), "*.q": set()}, [("map rotate",)], "conv", [("q", "m")])
@example(["a", "*.q"], [], "default", [("equal copy", "target_modules")], "conv", [("q", "m")])
def test_changes_after_construction_are_honoured(
    targets: list[str], excludes: list[str], mapping: Any, ops: Any, module: str, calls: Any
) -> None:
    kwargs: dict[str, Any] = {
        "target_modules": targets,
        "exclude_modules": list(excludes),
        # Shared even when it is the default, so that an in-place change reaches both.
        "canonical_mapping": defaultdict(set) if mapping == "default" else mapping,
    }
    ours, theirs = pair(kwargs)
    m = MODULES[module]
    assert_same_calls(ours, theirs, calls, m)  # compiles the lists before they change
    for op in ops:
        _apply(op, ours, theirs)
        assert_same_walk(ours, theirs, calls, m)


@_QUARTER
@given(
    values=st.fixed_dictionaries(
        {
            "ColumnParallelLinear": st.sampled_from([FakeColumn, FakeRow, MyLinear]),
            "RowParallelLinear": st.sampled_from([FakeRow, FakeTERow]),
            "TEColumnParallelLinear": st.sampled_from([FakeTECol, FakeColumn]),
            "TELayerNormColumnParallelLinear": st.sampled_from([FakeTELNCol, nn.Conv1d]),
            "TERowParallelLinear": st.sampled_from([FakeTERow, FakeTECol]),
            "HAVE_TE_COL_LINEAR": st.booleans(),
            "HAVE_TE_LN_COL_LINEAR": st.sampled_from([False, True, 0, 1]),
            "HAVE_TE_ROW_LINEAR": st.booleans(),
        }
    ),
    excludes=st.lists(PATTERN, max_size=3),
    module=st.sampled_from(sorted(MODULES)),
    calls=st.lists(call(), min_size=1, max_size=3),
)
def test_monkeypatched_linear_classes(
    values: dict[str, Any], excludes: list[str], module: str, calls: Any
) -> None:
    with linear_classes(values):
        ours, theirs = pair({"target_modules": [], "exclude_modules": excludes})
        assert_same_walk(ours, theirs, calls, MODULES[module])


@given(PATTERN, st.one_of(FULL_NAMES, st.none()))
@example("*.layers.0.*.linear_qkv", "decoder.layers.01.self_attention.linear_qkv")
@example("*.b.*", "a.b")
@example("*.layers.1.*", "model.layers.1")
@example("layer(", "layer(")
@example("abc", "abc\n")
def test_wildcard_match(pattern: str, key: str | None) -> None:
    got = outcome(lambda: mb.wildcard_match(pattern, key))
    want = outcome(lambda: ref.wildcard_match(pattern, key))
    assert got[0] == want[0] and got[1] is want[1], (got, want)  # True, False, None or the type


_ALIASES = st.sampled_from(["", "q", "linear_q", "*.q", None])


@_QUARTER
@given(
    registrations=st.lists(st.tuples(_ALIASES, _ALIASES), max_size=6),
    calls=st.lists(call(), min_size=1, max_size=4),
)
@example([("q", ""), ("q", "*.q")], [("q", "m")])
def test_registered_aliases(registrations: list[tuple[Any, Any]], calls: Any) -> None:
    # A subclass (upstream's CanonicalLoRA) maps its own aliases onto canonical patterns.
    mapping: defaultdict[str, set[Any]] = defaultdict(set)
    ours, theirs = pair({"target_modules": [], "canonical_mapping": mapping})
    for alias, pattern in registrations:
        ours.register_target_alias(alias, pattern)
        theirs.register_target_alias(alias, pattern)
        if pattern is not None:
            mapping[pattern].add(alias)
        assert bookkeeping(ours) == bookkeeping(theirs)
    assert_same_calls(ours, theirs, calls, MODULES["linear"])
    assert bookkeeping(ours) == bookkeeping(theirs)
    with captured(logging.getLogger(mb.__name__)) as got, captured(ref.logger) as expected:
        ours._validate_target_matches()
        theirs._validate_target_matches()
    assert got.messages == expected.messages


# --- select: Megatron-Bridge's walk over a model -------------------------------------------------


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.self_attention = nn.Module()
        self.self_attention.linear_qkv = nn.Linear(1, 1)
        self.self_attention.linear_proj = FakeRow()
        self.mlp = nn.Module()
        self.mlp.linear_fc1 = FakeColumn()
        self.mlp.linear_fc2 = nn.Linear(1, 1)
        self.norm = nn.LayerNorm(1)


def _gpt() -> nn.Module:
    model = nn.Module()
    model.embedding = nn.Embedding(2, 1)
    model.decoder = nn.Module()
    model.decoder.layers = nn.ModuleList([_Block() for _ in range(12)])
    model.output_layer = nn.Linear(1, 1)
    return model


GPT = _gpt()


def walk(module: nn.Module, func: Callable[..., Any], **where: Any) -> None:
    """Megatron-Bridge's walk in short: the root without a name, each child under its parent's path."""
    func(module, **where)
    path = f"{where['prefix']}.{where['name']}" if where.get("prefix") else where.get("name", "")
    for name, child in module.named_children():
        walk(child, func, name=name, prefix=path)


@_QUARTER
@given(
    targets=field_value(empty_often=True),
    excludes=st.one_of(st.just([]), st.lists(PATTERN, max_size=3)),
    linear_root=st.booleans(),
)
@example(["*.layers.1.*"], [], False)
@example([], ["*.layers.1*"], True)
def test_select_asks_as_the_walk_does(targets: Any, excludes: Any, linear_root: bool) -> None:
    model = nn.Linear(1, 1) if linear_root else GPT
    with linear_classes({"ColumnParallelLinear": FakeColumn, "RowParallelLinear": FakeRow}):
        ours, theirs = pair({"target_modules": targets, "exclude_modules": excludes})
        expected: list[Any] = []

        def record(module: nn.Module, name: Any = None, prefix: Any = None) -> None:
            found = theirs.match(module, name, prefix)
            if found is not None:
                expected.append((module, found[0]))

        ours._init_target_match_state()
        theirs._init_target_match_state()
        want = outcome(lambda: walk(model, record))
        got = outcome(lambda: ours.select(model))
        assert got[0] == want[0], (got, want)
        if got[0] == "raised":
            assert got[1] is want[1]
            return
        assert [(module, pattern) for _, module, pattern in got[1]] == expected
        names = dict((module, name) for name, module in model.named_modules())
        assert [name for name, _, _ in got[1]] == [names[module] for module, _ in expected]
        assert bookkeeping(ours) == bookkeeping(theirs)


# --- Single cases --------------------------------------------------------------------------------


def test_dataclass_shape_is_upstreams() -> None:
    ours, theirs = dataclasses.fields(mb.ModuleMatcher), dataclasses.fields(ref.ModuleMatcher)
    assert [(f.name, f.init, f.repr) for f in ours] == [(f.name, f.init, f.repr) for f in theirs]
    matcher = mb.ModuleMatcher()
    assert matcher.target_modules == ["linear_qkv", "linear_proj", "linear_fc1", "linear_fc2"]
    assert matcher.exclude_modules == []
    assert type(matcher.canonical_mapping) is defaultdict and not matcher.canonical_mapping
    assert repr(matcher) == repr(ref.ModuleMatcher()).replace(ref.__name__, mb.__name__)
    assert mb.ModuleMatcher().target_modules is not matcher.target_modules  # fresh defaults
    matcher.target_modules = ["x"]  # not frozen
    assert mb.__all__ == sorted(mb.__all__)


def test_str_targets_are_iterated_by_character() -> None:
    matcher = mb.ModuleMatcher(target_modules="q_proj")
    assert matcher.target_modules == "q_proj"
    assert matcher.match(nn.Linear(1, 1), "q_proj", "m") is None
    assert matcher.match(nn.ReLU(), "p", "m") == ("p", "m.p")
    assert matcher.match(nn.ReLU(), "x", "m") is None


def test_first_pattern_in_list_order_wins() -> None:
    matcher = mb.ModuleMatcher(target_modules=["*.linear_qkv", "linear_qkv", "*"])
    assert matcher.match(None, "linear_qkv", "m") == ("*.linear_qkv", "m.linear_qkv")
    matcher.target_modules.reverse()
    assert matcher.match(None, "linear_qkv", "m") == ("*", "m.linear_qkv")
    # canonical_mapping comes first, in its insertion order; target_modules are then only aliases.
    matcher.canonical_mapping["q"] = set()
    matcher.canonical_mapping["*.q"] = set()
    assert matcher.match(None, "q", "m") == ("q", "m.q")
    del matcher.canonical_mapping["q"]
    matcher.canonical_mapping["q"] = set()
    assert matcher.match(None, "q", "m") == ("*.q", "m.q")


def test_assertion_messages() -> None:
    with pytest.raises(AssertionError) as info:
        mb.ModuleMatcher(exclude_modules=["x"]).match(None, "linear_qkv")
    assert str(info.value) == "exclude_modules should be empty when using target_modules"
    mapping = defaultdict(set, {"x": set()})
    with pytest.raises(AssertionError) as info:
        mb.ModuleMatcher(exclude_modules=["x"], canonical_mapping=mapping).match(None, "x")
    assert str(info.value) == "exclude_modules should be empty when using canonical_mapping"


def test_invalid_pattern_raises_only_when_reached() -> None:
    matcher = mb.ModuleMatcher(target_modules=["linear_qkv", "layer("])
    assert matcher.match(None, "linear_qkv", "m") == ("linear_qkv", "m.linear_qkv")
    assert matcher.match(None, "layer(", "m") == ("layer(", "m.layer(")  # equal: never compiled
    assert matcher.match(None, None, None) is None  # no full name: never compiled
    with pytest.raises(re.error) as info:
        matcher.match(None, "x", "m")
    assert type(info.value) is re.error  # upstream's exception itself
    with pytest.raises(re.error) as info:
        mb.wildcard_match("layer(", "x")
    assert type(info.value) is re.error


def test_unmatched_targets_warn(caplog: pytest.LogCaptureFixture) -> None:
    matcher = mb.ModuleMatcher(
        target_modules=["linear_qkv", "*.typo", "linear_fc1", "*.linear_qkv"]
    )
    matcher._init_target_match_state()
    walk(GPT, lambda module, name=None, prefix=None: matcher.match(module, name, prefix))
    with caplog.at_level(logging.WARNING, logger=mb.__name__):
        matcher._validate_target_matches()
    # "*.linear_qkv" would match, but "linear_qkv" comes first and claims every module it would.
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            "modmatch.megatron_bridge",
            logging.WARNING,
            "No modules matched the requested target_modules entries: *.linear_qkv, *.typo",
        )
    ]
    assert len(matcher._alias_matches["linear_qkv"]) == 12
    matcher._reset_target_match_state()
    assert matcher._alias_matches == {a: set() for a in matcher.target_modules}
    caplog.clear()
    mb.ModuleMatcher(target_modules=[])._validate_target_matches()  # no aliases: silent
    assert not caplog.records


def test_patterns_compile_once_and_again_after_a_change(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once compiling pays (here at once: upstream's loop would answer a list this short on a
    walk this short), the list is compiled once, and again only after it changed."""
    from modmatch.engine import plans

    monkeypatch.setattr(plans, "SAMPLE", 1)
    monkeypatch.setattr(plans, "_MIN_CALLS", 1)
    monkeypatch.setattr(plans, "_ENGINE_CALL", -1.0)
    monkeypatch.setattr(plans, "_TRIAL", 0)
    monkeypatch.setattr(mb, "build_cost", lambda patterns: 0.0)
    monkeypatch.setattr(plans, "_FEW", 0)  # no list is one re regex
    built: list[tuple[str, ...]] = []
    original = mb.PatternSet

    def counting(patterns: Any, **kwargs: Any) -> Any:
        built.append(tuple(patterns))
        return original(patterns, **kwargs)

    monkeypatch.setattr(mb, "PatternSet", counting)
    matcher = mb.ModuleMatcher(target_modules=["*.linear_qkv", "linear_fc1"])
    for layer in range(5):
        assert matcher.match(None, "linear_qkv", f"decoder.layers.{layer}") is not None
    assert built == [("*.linear_qkv", "linear_fc1")]
    matcher.target_modules.append("*.layers.1.*")
    assert matcher.match(None, "mlp", "decoder.layers.1") == (
        "*.layers.1.*",
        "decoder.layers.1.mlp",
    )
    matcher.target_modules[0] = "x"
    assert matcher.match(None, "linear_qkv", "decoder.layers.0") is None
    matcher.target_modules = ["*"]
    assert matcher.match(None, "y", "m") == ("*", "m.y")
    assert built[1:] == [
        ("*.linear_qkv", "linear_fc1", "*.layers.1.*"),
        ("x", "linear_fc1", "*.layers.1.*"),
        ("*",),
    ]


@pytest.mark.parametrize(
    "patterns",
    [
        ["*linear_qkv", "*.layers.1.*", "decoder.*"],  # one regex of them, for good
        ["decoder.*", "*.layers.1.*", "*linear_qkv", "decoder.*"],
        ["*.layers.1.*", "linear_proj", "*qkv*", "*.layers.1.*"],  # two stars: rented
    ],
)
def test_a_few_plain_patterns_claim_in_list_order(patterns: list[str]) -> None:
    """Where several patterns of a short plain list match, the first in the list claims the
    module, as upstream's loop; a short name equal to a later pattern does not jump the queue."""
    modules = [
        ("linear_qkv", "decoder.layers.1"),
        ("linear_qkv", "decoder.layers.2"),
        ("linear_proj", "decoder.layers.1"),
        ("mlp", "decoder.layers.1"),
        ("linear_proj", "other"),
        ("x", None),
    ]
    ours = mb.ModuleMatcher(target_modules=list(patterns))
    theirs = ref.ModuleMatcher(target_modules=list(patterns))
    for name, prefix in modules:
        assert ours.match(None, name, prefix) == theirs.match(None, name, prefix)
    assert ours._alias_matches == theirs._alias_matches


def test_copies_pickles_and_subclasses_keep_answering() -> None:
    matcher = mb.ModuleMatcher(target_modules=["*.layers.1.*"])
    assert matcher.match(None, "mlp", "m.layers.1") is not None
    for clone in (copy.copy(matcher), copy.deepcopy(matcher), pickle.loads(pickle.dumps(matcher))):
        assert clone == matcher
        assert clone.match(None, "mlp", "m.layers.1") == ("*.layers.1.*", "m.layers.1.mlp")
    shallow = copy.copy(matcher)
    shallow.target_modules = ["*.layers.2.*"]
    assert shallow.match(None, "mlp", "m.layers.1") is None
    assert matcher.match(None, "mlp", "m.layers.1") is not None

    @dataclasses.dataclass
    class PEFT:
        dim: int = 8

    @dataclasses.dataclass
    class LoRA(PEFT, mb.ModuleMatcher):  # as upstream: class LoRA(PEFT, ModuleMatcher)
        alpha: int = 32

    lora = LoRA(target_modules=["linear_qkv"])
    lora.target_modules = ["linear_proj"]  # recipes change targets after construction
    assert lora.match(None, "linear_proj", "m") == ("linear_proj", "m.linear_proj")
    assert lora.match(None, "linear_qkv", "m") is None


def test_linear_classes_are_read_at_match_time() -> None:
    matcher = mb.ModuleMatcher(target_modules=[])
    assert matcher.match(FakeColumn(), "x") is None
    with mock.patch("modmatch.megatron_bridge.ColumnParallelLinear", FakeColumn):
        assert matcher.match(FakeColumn(), "x") == ("x", "x")
    assert matcher.match(FakeColumn(), "x") is None
    with mock.patch.multiple(mb, TERowParallelLinear=FakeTERow, HAVE_TE_ROW_LINEAR=False):
        assert matcher.match(FakeTERow(), "x") is None
        with mock.patch.object(mb, "HAVE_TE_ROW_LINEAR", True):
            assert matcher.match(FakeTERow(), "x") == ("x", "x")


def test_import_is_light() -> None:
    code = (
        "import sys, modmatch.megatron_bridge as mb;"
        "mb.ModuleMatcher().match(None, 'linear_qkv', 'm');"
        "print('torch' in sys.modules, 'megatron' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]


def test_select_asks_a_subclass_s_own_match() -> None:
    # Megatron-Bridge's LoRA inherits the matcher: a subclass's own match is asked about every
    # module, not only about those the patterns could claim.
    @dataclasses.dataclass
    class EveryModule(mb.ModuleMatcher):
        def match(self, m: Any, name: Any = None, prefix: Any = None) -> tuple[str, str] | None:
            return ("any", f"{prefix}.{name}" if prefix else name)

    model = nn.Sequential(nn.Linear(1, 1), nn.ReLU())
    chosen = EveryModule(target_modules=["x"]).select(model)
    assert [name for name, _, _ in chosen] == ["", "0", "1"]
    assert mb.ModuleMatcher(target_modules=["x"]).select(model) == []
