"""Translate Python's parse of the seed regex into RE2 syntax with the same meaning.

The seed's pattern is live Python regex syntax, so the only faithful reading of it is Python's
own parser. Each node of that tree becomes RE2 syntax that accepts the same names, written out
explicitly (``[^\\n]`` for ``.``, ``\\n?\\z`` for a final ``$``) so RE2's defaults never matter.
Classes whose meaning is Unicode in Python (``\\d``, case folding) are written out as the code
point ranges Python itself accepts. What RE2 still cannot say for every name (a ``$`` with more
pattern after it, Unicode ``\\b``) is reported as :class:`Sensitivity`: names with those features
are answered by ``re``. Constructs RE2 lacks raise :class:`Untranslatable`.
"""

from __future__ import annotations

import enum
import functools
import re
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

if sys.version_info >= (3, 11):
    from re import _constants as sre  # type: ignore[attr-defined]
    from re import _parser as sre_parse  # type: ignore[attr-defined]
else:  # pragma: no cover - exercised on Python 3.10 only
    import sre_constants as sre
    import sre_parse

__all__ = [
    "Sensitivity",
    "Translation",
    "Untranslatable",
    "parse",
    "plain_union",
    "translate",
    "translate_plain",
    "translate_simple",
]

# RE2 refuses larger repeat counts ("invalid repetition size").
_RE2_MAX_REPEAT = 1000
_SURROGATES = (0xD800, 0xDFFF)
_MATCH_NOTHING = r"[^\x00-\x{10ffff}]"
_FINAL_END = r"\n?\z"

_CATEGORY_ESCAPES = {
    sre.CATEGORY_DIGIT: r"\d",
    sre.CATEGORY_NOT_DIGIT: r"\D",
    sre.CATEGORY_SPACE: r"\s",
    sre.CATEGORY_NOT_SPACE: r"\S",
    sre.CATEGORY_WORD: r"\w",
    sre.CATEGORY_NOT_WORD: r"\W",
}
_UNSUPPORTED = {
    sre.GROUPREF: "backreference",
    sre.GROUPREF_EXISTS: "conditional group",
    sre.ASSERT: "lookaround",
    sre.ASSERT_NOT: "negative lookaround",
}
if sys.version_info >= (3, 11):
    _UNSUPPORTED[sre.ATOMIC_GROUP] = "atomic group"
    _UNSUPPORTED[sre.POSSESSIVE_REPEAT] = "possessive repeat"


class Sensitivity(enum.IntFlag):
    """Name features on which a translated pattern may answer differently from Python's ``re``."""

    NONE = 0
    NON_ASCII = enum.auto()  # Python's \b is Unicode, RE2's ASCII-only
    TRAILING_NEWLINE = enum.auto()  # Python's $ also matches before one final "\n"
    EMPTY = enum.auto()  # Python's \B never matches an empty string; RE2's does


class Untranslatable(Exception):
    """The pattern uses a construct RE2 cannot express; the reason names it."""


@dataclass(frozen=True)
class Translation:
    """RE2 syntax equivalent to a seed regex, except on names with the listed features."""

    source: str
    sensitivity: Sensitivity
    plain: bool = False  # the pattern itself is plain (see translate_plain)
    # Written from a few fixed tokens (see translate_simple), which RE2 always accepts.
    simple: bool = False
    # How many unbounded repeats the regex holds, where known (plain and simple regexes): with
    # one at most, even Python's backtracking re runs it in time linear in the name.
    repeats: int | None = None
    # The longest run of literal characters every matching name holds ("" if none): the
    # engine files the pattern under it, so a name is tried only on patterns whose run it holds.
    literal: str = ""


def parse(regex: str) -> Any:
    """Python's parse tree of ``regex``; raises what ``re.compile`` raises for bad syntax."""
    return sre_parse.parse(regex, 0)


# Module-name patterns are mostly words, dots and stars; for those the seed regex has one reading
# and no possible syntax error, so the parse can be skipped.
_PLAIN = re.compile(r"[A-Za-z0-9_.*]*")


def translate_plain(pattern: str) -> Translation | None:
    """The translation of a pattern made only of ASCII letters, digits, ``_``, ``.`` and ``*``;
    None for any other."""
    if not _PLAIN.fullmatch(pattern):
        return None
    body = "".join(map(_plain_token, pattern))
    # `.` and `*` match any character: the words between them are the literal runs.
    literal = max(_PLAIN_WORD.findall(pattern), key=len, default="")
    return Translation(
        r"\A" + body + _FINAL_END,
        Sensitivity.NONE,
        plain=True,
        simple=True,
        literal=literal,
        repeats=pattern.count("*"),
    )


_PLAIN_WORD = re.compile(r"[A-Za-z0-9_]+")

# The regexes frameworks build from plain patterns (Automodel's `(.*)` and `(\..*)?`, PEFT's
# `.*\.q_proj`) are made of a few tokens, each with one meaning wherever it stands; such a regex
# is written out token by token, without Python's parser (a third of a millisecond a pattern).
_SIMPLE_TOKENS = {
    "(\\..*)?": r"(?:\.[^\n]*)?",
    "(.*)": r"[^\n]*",
    ".*": r"[^\n]*",
    "\\.": r"\.",
    ".": r"[^\n]",
}
_SIMPLE_TOKEN = re.compile(r"[A-Za-z0-9_]|" + "|".join(map(re.escape, _SIMPLE_TOKENS)))
_SIMPLE = re.compile(rf"\^?(?:{_SIMPLE_TOKEN.pattern})*\$?")


def translate_simple(regex: str, *, fullmatch: bool = False) -> Translation | None:
    """The translation of a regex made only of an optional leading ``^``, ASCII letters, digits,
    ``_``, ``.``, ``\\.``, ``.*``, ``(.*)``, ``(\\..*)?`` and, without ``fullmatch``, an
    optional final ``$``; None for any other."""
    if not _SIMPLE.fullmatch(regex) or (fullmatch and regex.endswith("$")):
        return None
    body = regex.removeprefix("^").removesuffix("$")
    written, literal, run = [], "", ""
    tokens = _SIMPLE_TOKEN.findall(body)
    for token in tokens:
        written.append(_SIMPLE_TOKENS.get(token, token))
        run = run + token[-1] if token == "\\." or (len(token) == 1 and token != ".") else ""
        literal = max(literal, run, key=len)
    source = r"\A" + "".join(written)
    if fullmatch:
        source += r"\z"
    elif regex.endswith("$"):
        source += _FINAL_END  # a final $ also matches before a final "\n", as in translate
    repeats = sum(token.endswith(("*", "*)", ")?")) for token in tokens)
    return Translation(source, Sensitivity.NONE, simple=True, literal=literal, repeats=repeats)


def _plain_token(char: str) -> str:
    return {".": r"[^\n]", "*": r"[^\n]*"}.get(char, char)


def plain_union(patterns: Iterable[str], *, per_line: bool = False) -> str:
    """One RE2 regex accepting what any plain pattern accepts, common prefixes written once.

    RE2 does not factor a shared leading ``[^\\n]*`` out of an alternation; left in every
    alternative, it keeps them all alive at once and the DFA outgrows any budget (3 ms per name
    for 10,000 per-expert patterns, against 2 µs factored). With ``per_line``, the regex
    matches whole lines of names joined by newlines, names that hold no newline themselves.
    """
    trie: dict[str | None, Any] = {}
    for pattern in patterns:
        node = trie
        for char in pattern:
            node = node.setdefault(char, {})
        node[None] = {}
    if per_line:
        return "(?m:^)" + _emit(trie, "(?m:$)")
    return r"\A" + _emit(trie, _FINAL_END)


def _emit(root: dict[str | None, Any], final_end: str) -> str:
    """The trie as nested alternations, built bottom-up without recursion."""
    done: dict[int, str] = {}
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if not children_done:
            stack.append((node, True))
            for key, child in node.items():
                end = _chain(child)[1]
                if key is not None and id(end) not in done:
                    stack.append((end, False))
            continue
        branches = []
        for key, child in node.items():
            if key is None:
                branches.append(final_end)
            else:
                tokens, end = _chain(child)
                branches.append(_plain_token(key) + "".join(tokens) + done[id(end)])
        done[id(node)] = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    return done[id(root)]


def _chain(node: dict[str | None, Any]) -> tuple[list[str], dict[str | None, Any]]:
    """The tokens down a run of nodes with one child each, and the node that ends the run."""
    tokens = []
    while len(node) == 1 and None not in node:
        key, node = next(iter(node.items()))
        tokens.append(_plain_token(key))  # type: ignore[arg-type]
    return tokens, node


def translate(tree: Any, *, fullmatch: bool = False) -> Translation:
    """RE2 syntax for a parse tree from :func:`parse`, or raise :class:`Untranslatable`.

    The result matches where Python's ``re.match`` does, or with ``fullmatch`` where
    ``re.fullmatch`` does (the whole name, so a final ``$`` no longer absorbs a ``"\\n"``).
    """
    writer = _Writer()
    source = writer.sequence(tree, tree.state.flags, final=not fullmatch)
    if fullmatch:
        source = r"\A(?:" + source + r")\z"
    return Translation(source, writer.sensitivity, literal=_required_literal(tree))


def _required_literal(tree: Any) -> str:
    """The longest run of literal characters at the top level of ``tree``, which every name it
    matches holds; "" under case folding, and surrogates (never in an encodable name) end a run."""
    if tree.state.flags & sre.SRE_FLAG_IGNORECASE:
        return ""
    longest = run = ""
    for op, av in tree:
        if op is sre.LITERAL and not _SURROGATES[0] <= av <= _SURROGATES[1]:
            run += chr(av)
            longest = max(longest, run, key=len)
        else:
            run = ""
    return longest


class _Writer:
    """Walks one parse tree, collecting the sensitivity of what it has written."""

    def __init__(self) -> None:
        self.sensitivity = Sensitivity.NONE

    def sequence(self, items: Any, flags: int, final: bool) -> str:
        """``final``: nothing in the regex can follow this sequence."""
        last = len(items) - 1
        return "".join(
            self.node(op, av, flags, final and i == last) for i, (op, av) in enumerate(items)
        )

    def node(self, op: Any, av: Any, flags: int, final: bool) -> str:
        if op in _UNSUPPORTED:
            raise Untranslatable(_UNSUPPORTED[op])
        if op is sre.LITERAL or op is sre.NOT_LITERAL or op is sre.IN:
            return self.char_class(op, av, flags)
        if op is sre.ANY:
            return r"(?s:.)" if flags & sre.SRE_FLAG_DOTALL else r"[^\n]"
        if op is sre.BRANCH:
            return "(?:" + "|".join(self.sequence(alt, flags, final) for alt in av[1]) + ")"
        if op is sre.SUBPATTERN:
            _group, add_flags, del_flags, body = av
            return "(?:" + self.sequence(body, (flags | add_flags) & ~del_flags, final) + ")"
        if op is sre.MAX_REPEAT or op is sre.MIN_REPEAT:
            # Greedy or lazy, a repeat accepts the same names; only the match found differs.
            low, high, body = av
            return "(?:" + self.sequence(body, flags, False) + ")" + _repeat(low, high)
        if op is sre.AT:
            return self.anchor(av, flags, final)
        raise Untranslatable(f"unsupported construct {op}")

    def anchor(self, code: Any, flags: int, final: bool) -> str:
        multiline = flags & sre.SRE_FLAG_MULTILINE
        if code is sre.AT_BEGINNING_STRING or (code is sre.AT_BEGINNING and not multiline):
            return r"\A"
        if code is sre.AT_END_STRING:
            return r"\z"
        if code is sre.AT_BEGINNING or code is sre.AT_END:
            if multiline:  # multi-line ^ and $ mean the same in both engines
                return "(?m:^)" if code is sre.AT_BEGINNING else "(?m:$)"
            if final:
                # Python's $ also matches before a final "\n". When nothing can follow, taking
                # that "\n" instead is the same test, and RE2 can say it.
                return _FINAL_END
            self.sensitivity |= Sensitivity.TRAILING_NEWLINE
            return r"\z"
        if code is sre.AT_BOUNDARY:
            self.sensitivity |= Sensitivity.NON_ASCII
            return r"\b"
        if code is sre.AT_NON_BOUNDARY:
            self.sensitivity |= Sensitivity.NON_ASCII | Sensitivity.EMPTY
            return r"\B"
        raise Untranslatable(f"unsupported anchor {code}")

    def char_class(self, op: Any, av: Any, flags: int) -> str:
        """One character: a literal, a negated literal or a ``[...]`` set."""
        items = [(op, av)] if op is not sre.IN else list(av)
        if op is sre.NOT_LITERAL:
            items = [(sre.NEGATE, None), (sre.LITERAL, av)]
        negate = bool(items) and items[0][0] is sre.NEGATE
        if negate:
            items = items[1:]
        if flags & sre.SRE_FLAG_IGNORECASE or any(kind is sre.CATEGORY for kind, _ in items):
            # Python's case folding and Unicode classes differ from RE2's: write out the code
            # points Python accepts.
            return _class(negate, _python_ranges(_python_class(items, flags)))
        ranges: list[tuple[int, int]] = []
        for kind, value in items:
            low, high = (value, value) if kind is sre.LITERAL else value
            ranges.extend(_without_surrogates(low, high))
        return _class(negate, ranges)


def _repeat(low: int, high: int) -> str:
    unbounded = high == sre.MAXREPEAT
    if low > _RE2_MAX_REPEAT or (not unbounded and high > _RE2_MAX_REPEAT):
        raise Untranslatable(f"repeat count above RE2's limit of {_RE2_MAX_REPEAT}")
    if unbounded:
        return {0: "*", 1: "+"}.get(low, f"{{{low},}}")
    if (low, high) == (0, 1):
        return "?"
    return f"{{{low}}}" if low == high else f"{{{low},{high}}}"


def _without_surrogates(low: int, high: int) -> list[tuple[int, int]]:
    # Names holding a lone surrogate never reach RE2 (they cannot be UTF-8 encoded), so the
    # surrogate block can be dropped from every range; RE2 could not match it anyway.
    first, last = _SURROGATES
    parts = [(low, min(high, first - 1)), (max(low, last + 1), high)]
    return [(a, b) for a, b in parts if a <= b]


def _escape(code: int) -> str:
    char = chr(code)
    return char if char.isascii() and (char.isalnum() or char == "_") else f"\\x{{{code:x}}}"


def _class(negate: bool, ranges: list[tuple[int, int]]) -> str:
    if not ranges:
        return r"[\x00-\x{10ffff}]" if negate else _MATCH_NOTHING
    if not negate and len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
        return _escape(ranges[0][0])
    body = "".join(_escape(a) if a == b else f"{_escape(a)}-{_escape(b)}" for a, b in ranges)
    return "[" + ("^" if negate else "") + body + "]"


def _python_class(items: list[tuple[Any, Any]], flags: int) -> str:
    """Python regex source for one positive character set, with the flags that change it."""
    parts = []
    for kind, value in items:
        if kind is sre.LITERAL:
            parts.append(f"\\U{value:08x}")
        elif kind is sre.RANGE:
            parts.append(f"\\U{value[0]:08x}-\\U{value[1]:08x}")
        else:
            parts.append(_CATEGORY_ESCAPES[value])
    scoped = ("i" if flags & sre.SRE_FLAG_IGNORECASE else "") + (
        "a" if flags & sre.SRE_FLAG_ASCII else ""
    )
    body = "[" + "".join(parts) + "]"
    return f"(?{scoped}:{body})" if scoped else body


@functools.lru_cache(maxsize=1)
def _every_character() -> str:
    """Every code point a name can hold on the RE2 path: all but the surrogates. Decoded from
    UTF-32 (30 ms) rather than joined from ``chr`` of each (95 ms): a first ``\\d`` pays it."""
    first, last = _SURROGATES
    return (
        (array("I", range(first)) + array("I", range(last + 1, 0x110000)))
        .tobytes()
        .decode("utf-32-le" if sys.byteorder == "little" else "utf-32-be")
    )


@functools.lru_cache(maxsize=256)
def _python_ranges(python_source: str) -> list[tuple[int, int]]:
    """The code point ranges Python's one-character regex ``python_source`` accepts."""
    text = _every_character()
    ranges = []
    for run in re.finditer(f"(?:{python_source})+", text):
        ranges.extend(_without_surrogates(ord(text[run.start()]), ord(text[run.end() - 1])))
    return ranges
