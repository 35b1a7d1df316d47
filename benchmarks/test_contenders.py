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


# Whole models as nn.Module objects on the meta device (Kimi-K2 takes ~10 s to build), each with
# the patterns a recipe would give it: per-expert wildcards, and Hugging Face short names. On a
# small model, building the matcher would weigh more than the selection.
WHOLE_MODELS = {"kimi-k2": "64 per-expert", "deepseek-v3": "HF short names"}


@functools.cache
def model(name: str) -> nn.Module:
    return meta_model(name)


@pytest.mark.parametrize("name", sorted(WHOLE_MODELS))
def test_the_meta_model_has_the_shapes_modules(name: str) -> None:
    built = [(full, isinstance(module, nn.Linear)) for full, module in model(name).named_modules()]
    assert built == list(modules(name))


def walk(model: nn.Module, patterns: list[str]) -> list[str]:
    return [name for name, _ in model.named_modules()]


def seed_select(model: nn.Module, patterns: list[str]) -> list[str]:
    matcher = reference.ModuleMatcher(target_modules=patterns)
    selected = []
    for full_name, module in model.named_modules():
        prefix, _, name = full_name.rpartition(".")
        if matcher.match(module, name, prefix):
            selected.append(full_name)
    return selected


def modmatch_select(model: nn.Module, patterns: list[str]) -> list[str]:
    return [name for name, _ in ModuleMatcher(target_modules=patterns).select(model)]


@pytest.mark.parametrize(
    "select",
    [walk, seed_select, modmatch_select],
    ids=["named_modules() walk (floor)", "seed match per module", "modmatch select"],
)
@pytest.mark.parametrize("name", sorted(WHOLE_MODELS))
def test_whole_model(benchmark: Any, name: str, select: Any) -> None:
    tree, patterns = model(name), list(PATTERN_SETS[WHOLE_MODELS[name]])
    if select is modmatch_select:
        assert select(tree, patterns) == seed_select(tree, patterns)  # the seed is the reference
    timed(
        benchmark,
        f"whole model: {name}",
        lambda: lambda: select(tree, patterns),
        False,
        case=f"{name} model",
        contender=select.__name__,
        names=len(names(name)),
        patterns=len(patterns),
    )
