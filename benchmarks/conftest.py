"""Every benchmark starts from the same state, whatever ran before it in the session.

The drop-ins keep what they learn about a list across matchers, as the frameworks keep their
compiled regexes: ``modmatch.automodel`` keeps each list's plan (how much its rent has cost, and
the engine once bought). Shared between benchmarks, that state would make a figure depend on
which benchmarks ran before it and on how busy the machine was while they did; cleared before
each one, every benchmark learns its lists itself, inside its own untimed first call or round.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modmatch import automodel


@pytest.fixture(autouse=True)
def _plans_learned_afresh() -> Iterator[None]:
    automodel._cached_plan.cache_clear()
    yield
    automodel._cached_plan.cache_clear()
