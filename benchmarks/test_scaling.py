"""How costs grow: names from 1k up (a model's names tiled), patterns from 1 up, compile time,
the memory of a full cache, and ``import modmatch``.

Quick mode (the default) runs the small sizes; ``MODMATCH_BENCH=full`` runs them all.
"""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from typing import Any

import pytest

from contenders import dict_lookup, patternset_filter, patternset_match
from modmatch import PatternSet
from timing import timed
from workloads import FULL, PATTERN_SETS, expert_patterns, names, tiled

NAME_COUNTS = [1_000, 10_000, 100_000, 1_000_000] if FULL else [1_000, 10_000, 100_000]
PATTERN_COUNTS = [1, 4, 16, 64, 256, 1024, 4096, 10_000] if FULL else [1, 64, 1024]
PER_NAME = {
    "PatternSet.match cold": (patternset_match, True),
    "PatternSet.match warm": (patternset_match, False),
    "PatternSet.filter": (patternset_filter, True),
    "dict lookup (floor)": (dict_lookup, False),
}


@pytest.mark.parametrize("way", PER_NAME)
@pytest.mark.parametrize("count", NAME_COUNTS, ids=lambda n: f"names={n}")
def test_names(benchmark: Any, count: int, way: str) -> None:
    build, cold = PER_NAME[way]
    patterns = PATTERN_SETS["64 per-expert"]
    selected = tiled("kimi-k2", count)
    timed(
        benchmark,
        "scaling: names",
        lambda: build(patterns, selected),
        cold,
        case="names",
        contender=way,
        names=count,
        patterns=len(patterns),
    )


@pytest.mark.parametrize("way", PER_NAME)
@pytest.mark.parametrize("count", PATTERN_COUNTS, ids=lambda n: f"patterns={n}")
def test_patterns(benchmark: Any, count: int, way: str) -> None:
    build, cold = PER_NAME[way]
    every = list(names("kimi-k2"))
    timed(
        benchmark,
        "scaling: patterns",
        lambda: build(expert_patterns(count), every),
        cold,
        case="patterns",
        contender=way,
        names=len(every),
        patterns=count,
    )


@pytest.mark.parametrize("count", PATTERN_COUNTS, ids=lambda n: f"patterns={n}")
def test_compile(benchmark: Any, count: int) -> None:
    patterns = expert_patterns(count)
    timed(
        benchmark,
        "scaling: compile",
        lambda: lambda: PatternSet(patterns),
        False,
        case="compile",
        contender="PatternSet(patterns)",
        names=1,
        patterns=count,
    )


def test_cache_memory(benchmark: Any) -> None:
    count = 1_000_000 if FULL else 100_000
    selected = tiled("kimi-k2", count)  # built before tracing: the names are not the cache's

    def fill() -> PatternSet:
        matcher = PatternSet(PATTERN_SETS["64 per-expert"], cache_size=count)
        for name in selected:
            matcher.match(name)
        return matcher

    tracemalloc.start()
    try:
        assert len(fill()._any) == count
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"\nPatternSet caching {count:,} names: peak {peak / 2**20:.1f} MiB traced", end="")
    timed(
        benchmark,
        "memory",
        lambda: fill,
        False,
        case="memory",
        contender="PatternSet.match filling its cache",
        names=count,
        patterns=64,
        peak_mib=peak / 2**20,
    )


@pytest.mark.parametrize("statement", ["pass", "import modmatch"])
def test_import(benchmark: Any, statement: str) -> None:
    command = [sys.executable, "-c", f"{statement}; import sys; assert 'torch' not in sys.modules"]
    timed(
        benchmark,
        "import",
        lambda: lambda: subprocess.run(command, check=True),
        False,
        case="import",
        contender=statement,
        names=1,
        patterns=0,
    )
