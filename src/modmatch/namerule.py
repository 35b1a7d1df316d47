"""The rule the seed, Automodel and Megatron-Bridge share: a pattern selects a module whose short
name equals it, or whose full name it matches."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from .patternset import DEFAULT_CACHE_SIZE, PatternSet
from .syntax import SEED, Syntax

__all__ = ["NameRule"]


class NameRule:
    """One list of patterns, each matching a module whose short name equals it or whose full
    name it matches: the rule of the seed and of Automodel (Megatron-Bridge's too, which needs
    the first such pattern in list order and keeps its own loop for that)."""

    __slots__ = ("_matches_full_name", "_names", "_patterns", "_set")

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
        self._names = frozenset(patterns) if patterns else frozenset()
        self._matches_full_name: Callable[[str], bool] | None = (
            None if self._set is None else self._set.match
        )

    def answering(self, full_names: list[str]) -> NameRule:
        """This rule, with its patterns run over ``full_names`` at once: one pass, not one each."""
        if self._set is None:
            return self
        answering = copy.copy(self)
        answering._matches_full_name = frozenset(self._set.filter(full_names)).__contains__
        return answering

    def matches(self, name: Any, full_name: Any) -> bool:
        # The seed compares `name == pattern` one pattern at a time; a frozenset answers the
        # same for str names, anything else takes the seed's own comparison.
        if type(name) is str and self._patterns is not None:
            if name in self._names:
                return True
        elif name in self._patterns:  # type: ignore[operator]
            return True
        # The seed's wildcard_match answers None (no match) for a None full name.
        return (
            self._matches_full_name is not None
            and full_name is not None
            and self._matches_full_name(full_name)
        )

    def first(self, name: Any, full_name: Any) -> str | None:
        """The first pattern, in list order, equal to ``name`` or matching ``full_name``."""
        if not self._patterns:
            return None
        found = [i for i, p in enumerate(self._patterns) if name == p][:1]
        if self._set is not None and full_name is not None:
            found += self._set.matches(full_name)[:1]
        return self._patterns[min(found)] if found else None
