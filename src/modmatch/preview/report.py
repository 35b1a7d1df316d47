"""What a list of patterns selects: names matched per pattern, and close names for those that
matched nothing (a typo like ``linear_fc1x`` otherwise selects nothing, silently)."""

from __future__ import annotations

import difflib
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..engine.batch import equal_indices, merged
from ..engine.patternset import PatternSet

__all__ = [
    "NameRuleSelects",
    "PatternCount",
    "Report",
    "UnmatchedPatternError",
    "UnmatchedPatternWarning",
    "report",
]

_NUMBER_SEGMENT = re.compile(r"(?<=\.)[0-9]+(?=\.|$)")


class UnmatchedPatternWarning(UserWarning):
    """A pattern matched none of the names."""


class UnmatchedPatternError(ValueError):
    """Patterns matched none of the names, and the caller asked for that to be an error."""


@dataclass(frozen=True)
class PatternCount:
    """How many names one pattern matched, and close names when it matched none."""

    pattern: str
    matched: int
    suggestions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    """Per-pattern counts over a set of names, in pattern order."""

    names: int
    patterns: tuple[PatternCount, ...]

    @property
    def unmatched(self) -> tuple[str, ...]:
        """The patterns that matched no name."""
        return tuple(count.pattern for count in self.patterns if not count.matched)


def report(
    patterns: Iterable[str],
    names: Iterable[str],
    *,
    strict: bool = False,
    selects: Callable[[str], Iterable[int]] | None = None,
) -> Report:
    """Count, per pattern, the names it selects as a ModuleMatcher target would.

    A pattern selects a name when it equals the name's last segment or matches the whole name;
    ``selects(name)``, the indices of the patterns selecting ``name``, stands for another rule
    set's reading. Each unmatched pattern warns with :class:`UnmatchedPatternWarning`; with
    ``strict`` they raise one :class:`UnmatchedPatternError` instead.
    """
    patterns = list(patterns)
    names = list(names)
    if selects is None:
        selects = NameRuleSelects(patterns, PatternSet(patterns, cache_size=0))
    # The name rule finds the names anything selects in one pass; only those are asked which.
    asked = selects.selecting(names) if isinstance(selects, NameRuleSelects) else range(len(names))
    counts = [0] * len(patterns)
    for position in asked:
        for index in set(selects(names[position])):
            counts[index] += 1
    candidates = _candidates(names) if 0 in counts else []
    result = Report(
        len(names),
        tuple(
            PatternCount(pattern, count, () if count else _suggest(pattern, candidates))
            for pattern, count in zip(patterns, counts, strict=True)
        ),
    )
    if result.unmatched:
        problems = "; ".join(_describe(count) for count in result.patterns if not count.matched)
        if strict:
            raise UnmatchedPatternError(
                f"patterns matched none of the {len(names):,} names: {problems}"
            )
        for count in result.patterns:
            if not count.matched:
                warnings.warn(UnmatchedPatternWarning(_describe(count)), stacklevel=2)
    return result


class NameRuleSelects:
    """The indices of the patterns selecting a name as a target of the seed's kind does: equal
    to the part of the name the framework passes as ``name`` (the last segment, or with
    ``split`` off the whole name), or ``compiled`` (the patterns, compiled) matching it whole."""

    def __init__(self, patterns: list[str], compiled: PatternSet, *, split: bool = True) -> None:
        self._compiled, self._split = compiled, split
        self._by_text: dict[str, list[int]] = {}
        for index, pattern in enumerate(patterns):
            self._by_text.setdefault(pattern, []).append(index)

    def __call__(self, name: str) -> list[int]:
        compiled = self._compiled
        hits = list(compiled.matches(name)) if compiled.match(name) else []
        return hits + self._by_text.get(name.rpartition(".")[2] if self._split else name, [])

    def selecting(self, names: list[str]) -> list[int]:
        """The indices of the names some pattern selects, ascending: one pass over them when
        every pattern is plain."""
        found = self._compiled.filter_indices(names)
        return merged(found, equal_indices(names, self._by_text.keys(), last=self._split))


def _candidates(names: list[str]) -> list[str]:
    """Last segments of the names, and the names with numbers starred (their shapes)."""
    shapes = {_NUMBER_SEGMENT.sub("*", name) for name in names}
    return sorted({name.rpartition(".")[2] for name in names} | shapes)


def _suggest(pattern: str, candidates: list[str]) -> tuple[str, ...]:
    return tuple(difflib.get_close_matches(pattern, candidates, n=3, cutoff=0.6))


def _describe(count: PatternCount) -> str:
    hint = (
        f" (did you mean {', '.join(map(repr, count.suggestions))}?)" if count.suggestions else ""
    )
    return f"{count.pattern!r} matched nothing{hint}"
