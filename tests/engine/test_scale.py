"""Huge pattern sets and many names: exact answers, a cache that stays at its bound."""

from __future__ import annotations

import itertools
import re
import resource

import pytest

from modmatch import FallbackWarning, PatternSet, reference
from modmatch.inputs.shapes import SHAPES

# Seconds each, tens of seconds in all: run by `pytest -m slow` and CI, not by default.
pytestmark = pytest.mark.slow

KIMI = [name for name, _ in SHAPES["kimi-k2"].modules()]


def expert_patterns(count: int) -> list[str]:
    kinds = ["gate_proj", "up_proj", "down_proj", "w1", "w2"]
    triples = itertools.product(range(1, 61), range(384), kinds)
    return [f"*.layers.{i}.mlp.experts.{e}.{k}" for i, e, k in itertools.islice(triples, count)]


def test_ten_thousand_patterns_answer_as_the_reference() -> None:
    # Mixed in: patterns that are not plain, one RE2 cannot run, one with a `$` mid-pattern.
    patterns = [
        *expert_patterns(10_000),
        "*.layers.[0-2].self_attn.*",
        "(m)odel\\1",
        "x$y",
        "lm_head",
    ]
    with pytest.warns(FallbackWarning):
        matcher = PatternSet(patterns)
    # The reference, with each pattern compiled once, on a spread of Kimi-K2 names.
    compiled = [re.compile(reference.seed_regex(p)) for p in patterns]
    names = [
        *KIMI[::997],
        "model.layers.1.mlp.experts.5.up_proj\n",
        "model.layers.1.mlp.experts.5.up_proj",
    ]
    for name in names:
        expected = tuple(i for i, c in enumerate(compiled) if c.match(name))
        assert matcher.match(name) is bool(expected)
        assert matcher.matches(name) == expected


def test_hundred_thousand_patterns_answer_as_the_reference() -> None:
    patterns = expert_patterns(100_000)
    matcher = PatternSet(patterns)
    for name in [
        "model.layers.40.mlp.experts.383.up_proj",
        "model.layers.44.mlp.experts.1.w3",
        "lm_head",
    ]:
        expected = any(reference.wildcard_match(p, name) for p in patterns)
        assert matcher.match(name) is expected


def test_cache_stays_at_its_bound_over_millions_of_names() -> None:
    bound = 10_000
    matcher = PatternSet(["*.experts.*.gate_proj", "*.q_proj"], cache_size=bound)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for layer in range(10_000):
        for expert in range(1_000):
            matcher.match(f"model.layers.{layer}.mlp.experts.{expert}.gate_proj")
    assert 0 < len(matcher._any) <= bound
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    # 10,000 cached names of ~40 characters take a few MiB; a cache growing with the 10,000,000
    # names would take gigabytes.
    assert grown_kib < 64 * 1024
