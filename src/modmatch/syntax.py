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

from .errors import FallbackWarning
from .reference.automodel import automodel_regex
from .reference.peft import modules_to_save_regex
from .reference.seed import seed_regex

__all__ = ["AUTOMODEL", "MODULES_TO_SAVE", "REGEX", "SEED", "Syntax", "quietly"]


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
