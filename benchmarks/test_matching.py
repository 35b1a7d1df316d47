"""Side-by-side timings on Kimi-K2 names: the seed reference against modmatch, same answers.

Run: python -m pytest benchmarks --benchmark-group-by=param:patterns
"""

from __future__ import annotations

import itertools

import pytest

from modmatch import PatternSet, reference
from modmatch.shapes import SHAPES

NAMES = [name for name, _ in SHAPES["kimi-k2"].modules()]
# The reference is slow: it is timed on every 50th name.
SAMPLE = NAMES[::50]


def expert_patterns(count: int) -> list[str]:
    pairs = itertools.product(range(61), range(384))
    return [
        f"*.layers.{layer}.mlp.experts.{expert}.*"
        for layer, expert in itertools.islice(pairs, count)
    ]


@pytest.fixture(params=[4, 64], ids=lambda n: f"patterns={n}")
def patterns(request: pytest.FixtureRequest) -> list[str]:
    return expert_patterns(request.param)


def test_reference(benchmark, patterns: list[str]) -> None:
    selected = benchmark(
        lambda: [n for n in SAMPLE if any(reference.wildcard_match(p, n) for p in patterns)]
    )
    assert selected == PatternSet(patterns).filter(SAMPLE)


def test_patternset_filter_cold(benchmark, patterns: list[str]) -> None:
    selected = benchmark.pedantic(
        lambda s: s.filter(SAMPLE), setup=lambda: ((PatternSet(patterns),), {}), rounds=20
    )
    assert selected == [n for n in SAMPLE if any(reference.wildcard_match(p, n) for p in patterns)]
