"""PatternSet: every pattern compiled once, one RE2 pass per new name, answers cached per name."""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import re2

from ..errors import FallbackWarning, PatternError
from .sets import (
    DEFAULT_MAX_MEM,
    LineEngine,
    LiteralEngine,
    LiteralSets,
    SetEngine,
    UnionEngine,
    filed_by_literal,
    joined_lines,
)
from .syntax import SEED, Syntax
from .translate import (
    Sensitivity,
    Translation,
    Untranslatable,
    parse,
    plain_union,
    translate,
    translate_plain,
    translate_simple,
)

__all__ = ["DEFAULT_CACHE_SIZE", "PatternSet"]

T = TypeVar("T")

# Room for every name of the largest MoE models (Kimi-K2: 116,363) twice over.
DEFAULT_CACHE_SIZE = 1 << 18
# Up to this many patterns, each on Python's re costs less than one RE2 set call.
_FEW_FOR_RE = 2


class PatternSet:
    """Patterns compiled together; immutable, hashable and picklable.

    Each pattern answers exactly as its ``syntax`` says its framework runs it: by default the
    seed's wildcards (``wildcard_match``); see :mod:`modmatch.engine.syntax` for the others.
    """

    __slots__ = ("_any", "_cache_size", "_matcher", "_matches", "_patterns", "_syntax")

    def __init__(
        self,
        patterns: Iterable[str],
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
        strict: bool = False,
        syntax: Syntax = SEED,
    ) -> None:
        """Compile ``patterns``; with ``strict``, refuse those only Python's ``re`` can run."""
        self._patterns = _checked_patterns(patterns)
        self._cache_size = _checked_cache_size(cache_size)
        self._syntax = syntax
        self._matcher = matcher = _Matcher(self._patterns, syntax)
        for index, reason in matcher.fallback_reasons.items():
            message = f"only Python's re can run it ({reason}), and re may backtrack"
            if strict:
                raise PatternError(self._patterns[index], index, message)
            warnings.warn(FallbackWarning(self._patterns[index], index, message), stacklevel=2)
        # Two caches, filled only by the methods that use them: most callers only ask whether
        # anything matches, which needs no list of indices.
        self._any: dict[str, bool] = {}
        self._matches: dict[str, tuple[int, ...]] = {}

    @property
    def patterns(self) -> tuple[str, ...]:
        """The patterns, in the order given."""
        return self._patterns

    def match(self, name: str) -> bool:
        """Whether any pattern matches ``name`` (the seed's ``wildcard_match`` for each)."""
        by_re = self._matcher.by_re
        if by_re is not None:
            # Answered as fast as a cache could be written: none is kept.
            if not isinstance(name, str):
                raise _not_a_name(name)
            return by_re(name) is not None
        try:
            found = self._any.get(name)
        except TypeError:  # unhashable
            raise _not_a_name(name) from None
        if found is None:
            # The set's call made here, and the answer remembered here, not in _remember: a
            # name not seen before costs this frame and RE2's, nothing between them.
            matcher = self._matcher
            try:
                hits = matcher.set_match(str.encode(name))
            except (TypeError, UnicodeEncodeError):  # not a str, or a lone surrogate
                hits = None
            found = len(hits) > 1 if hits else matcher.any(name)
            cache = self._any
            cache[name] = found
            if len(cache) > self._cache_size:
                cache.clear()
        return found

    def matches(self, name: str) -> tuple[int, ...]:
        """Indices of every pattern matching ``name``, ascending."""
        try:
            found = self._matches.get(name)
        except TypeError:  # unhashable
            raise _not_a_name(name) from None
        if found is None:
            found = self._remember(self._matches, name, self._matcher.matches(name))
        return found

    def _remember(self, cache: dict[str, T], name: str, answer: T) -> T:
        # A plain dict, emptied when full: a hit costs one lookup (an LRU cache costs about as
        # much as the RE2 call it saves on a miss), and a scan over more names than fit would
        # evict every name under LRU as well. Each dict operation is atomic: threads can share it.
        cache[name] = answer
        if len(cache) > self._cache_size:
            cache.clear()
        return answer

    def filter(self, names: Iterable[str]) -> list[str]:
        """The names some pattern matches, in input order.

        When every pattern is plain, the names go through RE2 together, in one pass over them
        joined by newlines; this path does not use the cache.
        """
        listed = list(_checked_names(names))
        return [listed[index] for index in self.filter_indices(listed)]

    def filter_indices(self, names: Iterable[str]) -> list[int]:
        """The indices of the names some pattern matches, ascending: ``filter``'s answer as
        positions in ``names``, taken the same way."""
        names = _checked_names(names)
        listed = names if isinstance(names, Sequence) else list(names)
        return self._filter_lines(listed, joined_lines(listed))

    def _filter_lines(self, names: Sequence[str], text: bytes | None) -> list[int]:
        """``filter_indices``, given ``joined_lines(names)``: for callers that join once."""
        lines = None if text is None else self._matcher.lines(text)
        if lines is None:
            match = self.match
            return [index for index, name in enumerate(names) if match(name)]
        return lines

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PatternSet):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash((PatternSet, *self._key()))

    def _key(self) -> tuple[Any, ...]:
        return (self._patterns, self._cache_size, self._syntax)

    def __repr__(self) -> str:
        syntax = "" if self._syntax is SEED else f", syntax={self._syntax!r}"
        return f"PatternSet({list(self._patterns)!r}, cache_size={self._cache_size}{syntax})"

    def __reduce__(self) -> tuple[Any, ...]:
        # RE2 objects do not pickle: rebuild from the patterns.
        return (_restore, self._key())


def _restore(patterns: tuple[str, ...], cache_size: int, syntax: Syntax = SEED) -> PatternSet:
    return PatternSet(patterns, cache_size=cache_size, syntax=syntax)


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


def _checked_names(names: T) -> T:
    if isinstance(names, (str, bytes)):
        raise TypeError(
            f"names must be a collection of str, not a single {type(names).__name__}: {names!r}"
        )
    return names


def _checked_cache_size(cache_size: int) -> int:
    if not isinstance(cache_size, int) or isinstance(cache_size, bool):
        raise TypeError(
            f"cache_size must be an int, got {type(cache_size).__name__}: {cache_size!r}"
        )
    if cache_size < 0:
        raise ValueError(f"cache_size must be >= 0, got {cache_size}")
    return cache_size


def _translation(index: int, pattern: str, syntax: Syntax) -> Translation | str:
    """The pattern's RE2 translation, or why only ``re`` can run it; PatternError if invalid."""
    plain = translate_plain(pattern) if syntax.seed_plain else None
    if plain is not None:
        return plain
    regex = syntax.regex(pattern)
    simple = translate_simple(regex, fullmatch=syntax.fullmatch)
    if simple is not None:
        return simple
    try:
        tree = parse(regex)
    except _REGEX_ERRORS as error:
        raise _invalid(pattern, index, error, syntax) from error
    try:
        return translate(tree, fullmatch=syntax.fullmatch)
    except Untranslatable as error:
        reason = str(error)
    except RecursionError:
        reason = "nested too deeply to translate"
    try:
        # Python's compiler has checks of its own (look-behind width, for one).
        re.compile(regex)
    except _REGEX_ERRORS as error:
        raise _invalid(pattern, index, error, syntax) from error
    return reason


# What Python's re raises for a pattern it rejects: OverflowError for a huge repeat count,
# RecursionError for very deep nesting.
_REGEX_ERRORS = (re.error, OverflowError, RecursionError)


def _invalid(pattern: str, index: int, error: Exception, syntax: Syntax) -> PatternError:
    if isinstance(error, re.error) and error.pos is not None:
        return PatternError(pattern, index, error.msg, syntax.position(pattern, error.pos))
    return PatternError(pattern, index, str(error) or type(error).__name__)


class _Matcher:
    """Answers one name: RE2 for what it can answer exactly, ``re`` for the rest."""

    def __init__(
        self, patterns: Sequence[str], syntax: Syntax = SEED, max_mem: int = DEFAULT_MAX_MEM
    ) -> None:
        self._max_mem = max_mem
        self._fullmatch = syntax.fullmatch
        # A pattern listed again changes no answer but its own index: each is compiled once
        # (a list repeated 4 times costs a quarter to build), and ``matches`` gives every
        # index it stands at.
        given = patterns
        patterns = tuple(dict.fromkeys(given))
        self._positions: dict[int, list[int]] | None = None
        if len(patterns) < len(given):
            first = {pattern: index for index, pattern in enumerate(patterns)}
            self._positions = {index: [] for index in range(len(patterns))}
            for position, pattern in enumerate(given):
                self._positions[first[pattern]].append(position)
        self._regexes = [syntax.regex(pattern) for pattern in patterns]
        reasons: dict[int, str] = {}
        self._translations: dict[int, Translation] = {}
        for index, pattern in enumerate(patterns):
            translation = _translation(self._given(index), pattern, syntax)
            if isinstance(translation, str):
                reasons[index] = translation
            elif _needs_checking(translation) and not _re2_accepts(translation.source, max_mem):
                reasons[index] = "RE2 refused it"
            else:
                self._translations[index] = translation
        self._fallbacks = tuple(reasons)
        # Why only re runs a pattern, by the index it was given at (each of a repeated one's).
        self.fallback_reasons = dict(
            sorted(
                (position, reasons[index]) for index in reasons for position in self._every(index)
            )
        )
        self._sensitivity = {
            index: t.sensitivity for index, t in self._translations.items() if t.sensitivity
        }
        # Large lists whose patterns require different literals are filed by literal, for
        # both questions: one union or set of many shapes builds DFA states name after name.
        self._filed = filed_by_literal([t.literal for t in self._translations.values()])
        # Patterns RE2 answers exactly on every name it can take.
        exact = [(i, t) for i, t in self._translations.items() if not t.sensitivity]
        alternatives = [(t.plain, patterns[i] if t.plain else t.source) for i, t in exact]
        self._exact: UnionEngine | LiteralEngine
        if self._filed:
            sources = [(t.literal, t.source) for _, t in exact]
            self._exact = LiteralEngine(sources, alternatives, _union, max_mem)
        else:
            self._exact = UnionEngine(max_mem)
            self._exact.add(alternatives, _union)
        self._on_features = UnionEngine(max_mem)
        self._on_features.add([self._translations[i].source for i in self._sensitivity], "|".join)
        self._sets: SetEngine | LiteralSets | None = None
        # When every pattern is plain and one union holds them: all names at once, one per line.
        # Filed by literal, name by name: one regex per literal over the lines builds DFA states
        # line after line where a literal's patterns have a `*` inside (`model.layers.3.*.7.*`:
        # 3 ms per name for 1,222 of them), and one regex of all, 11 ms at 4,096 patterns.
        self._lines: LineEngine | None = None
        plain = all(t.plain for t in self._translations.values())
        if patterns and plain and not self._fallbacks and not self._filed:
            self._lines = LineEngine(max_mem)
            self._lines.add(patterns, functools.partial(plain_union, per_line=True))
        self._compiled: dict[int, Callable[[str], re.Match[str] | None]] = {}
        self._sensitive: dict[Sensitivity, frozenset[int]] = {}
        # A few patterns with one unbounded repeat at most each: Python's re, as their framework
        # runs them, is faster per name than an RE2 set (one re call on `*_proj`: 0.5 µs; the
        # set's: 1.3 µs) and still linear in the name, one repeat being backtracked over once.
        self.by_re: Callable[[str], object] | None = None
        repeats = [t.repeats for t in self._translations.values()]
        few = 0 < len(patterns) <= _FEW_FOR_RE and not self._fallbacks
        if few and all(count is not None and count <= 1 for count in repeats):
            run = re.compile("|".join(f"(?:{regex})" for regex in self._regexes))
            self.by_re = run.fullmatch if self._fullmatch else run.match
        # The common case, decided once: one RE2 set answers every pattern, none needs re.
        # Its sentinel matches every name: more than one hit is a match, and no hits at all
        # (RE2 gave up, or there is no such set) leave the name to ``any``.
        single = self._exact.single()
        common = single is not None and not self._sensitivity and not self._fallbacks
        self.set_match: Callable[[bytes], list[int] | None] = single if common else _no_set  # type: ignore[assignment]

    def any(self, name: str) -> bool:
        """Whether some pattern matches ``name``."""
        try:
            text = str.encode(name)
        except UnicodeEncodeError:  # a lone surrogate: RE2 takes only valid UTF-8
            return self._any_by_re(range(len(self._regexes)), name)
        except TypeError:
            raise _not_a_name(name) from None
        if self._exact.match(text):
            return True
        if self._sensitivity:
            if name.isascii() and name and name[-1] != "\n":
                if self._on_features.match(text):
                    return True
            elif self._any_by_re(self._sensitivity, name):
                return True
        return bool(self._fallbacks) and self._any_by_re(self._fallbacks, name)

    def matches(self, name: str) -> tuple[int, ...]:
        """Indices of the patterns matching ``name``, ascending."""
        if not self.any(name):  # also refuses a name that is not a str
            return ()
        try:
            text = str.encode(name)
        except UnicodeEncodeError:  # a lone surrogate, as in any
            found = self._by_re(range(len(self._regexes)), name)
            return tuple(sorted(p for index in found for p in self._every(index)))
        if self._sets is None:
            # Built on first use: most callers only ask whether anything matches.
            sources = [(index, t.source, t.literal) for index, t in self._translations.items()]
            if self._filed:
                self._sets = LiteralSets(sources, self._max_mem)
            else:
                self._sets = SetEngine([source[:2] for source in sources], self._max_mem)
        hits = self._sets.match(text)
        if hits is None:
            hits = self._by_re(self._translations, name)
        elif not name.isascii() or name[-1:] == "\n" or not name:
            sensitive = self._sensitive_to(_features(name))
            if sensitive:
                hits = [index for index in hits if index not in sensitive]
                hits += self._by_re(sensitive, name)
        # Patterns no set could hold within the memory budget, and those only re can run.
        hits += self._by_re(self._sets.rejected(text), name)
        hits += self._by_re(self._fallbacks, name)
        if self._positions is not None:
            hits = [position for index in hits for position in self._positions[index]]
        hits.sort()
        return tuple(hits)

    def _given(self, index: int) -> int:
        """The first index the pattern compiled at ``index`` was given at."""
        return index if self._positions is None else self._positions[index][0]

    def _every(self, index: int) -> list[int]:
        """Every index the pattern compiled at ``index`` was given at."""
        return [index] if self._positions is None else self._positions[index]

    def lines(self, text: bytes) -> list[int] | None:
        """The indices of the lines of ``text`` (``joined_lines`` of some names) a pattern
        matches, ascending, from one pass; None when not every pattern is plain."""
        return None if self._lines is None else self._lines.lines(text)

    def _any_by_re(self, indices: Iterable[int], name: str) -> bool:
        return any(self._run(index)(name) for index in indices)

    def _by_re(self, indices: Iterable[int], name: str) -> list[int]:
        return [index for index in indices if self._run(index)(name)]

    def _run(self, index: int) -> Callable[[str], re.Match[str] | None]:
        """The pattern on Python's ``re``, run as its framework runs it."""
        run = self._compiled.get(index)
        if run is None:
            compiled = re.compile(self._regexes[index])
            run = self._compiled[index] = compiled.fullmatch if self._fullmatch else compiled.match
        return run

    def _sensitive_to(self, features: Sensitivity) -> frozenset[int]:
        """Translated patterns whose RE2 answer may be wrong on names with ``features``."""
        sensitive = self._sensitive.get(features)
        if sensitive is None:
            sensitive = self._sensitive[features] = frozenset(
                index for index, sensitivity in self._sensitivity.items() if sensitivity & features
            )
        return sensitive


def _union(alternatives: Sequence[tuple[bool, str]]) -> str:
    """One regex from (is plain, pattern or RE2 source) pairs; plain ones share their prefixes."""
    plain = [text for is_plain_pattern, text in alternatives if is_plain_pattern]
    sources = [text for is_plain_pattern, text in alternatives if not is_plain_pattern]
    return "|".join(([plain_union(plain)] if plain else []) + sources)


def _no_set(text: bytes) -> None:
    """No single set answers every pattern: each name goes to the general path."""
    return None


def _not_a_name(name: object) -> TypeError:
    return TypeError(f"name must be a str, got {type(name).__name__}: {name!r}")


# RE2 refuses a regex of simple tokens only past a size (a million `.`): shorter ones skip the
# trial compile, a third of a millisecond a pattern.
_SURELY_ACCEPTED = 1 << 12


def _needs_checking(translation: Translation) -> bool:
    """Whether RE2 may refuse ``translation`` (then tried alone before it joins a set)."""
    return not translation.simple or len(translation.source) > _SURELY_ACCEPTED


def _re2_accepts(source: str, max_mem: int) -> bool:
    try:
        UnionEngine(max_mem).add([source], "|".join)
    except re2.error:
        return False
    return True


def _features(name: str) -> Sensitivity:
    """The features of ``name`` that some translations are sensitive to."""
    features = Sensitivity.NONE if name.isascii() else Sensitivity.NON_ASCII
    if not name:
        features |= Sensitivity.EMPTY
    if name.endswith("\n"):
        features |= Sensitivity.TRAILING_NEWLINE
    return features
