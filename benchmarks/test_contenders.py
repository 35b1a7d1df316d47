"""Every contender on every case, side by side in one run, after checking they select the same.

Quick mode (the default, CI's) runs each once as a test with ``--benchmark-disable``; for the
full run and the results table, see the README.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from torch import nn

from contenders import CONTENDERS, REFERENCE, Contender, module_matcher, seed_module_matcher
from modmatch import ModuleMatcher, reference
from timing import timed
from workloads import CASES, PATTERN_SETS, Case, meta_model, modules, names


@functools.cache
def selected(case: Case) -> frozenset[str]:
    """What the case selects, by modmatch, checked against the seed on the seed's sample."""
    every = list(names(case.model))
    ours = module_matcher(case.patterns, every)()
    sample = REFERENCE.names(case, every)
    chosen = frozenset(ours)
    assert seed_module_matcher(case.patterns, sample)() == [n for n in sample if n in chosen]
    return chosen


@pytest.mark.parametrize("contender", CONTENDERS, ids=lambda c: c.name)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_selection(benchmark: Any, case: Case, contender: Contender) -> None:
    reason = contender.skip_reason(case)
    if reason:
        pytest.skip(reason)
    timed_names = contender.names(case, names(case.model))
    expected = [name for name in timed_names if name in selected(case)]
    assert contender.build(case.patterns, timed_names)() == expected  # same answers first
    timed(
        benchmark,
        case.id,
        lambda: contender.build(case.patterns, timed_names),
        contender.cold,
        case=case.id,
        contender=contender.name,
        names=len(timed_names),
        patterns=len(case.patterns),
    )


# A whole model as nn.Module objects on the meta device (Kimi-K2 takes ~10 s to build). On a
# small model, building the matcher would weigh more than the selection.
WHOLE_MODEL = "kimi-k2"
WHOLE_PATTERNS = list(PATTERN_SETS["64 per-expert"])


@functools.cache
def model() -> nn.Module:
    return meta_model(WHOLE_MODEL)


def test_the_meta_model_has_the_shapes_modules() -> None:
    built = [(name, isinstance(module, nn.Linear)) for name, module in model().named_modules()]
    assert built == list(modules(WHOLE_MODEL))


def walk(model: nn.Module) -> list[str]:
    return [name for name, _ in model.named_modules()]


def seed_select(model: nn.Module) -> list[str]:
    matcher = reference.ModuleMatcher(target_modules=WHOLE_PATTERNS)
    selected = []
    for full_name, module in model.named_modules():
        prefix, _, name = full_name.rpartition(".")
        if matcher.match(module, name, prefix):
            selected.append(full_name)
    return selected


def modmatch_select(model: nn.Module) -> list[str]:
    return [name for name, _ in ModuleMatcher(target_modules=WHOLE_PATTERNS).select(model)]


@pytest.mark.parametrize(
    "select",
    [walk, seed_select, modmatch_select],
    ids=["named_modules() walk (floor)", "seed match per module", "modmatch select"],
)
def test_whole_model(benchmark: Any, select: Any) -> None:
    if select is modmatch_select:
        assert select(model()) == seed_select(model())  # the seed is the reference
    timed(
        benchmark,
        f"whole model: {WHOLE_MODEL}",
        lambda: lambda: select(model()),
        False,
        case=f"{WHOLE_MODEL} model",
        contender=select.__name__,
        names=len(names(WHOLE_MODEL)),
        patterns=len(WHOLE_PATTERNS),
    )
