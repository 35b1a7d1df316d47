"""Differential properties: modmatch answers exactly as the seed's `re` reference."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from torch import nn

from modmatch import (
    FallbackWarning,
    ModuleMatcher,
    PatternError,
    PatternSet,
    Rule,
    reference,
    wildcard_match,
)
from strategies import NAMES, PATTERNS, SOUP, compiles

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::modmatch.FallbackWarning"),
]


class MyLinear(nn.Linear):
    pass


MODULES = {"linear": nn.Linear(1, 1), "linear subclass": MyLinear(1, 1), "relu": nn.ReLU()}


def outcome(call: Any) -> tuple[str, Any]:
    """What a call returned (by identity), or the type of what it raised."""
    try:
        return ("returned", call())
    except Exception as error:
        return ("raised", type(error))


def same(ours: tuple[str, Any], theirs: tuple[str, Any]) -> bool:
    return ours[0] == theirs[0] and ours[1] is theirs[1]


@given(PATTERNS, NAMES)
@example("lm_head|*.q_proj", "lm_head.extra")
@example("*\\", "a$bc")
@example("*.q_proj", "a.q_proj\n")
@example("a{,2}", "aa")
@example("[[:alpha:]]", "a]")
@example(r"\d", "\u0663")
@example(r"(?i:k)", "\u212a")
@example(r"\B", "")
@example("(?m:x$)", "x\ny")
def test_wildcard_match(pattern: str, name: str) -> None:
    if not compiles(pattern):
        with pytest.raises(PatternError):
            wildcard_match(pattern, name)
        return
    assert wildcard_match(pattern, name) is reference.wildcard_match(pattern, name)
    assert wildcard_match(pattern, None) is None


@given(
    st.lists(PATTERNS, max_size=8), st.lists(NAMES, max_size=6), st.randoms(use_true_random=False)
)
def test_patternset_matches(patterns: list[str], names: list[str], rnd: Any) -> None:
    patterns = [p for p in patterns if compiles(p)]
    matcher = PatternSet(patterns)
    order = list(range(len(patterns)))
    rnd.shuffle(order)
    shuffled = PatternSet([patterns[i] for i in order])
    # Patterns listed again (compiled once, every index given back).
    repeated = (
        patterns + [rnd.choice(patterns) for _ in range(rnd.randint(1, 3))] if patterns else []
    )
    with_copies = PatternSet(repeated)
    expected_names = []
    for name in names:
        expected = tuple(i for i, p in enumerate(patterns) if reference.wildcard_match(p, name))
        assert matcher.matches(name) == expected
        assert matcher.match(name) is bool(expected)
        copies = tuple(i for i, p in enumerate(repeated) if reference.wildcard_match(p, name))
        assert with_copies.matches(name) == copies
        assert with_copies.match(name) is bool(copies)
        # Nothing may depend on the order the set reports matches in.
        assert sorted(order[j] for j in shuffled.matches(name)) == list(expected)
        if expected:
            expected_names.append(name)
    assert matcher.filter(names) == expected_names


@given(SOUP, st.lists(NAMES, max_size=3))
@example("(a)\\1", ["aa"])
@example("a{1001}", ["a" * 1001])
@example("(?:a{100}){100}", ["a" * 10000])
@example("(?<=a*)", [""])
@example("{99999999999}", [""])
def test_invalid_patterns_raise_pattern_error(pattern: str, names: list[str]) -> None:
    if compiles(pattern):
        matcher = PatternSet([pattern])
        for name in names:
            assert matcher.match(name) is reference.wildcard_match(pattern, name)
        return
    with pytest.raises(PatternError) as info:
        PatternSet(["*.q_proj", pattern])
    assert isinstance(info.value, re.error) and isinstance(info.value, ValueError)
    assert info.value.index == 1
    assert repr(pattern) in str(info.value)


_PATTERN_LISTS = st.lists(PATTERNS.filter(compiles), max_size=4)
_PATTERN_FIELD = st.one_of(
    st.none(),
    PATTERNS.filter(compiles),
    _PATTERN_LISTS,
    _PATTERN_LISTS.map(tuple),
)


@st.composite
def _name_and_prefix(draw: st.DrawFn) -> tuple[str | None, str | None]:
    full = draw(NAMES)
    if draw(st.integers(0, 9)) == 0:
        return None, draw(st.sampled_from([None, "", "model"]))
    cut = draw(st.integers(0, len(full)))
    prefix, name = full[:cut].rstrip("."), full[cut:].lstrip(".")
    return name, draw(st.sampled_from([prefix, prefix, None, ""]))


@given(
    targets=st.one_of(st.just("default"), _PATTERN_FIELD),
    excludes=_PATTERN_FIELD,
    match_all_linear=st.sampled_from([False, True, 0, 1]),
    is_causal_lm=st.booleans(),
    module=st.sampled_from(sorted(MODULES)),
    calls=st.lists(_name_and_prefix(), min_size=1, max_size=4),
)
def test_module_matcher(
    targets: Any,
    excludes: Any,
    match_all_linear: Any,
    is_causal_lm: bool,
    module: str,
    calls: list[Any],
) -> None:
    kwargs: dict[str, Any] = {
        "exclude_modules": excludes,
        "match_all_linear": match_all_linear,
        "is_causal_lm": is_causal_lm,
    }
    if targets != "default":
        kwargs["target_modules"] = targets
    theirs = outcome(lambda: reference.ModuleMatcher(**kwargs))
    ours = outcome(lambda: ModuleMatcher(**kwargs))
    if theirs[0] == "raised":
        assert ours == theirs
        return
    assert ours[0] == "returned", ours
    assert ours[1].target_modules == theirs[1].target_modules
    assert ours[1].exclude_modules == theirs[1].exclude_modules
    for name, prefix in calls:
        m = MODULES[module]
        expected = outcome(lambda m=m, n=name, p=prefix: theirs[1].match(m, n, p))
        got = outcome(lambda m=m, n=name, p=prefix: ours[1].match(m, n, p))
        assert same(got, expected), (name, prefix, got, expected)
        got_kw = outcome(lambda m=m, n=name, p=prefix: ours[1].match(m, name=n, prefix=p))
        assert same(got_kw, expected)
        explained = outcome(lambda m=m, n=name, p=prefix: ours[1].explain(n, p, m))
        if expected[0] == "raised":
            assert explained == expected
        else:
            assert explained[1].result is expected[1]
            pattern = explained[1].pattern
            if explained[1].rule in (Rule.EXACT_NAME, Rule.EXCLUDED_BY_NAME):
                assert pattern == name
            elif explained[1].rule in (Rule.TARGET_PATTERN, Rule.EXCLUDED_BY_PATTERN):
                full = f"{prefix}.{name}" if prefix else name
                assert reference.wildcard_match(pattern, full) is True


class _Model:
    """Just ``named_modules()``: lets names no ``nn.Module`` tree could hold reach ``select``."""

    def __init__(self, modules: list[tuple[str, nn.Module]]) -> None:
        self._modules = modules

    def named_modules(self) -> Any:
        return iter(self._modules)


@given(
    targets=_PATTERN_FIELD.filter(bool),
    excludes=_PATTERN_FIELD,
    match_all_linear=st.sampled_from([False, True]),
    is_causal_lm=st.booleans(),
    modules=st.lists(st.tuples(NAMES, st.sampled_from(sorted(MODULES))), max_size=8),
    use_targets=st.booleans(),
)
# The seed rebuilds ".q_proj" as "q_proj" (an empty prefix is dropped): "q*" matches it.
@example(["q*"], None, False, False, [(".q_proj", "relu")], True)
def test_select_decides_each_module_as_the_seeds_match(
    targets: Any,
    excludes: Any,
    match_all_linear: bool,
    is_causal_lm: bool,
    modules: list[tuple[str, str]],
    use_targets: bool,
) -> None:
    # One pass over all names must decide every module as the seed's match does, one by one.
    kwargs: dict[str, Any] = {
        "target_modules": targets if use_targets else [],
        "exclude_modules": excludes,
        "match_all_linear": match_all_linear,
        "is_causal_lm": is_causal_lm,
    }
    theirs = outcome(lambda: reference.ModuleMatcher(**kwargs))
    if theirs[0] == "raised":
        return  # construction is compared in test_module_matcher
    model = _Model([(name, MODULES[kind]) for name, kind in modules])

    def seed_select() -> list[tuple[str, nn.Module]]:
        selected = []
        for full_name, module in model.named_modules():
            prefix, _, name = full_name.rpartition(".")
            if theirs[1].match(module, name, prefix):
                selected.append((full_name, module))
        return selected

    expected = outcome(seed_select)
    got = outcome(lambda: ModuleMatcher(**kwargs).select(model))
    assert got[0] == expected[0] and got[1] == expected[1], (got, expected)


PLAIN_PATTERNS = st.lists(
    st.sampled_from(["*", ".", "model", "layers", "q_proj", "1", "lm_head", "_"]), max_size=6
).map("".join)


@given(st.lists(PLAIN_PATTERNS, min_size=1, max_size=8), st.lists(NAMES, max_size=12))
def test_filter_of_plain_patterns_in_one_pass(patterns: list[str], names: list[str]) -> None:
    # Plain patterns take the one-pass path over all names joined by newlines.
    expected = [n for n in names if any(reference.wildcard_match(p, n) for p in patterns)]
    assert PatternSet(patterns).filter(names) == expected
    assert PatternSet(patterns).filter(iter(names)) == expected


@given(
    modules=st.lists(st.tuples(NAMES, st.sampled_from(sorted(MODULES))), min_size=1, max_size=8),
    data=st.data(),
    as_targets=st.booleans(),
    match_all_linear=st.booleans(),
    is_causal_lm=st.booleans(),
)
def test_select_of_the_models_own_names(
    modules: list[tuple[str, str]],
    data: st.DataObject,
    as_targets: bool,
    match_all_linear: bool,
    is_causal_lm: bool,
) -> None:
    # Patterns drawn from the model's own names (any characters), so that the one-pass rule
    # for a pattern equal to a short name meets dots, newlines and escapes.
    own = [part for name, _ in modules for part in (name, name.rpartition(".")[2])]
    drawn = st.one_of(st.sampled_from(own), PLAIN_PATTERNS)
    patterns = data.draw(st.lists(drawn.filter(compiles), min_size=1, max_size=5))
    kwargs: dict[str, Any] = {
        "target_modules": patterns if as_targets else [],
        "exclude_modules": [] if as_targets else patterns,
        "match_all_linear": match_all_linear,
        "is_causal_lm": is_causal_lm,
    }
    seed = reference.ModuleMatcher(**kwargs)
    model = _Model([(name, MODULES[kind]) for name, kind in modules])
    expected = outcome(
        lambda: [
            (full_name, module)
            for full_name, module in model.named_modules()
            if seed.match(module, full_name.rpartition(".")[2], full_name.rpartition(".")[0])
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FallbackWarning)
        got = outcome(lambda: ModuleMatcher(**kwargs).select(model))
    assert got == expected


# --- Rent or buy: the framework's own loop and the engine answer alike ---------------------------


@pytest.fixture(params=["rent", "Automodel's loop", "buy at once"])
def plan(request: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Which plan answers: the rent for good (a price never reached), a few plain patterns as
    one ``re`` regex included (Automodel's and Megatron-Bridge's); the framework's loop for
    good, on every list; or the engine, bought on the first sampled call and kept at once, on
    every list."""
    from modmatch import automodel
    from modmatch.engine import plans

    # A list's first entries asked as the framework asks them (one per two here, one per
    # hundreds in use), then the plan: both parts of every call are exercised.
    monkeypatch.setattr(plans, "_EARLY_PER", 2)
    if request.param != "rent":
        monkeypatch.setattr(plans, "_FEW", 0)  # no list is asked as one regex
    if request.param == "buy at once":
        monkeypatch.setattr(plans, "SAMPLE", 1)
        monkeypatch.setattr(plans, "_MIN_CALLS", 1)
        monkeypatch.setattr(plans, "_ENGINE_CALL", -1.0)
        monkeypatch.setattr(plans, "_TRIAL", 0)
        monkeypatch.setattr(plans, "build_cost", lambda patterns: 0.0)
    else:
        monkeypatch.setattr(plans, "build_cost", lambda patterns: float("inf"))
        monkeypatch.setattr(plans, "_AT_ONCE", 0)  # no list is bought at once
    for module_name in ("modmatch.automodel", "modmatch.peft", "modmatch.megatron_bridge"):
        module = __import__(module_name, fromlist=["build_cost"])
        monkeypatch.setattr(module, "build_cost", plans.build_cost)
        if hasattr(module, "SAMPLE"):
            monkeypatch.setattr(module, "SAMPLE", plans.SAMPLE)
    automodel._cached_plan.cache_clear()  # lists planned under another plan
    yield str(request.param)
    automodel._cached_plan.cache_clear()  # and none of these left to later tests


# The plan fixture patches the same constants for every example: nothing to reset between them.
ONE_PLAN = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@ONE_PLAN
@given(
    st.lists(PATTERNS, min_size=1, max_size=4),
    st.lists(NAMES, min_size=1, max_size=6),
    st.lists(PATTERNS, max_size=2),
    st.booleans(),
)
def test_megatron_bridge_plans_answer_as_megatron_bridge(
    plan: str, patterns: list[str], names: list[str], added: list[str], excludes: bool
) -> None:
    """Each plan, and a list changed in place between calls, answers as Megatron-Bridge's own
    loop (its exceptions and recorded matches included); duplicates too."""
    from modmatch import megatron_bridge
    from modmatch.reference import megatron_bridge as megatron_bridge_reference

    field = "exclude_modules" if excludes else "target_modules"
    patterns = patterns + patterns[:1]  # a duplicate
    ours = megatron_bridge.ModuleMatcher(**{field: list(patterns)})
    theirs = megatron_bridge_reference.ModuleMatcher(**{field: list(patterns)})
    for index, pattern in enumerate(patterns):  # each pattern's matches recorded, as LoRA does
        ours.register_target_alias(f"alias {index}", pattern)
        theirs.register_target_alias(f"alias {index}", pattern)
    linear = MODULES["linear"]
    for step, name in enumerate(names * 2):
        if step == len(names):  # changed in place, as a recipe may do
            getattr(ours, field).extend(added)
            getattr(theirs, field).extend(added)
        prefix, _, short = name.rpartition(".")
        assert outcome(lambda s=short, p=prefix: ours.match(linear, s, p or None)) == outcome(
            lambda s=short, p=prefix: theirs.match(linear, s, p or None)
        )
    assert ours._alias_matches == theirs._alias_matches


@ONE_PLAN
@given(
    st.lists(PATTERNS, min_size=1, max_size=4),
    st.lists(NAMES, min_size=1, max_size=6),
    st.lists(PATTERNS, max_size=2),
    st.booleans(),
)
def test_automodel_plans_answer_as_automodel(
    plan: str, patterns: list[str], names: list[str], added: list[str], excludes: bool
) -> None:
    """Each plan, and a list changed in place between calls, answers as Automodel's own loop
    (its exceptions included); duplicates and patterns RE2 gives up on or cannot take too."""
    from modmatch import automodel
    from modmatch.reference import automodel as automodel_reference

    field = "exclude_modules" if excludes else "target_modules"
    patterns = patterns + patterns[:1]  # a duplicate
    ours_fields: dict[str, Any] = {field: list(patterns)}
    their_fields: dict[str, Any] = {field: list(patterns)}  # a list of their own, changed alike
    ours = automodel.ModuleMatcher(**ours_fields)
    theirs = automodel_reference.ModuleMatcher(**their_fields)
    linear = MODULES["linear"]
    for step, name in enumerate(names * 2):
        if step == len(names):  # changed in place, as a recipe may do
            getattr(ours, field).extend(added)
            getattr(theirs, field).extend(added)
        assert same(
            outcome(lambda n=name: ours.match(linear, n)),
            outcome(lambda n=name: theirs.match(linear, n)),
        )


_PEFT_PLAN_REGEXES = st.sampled_from(
    [
        r".*\.layers\.\d+\.(q|v)_proj",
        r"(?i).*\.Q_PROJ",
        r"^(?!.*experts).*_proj$",
        r"(a)\1.*",
        r"[",
    ]
)


@ONE_PLAN
@given(
    st.lists(NAMES, min_size=1, max_size=8),
    st.one_of(_PEFT_PLAN_REGEXES, st.just(["q_proj", "mlp"])),
    st.one_of(st.none(), _PEFT_PLAN_REGEXES, st.just(["k_proj"])),
    st.sampled_from([None, ["lm_head"], ["mlp", "("]]),
    st.sampled_from([None, [1, 3]]),
)
def test_peft_plans_answer_as_peft(
    plan: str,
    names: list[str],
    targets: Any,
    excludes: Any,
    to_save: Any,
    layers: Any,
) -> None:
    """A PEFT config holding a regex (a target, an exclude, or ``modules_to_save``) answers on
    either plan as PEFT's loop on ``re`` (True, None, False or excluded, or its error at the
    keys that reach an invalid regex), the lookaround and backreference only ``re`` runs
    included."""
    from types import SimpleNamespace

    from modmatch import peft
    from modmatch.reference import peft as peft_reference

    fields = {
        "target_modules": targets,
        "exclude_modules": excludes,
        "modules_to_save": to_save,
        "layers_to_transform": layers,
    }
    config = SimpleNamespace(**fields, layers_pattern=None, target_parameters=None)
    matcher = peft.PeftMatcher(**fields)
    for name in [*names, f"model.layers.3.{names[0]}.q_proj", "model.layers.1.mlp.k_proj"] * 2:
        ours = outcome(lambda n=name: matcher.match(n))
        found = outcome(lambda n=name: peft_reference.check_target_module_exists(config, n))
        if isinstance(found[1], peft_reference.Excluded):
            assert ours[0] == "returned" and type(ours[1]).__name__ in {
                "Excluded",
                "_ExcludedModule",
            }
            continue
        expected = ("returned", True) if isinstance(found[1], re.Match) else found
        assert same(ours, expected)


class _Patterns(list):  # type: ignore[type-arg]
    """A list subclass: changed in place like a list, and told apart by its copy the same way."""


@pytest.mark.parametrize("patterns", [["*_proj"], ["*.layers.1.*", "*.mlp.*"], ["a[", "*_proj"]])
def test_automodel_copies_and_pickles_answer_as_automodel(patterns: list[str]) -> None:
    """A matcher copied, deep-copied or pickled after it planned its list answers as Automodel,
    and a copy whose list is then changed in place (a list subclass too) plans it again."""
    import copy
    import pickle

    from modmatch import automodel
    from modmatch.reference import automodel as automodel_reference

    linear = MODULES["linear"]
    names = ["model.layers.1.mlp.up_proj", "lm_head", "model.layers.10.self_attn.q_proj", "a["]
    theirs = automodel_reference.ModuleMatcher(target_modules=_Patterns(patterns))
    ours = automodel.ModuleMatcher(target_modules=_Patterns(patterns))
    for name in names:
        outcome(lambda n=name: ours.match(linear, n))  # planned, and its rule has rented
    for clone in (copy.copy(ours), copy.deepcopy(ours), pickle.loads(pickle.dumps(ours))):
        for name in names:
            assert same(
                outcome(lambda n=name, c=clone: c.match(linear, n)),
                outcome(lambda n=name: theirs.match(linear, n)),
            )
    changed = copy.deepcopy(ours)
    reference_changed = copy.deepcopy(theirs)
    for matcher in (changed, reference_changed):
        matcher.target_modules[0] = "lm_*"
    for name in names:
        assert same(
            outcome(lambda n=name: changed.match(linear, n)),
            outcome(lambda n=name: reference_changed.match(linear, n)),
        )
