"""The rule the seed, Automodel and Megatron-Bridge share: a pattern selects a module whose short
name equals it, or whose full name it matches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .batch import selected_by
from .patternset import DEFAULT_CACHE_SIZE, PatternSet
from .syntax import SEED, Syntax

__all__ = ["NameRule"]


class NameRule:
    """One list of patterns, each matching a module whose short name equals it or whose full
    name it matches: the rule of the seed and of Automodel (Megatron-Bridge's too, which needs
    the first such pattern in list order and keeps its own loop for that)."""

    __slots__ = ("_by_re", "_dotless", "_patterns", "_set", "full_name_matcher", "names")

    def __init__(
        self,
        patterns: Sequence[str] | None,
        syntax: Syntax = SEED,
        *,
        strict: bool = False,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self._patterns = patterns
        self._set = (
            PatternSet(patterns, syntax=syntax, strict=strict, cache_size=cache_size)
            if patterns
            else None
        )
        # The patterns a short name is compared with, and the matcher behind the pattern set
        # without its cache: for a caller that keeps answers of its own (ModuleMatcher).
        self.names = frozenset(patterns) if patterns else frozenset()
        self.full_name_matcher = None if self._set is None else self._set._matcher
        # A few patterns on Python's re (see PatternSet.match), asked here without its frame.
        self._by_re = None if self._set is None else self._set._matcher.by_re
        # A short name holds no dot: only these patterns can equal one.
        self._dotless = frozenset(p for p in self.names if "." not in p)

    def filter_lines(self, full_names: Sequence[str], text: bytes) -> list[int]:
        """The indices of ``full_names`` this rule selects when each is split at its last dot
        (the seed's call), ascending, given ``text``, their ``joined_lines``: one pass over it
        when every pattern is plain, else name by name."""
        return selected_by(self._set, self._dotless, full_names, text)

    def matches(self, name: Any, full_name: Any) -> bool:
        # The seed compares `name == pattern` one pattern at a time; a frozenset answers the
        # same for str names, anything else takes the seed's own comparison.
        if type(name) is str and self._patterns is not None:
            if name in self.names:
                return True
        elif name in self._patterns:  # type: ignore[operator]
            return True
        by_re = self._by_re
        if by_re is not None and type(full_name) is str:
            return by_re(full_name) is not None
        # The seed's wildcard_match answers None (no match) for a None full name.
        return self._set is not None and full_name is not None and self._set.match(full_name)

    def first(self, name: Any, full_name: Any) -> str | None:
        """The first pattern, in list order, equal to ``name`` or matching ``full_name``."""
        if not self._patterns:
            return None
        found = [i for i, p in enumerate(self._patterns) if name == p][:1]
        if self._set is not None and full_name is not None:
            found += self._set.matches(full_name)[:1]
        return self._patterns[min(found)] if found else None
