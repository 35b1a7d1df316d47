"""Threads share one matcher; processes receive it pickled (RE2 objects are rebuilt on load)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor

from torch import nn

from modmatch import ModuleMatcher, PatternSet
from modmatch.inputs.shapes import SHAPES

NAMES = [name for name, _ in SHAPES["kimi-k2"].modules()][:100_000]
PATTERNS = ["*.self_attn.q_a_proj", "*.experts.1[0-9].*", "lm_head", "*.layers.[0-9].mlp.gate"]
THREADS = 8


def test_threads_agree_with_one_thread_while_the_cache_evicts() -> None:
    expected = PatternSet(PATTERNS, cache_size=0).filter(NAMES)
    # Far fewer entries than names: the cache evicts all the time.
    shared = PatternSet(PATTERNS, cache_size=512)
    matcher = ModuleMatcher(target_modules=PATTERNS)
    module = nn.Identity()

    def work(thread: int) -> tuple[list[str], list[str], list[tuple[int, ...]]]:
        # Each name is met by half of the threads, in interleaved order.
        names = NAMES[thread % 2 :: 2]
        selected = [n for n in names if matcher.match(module, n)]
        return shared.filter(names), selected, [shared.matches(n) for n in names[::50]]

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(work, range(THREADS)))
    wanted = set(expected)
    for thread, (filtered, selected, indices) in enumerate(results):
        names = NAMES[thread % 2 :: 2]
        mine = [n for n in names if n in wanted]
        assert filtered == mine
        assert selected == mine
        assert [bool(i) for i in indices] == [n in wanted for n in names[::50]]


def _select(matcher: PatternSet, module_matcher: ModuleMatcher) -> tuple[list[str], list[str]]:
    module = nn.Identity()
    return matcher.filter(NAMES), [n for n in NAMES if module_matcher.match(module, n)]


def test_spawned_worker_gets_equal_matchers() -> None:
    matcher = PatternSet(PATTERNS, cache_size=1000)
    module_matcher = ModuleMatcher(target_modules=PATTERNS)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        filtered, selected = pool.apply(_select, (matcher, module_matcher))
    assert filtered == matcher.filter(NAMES)
    assert selected == [n for n in NAMES if module_matcher.match(nn.Identity(), n)]
