"""NeMo Automodel 0.7.0's ``wildcard_match`` and ``ModuleMatcher``, on modmatch's engine.

Answers, warnings and errors are those of ``nemo_automodel.components._peft.module_matcher``
in the 0.7.0 release (reference: :mod:`modmatch.reference.automodel`), without importing it.
Like the original, the matcher is a plain mutable dataclass: lists changed after construction
are compiled again on the next call.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from .engine.namerule import NameRule
from .engine.patternset import PatternSet
from .engine.plans import SAMPLE, RentOrBuy, build_cost
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


class _Rule(RentOrBuy[bool]):
    """One target or exclude list: Automodel's own loop until the engine has earned its build.

    The loop is Automodel's, each regex compiled when the loop first reaches it (Automodel keeps
    them in an LRU cache); :class:`~modmatch.engine.plans.RentOrBuy` decides when the list is
    worth compiling (a list of one or two patterns, or one whose first patterns match most
    names, may never be)."""

    __slots__ = ("_compiled", "_excludes", "_patterns")

    def __init__(self, patterns: tuple[Any, ...], excludes: bool) -> None:
        super().__init__(build_cost(len(patterns)))
        self._patterns = patterns
        self._excludes = excludes
        self._compiled: list[Callable[[str], object] | None] = [None] * len(patterns)

    def _renting(self, name: str | None, full_name: str | None) -> bool:
        """Automodel's loop: ``name`` equal to a pattern, or a pattern matching ``full_name``
        (for excludes, ``name`` among the patterns first). Its errors where it fails."""
        calls = self.calls = self.calls + 1
        start = 0.0 if calls % SAMPLE else time.perf_counter()
        found = self._excludes and name in self._patterns
        if not found:
            compiled = self._compiled
            for index, pattern in enumerate(self._patterns):
                if name == pattern:
                    found = True
                    break
                if full_name is None:
                    continue  # Automodel's wildcard_match: False for no name, before compiling
                match = compiled[index]
                if match is None:
                    match = compiled[index] = re.compile(reference.automodel_regex(pattern)).match
                if match(full_name) is not None:
                    found = True
                    break
        if start:
            self._charge(time.perf_counter() - start)
        return found

    def _buy(self) -> Callable[[str | None, str | None], bool] | None:
        """The list on the engine; None where only Automodel's own loop answers exactly: an
        invalid pattern fails there only when the loop reaches it."""
        try:
            with quietly():  # Automodel runs every pattern on re, and never warns of one
                return NameRule(self._patterns, AUTOMODEL).matches
        except (PatternError, TypeError):
            return None


def _compile(patterns: Any, excludes: bool) -> _Rule | None:
    """The rule for a list or tuple; None for anything else, which Automodel's own code reads.

    A list seen before starts where it stopped, as Automodel keeps its compiled regexes: a
    recipe builds a new matcher per model."""
    if not isinstance(patterns, (list, tuple)):
        return None
    snapshot = tuple(patterns)
    try:
        return _cached_rule(snapshot, excludes)
    except TypeError:  # an entry that cannot be hashed
        return _Rule(snapshot, excludes)


@functools.lru_cache(maxsize=16)
def _cached_rule(patterns: tuple[Any, ...], excludes: bool) -> _Rule:
    return _Rule(patterns, excludes)


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
        if not (full_name is None or type(full_name) is str) or not (
            name is None or type(name) is str
        ):
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
            if rule is None:
                return super().match(m, name, prefix)
            return rule.answer(name, full_name)
        rule = excludes.get(self.exclude_modules)
        if rule is None:
            return super().match(m, name, prefix)
        return not rule.answer(name, full_name) and isinstance(m, _linear_types())

    def _new_rules(self) -> tuple[Recompiling[_Rule | None], Recompiling[_Rule | None]]:
        """The target and exclude lists, compiled on first use and kept beside the dataclass's
        own fields (so ``fields()``, ``asdict()``, equality and ``repr`` are Automodel's)."""
        targets = Recompiling(functools.partial(_compile, excludes=False))
        excludes = Recompiling(functools.partial(_compile, excludes=True))
        rules = self.__dict__["_modmatch_rules"] = (targets, excludes)
        return rules

    _modmatch_rules: ClassVar[tuple[Recompiling[_Rule | None], Recompiling[_Rule | None]]]
