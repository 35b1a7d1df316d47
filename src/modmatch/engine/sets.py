"""RE2 behind a small interface: many translated patterns, one pass over each name.

:class:`UnionEngine` answers "does any pattern match" with one regex, the alternation of all
sources, and :class:`LiteralEngine` with one such regex per literal the sources require;
:class:`LineEngine` answers it for many names at once, joined by newlines;
:class:`SetEngine` answers "which patterns match" with ``re2.Set`` objects. A set reports a DFA out of memory as "no match", so
every set also holds a sentinel that matches every name: an answer without it means RE2 gave up,
and the caller answers another way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar, cast

import re2

T = TypeVar("T")
E = TypeVar("E")
# A compiled set's match on bytes: its hits, or None (or none at all) when RE2 gave up.
_SetMatch = Callable[[bytes], "list[int] | None"]

__all__ = [
    "ByLiteral",
    "LineEngine",
    "LiteralEngine",
    "LiteralSets",
    "SetEngine",
    "UnionEngine",
    "filed_by_literal",
    "joined_lines",
    "set_matcher",
]

# Per set. Memory is taken only as the DFA grows; the default of 8 MiB cannot even compile a
# set of ~2,000 wildcard patterns, while 10,000 fit in 64 MiB.
DEFAULT_MAX_MEM = 256 << 20
_MATCH_EVERYTHING = ""
# Patterns per set: a set's DFA carries every pattern in every state, so larger sets thrash
# (10,000 wildcard patterns: 314 µs per new name) and RE2 logs a simplifier warning per pattern.
_SET_SIZE = 1024
# Unanchored sets share the work of every start position between their patterns: 4,096
# leading-wildcard patterns cost about what 1,024 do.
_SEARCH_SET_SIZE = 4096
# How the translation writes a leading `*` (see translate.py).
_LEADING_WILDCARD = "\\A[^\\n]*"


def set_matcher(compiled: re2.Set) -> Callable[[bytes], list[int] | None]:
    """The compiled set's match on bytes: the binding's own call where it is there, since the
    public ``Set.Match`` only re-checks the type on top of it (a third of a cold match). An
    empty or None answer means RE2 gave up (the sentinel is in every set)."""
    underlying = getattr(compiled, "_set", None)
    match = getattr(underlying, "Match", None)
    return cast(Callable[[bytes], "list[int] | None"], match if callable(match) else compiled.Match)


def _options(max_mem: int) -> re2.Options:
    options = re2.Options()
    options.max_mem = max_mem
    options.never_capture = True
    options.log_errors = False
    return options


def _in_parts(
    alternatives: Sequence[T],
    join: Callable[[Sequence[T]], str],
    compile_part: Callable[[str, bool], None],
) -> None:
    """``compile_part(join(alternatives), alone)``, on halves of them while RE2 raises."""
    if not alternatives:
        return
    try:
        compile_part(join(alternatives), len(alternatives) == 1)
    except re2.error:
        if len(alternatives) == 1:
            raise
        middle = len(alternatives) // 2
        _in_parts(alternatives[:middle], join, compile_part)
        _in_parts(alternatives[middle:], join, compile_part)


class UnionEngine:
    """Whether any of many RE2 sources matches: their alternation as one regex, or a few parts."""

    __slots__ = ("_options", "_parts", "_regexes")

    def __init__(self, max_mem: int = DEFAULT_MAX_MEM) -> None:
        self._options = _options(max_mem)
        # Each part is a one-regex set with the sentinel (RE2's sets match faster than its regex
        # objects) and the regex source, run as a regex object where the set cannot answer.
        self._parts: list[tuple[Callable[[bytes], list[int] | None] | None, str]] = []
        self._regexes: dict[str, re2._Regexp] = {}

    def add(self, alternatives: Sequence[T], join: Callable[[Sequence[T]], str]) -> None:
        """Add ``join(alternatives)`` as one regex, or halves of it while RE2 refuses the size."""
        _in_parts(alternatives, join, self._add_part)

    def _add_part(self, source: str, alone: bool) -> None:
        compiled = re2.Set.MatchSet(self._options)
        compiled.Add(_MATCH_EVERYTHING)
        try:
            compiled.Add(source)
            compiled.Compile()
        except re2.error:
            if not alone:
                raise
            # One pattern too large for a set's DFA: a regex object can still run it on RE2's
            # NFA. If RE2 refuses even that, the caller hears of it.
            self._regex(source)
            self._parts.append((None, source))
        else:
            self._parts.append((set_matcher(compiled), source))

    def single(self) -> Callable[[bytes], list[int] | None] | None:
        """The one set's match when a single set holds every alternative, else None."""
        if len(self._parts) == 1:
            return self._parts[0][0]
        return None

    def match(self, text: bytes) -> bool:
        """Whether some alternative matches ``text`` from its start."""
        for set_match, source in self._parts:
            hits = None if set_match is None else set_match(text)
            if not hits:
                # No set, or its DFA ran out of memory (it then answers "no match", which the
                # sentinel rules out). A regex object falls back to RE2's NFA: slower, never wrong.
                if self._regex(source).match(text) is not None:
                    return True
            elif len(hits) > 1:
                return True
        return False

    def _regex(self, source: str) -> re2._Regexp:
        compiled = self._regexes.get(source)
        if compiled is None:
            compiled = self._regexes[source] = re2.compile(source, self._options)
        return compiled


# Up to this many sources, one union is as fast as any split on a first pass, whatever their
# shapes (64 mixed patterns: 2.4 µs per new name in one union, 5.2 µs filed by literal).
_ONE_UNION_MAX = 128
# A shorter literal is in too many names to be worth a search of its own.
_MIN_LITERAL = 3


def filed_by_literal(literals: Sequence[str]) -> bool:
    """Whether sources requiring these literals ("" for none) are better filed by literal than
    held together: a large list whose sources require different literals."""
    found = {literal for literal in literals if len(literal) >= _MIN_LITERAL}
    return len(literals) > _ONE_UNION_MAX and len(found) > 1


class ByLiteral(Generic[E]):
    """Sources filed by the literal each requires: an engine per literal, one for the sources
    that require none, and one unanchored search telling which literals a text holds.

    One union (or set) of a list that mixes shapes (per-layer, per-expert, bare names) builds
    new DFA states name after name, each holding the many patterns still alive (4,096 mixed
    patterns: 528 µs per new name); the sources filed under one literal stay few and alike.
    """

    __slots__ = ("_engines", "_search")

    def __init__(
        self,
        sources: Sequence[tuple[str, str]],
        build: Callable[[list[int]], E],
        max_mem: int = DEFAULT_MAX_MEM,
    ) -> None:
        """``sources[i]`` is source i's literal and RE2 syntax; ``build(indices)`` makes the
        engine of those sources."""
        filed: dict[str, list[int]] = {}
        rest: list[int] = []
        for index, (literal, _) in enumerate(sources):
            if len(literal) >= _MIN_LITERAL:
                filed.setdefault(literal, []).append(index)
            else:
                rest.append(index)
        # Broadest first, the shortest source standing for the least a name must hold: a name
        # that matches is most often settled by the first engine asked.
        order = sorted(filed, key=lambda literal: min(len(sources[i][1]) for i in filed[literal]))
        # The sentinel first: a search whose answer holds it did not give up.
        search = re2.Set.SearchSet(_options(max_mem))
        search.Add(_MATCH_EVERYTHING)
        for literal in order:
            search.Add(re2.escape(literal))
        self._search: _SetMatch = _gave_up
        with contextlib.suppress(re2.error):  # over the memory budget: as if it gave up
            search.Compile()
            self._search = set_matcher(search)
        # Literal i of the search is engine i; engine 0, for the sentinel, holds the rest
        # (None when every source requires a literal).
        self._engines: list[E | None] = [build(rest) if rest else None]
        self._engines += [build(filed[literal]) for literal in order]

    def engines(self, text: bytes) -> list[E]:
        """The engines to ask about ``text``, broadest first: those of the literals it holds,
        and the rest's; every one where the search gave up."""
        engines = self._engines
        found = self._search(text)
        if not found:
            return [engine for engine in engines if engine is not None]
        found.sort()  # the search reports its hits in no set order
        return [engine for hit in found if (engine := engines[hit]) is not None]


def _gave_up(text: bytes) -> None:
    """The answer of a search that gives up on every text."""
    return None


class LiteralEngine:
    """Whether any of many RE2 sources matches: a union per literal they require (ByLiteral)."""

    __slots__ = ("_by_literal",)

    def __init__(
        self,
        sources: Sequence[tuple[str, str]],
        alternatives: Sequence[T],
        join: Callable[[Sequence[T]], str],
        max_mem: int = DEFAULT_MAX_MEM,
    ) -> None:
        """``sources`` as :class:`ByLiteral` takes them; ``join`` makes a union's regex of some
        of the ``alternatives``, one per source."""

        def build(indices: list[int]) -> tuple[_SetMatch | None, UnionEngine]:
            union = UnionEngine(max_mem)
            union.add([alternatives[index] for index in indices], join)
            # Its one set's match where it has one, called in match directly: a frame less.
            return union.single(), union

        self._by_literal = ByLiteral(sources, build, max_mem)

    def single(self) -> None:
        """No single set answers every source."""
        return None

    def match(self, text: bytes) -> bool:
        """Whether some source matches ``text`` from its start."""
        for set_match, union in self._by_literal.engines(text):
            found = None if set_match is None else set_match(text)
            if found:  # the union's sentinel, and more than it when a source matched
                if len(found) > 1:
                    return True
            elif union.match(text):  # no single set, or it gave up
                return True
        return False


class LineEngine:
    """Which lines of a newline-joined text one of many RE2 sources matches, in one pass.

    Each source must match a whole line, from ``(?m:^)`` to ``(?m:$)``. The engine compiles a
    run of such lines, each with its newline, so one match covers every consecutive matching
    line: Python sees a match per run, not per line (most of a model's experts sit together).
    """

    __slots__ = ("_options", "_parts")

    def __init__(self, max_mem: int = DEFAULT_MAX_MEM) -> None:
        self._options = _options(max_mem)
        self._parts: list[re2._Regexp] = []

    def add(self, alternatives: Sequence[T], join: Callable[[Sequence[T]], str]) -> None:
        """Add ``join(alternatives)``, wrapped to match runs of lines, as one regex, or halves
        of it while RE2 refuses the size."""
        # Regex objects, not sets: on a DFA out of memory they fall back to RE2's NFA.
        _in_parts(
            alternatives,
            lambda part: f"(?:(?:{join(part)})\n)+",
            lambda source, _: self._parts.append(re2.compile(source, self._options)),
        )

    def lines(self, text: bytes) -> list[int]:
        """The indices of the lines of ``text`` some source matches, ascending."""
        text += b"\n"  # every line with its newline, the last one too
        found = [_lines(part, text) for part in self._parts]
        if len(found) == 1:
            return found[0]
        return sorted(set().union(*found))


def _lines(compiled: re2._Regexp, text: bytes) -> list[int]:
    """The indices of the lines in the runs of lines ``compiled`` matches, ascending."""
    found: list[int] = []
    line = previous = 0
    for start, end in _spans(compiled, text):
        # Newlines counted between and within runs only: no per-line work in Python.
        line += text.count(b"\n", previous, start)
        run = text.count(b"\n", start, end)
        found += range(line, line + run)
        line, previous = line + run, end
    return found


def _spans(compiled: re2._Regexp, text: bytes) -> Iterator[tuple[int, int]]:
    """Where ``compiled`` matches in ``text``, left to right, for a regex that never matches
    the empty string: through the binding's own search where it is there, since the public
    ``finditer`` builds a match object and decodes offsets for every match."""
    search = getattr(getattr(compiled, "_regexp", None), "Match", None)
    unanchored = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)
    if not callable(search) or unanchored is None:
        for found in compiled.finditer(text):
            yield found.span()
        return
    position, size = 0, len(text)
    while True:
        start, position = search(unanchored, text, position, size)[0]
        if start < 0:
            return
        yield start, position


def joined_lines(names: Sequence[str]) -> bytes | None:
    """``names`` one per line, UTF-8, for :class:`LineEngine`; None when that cannot frame them:
    a name that is not a str, holds a newline or a lone surrogate, or no names at all."""
    try:
        text = "\n".join(names).encode()
    except (TypeError, UnicodeEncodeError):
        return None
    if not names or text.count(b"\n") != len(names) - 1:
        return None
    return text


class SetEngine:
    """Matches bytes against RE2 sources; says which it could not take and when it gave up.

    A source that starts with a leading wildcard (``\\A[^\\n]*``) keeps every pattern alive
    at every position of a start-anchored set. On a name without a newline it matches exactly
    where the rest of it matches anywhere, so those go, stripped, into unanchored sets, whose
    DFA tries all start positions at once: the cost per name stays flat in the number of
    patterns. A name with a newline (where an unanchored match could start after it) is
    answered by start-anchored sets of every source, built when the first such name comes.
    """

    __slots__ = ("_all", "_max_mem", "_shards", "_sources")

    def __init__(self, sources: Sequence[tuple[int, str]], max_mem: int = DEFAULT_MAX_MEM) -> None:
        """``sources`` pairs each caller's pattern index with its RE2 syntax."""
        self._sources = list(sources)
        self._max_mem = max_mem
        anchored = [(i, s) for i, s in self._sources if not s.startswith(_LEADING_WILDCARD)]
        floating = [
            (i, s[len(_LEADING_WILDCARD) :])
            for i, s in self._sources
            if s.startswith(_LEADING_WILDCARD)
        ]
        rejected: list[int] = []
        shards = _sets(anchored, re2.Set.MatchSet, _SET_SIZE, max_mem, rejected)
        shards += _sets(floating, re2.Set.SearchSet, _SEARCH_SET_SIZE, max_mem, rejected)
        self._shards: _Shards = (shards, tuple(sorted(rejected)))
        self._all: _Shards | None = None

    def rejected(self, text: bytes) -> tuple[int, ...]:
        """The indices of the sources no set answering ``text`` could hold: the caller's to
        answer."""
        return self._for(text)[1]

    def _for(self, text: bytes) -> _Shards:
        if b"\n" not in text:
            return self._shards
        if self._all is None:
            # Every source start-anchored: an unanchored match could start after the newline.
            rejected: list[int] = []
            shards = _sets(self._sources, re2.Set.MatchSet, _SET_SIZE, self._max_mem, rejected)
            self._all = (shards, tuple(sorted(rejected)))
        return self._all

    def match(self, text: bytes) -> list[int] | None:
        """Indices of the patterns matching ``text``, unordered; None if RE2 gave up."""
        shards = self._for(text)[0]
        found: list[int] = []
        for set_match, indices in shards:
            hits = set_match(text)
            if not hits:  # the sentinel matches every name: RE2 gave up
                return None
            if len(hits) > 1:
                found += [indices[hit] for hit in hits if hit]
        return found


class LiteralSets:
    """Which of many RE2 sources match: a :class:`SetEngine` per literal they require."""

    __slots__ = ("_by_literal",)

    def __init__(
        self, sources: Sequence[tuple[int, str, str]], max_mem: int = DEFAULT_MAX_MEM
    ) -> None:
        """``sources`` has each caller's pattern index, its RE2 syntax and its literal."""

        def build(indices: list[int]) -> SetEngine:
            return SetEngine([sources[i][:2] for i in indices], max_mem)

        self._by_literal = ByLiteral(
            [(literal, source) for _, source, literal in sources], build, max_mem
        )

    def rejected(self, text: bytes) -> tuple[int, ...]:
        """As :meth:`SetEngine.rejected`, for the sets that answer ``text``."""
        return tuple(i for sets in self._by_literal.engines(text) for i in sets.rejected(text))

    def match(self, text: bytes) -> list[int] | None:
        """As :meth:`SetEngine.match`."""
        found: list[int] = []
        for sets in self._by_literal.engines(text):
            hits = sets.match(text)
            if hits is None:
                return None
            found += hits
        return found


# Sets (their match), each with the caller's index of each of its patterns, and the indices
# none could hold.
_Shards = tuple[list[tuple[_SetMatch, tuple[int, ...]]], tuple[int, ...]]


def _sets(
    sources: list[tuple[int, str]],
    kind: Callable[[re2.Options], re2.Set],
    size: int,
    max_mem: int,
    rejected: list[int],
) -> list[tuple[_SetMatch, tuple[int, ...]]]:
    """Sets of ``kind`` holding ``sources``, ``size`` at most each; refused indices go to
    ``rejected``."""
    shards: list[tuple[_SetMatch, tuple[int, ...]]] = []
    options = _options(max_mem)
    for start in range(0, len(sources), size):
        _build(sources[start : start + size], kind, options, shards, rejected)
    return shards


def _build(
    sources: list[tuple[int, str]],
    kind: Callable[[re2.Options], re2.Set],
    options: re2.Options,
    shards: list[tuple[_SetMatch, tuple[int, ...]]],
    rejected: list[int],
) -> None:
    compiled = kind(options)
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
        _build(added[:middle], kind, options, shards, rejected)
        _build(added[middle:], kind, options, shards, rejected)
        return
    # Each set's match, with the caller's index of each of its patterns; the sentinel is 0.
    shards.append((set_matcher(compiled), (-1, *(index for index, _ in added))))
