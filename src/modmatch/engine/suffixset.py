"""Literal entries that select a name equal to one of them or ending with ``"." + entry``.

This is PEFT's list rule. A hash lookup of each suffix that starts after a dot answers it
exactly, in time linear in the name and flat in the number of entries; a regex would need a
leading ``.*`` per entry, which keeps every alternative alive at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["SuffixSet"]

# Up to this many entries, one ``str.endswith`` with a tuple of ``"." + entry`` (a C loop) costs
# less than a lookup per dot (1 entry: 0.14 µs against 1.8 µs; 256 entries: about the same).
_FEW = 128


class SuffixSet:
    """Entries compared as PEFT compares them: ``key in entries`` or ``key.endswith("." + e)``."""

    __slots__ = ("_dotted", "_equal", "_positions", "_suffixes", "entries")

    def __init__(self, entries: Iterable[Any]) -> None:
        self.entries = tuple(entries)
        # PEFT tests `key in entries` (equality: only a str can equal a name) and formats each
        # entry into the suffix it looks for.
        self._equal = frozenset(e for e in self.entries if isinstance(e, str))
        self._suffixes = frozenset(f"{e}" for e in self.entries)
        self._dotted = (
            tuple(f".{e}" for e in self._suffixes) if len(self._suffixes) <= _FEW else None
        )
        # Where each entry sits, by the suffix it looks for: `matching` is a few lookups.
        self._positions: dict[str, list[int]] = {}
        for position, entry in enumerate(self.entries):
            self._positions.setdefault(f"{entry}", []).append(position)

    def equals(self, key: str) -> bool:
        """Whether ``key`` is one of the entries."""
        return key in self._equal

    def ends_with(self, key: str) -> bool:
        """Whether ``key`` ends with ``"." + entry`` for some entry."""
        if self._dotted is not None:
            return key.endswith(self._dotted)
        suffixes = self._suffixes
        dot = key.find(".")
        while dot >= 0:
            if key[dot + 1 :] in suffixes:
                return True
            dot = key.find(".", dot + 1)
        return False

    def match(self, key: str) -> bool:
        """Either rule: what PEFT's list rule selects before any layer filter."""
        return key in self._equal or self.ends_with(key)

    def matching(self, key: str) -> tuple[Any, ...]:
        """The entries that select ``key``, in entry order."""
        positions, entries = self._positions, self.entries
        found = [
            position
            for position in positions.get(key, ())
            if isinstance(entries[position], str) and entries[position] == key
        ]
        dot = key.find(".")
        while dot >= 0:
            found += positions.get(key[dot + 1 :], ())
            dot = key.find(".", dot + 1)
        return tuple(entries[position] for position in sorted(set(found)))
