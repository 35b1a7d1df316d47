"""RE2 behind a small interface: many translated patterns, one pass over each name.

:class:`UnionEngine` answers "does any pattern match" with one regex, the alternation of all
sources; RE2 falls back from its DFA to its NFA when memory runs short, so it never answers
wrongly. :class:`SetEngine` answers "which patterns match" with start-anchored ``re2.Set``
objects; a set reports a DFA out of memory as "no match", so every set also holds a sentinel
that matches every name, and an empty answer means RE2 gave up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import re2

T = TypeVar("T")

__all__ = ["SetEngine", "UnionEngine"]

# Per set. Memory is taken only as the DFA grows; the default of 8 MiB cannot even compile a
# set of ~2,000 wildcard patterns, while 10,000 fit in 64 MiB.
DEFAULT_MAX_MEM = 256 << 20
_MATCH_EVERYTHING = ""
# Patterns per set: a set's DFA carries every pattern in every state, so larger sets thrash
# (10,000 wildcard patterns: 314 µs per new name) and RE2 logs a simplifier warning per pattern.
_SET_SIZE = 1024
_ANCHOR_START = re2._Anchor.ANCHOR_START


def _options(max_mem: int) -> re2.Options:
    options = re2.Options()
    options.max_mem = max_mem
    options.never_capture = True
    options.log_errors = False
    return options


class UnionEngine:
    """Whether any of many RE2 sources matches; split in parts where one regex is too large."""

    __slots__ = ("_options", "_parts")

    def __init__(self, max_mem: int = DEFAULT_MAX_MEM) -> None:
        self._options = _options(max_mem)
        self._parts: list[Any] = []

    def add(self, alternatives: Sequence[T], join: Callable[[Sequence[T]], str]) -> None:
        """Add ``join(alternatives)`` as one regex, or halves of it while RE2 refuses the size."""
        if not alternatives:
            return
        try:
            self._parts.append(re2.compile(join(alternatives), self._options)._regexp)
        except re2.error:
            if len(alternatives) == 1:
                raise
            middle = len(alternatives) // 2
            self.add(alternatives[:middle], join)
            self.add(alternatives[middle:], join)

    def match(self, text: bytes) -> bool:
        """Whether some alternative matches ``text`` from its start."""
        size = len(text)
        # The binding's own match() decodes offsets for a Match object; only (start, end) of
        # the whole match is needed, (-1, -1) when there is none.
        return any(part.Match(_ANCHOR_START, text, 0, size)[0][0] >= 0 for part in self._parts)


class SetEngine:
    """Matches bytes against RE2 sources; says which it could not take and when it gave up."""

    __slots__ = ("_shards", "rejected")

    def __init__(self, sources: Sequence[tuple[int, str]], max_mem: int = DEFAULT_MAX_MEM) -> None:
        """``sources`` pairs each caller's pattern index with its RE2 syntax."""
        # Each set with the caller's index of each of its patterns; the sentinel is pattern 0.
        self._shards: list[tuple[re2.Set, tuple[int, ...]]] = []
        rejected: list[int] = []
        options = _options(max_mem)
        sources = list(sources)
        for start in range(0, len(sources), _SET_SIZE):
            self._build(sources[start : start + _SET_SIZE], options, rejected)
        self.rejected = tuple(sorted(rejected))

    def _build(
        self, sources: list[tuple[int, str]], options: re2.Options, rejected: list[int]
    ) -> None:
        compiled = re2.Set.MatchSet(options)
        compiled.Add(_MATCH_EVERYTHING)
        added = []
        for index, source in sources:
            # Add parses one pattern at a time, so a pattern RE2 refuses (a nested repeat over
            # 1000, say) goes back to the caller instead of failing the whole set.
            try:
                compiled.Add(source)
            except re2.error:
                rejected.append(index)
            else:
                added.append((index, source))
        if not added:
            return
        try:
            compiled.Compile()
        except re2.error:
            # Over the memory budget: halve the set until each part fits.
            if len(added) == 1:
                rejected.append(added[0][0])
                return
            middle = len(added) // 2
            self._build(added[:middle], options, rejected)
            self._build(added[middle:], options, rejected)
            return
        self._shards.append((compiled, (-1, *(index for index, _ in added))))

    def match(self, text: bytes) -> list[int] | None:
        """Indices of the patterns matching ``text``, unordered; None if RE2 gave up."""
        found: list[int] = []
        for compiled, indices in self._shards:
            hits = compiled.Match(text)
            if hits is None:  # the sentinel matches every name: RE2 gave up
                return None
            if len(hits) > 1:
                found += [indices[hit] for hit in hits if hit]
        return found
