"""NeMo Automodel 0.7.0's ``wildcard_match`` and ``ModuleMatcher``, on modmatch's engine.

Answers, warnings and errors are those of ``nemo_automodel.components._peft.module_matcher``
in the 0.7.0 release (reference: :mod:`modmatch.reference.automodel`), without importing it.
Like the original, the matcher is a plain mutable dataclass: lists changed after construction
are compiled again on the next call.
"""

from __future__ import annotations

import copy
import functools
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from .engine.namerule import NameRule
from .engine.patternset import PatternSet
from .engine.plans import SAMPLE, Charge, RentOrBuy, asked_first, build_cost, few_plain, sampled
from .engine.syntax import AUTOMODEL, quietly
from .errors import PatternError
from .reference import automodel as reference

__all__ = ["ModuleMatcher", "wildcard_match"]

logger = logging.getLogger(__name__)

# Where a matcher keeps the plan of each list: attributes beside the dataclass's fields, set in
# __post_init__ so that every instance has them, in the same order. Python then keeps the
# instance's attributes in the class's shared layout; an attribute added at the first call
# would make every read of a field about 15 ns slower, on every call after.
_TARGETS = "_modmatch_targets"
_EXCLUDES = "_modmatch_excludes"
# What a matcher keeps for a list: the list it was built for, a copy of it (to tell a change in
# place), the list's plan, unpacked (see _plan), and how many of its first entries are asked
# before the copy is compared (plans.asked_first). Nothing built yet:
_UNBUILT: tuple[Any, Any, Any, Any, Any, int] = (None, None, None, None, None, 0)


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

    ``answer(name, full_name)`` is whether ``name`` equals a pattern or a pattern matches
    ``full_name``, with Automodel's errors where it fails. The rent is Automodel's loop, each
    regex compiled when the loop first reaches it (Automodel keeps them in an LRU cache), or, for
    a few plain patterns, one regex of them all; :class:`~modmatch.engine.plans.RentOrBuy`
    decides when the list is worth compiling (one whose first patterns match most names may
    never be)."""

    __slots__ = ("_patterns",)

    def __init__(self, patterns: tuple[Any, ...], excludes: bool) -> None:
        self._patterns = patterns
        if few_plain(patterns):
            rent = functools.partial(_one_regex, patterns)
        else:
            rent = functools.partial(_loop, patterns, excludes)
        super().__init__(build_cost(len(patterns)), rent)

    def _buy(self) -> Callable[[str | None, str | None], bool] | None:
        """The list on the engine; None where only Automodel's own loop answers exactly: an
        invalid pattern fails there only when the loop reaches it."""
        try:
            with quietly():  # Automodel runs every pattern on re, and never warns of one
                return NameRule(self._patterns, AUTOMODEL).matches
        except (PatternError, TypeError):
            return None


def _quick_regex(pattern: str) -> str:
    """Automodel's regex for a plain ``pattern``, as an alternative of a union, its groups not
    capturing: a plain pattern holds no parenthesis and no backreference, so every group is one
    Automodel's conversion wrote and none is read (a capturing group costs ``re`` 30 ns a call)."""
    regex = reference.automodel_regex(pattern)
    return "(?:" + regex.replace("(.*)", "(?:.*)").replace(r"(\..*)?", r"(?:\..*)?") + ")"


def _union(patterns: tuple[str, ...]) -> Callable[[str], object]:
    """One ``re`` regex matching a full name where one of the plain ``patterns`` does, as
    Automodel's ``re.match`` of each (a plain pattern always compiles: compiling them all at
    once fails nowhere Automodel's loop would not). No patterns: a regex matching nothing."""
    return re.compile("|".join(_quick_regex(p) for p in patterns) or "(?!)").match


def _one_regex(
    patterns: tuple[str, ...], charge: Charge
) -> Callable[[str | None, str | None], bool]:
    """The rent of a few plain patterns: ``name`` in a set of them, then :func:`_union`. Its
    count of calls is written inline: a rent this quick cannot afford a frame more."""
    names = frozenset(patterns)
    match = _union(patterns)
    clock = time.perf_counter
    every = SAMPLE
    left = every

    def rent(name: str | None, full_name: str | None) -> bool:
        nonlocal left
        left -= 1
        if left:
            return name in names or (full_name is not None and match(full_name) is not None)
        left = every
        start = clock()
        found = name in names or (full_name is not None and match(full_name) is not None)
        charge(clock() - start)
        return found

    return rent


def _loop(
    patterns: tuple[Any, ...], excludes: bool, charge: Charge
) -> Callable[[str | None, str | None], bool]:
    """The rent of any list: Automodel's loop, ``name`` equal to a pattern or a pattern matching
    ``full_name`` (for excludes, ``name`` among the patterns first), each regex compiled when the
    loop first reaches it, so an invalid one fails where Automodel's does."""
    compiled: list[Callable[[str], object] | None] = [None] * len(patterns)

    def ask(name: str | None, full_name: str | None) -> bool:
        if excludes and name in patterns:
            return True
        for index, pattern in enumerate(patterns):
            if name == pattern:
                return True
            if full_name is None:
                continue  # Automodel's wildcard_match: False for no name, before compiling
            match = compiled[index]
            if match is None:
                match = compiled[index] = re.compile(reference.automodel_regex(pattern)).match
            if match(full_name) is not None:
                return True
        return False

    return sampled(ask, charge)


# A list's plan: the patterns as a set and their union, where one ``re`` call answers the list
# for good; else the rule that rents until the engine pays; (None, None, None) for what is not a
# list or tuple, which Automodel's own code reads.
_Plan = tuple["frozenset[str] | None", "Callable[[str], object] | None", "_Rule | None"]


def _plan(patterns: Any, excludes: bool) -> _Plan:
    """The plan for ``patterns``. A list seen before starts where it stopped, as Automodel keeps
    its compiled regexes: a recipe builds a new matcher per model.

    A few plain patterns with one ``*`` at most each are never compiled: their union on ``re``
    runs in time linear in the name (one repeat backtracked over once per pattern): about an
    engine call (1.8 µs) at worst, 0.1 µs on the everyday list, ``*_proj``."""
    if not isinstance(patterns, (list, tuple)):
        return None, None, None
    snapshot = tuple(patterns)
    try:
        return _cached_plan(snapshot, excludes)
    except TypeError:  # an entry that cannot be hashed
        return None, None, _Rule(snapshot, excludes)


@functools.lru_cache(maxsize=16)
def _cached_plan(patterns: tuple[Any, ...], excludes: bool) -> _Plan:
    """The plan for a hashable snapshot of a list, shared by every matcher given that list.

    A pattern listed again is dropped: Automodel's loop answers whether any pattern matches, and
    an invalid one fails where the loop first reaches it, at its first place in the list."""
    patterns = tuple(dict.fromkeys(patterns))
    if few_plain(patterns) and all(p.count("*") <= 1 for p in patterns):
        return frozenset(patterns), _union(patterns), None
    return None, None, _Rule(patterns, excludes)


@functools.lru_cache(maxsize=1000)
def _regex(pattern: str) -> Callable[[str], object]:
    """Automodel's compiled regex for ``pattern``, kept as Automodel keeps it (its errors too:
    a pattern that cannot be hashed, or is not a str, fails here as there)."""
    return re.compile(reference.automodel_regex(pattern)).match


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

    Each list's plan is kept in an attribute beside the dataclass's own fields (so ``fields()``,
    ``asdict()``, equality and ``repr`` are Automodel's), with the list it was built for and a
    copy of it: a list replaced, or changed in place, is planned again on the next call. Copies
    and pickles leave the plans behind.
    """

    _logger: ClassVar[logging.Logger] = logger

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, _TARGETS, _UNBUILT)
        object.__setattr__(self, _EXCLUDES, _UNBUILT)

    def match(self, m: Any, name: str | None = None, prefix: str | None = None) -> bool:
        """Whether the module gets an adapter; Automodel passes the full name and no prefix."""
        full_name = f"{prefix}.{name}" if prefix else name
        # A str name makes a str full name, and None makes None or a str: one check covers both.
        if name is not None and type(name) is not str:
            return super().match(m, name, prefix)  # re's own error for a name that is not a str
        if self.match_all_linear and isinstance(m, _linear_types()):
            return True
        # Written out for each list, not in a method: on a one-pattern list Automodel's whole
        # call is 0.3 µs, and a frame more costs a sixth of it.
        target_modules = self.target_modules
        if target_modules:
            assert not self.exclude_modules, (
                "`exclude_modules` must be empty when `target_modules` is used."
            )
            try:
                seen, kept, names, quick, rule, first = self._modmatch_targets
            except AttributeError:  # made without __init__
                seen, kept, names, quick, rule, first = _UNBUILT
            if target_modules is not seen:
                names, quick, rule = self._planned(_TARGETS, target_modules, False)
            else:
                if first:
                    for pattern in target_modules[:first]:  # Automodel's loop, its first steps
                        if name == pattern or (
                            full_name is not None and _regex(pattern)(full_name) is not None
                        ):
                            return True
                if target_modules != kept:
                    names, quick, rule = self._planned(_TARGETS, target_modules, False)
            if quick is not None:
                return name in names or (full_name is not None and quick(full_name) is not None)
            if rule is None:
                return super().match(m, name, prefix)
            return rule.answer(name, full_name)  # type: ignore[no-any-return]
        exclude_modules = self.exclude_modules
        try:
            seen, kept, names, quick, rule, _ = self._modmatch_excludes
        except AttributeError:
            seen, kept, names, quick, rule, _ = _UNBUILT
        if exclude_modules is not seen or exclude_modules != kept:
            names, quick, rule = self._planned(_EXCLUDES, exclude_modules, True)
        if quick is not None:
            found = name in names or (full_name is not None and quick(full_name) is not None)
        elif rule is None:
            return super().match(m, name, prefix)
        else:
            found = rule.answer(name, full_name)
        return not found and isinstance(m, _linear_types())

    def _planned(self, key: str, patterns: Any, excludes: bool) -> _Plan:
        """The plan for ``patterns``, the list a field holds now, kept under ``key`` with a copy
        of the list (planned first: a list that fails to plan leaves the previous one)."""
        plan = _plan(patterns, excludes)
        first = asked_first(len(patterns)) if type(patterns) is list else 0
        object.__setattr__(self, key, (patterns, copy.copy(patterns), *plan, first))
        return plan

    def __getstate__(self) -> dict[str, Any]:
        """The fields, without the plans: a copy or an unpickled matcher plans on first use."""
        return {**self.__dict__, _TARGETS: _UNBUILT, _EXCLUDES: _UNBUILT}

    _modmatch_targets: ClassVar[tuple[Any, Any, Any, Any, Any, int]]
    _modmatch_excludes: ClassVar[tuple[Any, Any, Any, Any, Any, int]]
