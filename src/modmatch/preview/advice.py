"""Advice for the command: patterns to try instead of one that selects nothing, and patterns
that select far more than they read as.

A suggestion is itself a pattern under the active rules, checked against the model before it
is offered: it selects something, only Linear modules where module types are known, and keeps
the numbers the user typed (a layer index is intent; starring it would select every layer).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from itertools import chain

__all__ = ["Advice", "fused_experts_note", "literal_reading", "suggestions", "why_broader"]

# What one candidate pattern selects among the model's names, under the active rules.
Selects = Callable[[str], Callable[[str], bool]]

_LITERAL_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MOST = 3


class Advice:
    """The model's names as the rules ask about them, which are Linear, and its vocabulary."""

    def __init__(self, names: list[str], linear: set[str] | None, selects: Selects) -> None:
        self.names = names
        self.linear = linear  # None where module types are not known
        self.selects = selects
        self.segments = sorted({part for name in names for part in name.split(".")})
        self.last_segments = sorted({name.rpartition(".")[2] for name in names})

    def selected(self, pattern: str) -> list[str]:
        match = self.selects(pattern)
        return [name for name in self.names if match(name)]


def suggestions(pattern: str, advice: Advice, *, full_name: bool, dot_is_any: bool) -> list[str]:
    """Up to three patterns close to ``pattern`` that select something, Linear modules only
    where types are known. ``full_name``: the rules compare a bare name with the whole name;
    ``dot_is_any``: a ``.`` in a pattern is any character (the seed's syntax)."""
    if "|" in pattern:  # meant as "or" between whole patterns: each side on its own
        sides = [
            # A side that works as it is, or narrowed to Linear modules, is its own suggestion.
            [usable[0]]
            if (usable := _linear_only(side, advice))
            else suggestions(side, advice, full_name=full_name, dot_is_any=dot_is_any)
            for side in pattern.split("|")
        ]
        return list(dict.fromkeys(found for side in sides for found in side))[:_MOST]
    # One suggestion per selection, the model's own names for the pattern's role first.
    found = {
        frozenset(names): usable
        for usable, names in _by_role(pattern, advice, full_name, dot_is_any)
    }
    near: dict[frozenset[str], str] = {}
    for tier in _candidates(pattern, advice, full_name):
        for candidate in tier:
            usable = _usable(candidate, advice, dot_is_any)
            if usable is not None and usable[0] != pattern:
                near.setdefault(frozenset(usable[1]), usable[0])
        if near:
            break  # a bigger edit would stray further from what was meant
    for selection, candidate in near.items():
        found.setdefault(selection, candidate)
    return list(found.values())[:_MOST]


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
                for tier in _candidates(form, advice, full_name)
                for edit in tier
            )
            for candidate in chain(forms, edits):
                usable = _usable(candidate, advice, dot_is_any)
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


def _candidates(pattern: str, advice: Advice, full_name: bool) -> Iterator[list[str]]:
    """Edits of the pattern in tiers, the smallest first; numbers are never changed."""
    parts = pattern.split(".")
    fixed = [_closest(part, advice.segments) for part in parts]
    spelled = ".".join(fixed)
    # Misspelt segments, and a whole-name pattern reached from any prefix.
    yield [spelled] + ([] if pattern.startswith("*") else ["*." + spelled])
    # One segment too many, never the last (what the pattern is after); what is left must
    # still name something.
    shorter = [fixed[:i] + fixed[i + 1 :] for i in range(len(fixed) - 1)]
    yield [
        ".".join(rest)
        for i, rest in enumerate(shorter)
        if _LITERAL_SEGMENT.fullmatch(fixed[i]) and any(map(_LITERAL_SEGMENT.fullmatch, rest))
    ]
    if "." not in pattern:
        close = difflib.get_close_matches(pattern, advice.last_segments, _MOST, 0.6)
        yield [("*." + segment) if full_name else segment for segment in close]


def _closest(part: str, vocabulary: list[str]) -> str:
    """A word segment not in the model: its closest segment that is; anything else as is."""
    if not _LITERAL_SEGMENT.fullmatch(part) or part in vocabulary:
        return part
    close = difflib.get_close_matches(part, vocabulary, 1, 0.6)
    return close[0] if close else part


def _usable(candidate: str, advice: Advice, dot_is_any: bool) -> tuple[str, list[str]] | None:
    """:func:`_linear_only` of the candidate, its numbers' dots literal where a dot is any
    character (`layers.1.*` would take in layers 10 to 19), if it selects as it reads."""
    if dot_is_any:
        candidate = re.sub(r"(?<=\.)([0-9]+)\.(?=\*)", r"\1\\.", candidate)
    usable = _linear_only(candidate, advice)
    return usable if usable and _as_written(*usable) else None


def _as_written(candidate: str, selected: list[str]) -> bool:
    """Whether the candidate's word segments are segments of each name it selects (where '.'
    is any character, `*.attn.dense` selects `self_attn.dense`)."""
    words = {part for part in candidate.split(".") if _LITERAL_SEGMENT.fullmatch(part)}
    return all(words <= set(name.split(".")) for name in selected)


def _linear_only(candidate: str, advice: Advice) -> tuple[str, list[str]] | None:
    """The candidate, or a narrower form of it, with what it selects, if that is Linear
    modules only; None if it selects nothing (or nothing Linear)."""
    selected = advice.selected(candidate)
    if not selected:
        return None
    linear = advice.linear
    if linear is None or all(name in linear for name in selected):
        return candidate, selected
    if not candidate.endswith("*"):
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
