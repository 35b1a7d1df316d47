"""How the command writes a count and a list of module names, in every section of its output."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

from ..fold import fold

__all__ = ["counted", "write_folded"]


def counted(number: int, noun: str) -> str:
    """``1 module``, ``1,024 modules``."""
    return f"{number:,} {noun}" + ("" if number == 1 else "s")


def write_folded(out: TextIO, names: Iterable[str]) -> None:
    """The names folded into lines, each with how many names it stands for."""
    for line in fold(names):
        print(f"  {line}" + (f"  x{line.count:,}" if line.count > 1 else ""), file=out)
