"""PatternSet: every pattern compiled once, one RE2 pass per new name, answers cached per name."""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .engine import DEFAULT_MAX_MEM, RE2Engine
from .errors import FallbackWarning, PatternError
from .reference import seed_regex
from .translate import Sensitivity, Translation, Untranslatable, parse, translate, translate_plain

__all__ = ["DEFAULT_CACHE_SIZE", "PatternSet"]

# Room for every name of the largest MoE models (Kimi-K2: 116,363) twice over.
DEFAULT_CACHE_SIZE = 1 << 18


class PatternSet:
    """Seed-exact wildcard patterns compiled together; immutable, hashable and picklable."""

    __slots__ = ("_cache_size", "_lookup", "_patterns")

    def __init__(
        self, patterns: Iterable[str], *, cache_size: int = DEFAULT_CACHE_SIZE, strict: bool = False
    ) -> None:
        """Compile ``patterns``; with ``strict``, refuse those only Python's ``re`` can run."""
        self._patterns = _checked_patterns(patterns)
        self._cache_size = _checked_cache_size(cache_size)
        matcher = _Matcher(self._patterns)
        for index, reason in matcher.fallback_reasons.items():
            message = f"only Python's re can run it ({reason}), and re may backtrack"
            if strict:
                raise PatternError(self._patterns[index], index, message)
            warnings.warn(FallbackWarning(self._patterns[index], index, message), stacklevel=2)
        self._lookup: Callable[[str], tuple[int, ...]] = functools.lru_cache(maxsize=cache_size)(
            matcher.matches
        )

    @property
    def patterns(self) -> tuple[str, ...]:
        """The patterns, in the order given."""
        return self._patterns

    def match(self, name: str) -> bool:
        """Whether any pattern matches ``name`` (the seed's ``wildcard_match`` for each)."""
        return bool(self._lookup(name))

    def matches(self, name: str) -> tuple[int, ...]:
        """Indices of every pattern matching ``name``, ascending."""
        return self._lookup(name)

    def filter(self, names: Iterable[str]) -> list[str]:
        """The names some pattern matches, in input order."""
        lookup = self._lookup
        return [name for name in names if lookup(name)]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PatternSet):
            return NotImplemented
        return (self._patterns, self._cache_size) == (other._patterns, other._cache_size)

    def __hash__(self) -> int:
        return hash((PatternSet, self._patterns, self._cache_size))

    def __repr__(self) -> str:
        return f"PatternSet({list(self._patterns)!r}, cache_size={self._cache_size})"

    def __reduce__(self) -> tuple[Any, ...]:
        # RE2 objects do not pickle: rebuild from the patterns.
        return (_restore, (self._patterns, self._cache_size))


def _restore(patterns: tuple[str, ...], cache_size: int) -> PatternSet:
    return PatternSet(patterns, cache_size=cache_size)


def _checked_patterns(patterns: Iterable[str]) -> tuple[str, ...]:
    if isinstance(patterns, (str, bytes)):
        raise TypeError(
            f"patterns must be an iterable of str, not a single {type(patterns).__name__}: {patterns!r}"
        )
    checked = tuple(patterns)
    for index, pattern in enumerate(checked):
        if not isinstance(pattern, str):
            raise TypeError(
                f"pattern at index {index} must be a str, got {type(pattern).__name__}: {pattern!r}"
            )
    return checked


def _checked_cache_size(cache_size: int) -> int:
    if not isinstance(cache_size, int) or isinstance(cache_size, bool):
        raise TypeError(
            f"cache_size must be an int, got {type(cache_size).__name__}: {cache_size!r}"
        )
    if cache_size < 0:
        raise ValueError(f"cache_size must be >= 0, got {cache_size}")
    return cache_size


def _translation(index: int, pattern: str) -> Translation | str:
    """The pattern's RE2 translation, or why only ``re`` can run it; PatternError if invalid."""
    plain = translate_plain(pattern)
    if plain is not None:
        return plain
    regex = seed_regex(pattern)
    try:
        tree = parse(regex)
    except (re.error, OverflowError, RecursionError) as error:
        raise PatternError(pattern, index, str(error) or type(error).__name__) from error
    try:
        return translate(tree)
    except Untranslatable as error:
        reason = str(error)
    except RecursionError:
        reason = "nested too deeply to translate"
    try:
        # Python's compiler has checks of its own (look-behind width, for one).
        re.compile(regex)
    except (re.error, OverflowError, RecursionError) as error:
        raise PatternError(pattern, index, str(error) or type(error).__name__) from error
    return reason


class _Matcher:
    """Answers one name: RE2 for what it can answer exactly, ``re`` for the rest."""

    def __init__(self, patterns: Sequence[str], max_mem: int = DEFAULT_MAX_MEM) -> None:
        translations = [_translation(index, pattern) for index, pattern in enumerate(patterns)]
        self._engine = RE2Engine(
            [(i, t.source) for i, t in enumerate(translations) if isinstance(t, Translation)],
            max_mem,
        )
        self.fallback_reasons = {i: t for i, t in enumerate(translations) if isinstance(t, str)}
        self.fallback_reasons.update((i, "RE2 refused it") for i in self._engine.rejected)
        self._fallbacks = tuple(sorted(self.fallback_reasons))
        self._sensitivity = {
            i: t.sensitivity
            for i, t in enumerate(translations)
            if isinstance(t, Translation) and i not in self.fallback_reasons
        }
        self._on_re2 = tuple(self._sensitivity)
        self._regexes = [seed_regex(pattern) for pattern in patterns]
        self._exact: dict[int, re.Pattern[str]] = {}
        self._sensitive: dict[Sensitivity, frozenset[int]] = {}

    def matches(self, name: str) -> tuple[int, ...]:
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}: {name!r}")
        try:
            text = name.encode()
        except UnicodeEncodeError:
            # A lone surrogate: RE2 takes only valid UTF-8.
            return tuple(self._by_re(range(len(self._regexes)), name))
        hits = self._engine.match(text)
        if hits is None:
            hits = self._by_re(self._on_re2, name)
        elif not name.isascii() or name[-1:] == "\n" or not name:
            sensitive = self._sensitive_to(_features(name))
            if sensitive:
                hits = [index for index in hits if index not in sensitive]
                hits += self._by_re(sensitive, name)
        if self._fallbacks:
            hits += self._by_re(self._fallbacks, name)
        if len(hits) > 1:
            hits.sort()
        return tuple(hits)

    def _by_re(self, indices: Iterable[int], name: str) -> list[int]:
        return [index for index in indices if self._compiled(index).match(name)]

    def _compiled(self, index: int) -> re.Pattern[str]:
        compiled = self._exact.get(index)
        if compiled is None:
            compiled = self._exact[index] = re.compile(self._regexes[index])
        return compiled

    def _sensitive_to(self, features: Sensitivity) -> frozenset[int]:
        """Translated patterns whose RE2 answer may be wrong on names with ``features``."""
        sensitive = self._sensitive.get(features)
        if sensitive is None:
            sensitive = self._sensitive[features] = frozenset(
                index for index, sensitivity in self._sensitivity.items() if sensitivity & features
            )
        return sensitive


def _features(name: str) -> Sensitivity:
    """The features of ``name`` that some translations are sensitive to."""
    features = Sensitivity.NONE if name.isascii() else Sensitivity.NON_ASCII
    if not name:
        features |= Sensitivity.EMPTY
    if name.endswith("\n"):
        features |= Sensitivity.TRAILING_NEWLINE
    return features
