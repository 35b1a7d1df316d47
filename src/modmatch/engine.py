"""RE2 behind a small interface: many translated patterns, one pass over each name.

Patterns join start-anchored ``re2.Set`` objects, as few as the memory budget allows. RE2
reports a DFA out of memory as "no match", so every set also holds a sentinel pattern that
matches every name: a result without the sentinel means RE2 gave up, never that nothing matched.
"""

from __future__ import annotations

from collections.abc import Sequence

import re2

__all__ = ["RE2Engine"]

# Per set. Memory is taken only as the DFA grows; the default of 8 MiB cannot even compile a
# set of ~2,000 wildcard patterns, while 10,000 fit in 64 MiB.
DEFAULT_MAX_MEM = 256 << 20
_MATCH_EVERYTHING = ""


class RE2Engine:
    """Matches bytes against RE2 sources; says which it could not take and when it gave up."""

    __slots__ = ("_shards", "rejected")

    def __init__(self, sources: Sequence[tuple[int, str]], max_mem: int = DEFAULT_MAX_MEM) -> None:
        """``sources`` pairs each caller's pattern index with its RE2 syntax."""
        # Each set with the caller's index of each of its patterns; the sentinel is pattern 0.
        self._shards: list[tuple[re2.Set, tuple[int, ...]]] = []
        rejected: list[int] = []
        options = re2.Options()
        options.max_mem = max_mem
        options.never_capture = True
        options.log_errors = False
        self._build(list(sources), options, rejected)
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
