"""Advice for the command: patterns to try instead of one that selects nothing, and patterns
that select far more than they read as.

A suggestion is itself a pattern under the active rules, checked against the model before it
is offered: it selects something, only Linear modules where module types are known, and keeps
the numbers the user typed (a layer index is intent; starring it would select every layer).
Under PEFT's rules a list entry gets entries (names and dotted suffixes), and a regex
``target_modules`` gets a regex: the same one with its prefix moved, a word respelt or a
segment fewer, or reached from any prefix.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from functools import cached_property
from itertools import chain
from typing import NamedTuple

__all__ = [
    "Advice",
    "Suggestion",
    "fused_experts_note",
    "literal_reading",
    "suggest",
    "suggestions",
    "why_broader",
]

# What one candidate pattern selects among the model's names, under the active rules.
Selects = Callable[[str], Callable[[str], bool]]

_LITERAL_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A segment a prefix is made of: a word or a number.
_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_]+")
_NUMBER_SEGMENT = re.compile(r"(?:^|\.)[0-9]+(?:\.|$)")
_MOST = 3


class Advice:
    """The model's names as the rules ask about them, which are Linear, and its vocabulary.

    ``selects`` reads a pattern as the rules read the patterns being advised on: for a PEFT
    regex ``target_modules``, as that one regex."""

    def __init__(self, names: list[str], linear: set[str] | None, selects: Selects) -> None:
        self.names = names
        self.linear = linear  # None where module types are not known
        self.selects = selects
        # What each candidate came to (by candidate and whether a regex): unmatched patterns
        # of one config share them (a role's names).
        self.tried: dict[tuple[str, bool], tuple[str, list[str]] | None] = {}

    @cached_property
    def _having(self) -> dict[str, set[int]]:
        """Each segment, with the indices of the names it is a segment of."""
        found: dict[str, set[int]] = {}
        for index, name in enumerate(self.names):
            for part in name.split("."):
                found.setdefault(part, set()).add(index)
        return found

    @cached_property
    def segments(self) -> list[str]:
        """Every segment of the model's names, sorted."""
        return sorted(self._having)

    @cached_property
    def last_segments(self) -> list[str]:
        """The names' last segments, sorted."""
        return sorted({name.rpartition(".")[2] for name in self.names})

    @cached_property
    def _before(self) -> dict[str, set[str]]:
        """Each segment, with the paths names have right before it ("" where a name starts
        with it); each path is walked once, names that share it stop there."""
        found: dict[str, set[str]] = {}
        seen: set[str] = set()
        for name in self.names:
            while name and name not in seen:
                seen.add(name)
                path, _, segment = name.rpartition(".")
                found.setdefault(segment, set()).add(path)
                name = path
        return found

    def paths_before(self, segment: str) -> list[str]:
        """The paths without numbers that the names have right before ``segment``, sorted."""
        paths = self._before.get(segment, ())
        return sorted(path for path in paths if not _NUMBER_SEGMENT.search(path))

    def having(self, words: Iterable[str]) -> list[str]:
        """The names with every one of ``words`` as a segment (all names, for no words): an
        index lookup, so a candidate is ruled out without a pass over all the names."""
        postings = sorted((self._having.get(word, set()) for word in set(words)), key=len)
        if not postings:
            return self.names
        common = postings[0].intersection(*postings[1:])
        return [self.names[index] for index in sorted(common)]

    def selected(self, pattern: str) -> list[str]:
        """The names ``pattern`` selects."""
        match = self.selects(pattern)
        return [name for name in self.names if match(name)]


class Suggestion(NamedTuple):
    """A pattern to try, and why where the reason is not plain (a prefix the model moved)."""

    pattern: str
    why: str | None = None


def suggestions(
    pattern: str, advice: Advice, *, full_name: bool, dot_is_any: bool, regex: bool = False
) -> list[str]:
    """Up to three patterns close to ``pattern`` that select something: :func:`suggest`'s
    patterns."""
    return [
        found.pattern
        for found in suggest(
            pattern, advice, full_name=full_name, dot_is_any=dot_is_any, regex=regex
        )
    ]


def suggest(
    pattern: str, advice: Advice, *, full_name: bool, dot_is_any: bool, regex: bool = False
) -> list[Suggestion]:
    """Up to three patterns close to ``pattern`` that select something, Linear modules only
    where types are known, with why where a prefix moved. ``full_name``: the rules compare a
    bare name with the whole name (PEFT's lists: as a dotted suffix); ``dot_is_any``: a ``.``
    in a pattern is any character (the seed's syntax); ``regex``: the pattern is PEFT's one
    regex ``target_modules``, fullmatched against whole names, so suggestions are regexes."""
    if "|" in pattern and not regex:  # meant as "or" between whole patterns: each side alone
        sides = [
            # A side that works as it is, or narrowed to Linear modules, is its own suggestion.
            [Suggestion(usable[0])]
            if (usable := _linear_only(side, advice.selected(side), advice, regex=False))
            else suggest(side, advice, full_name=full_name, dot_is_any=dot_is_any)
            for side in pattern.split("|")
        ]
        return list(dict.fromkeys(found for side in sides for found in side))[:_MOST]
    # A prefix the model has in another place is the fix: edits would select something else.
    moved = _prefix_moved(pattern, advice, dot_is_any, regex)
    if moved:
        return [Suggestion(candidate, why) for candidate, _, why in moved][:_MOST]
    # One suggestion per selection, the model's own names for the pattern's role first (a
    # regex gets none: a role is several names, which one regex would have to join).
    found: dict[frozenset[str], Suggestion] = {}
    for role, names in [] if regex else _by_role(pattern, advice, full_name, dot_is_any):
        found.setdefault(frozenset(names), Suggestion(role))
    near: dict[frozenset[str], str] = {}
    for tier in _candidates(pattern, advice, full_name, regex):
        for candidate in tier:
            usable = _usable(candidate, advice, dot_is_any, regex)
            if usable is not None and usable[0] != pattern:
                near.setdefault(frozenset(usable[1]), usable[0])
        if near:
            break  # a bigger edit would stray further from what was meant
    for selection, candidate in near.items():
        found.setdefault(selection, Suggestion(candidate))
    return list(found.values())[:_MOST]


def _prefix_moved(
    pattern: str, advice: Advice, dot_is_any: bool, regex: bool
) -> list[tuple[str, list[str], str]]:
    """The pattern with its leading plain segments replaced by a path the model has before the
    segment that follows them (transformers 5's ``model.language_model.`` for transformers 4's
    ``language_model.model.``, a missing or extra ``base_model.model.``), with what it selects
    and why: those of the closest paths that select something. Each top-level alternative of
    a regex is moved on its own, and the regex is offered whole."""
    sides = _alternatives(pattern) if regex else [pattern]
    if len(sides) > 1:
        moved = [
            None
            if _selects_any(side, advice)
            else next(iter(_prefix_moved(side, advice, dot_is_any, regex)), None)
            for side in sides
        ]
        if not any(moved):
            return []
        joined = "|".join(
            side if fix is None else fix[0] for side, fix in zip(sides, moved, strict=True)
        )
        usable = _usable(joined, advice, dot_is_any, regex)
        why = "; ".join(dict.fromkeys(fix[2] for fix in moved if fix))
        return [(*usable, why)] if usable else []
    found: list[tuple[str, list[str], str]] = []
    closest = None
    for distance, candidate, why in _moved_candidates(pattern, advice, regex):
        if closest is not None and distance > closest:
            break  # a path further from the pattern's is another part of the model
        usable = _usable(candidate, advice, dot_is_any, regex)
        if usable is not None:
            closest = distance
            found.append((*usable, why))
    return found


def _moved_candidates(pattern: str, advice: Advice, regex: bool) -> list[tuple[int, str, str]]:
    """For each plain segment the pattern starts with: the pattern from that segment on, after
    each path without numbers the model has before that segment, with how far that path is
    from the one the pattern has (segments in one but not the other) and why; closest first,
    then the shortest path."""
    parts, seps = _split(pattern, regex)
    found: dict[str, tuple[int, int, str]] = {}
    for at, part in enumerate(parts):
        if not _PLAIN_SEGMENT.fullmatch(part):
            break  # a path is plain segments; past a wildcard the pattern is not a path
        written = Counter(parts[:at])
        # The model's path joined as the pattern joins its segments (maybe '\.' in a regex).
        sep = seps[at - 1] if at else next(iter(seps), ".")
        tail = _join(parts[at:], seps[at:])
        for path in advice.paths_before(part):
            model = path.split(".") if path else []
            if model == parts[:at]:
                continue
            distance = sum(((written - Counter(model)) + (Counter(model) - written)).values())
            candidate = "".join(segment + sep for segment in model) + tail
            why = (
                f"this model's names have {'.'.join([*model, part])!r} where the pattern has "
                f"{'.'.join([*parts[:at], part])!r}"
            )
            found.setdefault(candidate, (distance, len(model), why))
    ranked = sorted(found.items(), key=lambda item: item[1][:2])
    return [(distance, candidate, why) for candidate, (distance, _, why) in ranked]


def _selects_any(pattern: str, advice: Advice) -> bool:
    """Whether the pattern selects some name (stopping at the first)."""
    return any(map(advice.selects(pattern), advice.names))


def _alternatives(regex: str) -> list[str]:
    """A regex's top-level alternatives: ``a|(b|c)`` is ``a`` or ``(b|c)``."""
    found: list[str] = []
    depth, start, escaped, in_class = 0, 0, False, False
    for at, char in enumerate(regex):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char in "()":
            depth += 1 if char == "(" else -1
        elif char == "|" and depth == 0:
            found.append(regex[start:at])
            start = at + 1
    return [*found, regex[start:]]


def _split(pattern: str, regex: bool) -> tuple[list[str], list[str]]:
    """The pattern's dotted parts and the separators between them (``\\.`` too, in a regex)."""
    pieces = re.split(r"(\\?\.)" if regex else r"(\.)", pattern)
    return pieces[::2], pieces[1::2]


def _join(parts: list[str], seps: list[str]) -> str:
    """Parts put back together with their separators (one fewer than parts)."""
    return "".join(chain.from_iterable(zip(parts, [*seps, ""], strict=True)))


# Projection roles across naming conventions: each role's block and its names, in groups that
# do one job (q, k and v together do what a fused qkv does). Checked on transformers' models;
# wq/wk/wv/wo/w1/w2/w3 are Meta's Llama names, linear_* Megatron-Core's. c_proj (GPT-2) and wo
# (Meta's attention, T5's MLP) play two roles; which one a model's name plays, its block says.
_ROLES = (
    (
        "attention",
        (
            ("q_proj", "query", "wq", "q"),
            ("k_proj", "key", "wk", "k"),
            ("v_proj", "value", "wv", "v"),
            ("qkv_proj", "Wqkv", "c_attn", "query_key_value", "in_proj", "linear_qkv"),
        ),
    ),
    (
        "attention",
        (("o_proj", "out_proj", "dense", "output_proj", "c_proj", "wo", "o", "linear_proj"),),
    ),
    (
        "mlp",
        (
            ("gate_proj", "w1", "wi_0"),
            ("up_proj", "w3", "wi_1"),
            ("gate_up_proj",),
            ("fc1", "c_fc", "dense_h_to_4h", "fc_in", "wi", "linear_fc1"),
        ),
    ),
    (
        "mlp",
        (("down_proj", "w2", "fc2", "c_proj", "dense_4h_to_h", "fc_out", "wo", "linear_fc2"),),
    ),
)
# A segment naming the block a projection sits in.
_BLOCK = re.compile(
    r"(?P<attention>att)|(?P<mlp>mlp|ffn|feed_?forward|densereludense|intermediate|expert|moe)",
    re.IGNORECASE,
)
_LAST_WORD = re.compile(r"(?<![A-Za-z0-9_])[A-Za-z_][A-Za-z0-9_]*$")


def _by_role(
    pattern: str, advice: Advice, full_name: bool, dot_is_any: bool
) -> list[tuple[str, list[str]]]:
    """Patterns, with what they select, for the model's own names in the role of the pattern's
    last word (its block's role where the pattern names a block), from the same group first;
    none where the model has that word (the miss is elsewhere in the pattern)."""
    word = _LAST_WORD.search(pattern)
    if word is None or word[0] in advice.last_segments:
        return []
    prefix = pattern[: word.start()]
    # From the pattern's block segment on, the model's own path replaces the pattern's.
    parts = [*prefix.split("."), word[0]]
    block, at = _placed(parts)
    stem = ".".join([*parts[:at], ""]) if block else prefix
    found = []
    for role_block, groups in _ROLES:
        if block not in (None, role_block) or not any(word[0] in group for group in groups):
            continue
        names = _in_role(advice, role_block, {leaf for group in groups for leaf in group})
        same = [leaf for group in groups if word[0] in group for leaf in group if leaf in names]
        for leaf in same or [leaf for group in groups for leaf in group if leaf in names]:
            paths = dict.fromkeys(path for name in names[leaf] if (path := _path(name)))
            forms = [prefix + leaf] + [stem + path for path in paths]
            edits = (
                edit
                for form in forms
                for tier in _candidates(form, advice, full_name, regex=False)
                for edit in tier
            )
            for candidate in chain(forms, edits):
                usable = _usable(candidate, advice, dot_is_any, regex=False)
                if usable and set(usable[1]) <= set(names[leaf]):
                    found.append(usable)
                    break
    return found


def _in_role(advice: Advice, block: str, leaves: set[str]) -> dict[str, list[str]]:
    """The model's names ending in one of ``leaves``, by that ending, that sit in ``block``; or,
    where none does, that sit in no block (OPT's fc1 is right in the layer)."""
    placed = [
        (name, _placed(name.split("."))[0])
        for name in advice.names
        if name.rpartition(".")[2] in leaves
    ]
    wanted = block if any(found == block for _, found in placed) else None
    found: dict[str, list[str]] = {}
    for name, name_block in placed:
        if name_block == wanted:
            found.setdefault(name.rpartition(".")[2], []).append(name)
    return found


def _placed(parts: list[str]) -> tuple[str | None, int]:
    """The block of the segment nearest the last that names one, and that segment's index."""
    for at in range(len(parts) - 2, -1, -1):
        if named := _BLOCK.search(parts[at]):
            return named.lastgroup, at
    return None, len(parts) - 1


def _path(name: str) -> str | None:
    """The name from its block segment on, where that holds no number."""
    parts = name.split(".")
    block, at = _placed(parts)
    rest = parts[at:]
    return ".".join(rest) if block and not any(part.isdigit() for part in rest) else None


def _candidates(pattern: str, advice: Advice, full_name: bool, regex: bool) -> Iterator[list[str]]:
    """Edits of the pattern in tiers, the smallest first; numbers are never changed."""
    parts, seps = _split(pattern, regex)
    fixed = [_closest(part, advice.segments) for part in parts]
    spelled = _join(fixed, seps)
    # Misspelt segments, and a whole-name pattern reached from any prefix (a regex's
    # alternatives all from it).
    if regex:
        anywhere = [] if pattern.startswith(".*") else [_anywhere(spelled)]
    else:
        anywhere = [] if pattern.startswith("*") else ["*." + spelled]
    yield [spelled, *anywhere, *([] if regex else _plain_tail(pattern, parts, advice))]
    # One segment too many, never the last (what the pattern is after); what is left must
    # still name something.
    yield [
        _join(fixed[:i] + fixed[i + 1 :], seps[:i] + seps[i + 1 :])
        for i in range(len(fixed) - 1)
        if _LITERAL_SEGMENT.fullmatch(fixed[i])
        and any(map(_LITERAL_SEGMENT.fullmatch, fixed[:i] + fixed[i + 1 :]))
    ]
    if len(parts) == 1:
        close = difflib.get_close_matches(pattern, advice.last_segments, _MOST, 0.6)
        # Where the rules compare whole names, a bare name is tried too: PEFT's lists take it
        # as a dotted suffix.
        yield [
            form
            for segment in close
            for form in (
                [_anywhere(segment)]
                if regex
                else [segment, "*." + segment]
                if full_name
                else [segment]
            )
        ]


def _plain_tail(pattern: str, parts: list[str], advice: Advice) -> list[str]:
    """The dotted name after the pattern's last wildcard, where it selects what the pattern
    does read with ``*`` as any text: a PEFT list entry's ``*`` is no wildcard, and a dotted
    suffix may select what it was after."""
    at = max((i for i, part in enumerate(parts) if not _PLAIN_SEGMENT.fullmatch(part)), default=-1)
    if at in (-1, len(parts) - 1):
        return []
    tail = ".".join(parts[at + 1 :])
    read = re.compile(".*".join(map(re.escape, pattern.split("*"))))
    usable = _usable(tail, advice, dot_is_any=False, regex=False)
    wanted = {name for name in advice.names if read.fullmatch(name)}
    return [tail] if usable and set(usable[1]) == wanted else []


def _anywhere(regex: str) -> str:
    """The regex after any prefix: ``.*\\.`` before it (before each alternative)."""
    return ".*\\." + (f"(?:{regex})" if len(_alternatives(regex)) > 1 else regex)


def _closest(part: str, vocabulary: list[str]) -> str:
    """A word segment not in the model: its closest segment that is; anything else as is."""
    if not _LITERAL_SEGMENT.fullmatch(part) or part in vocabulary:
        return part
    close = difflib.get_close_matches(part, vocabulary, 1, 0.6)
    return close[0] if close else part


def _usable(
    candidate: str, advice: Advice, dot_is_any: bool, regex: bool
) -> tuple[str, list[str]] | None:
    """:func:`_linear_only` of the candidate, its numbers' dots literal where a dot is any
    character (`layers.1.*` would take in layers 10 to 19), if it selects as it reads."""
    if dot_is_any and not regex:
        candidate = re.sub(r"(?<=\.)([0-9]+)\.(?=\*)", r"\1\\.", candidate)
    key = (candidate, regex)
    if key not in advice.tried:
        advice.tried[key] = _tried(candidate, advice, regex)
    return advice.tried[key]


def _tried(candidate: str, advice: Advice, regex: bool) -> tuple[str, list[str]] | None:
    """What :func:`_usable` finds for the candidate as written. The names that have its words
    are tried first: most candidates select none of them, and so nothing as written, which an
    index lookup shows without a pass over all the names."""
    words = _words(candidate, regex)
    match = advice.selects(candidate)
    if not any(map(match, advice.having(set.intersection(*words)))):
        return None
    selected = [name for name in advice.names if match(name)]
    usable = _linear_only(candidate, selected, advice, regex)
    return usable if usable and _as_written(usable[1], _words(usable[0], regex)) else None


def _words(candidate: str, regex: bool) -> list[set[str]]:
    """The word segments of the candidate, per top-level alternative in a regex."""
    sides = _alternatives(candidate) if regex else [candidate]
    return [
        {part for part in _split(side, regex)[0] if _LITERAL_SEGMENT.fullmatch(part)}
        for side in sides
    ]


def _as_written(selected: list[str], words: list[set[str]]) -> bool:
    """Whether each name selected has as segments the word segments of the candidate (of one
    of its alternatives): where '.' is any character, `*.attn.dense` selects
    `self_attn.dense`."""
    return all(any(side <= set(name.split(".")) for side in words) for name in selected)


def _linear_only(
    candidate: str, selected: list[str], advice: Advice, regex: bool
) -> tuple[str, list[str]] | None:
    """The candidate, or a narrower form of it, with what it selects, if that is Linear
    modules only; None if it selects nothing (or nothing Linear). A regex is not narrowed:
    its ``*`` repeats what is before it."""
    if not selected:
        return None
    linear = advice.linear
    if linear is None or all(name in linear for name in selected):
        return candidate, selected
    if regex or not candidate.endswith("*"):
        return None
    wanted = [name.rpartition(".")[2] for name in selected if name in linear]
    others = [name.rpartition(".")[2] for name in selected if name not in linear]
    for part in _shared_parts(wanted):
        if not any(part in other for other in others):
            narrower = f"{candidate}{part}*"
            chosen = advice.selected(narrower)
            if chosen and all(name in linear for name in chosen):
                return narrower, chosen
    return None


def _shared_parts(words: list[str]) -> list[str]:
    """Substrings (3 characters or more) every word contains, longest first."""
    if not words:
        return []
    shortest = min(words, key=len)
    parts = {
        shortest[i:j]
        for i in range(len(shortest))
        for j in range(i + 3, len(shortest) + 1)
        if all(shortest[i:j] in word for word in words)
    }
    return sorted(parts, key=lambda part: (-len(part), part))


def literal_reading(pattern: str) -> str | None:
    """The pattern with its ``.`` and ``|`` read literally, where it has any: what it selects
    is what the pattern seems to say (``*.expert.*`` then no longer matches ``experts``)."""
    if "." not in pattern and "|" not in pattern:
        return None
    return re.sub(r"(?<!\\)([.|])", r"\\\1", pattern)  # an escaped dot is literal already


def why_broader(pattern: str) -> str:
    """Why a pattern selects more than its literal reading."""
    return "'|' splits the whole pattern in two" if "|" in pattern else "'.' matches any character"


# Per-expert projection names (transformers 4.x and Mixtral's), fused in transformers 5.
_EXPERT_PROJECTIONS = {"gate_proj", "up_proj", "down_proj", "w1", "w2", "w3"}


def fused_experts_note(pattern: str, fused: dict[str, tuple[str, ...]]) -> str | None:
    """For a pattern aimed at per-expert Linear modules of a model whose experts are fused
    (one module per layer holding 3-D parameters): what to target instead."""
    if not fused:
        return None
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", pattern))
    if not (words & _EXPERT_PROJECTIONS or any("expert" in word for word in words)):
        return None
    from ..fold import fold

    modules = ", ".join(str(line) for line in fold(fused))
    first = next(iter(fused))
    parameters = fused[first]
    holder = ".".join(first.split(".")[-2:])
    return (
        f"the experts are fused in this model (transformers 5): {modules} hold them as the "
        f"parameters {', '.join(parameters)}, not as Linear modules; adapt them with PEFT's "
        f"target_parameters, e.g. --rules peft --target-parameters {holder}.{parameters[0]}"
    )
