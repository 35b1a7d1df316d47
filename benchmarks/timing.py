"""How every benchmark is timed: pytest-benchmark rounds, grouped, with what the results need."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ROUNDS = 3


def timed(
    benchmark: Any,
    group: str,
    build: Callable[[], Callable[[], object]],
    cold: bool,
    **info: object,
) -> None:
    """Time ``build()()``: rebuilt before every round when ``cold``, else built once and warmed.

    ``info`` is kept in the JSON for benchmarks/results.py: case, contender, names, patterns.
    """
    benchmark.group = group
    benchmark.extra_info.update(info)
    if cold:
        benchmark.pedantic(lambda run: run(), setup=lambda: ((build(),), {}), rounds=ROUNDS)
    else:
        run = build()
        run()
        benchmark.pedantic(run, rounds=ROUNDS)
