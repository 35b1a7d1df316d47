"""Every way of selecting modules by name that the benchmarks compare.

A contender is built for one case and a list of full names (untimed) and returns a runner that
selects from those names (timed), answering the full names it selects, in order.
"""

from __future__ import annotations

import bisect
import importlib.util
import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from modmatch import ModuleMatcher, PatternSet, reference
from modmatch.engine.patternset import DEFAULT_CACHE_SIZE
from modmatch.reference import seed_regex
from workloads import FULL, Case

Runner = Callable[[], list[str]]
MODULE = nn.Identity()  # not a Linear: with targets, the seed decides by name only
HAVE_HYPERSCAN = importlib.util.find_spec("hyperscan") is not None


@dataclass(frozen=True)
class Contender:
    """How to build one way of selecting, and which cases and how many names it can take."""

    name: str
    build: Callable[[Sequence[str], list[str]], Runner]
    cold: bool = True  # a fresh build per timed round; False: warmed once, then timed
    bare: bool | None = None  # only bare-name pattern sets (True), only wildcards (False)
    pair_cost_us: float = 0.0  # roughly, per (pattern, name): > 0 means timed on a sample
    # Python's re caches 512 compiled patterns: beyond that, one regex per pattern recompiles.
    regex_per_pattern: bool = False
    hyperscan: bool = False

    def skip_reason(self, case: Case) -> str | None:
        if self.bare is not None and self.bare != case.bare:
            kind = "bare module names" if self.bare else "full-name wildcards"
            return f"{self.name} takes {kind} only"
        if self.hyperscan:
            if not HAVE_HYPERSCAN:
                return "hyperscan is not installed (pip install -e '.[bench]')"
            if len(case.patterns) > 1024:
                # Measured here: 11 s to compile 1,024 of them, 24 s for 2,048 (test_mixed.py
                # compares it at 4,096 mixed patterns in the full run).
                return "hyperscan's compile time grows too fast beyond 1,024 patterns"
        return None

    def names(self, case: Case, names: Sequence[str]) -> list[str]:
        """The names it is timed on: all, or an evenly spread sample within a time budget."""
        if not self.pair_cost_us:
            return list(names)
        thrashing = self.regex_per_pattern and len(case.patterns) > 512
        cost = self.pair_cost_us * (50 if thrashing else 1)
        budget_us = (2.0 if FULL else 0.2) * 1e6
        wanted = max(20 if FULL else 5, int(budget_us / (cost * len(case.patterns))))
        return list(names[:: max(1, len(names) // wanted)])


def _split(names: list[str]) -> list[tuple[str, str, str]]:
    return [(full, *full.rpartition(".")[::2]) for full in names]


def per_module(matcher: Any, names: list[str]) -> Runner:
    """``matcher.match`` called on every name as a module walk calls it, split at the last dot."""
    split = _split(names)
    return lambda: [full for full, prefix, name in split if matcher.match(MODULE, name, prefix)]


def seed_module_matcher(patterns: Sequence[str], names: list[str]) -> Runner:
    return per_module(reference.ModuleMatcher(target_modules=list(patterns)), names)


def seed_wildcard_match(patterns: Sequence[str], names: list[str]) -> Runner:
    # The seed's inner loop, pattern by pattern: short-name equality, then wildcard_match.
    split = _split(names)
    match = reference.wildcard_match
    return lambda: [
        full
        for full, _, name in split
        if any(name == pattern or match(pattern, full) for pattern in patterns)
    ]


def re_alternation(patterns: Sequence[str], names: list[str]) -> Runner:
    regex = re.compile("|".join(f"(?:{seed_regex(pattern)})" for pattern in patterns))
    return lambda: [name for name in names if regex.match(name)]


def peft_list(patterns: Sequence[str], names: list[str]) -> Runner:
    # PEFT's target_modules as a list: the key itself, or a dotted suffix of it.
    return lambda: [
        key for key in names if any(key == t or key.endswith("." + t) for t in patterns)
    ]


def peft_regex(patterns: Sequence[str], names: list[str]) -> Runner:
    # PEFT's target_modules as a str: re.fullmatch(target_modules, key), the str passed each time.
    regex = "|".join(pattern.replace("*", "(.*)") for pattern in patterns)
    return lambda: [key for key in names if re.fullmatch(regex, key)]


def _hyperscan_db(patterns: Sequence[str], flags: int) -> object:
    import hyperscan

    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(
        expressions=[seed_regex(pattern).encode() for pattern in patterns],
        ids=list(range(len(patterns))),
        elements=len(patterns),
        flags=[flags] * len(patterns),
    )
    return db


def hyperscan_per_name(patterns: Sequence[str], names: list[str]) -> Runner:
    import hyperscan

    db = _hyperscan_db(patterns, hyperscan.HS_FLAG_SINGLEMATCH)
    scratch = hyperscan.Scratch(db)
    encoded = [(name, name.encode()) for name in names]
    found: list[str] = []

    def on_match(_id: int, _start: int, _end: int, _flags: int, name: str) -> None:
        # Each pattern reports once at most (SINGLEMATCH). Stopping at the first match instead
        # makes the binding raise ScanTerminated, which costs more than it saves.
        if not found or found[-1] is not name:
            found.append(name)

    def run() -> list[str]:
        found.clear()
        for name, text in encoded:
            db.scan(text, match_event_handler=on_match, context=name, scratch=scratch)  # type: ignore[attr-defined]
        return list(found)

    return run


def hyperscan_any_per_name(patterns: Sequence[str], names: list[str]) -> Runner:
    """Hyperscan per name, stopping at the first match: for lists where many patterns match
    each name (mixed shapes), where a callback per matching pattern would dominate."""
    import hyperscan

    db = _hyperscan_db(patterns, hyperscan.HS_FLAG_SINGLEMATCH)
    scratch = hyperscan.Scratch(db)
    encoded = [(name, name.encode()) for name in names]

    def stop(*_: object) -> bool:
        return True

    def run() -> list[str]:
        found = []
        for name, text in encoded:
            try:
                db.scan(text, match_event_handler=stop, scratch=scratch)  # type: ignore[attr-defined]
            except hyperscan.ScanTerminated:
                found.append(name)
        return found

    return run


def hyperscan_all_names(patterns: Sequence[str], names: list[str]) -> Runner:
    import hyperscan

    # All names as one text, one per line: ^ and $ match at line boundaries.
    db = _hyperscan_db(patterns, hyperscan.HS_FLAG_MULTILINE)
    scratch = hyperscan.Scratch(db)

    def run() -> list[str]:
        text = "\n".join(names).encode()
        starts = list(itertools.accumulate((len(n.encode()) + 1 for n in names), initial=0))
        ends: set[int] = set()
        db.scan(text, match_event_handler=lambda _i, _s, end, *_: ends.add(end), scratch=scratch)  # type: ignore[attr-defined]
        lines = {bisect.bisect_right(starts, end) - 1 for end in ends}
        return [names[line] for line in sorted(lines)]

    return run


def module_matcher(patterns: Sequence[str], names: list[str]) -> Runner:
    return per_module(ModuleMatcher(target_modules=list(patterns)), names)


def patternset_match(patterns: Sequence[str], names: list[str]) -> Runner:
    # A cache that holds every name timed, so that "warm" means warm at a million names too.
    matcher = PatternSet(patterns, cache_size=max(len(names), DEFAULT_CACHE_SIZE))
    return lambda: [name for name in names if matcher.match(name)]


def patternset_filter(patterns: Sequence[str], names: list[str]) -> Runner:
    matcher = PatternSet(patterns)
    return lambda: matcher.filter(names)


def dict_lookup(patterns: Sequence[str], names: list[str]) -> Runner:
    # The floor: the answers known in advance, one dict lookup per name.
    table = dict.fromkeys(names, False)
    table.update(dict.fromkeys(module_matcher(patterns, names)(), True))
    return lambda: [name for name in names if table[name]]


REFERENCE = Contender(
    "seed ModuleMatcher.match", seed_module_matcher, pair_cost_us=1.0, regex_per_pattern=True
)
CONTENDERS = [
    REFERENCE,
    Contender(
        "seed wildcard_match per pair",
        seed_wildcard_match,
        pair_cost_us=1.0,
        regex_per_pattern=True,
    ),
    Contender("re alternation", re_alternation, bare=False, pair_cost_us=1.0),
    Contender("PEFT list", peft_list, bare=True, pair_cost_us=0.2),
    Contender("PEFT regex", peft_regex, bare=False, pair_cost_us=1.0),
    # No cache: built once (compiling takes seconds), then timed.
    Contender("hyperscan per name", hyperscan_per_name, cold=False, bare=False, hyperscan=True),
    Contender("hyperscan all names", hyperscan_all_names, cold=False, bare=False, hyperscan=True),
    Contender("modmatch ModuleMatcher.match cold", module_matcher),
    Contender("modmatch ModuleMatcher.match warm", module_matcher, cold=False),
    Contender("modmatch PatternSet.match cold", patternset_match, bare=False),
    Contender("modmatch PatternSet.match warm", patternset_match, bare=False, cold=False),
    Contender("modmatch PatternSet.filter", patternset_filter, bare=False),
    Contender("dict lookup (floor)", dict_lookup, cold=False),
]
