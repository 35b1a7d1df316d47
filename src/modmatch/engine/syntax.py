"""How each rule set reads one pattern: the Python regex its framework runs, and how it runs it.

The engine speaks Python regex only; a :class:`Syntax` turns a framework's pattern into exactly
the regex that framework would compile, so :class:`~modmatch.PatternSet` can translate and
compile it like any other.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..errors import FallbackWarning
from ..reference.automodel import automodel_regex
from ..reference.peft import modules_to_save_regex
from ..reference.seed import seed_regex

__all__ = ["AUTOMODEL", "MODULES_TO_SAVE", "REGEX", "SEED", "Syntax", "quietly"]


def _shared(first: str, second: str) -> int:
    """How many leading characters the two strings share."""
    pairs = zip(first, second, strict=False)
    return next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(first), len(second)))


def _as_is(pattern: str) -> str:
    return pattern


@dataclass(frozen=True)
class Syntax:
    """A pattern language: ``regex(pattern)`` run with ``re.match``, or ``re.fullmatch``."""

    name: str
    regex: Callable[[str], str]
    fullmatch: bool = False
    # The pattern is the seed's wildcard syntax, whose plain patterns (words, dots and stars)
    # take the translation shortcut and the one-pass batch filter.
    seed_plain: bool = False

    def position(self, pattern: str, pos: int) -> int:
        """Where in ``pattern`` the character at ``pos`` of its regex comes from.

        Each syntax writes a fixed head and tail (``^`` and ``$``, say) around a body that
        grows with the pattern, one character at a time: the answer is the longest prefix of
        the pattern whose body ends at or before ``pos``.
        """
        empty, one = self.regex(""), self.regex("a")
        head, tail = _shared(empty, one), _shared(empty[::-1], one[::-1])
        at = 0
        while at < len(pattern) and len(self.regex(pattern[: at + 1])) - head - tail <= pos - head:
            at += 1
        return at

    def __repr__(self) -> str:
        return self.name


SEED = Syntax("SEED", seed_regex, seed_plain=True)
AUTOMODEL = Syntax("AUTOMODEL", automodel_regex)
REGEX = Syntax("REGEX", _as_is, fullmatch=True)  # PEFT's str targets and excludes
MODULES_TO_SAVE = Syntax("MODULES_TO_SAVE", modules_to_save_regex)


@contextlib.contextmanager
def quietly() -> Iterator[None]:
    """No FallbackWarning: a framework runs every pattern on ``re`` and never warns of one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FallbackWarning)
        yield
