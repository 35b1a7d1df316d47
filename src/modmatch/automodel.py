"""NeMo Automodel 0.7.0's ``wildcard_match`` and ``ModuleMatcher``, on modmatch's engine.

Answers, warnings and errors are those of ``nemo_automodel.components._peft.module_matcher``
in the 0.7.0 release (reference: :mod:`modmatch.reference.automodel`), without importing it.
Like the original, the matcher is a plain mutable dataclass: lists changed after construction
are compiled again on the next call.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .engine.namerule import NameRule
from .engine.patternset import PatternSet
from .engine.recompiling import Recompiling
from .engine.syntax import AUTOMODEL, quietly
from .errors import PatternError
from .reference import automodel as reference

__all__ = ["ModuleMatcher", "wildcard_match"]

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def _linear_types() -> tuple[type, ...]:
    """nn.Linear, and Transformer Engine's Linear where it imports, as Automodel checks."""
    from torch import nn

    try:
        import transformer_engine.pytorch as te
    except (ImportError, OSError):  # OSError: a TE build that does not load (CUDA mismatch)
        return (nn.Linear,)
    return (nn.Linear, te.Linear)


def _compile(patterns: Sequence[str]) -> NameRule | None:
    """The patterns on the engine; None where only Automodel's own loop answers exactly: an
    invalid pattern fails there only when the loop reaches it, and a str is read by character.

    A list compiled before is not compiled again, as Automodel keeps its compiled regexes: a
    recipe builds a new matcher per model, and for a list of one or two patterns compiling
    costs as much as a small model's walk."""
    if isinstance(patterns, list):
        try:
            return _compiled_list(tuple(patterns))
        except TypeError:  # an entry that cannot be hashed: compiled below, or refused
            pass
    return _new_rule(patterns)


@functools.lru_cache(maxsize=16)
def _compiled_list(patterns: tuple[str, ...]) -> NameRule | None:
    return _new_rule(patterns)


def _new_rule(patterns: Sequence[str]) -> NameRule | None:
    try:
        with quietly():  # Automodel runs every pattern on re, and never warns of one
            return NameRule(patterns, AUTOMODEL)
    except (PatternError, TypeError):
        return None


@functools.lru_cache(maxsize=1000)
def _compiled(pattern: str) -> PatternSet:
    with quietly():
        return PatternSet([pattern], cache_size=0, syntax=AUTOMODEL)


def wildcard_match(pattern: str, key: str | None) -> bool:
    """Whether ``pattern`` matches ``key`` as Automodel 0.7.0 reads it; False for a None key."""
    if key is None:
        return False
    try:
        return _compiled(pattern).match(key)
    except (PatternError, TypeError):
        return reference.wildcard_match(pattern, key)  # Automodel's own error, and message


@dataclass
class ModuleMatcher(reference.ModuleMatcher):
    """Automodel 0.7.0's matcher: targets (default ``*_proj``), or excludes, or every Linear.

    ``match`` returns True or False. Combining targets with excludes, or ``match_all_linear``
    with either, is a ValueError at construction; ``is_causal_lm`` is accepted and unused. The
    fields, checks and warnings are the reference's, which restates Automodel's line for line.
    """

    _logger: ClassVar[logging.Logger] = logger

    def match(self, m: Any, name: str | None = None, prefix: str | None = None) -> bool:
        """Whether the module gets an adapter; Automodel passes the full name and no prefix."""
        full_name = f"{prefix}.{name}" if prefix else name
        if not (full_name is None or type(full_name) is str):
            return super().match(m, name, prefix)  # re's own error for a name that is not a str
        if self.match_all_linear and isinstance(m, _linear_types()):
            return True
        try:
            targets, excludes = self._modmatch_rules
        except AttributeError:
            targets, excludes = self._new_rules()
        target_modules = self.target_modules
        if target_modules:
            assert not self.exclude_modules, (
                "`exclude_modules` must be empty when `target_modules` is used."
            )
            rule = targets.get(target_modules)
            return super().match(m, name, prefix) if rule is None else rule.matches(name, full_name)
        rule = excludes.get(self.exclude_modules)
        if rule is None:
            return super().match(m, name, prefix)
        return not rule.matches(name, full_name) and isinstance(m, _linear_types())

    def _new_rules(self) -> tuple[Recompiling[NameRule | None], Recompiling[NameRule | None]]:
        """The target and exclude lists, compiled on first use and kept beside the dataclass's
        own fields (so ``fields()``, ``asdict()``, equality and ``repr`` are Automodel's)."""
        rules = self.__dict__["_modmatch_rules"] = (Recompiling(_compile), Recompiling(_compile))
        return rules

    _modmatch_rules: ClassVar[tuple[Recompiling[NameRule | None], Recompiling[NameRule | None]]]
