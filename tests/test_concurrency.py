"""Threads share one matcher; processes receive it pickled (RE2 objects are rebuilt on load)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor

from torch import nn

from modmatch import ModuleMatcher, PatternSet
from modmatch.shapes import SHAPES

NAMES = [name for name, _ in SHAPES["qwen3-235b-a22b"].modules()][:20_000]
PATTERNS = ["*.self_attn.q_proj", "*.experts.1[0-9].*", "lm_head", "*.layers.[0-9].mlp.gate"]


def test_threads_agree_with_one_thread_while_the_cache_evicts() -> None:
    expected = [PatternSet(PATTERNS, cache_size=0).matches(n) for n in NAMES]
    shared = PatternSet(PATTERNS, cache_size=512)  # far smaller than the names: constant eviction
    matcher = ModuleMatcher(target_modules=PATTERNS)
    module = nn.Identity()

    def work(offset: int) -> tuple[list[tuple[int, ...]], list[bool | None]]:
        order = NAMES[offset:] + NAMES[:offset]
        found = [shared.matches(n) for n in order]
        selected = [matcher.match(module, n) for n in order]
        back = len(NAMES) - offset  # undo the rotation
        return found[back:] + found[:back], selected[back:] + selected[:back]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(0, 8 * 997, 997)))
    for found, selected in results:
        assert found == expected
        assert selected == [True if e else None for e in expected]


def _select(matcher: PatternSet) -> list[str]:
    return matcher.filter(NAMES)


def test_spawned_worker_gets_an_equal_matcher() -> None:
    matcher = PatternSet(PATTERNS, cache_size=1000)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(_select, (matcher,)) == matcher.filter(NAMES)
