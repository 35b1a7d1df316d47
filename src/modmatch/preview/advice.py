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
    found: dict[frozenset[str], str] = {}  # one suggestion per selection
    for tier in _candidates(pattern, advice, full_name):
        for candidate in tier:
            if dot_is_any:
                # `layers.1.*` would take in layers 10 to 19: the dot after a number is literal.
                candidate = re.sub(r"(?<=\.)([0-9]+)\.(?=\*)", r"\1\\.", candidate)
            usable = _linear_only(candidate, advice)
            if usable is not None and usable[0] != pattern:
                found.setdefault(frozenset(usable[1]), usable[0])
        if found:
            break  # a bigger edit would stray further from what was meant
    return list(found.values())[:_MOST]


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
