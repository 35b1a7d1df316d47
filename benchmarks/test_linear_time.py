"""Linear time where RE2 runs: adversarial patterns on 10,000- and 100,000-character names.

Times are ratios taken side by side in one run: a 10x longer name may cost at most 10x (with
a margin for noise) more per call. The seed's `re` needs minutes for most of these.
"""

from __future__ import annotations

import time

import pytest

from modmatch import PatternSet

FAMILIES = {
    "stars": "*.*.*.*.*.*.*.*.*.zzz",
    "nested groups": "((*.)*)*q_proj",
    "alternated wildcards": "(*a|*b|*.)*zzz",
    "long class": "[" + "".join(chr(c) for c in range(0x20, 0x7F) if c not in b"\\]^-") + "]*zzz",
    "counted repeat": "*{3,}",
}


def per_call(matcher: PatternSet, name: str, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        matcher.matches(name)  # cache_size=0: every call runs the engine
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_time_grows_linearly_with_name_length(family: str) -> None:
    matcher = PatternSet([FAMILIES[family]], cache_size=0)
    short, long = "a." * 5_000 + "\n\n", "a." * 50_000 + "\n\n"
    long_time = per_call(matcher, long)
    ratio = long_time / per_call(matcher, short)
    print(f"{family}: {long_time * 1e3:.2f} ms at 100k characters, {ratio:.1f}x the 10k time")
    assert ratio < 25, f"{family}: {ratio:.1f}x for a 10x longer name"
