"""Fold module names into a few lines, numeric segments collapsed into ranges, exactly.

``model.layers.{3..60}.mlp.experts.{0..255}.gate_proj`` stands for the product of its ranges;
folding splits names into such products so that unfolding gives back exactly the input set.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Folded", "fold", "parse", "to_regex", "unfold"]

# A canonical decimal: "017" is left as text, so that unfolding gives back "017".
_NUMBER = re.compile(r"0|[1-9][0-9]*")
# Braces and backslashes in names are escaped, so that a folded line reads back unambiguously.
_ESCAPE = str.maketrans({"\\": "\\\\", "{": "\\{", "}": "\\}"})
_SEGMENT = re.compile(
    r"(?:\{(?P<ranges>[0-9.,]+)\}|(?P<text>(?:\\[\\{}]|[^.\\{}])*))(?P<dot>\.|\Z)", re.DOTALL
)

Segment = str | tuple[int, ...]


@dataclass(frozen=True)
class Folded:
    """Names that share their text segments; each numeric segment takes any of its values."""

    segments: tuple[Segment, ...]

    @property
    def count(self) -> int:
        """How many names the line stands for."""
        total = 1
        for segment in self.segments:
            if isinstance(segment, tuple):
                total *= len(segment)
        return total

    def __str__(self) -> str:
        return ".".join(
            _ranges(segment) if isinstance(segment, tuple) else segment.translate(_ESCAPE)
            for segment in self.segments
        )


def fold(names: Iterable[str]) -> list[Folded]:
    """Folded lines covering exactly ``names`` (duplicates once), in order of first appearance."""
    shapes: dict[tuple[str | None, ...], list[tuple[int, ...]]] = {}
    seen = set()
    # Each distinct segment read once: its value if it is a number, else None. A model's
    # names repeat a few hundred segments over and over.
    number: dict[str, int | None] = {}
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        for part in parts:
            if part not in number:
                number[part] = int(part) if _NUMBER.fullmatch(part) else None
        read = [number[part] for part in parts]
        shape = tuple(
            [part if value is None else None for part, value in zip(parts, read, strict=True)]
        )
        shapes.setdefault(shape, []).append(tuple([v for v in read if v is not None]))
    lines = []
    for shape, rows in shapes.items():
        for values in _products(rows):
            slots = iter(values)
            lines.append(Folded(tuple(next(slots) if s is None else s for s in shape)))
    return lines


def _products(rows: list[tuple[int, ...]]) -> list[tuple[tuple[int, ...], ...]]:
    """Split a set of equal-length tuples into products of value sets, exactly covering it."""
    if not rows[0]:
        return [()]
    # Group by everything but the last slot; prefixes sharing the same last values fold
    # together, then the prefixes fold recursively.
    last: dict[tuple[int, ...], list[int]] = {}
    for row in rows:
        last.setdefault(row[:-1], []).append(row[-1])
    by_values: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
    for prefix, values in last.items():
        by_values.setdefault(tuple(sorted(set(values))), []).append(prefix)
    return [
        (*head, values) for values, prefixes in by_values.items() for head in _products(prefixes)
    ]


def _ranges(values: tuple[int, ...]) -> str:
    if len(values) == 1:
        return str(values[0])
    runs: list[list[int]] = []
    for value in values:
        if runs and runs[-1][-1] == value - 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{run[0]}..{run[-1]}")
        else:
            parts.extend(map(str, run))
    return "{" + ",".join(parts) + "}"


def parse(line: str) -> Folded:
    """The folded line that ``str(folded)`` wrote; ValueError for anything else."""
    segments: list[Segment] = []
    position = 0
    while True:
        found = _SEGMENT.match(line, position)
        if found is None:
            raise ValueError(f"not a folded line: {line!r}")
        if found["ranges"] is not None:
            segments.append(_parse_ranges(found["ranges"]))
        elif _NUMBER.fullmatch(found["text"]):
            segments.append((int(found["text"]),))
        else:
            segments.append(re.sub(r"\\(.)", r"\1", found["text"], flags=re.DOTALL))
        if not found["dot"]:
            return Folded(tuple(segments))
        position = found.end()


def _parse_ranges(text: str) -> tuple[int, ...]:
    values: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("..")
        values.extend(range(int(low), int(high or low) + 1))
    return tuple(values)


def unfold(lines: Iterable[Folded]) -> list[str]:
    """Every name the folded lines stand for."""
    names = []
    for line in lines:
        partial = [""]
        for index, segment in enumerate(line.segments):
            options = [str(v) for v in segment] if isinstance(segment, tuple) else [segment]
            joiner = "." if index else ""
            partial = [f"{head}{joiner}{option}" for head in partial for option in options]
        names.extend(partial)
    return names


def to_regex(lines: Iterable[Folded]) -> str:
    """A Python regex whose full matches are exactly the names the lines stand for.

    Numbers become digit ranges (``{3..60}`` is ``(?:[3-9]|[1-5][0-9]|60)``), text is escaped,
    and lines sharing leading segments write them once. Without ``.*`` or nested repeats,
    Python's ``re`` answers in time linear in the name.
    """
    trie: dict[str | None, Any] = {}
    for line in lines:
        node = trie
        for segment in line.segments:
            token = _numbers(segment) if isinstance(segment, tuple) else re.escape(segment)
            node = node.setdefault(token, {})
        node[None] = {}
    if not trie:
        raise ValueError("no names to match")
    return _branches(trie, first=True)


def _branches(node: dict[str | None, Any], first: bool = False) -> str:
    dot = "" if first else r"\."
    branches = [
        "" if token is None else dot + token + _branches(child) for token, child in node.items()
    ]
    return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"


def _numbers(values: tuple[int, ...]) -> str:
    """A regex matching exactly the canonical decimals of ``values``."""
    pieces: list[str] = []
    runs: list[list[int]] = []
    for value in values:
        if runs and runs[-1][1] == value - 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    for low, high in runs:
        while low <= high:  # split where the number of digits changes
            top = min(high, 10 ** len(str(low)) - 1)
            pieces += _same_length(str(low), str(top))
            low = top + 1
    return pieces[0] if len(pieces) == 1 else "(?:" + "|".join(pieces) + ")"


def _same_length(low: str, high: str) -> list[str]:
    """Regexes for the decimals from ``low`` to ``high``, both of the same length."""
    if low == high:
        return [low]
    if low[0] == high[0]:
        return [low[0] + piece for piece in _same_length(low[1:], high[1:])]
    # low up to its first digit's end, whole first digits in between, then up to high.
    rest = len(low) - 1
    head, start = (
        ([], int(low[0]))
        if low[1:] == "0" * rest
        else (
            _same_length(low, low[0] + "9" * rest),
            int(low[0]) + 1,
        )
    )
    tail, end = (
        ([], int(high[0]))
        if high[1:] == "9" * rest
        else (
            _same_length(high[0] + "0" * rest, high),
            int(high[0]) - 1,
        )
    )
    middle = [_digit(str(start), str(end)) + "[0-9]" * rest] if start <= end else []
    return head + middle + tail


def _digit(low: str, high: str) -> str:
    return low if low == high else f"[{low}-{high}]"
