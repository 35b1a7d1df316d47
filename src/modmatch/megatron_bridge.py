"""A drop-in for Megatron-Bridge's ``ModuleMatcher`` and ``wildcard_match``, on modmatch's engine.

Answers, errors, warnings and bookkeeping are Megatron-Bridge's; the patterns are compiled once per
list (and again whenever the list changes). The linear classes the no-targets mode accepts are the
module-level names ``ColumnParallelLinear``, ``RowParallelLinear``, ``TEColumnParallelLinear``,
``TELayerNormColumnParallelLinear``, ``TERowParallelLinear`` and the ``HAVE_TE_*`` flags: imported
from megatron on first use when it is installed, inert otherwise, and read at match time, so a
test may replace them. Neither torch nor megatron is imported by ``import``.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .engine.batch import seed_keys, selected_by, split, walked
from .engine.patternset import PatternSet
from .engine.plans import Renting, asked_first, build_cost, buy_at_once, few_plain
from .engine.syntax import quietly
from .errors import PatternError
from .matcher import wildcard_match as _engine_wildcard_match
from .reference import megatron_bridge as reference
from .reference.seed import seed_regex
from .reference.seed import wildcard_match as _re_wildcard_match

__all__ = ["ModuleMatcher", "wildcard_match"]

logger = logging.getLogger(__name__)


def wildcard_match(pattern: str, key: str | None) -> bool | None:
    """Megatron-Bridge's ``wildcard_match``: ``*`` is ``(.*)`` in an anchored regex; None for no key."""
    if key is None:
        return None
    if type(pattern) is str and type(key) is str:
        try:
            return _engine_wildcard_match(pattern, key)
        except PatternError:
            pass  # plain re below raises the very re.error Megatron-Bridge raises
    return _re_wildcard_match(pattern, key)


# --- The linear classes, resolved lazily into this module's namespace -------------------------

_TP = "megatron.core.tensor_parallel"
_TE = "megatron.core.extensions.transformer_engine"
# Each lazy name: the module and class it comes from; a HAVE_* flag says whether that import worked.
_SOURCES: dict[str, tuple[str, str]] = {
    "ColumnParallelLinear": (_TP, "ColumnParallelLinear"),
    "RowParallelLinear": (_TP, "RowParallelLinear"),
    "TEColumnParallelLinear": (_TE, "TEColumnParallelLinear"),
    "HAVE_TE_COL_LINEAR": (_TE, "TEColumnParallelLinear"),
    "TELayerNormColumnParallelLinear": (_TE, "TELayerNormColumnParallelLinear"),
    "HAVE_TE_LN_COL_LINEAR": (_TE, "TELayerNormColumnParallelLinear"),
    "TERowParallelLinear": (_TE, "TERowParallelLinear"),
    "HAVE_TE_ROW_LINEAR": (_TE, "TERowParallelLinear"),
}
_HAVE_TE_FLAGS = ("HAVE_TE_COL_LINEAR", "HAVE_TE_LN_COL_LINEAR", "HAVE_TE_ROW_LINEAR")
_imported: dict[tuple[str, str], tuple[Any, bool]] = {}
_nn_linear: type | None = None


class _Unavailable:
    """Stands in for a linear class that is not installed: nothing is an instance of it."""


def _import(module: str, symbol: str) -> tuple[Any, bool]:
    """``(class, True)``, or the inert placeholder and False; each import is tried once."""
    found = _imported.get((module, symbol))
    if found is None:
        try:
            found = (getattr(importlib.import_module(module), symbol), True)
        except (ImportError, AttributeError):
            found = (_Unavailable, False)
        _imported[module, symbol] = found
    return found


def _lazy(name: str) -> Any:
    """This module's ``name``: what is set there (a monkeypatch, say) wins over the import."""
    namespace = globals()
    if name in namespace:
        return namespace[name]
    if name == "HAVE_TE":
        value: Any = all(_lazy(flag) for flag in _HAVE_TE_FLAGS)
    else:
        module, symbol = _SOURCES[name]
        value = _import(module, symbol)[1 if name.startswith("HAVE_") else 0]
    namespace[name] = value
    return value


def __getattr__(name: str) -> Any:
    if name in _SOURCES or name == "HAVE_TE":
        return _lazy(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _linear_types() -> tuple[type, ...]:
    """The classes the no-targets mode accepts, read now, in Megatron-Bridge's order."""
    global _nn_linear
    if _nn_linear is None:
        from torch import nn

        _nn_linear = nn.Linear
    types = [_lazy("ColumnParallelLinear"), _lazy("RowParallelLinear"), _nn_linear]
    if _lazy("HAVE_TE_COL_LINEAR"):
        types.append(_lazy("TEColumnParallelLinear"))
    if _lazy("HAVE_TE_LN_COL_LINEAR"):
        types.append(_lazy("TELayerNormColumnParallelLinear"))
    if _lazy("HAVE_TE_ROW_LINEAR"):
        types.append(_lazy("TERowParallelLinear"))
    return tuple(types)


# --- Compiled pattern lists ---------------------------------------------------------------------


class _Compiled:
    """One pattern list, for Megatron-Bridge's first-match loop, on the cheaper of two plans.

    A few plain patterns are one ``re`` regex, each pattern an alternative of its own in list
    order: about as quick as upstream's loop on one pattern, and linear in the name where each
    holds one ``*`` at most (kept for good). Any other list rents upstream's own loop (or that
    regex) until the time it took has paid for compiling the list, then the compiled set answers
    (:mod:`modmatch.engine.plans`); a short list of plain patterns is compiled at once."""

    __slots__ = ("_by_name", "_regexes", "_set", "any", "exact", "first", "patterns", "source")
    # Index of the first pattern equal to a short name or matching a full name; and whether
    # some pattern matches a full name (never None).
    first: Callable[[str | None, str | None], int | None]
    any: Callable[[str | None], bool]

    def __init__(self, source: Any, patterns: tuple[Any, ...]) -> None:
        self.source = source  # the copy later calls compare the live value with
        self.patterns = patterns
        self._set: PatternSet | None = None
        self._regexes: dict[str, Callable[[str], re.Match[str] | None]] = {}  # for the loop
        # Only str patterns go to RE2; anything else takes upstream's own loop, which raises
        # what upstream raises, where upstream raises it.
        self.exact = all(type(pattern) is str for pattern in patterns)
        self._by_name: dict[str, int] = {}
        if self.exact:
            for index, pattern in enumerate(patterns):
                self._by_name.setdefault(pattern, index)
        if self.exact and self._by_name and few_plain(self._by_name):
            first, any_ = self._union_plan()
            if all(pattern.count("*") <= 1 for pattern in self._by_name):
                self.first, self.any = first, any_  # linear in the name: for good
            else:
                self._rent(first, any_)  # several `*` a pattern: re may backtrack
        elif buy_at_once(patterns) and self.compiled() is not None:
            self.first, self.any = self._first_by(self._set_hit), self._set_any
        else:
            self._rent(self._loop_first, self._loop_any)

    def _rent(self, first: Callable[..., int | None], any_: Callable[[str | None], bool]) -> None:
        """Answer with ``first`` and ``any_`` until compiling the list pays."""
        price = build_cost(len(self.patterns))
        renting_first = Renting(first, self._bought_first, price)
        renting_any = Renting(any_, self._bought_any, price)
        self.first = lambda name, full_name: renting_first.answer(name, full_name)
        self.any = lambda full_name: renting_any.answer(full_name)

    def _union_plan(self) -> tuple[Callable[..., int | None], Callable[[str | None], bool]]:
        """``first`` and ``any`` on the patterns' :func:`_union`."""
        match, groups = _union(self._by_name)

        def hit(full_name: str) -> int | None:
            found = match(full_name)
            return None if found is None else groups[found.lastindex]  # type: ignore[index]

        def any_(full_name: str | None) -> bool:
            return full_name is not None and match(full_name) is not None

        return self._first_by(hit), any_

    def _bought_first(self) -> Callable[..., int | None] | None:
        """What compiling buys: ``first`` on the compiled set, or None where a pattern only
        upstream's loop runs as upstream does (an invalid one raises there, when reached)."""
        return self._first_by(self._set_hit) if self.compiled() is not None else None

    def _bought_any(self) -> Callable[[str | None], bool] | None:
        return self._set_any if self.compiled() is not None else None

    def _loop_first(self, name: str | None, full_name: str | None) -> int | None:
        """Upstream's loop, each pattern on ``re`` in turn, compiled when the loop first reaches
        it (upstream looks it up in ``re``'s cache on every call), so an invalid one fails
        where upstream's does."""
        regexes = self._regexes
        for index, pattern in enumerate(self.patterns):
            if name == pattern:
                return index
            if full_name is None:
                continue  # upstream's wildcard_match: None for no name, before compiling
            match = regexes.get(pattern)
            if match is None:
                match = regexes[pattern] = re.compile(seed_regex(pattern)).match
            if match(full_name) is not None:
                return index
        return None

    def _loop_any(self, full_name: str | None) -> bool:
        return full_name is not None and self._loop_first(None, full_name) is not None

    def compiled(self) -> PatternSet | None:
        """The list compiled into one set (once); None where it cannot be."""
        if self._set is None and self.exact and self.patterns:
            try:
                with quietly():
                    self._set = PatternSet(self.patterns)
            except PatternError:
                self.exact = False
        return self._set

    def _first_by(self, hit: Callable[[str], int | None]) -> Callable[..., int | None]:
        """The first-match answer, given ``hit``: the first pattern matching a full name."""
        by_name = self._by_name

        def first(name: str | None, full_name: str | None) -> int | None:
            found = by_name.get(name)  # type: ignore[arg-type]
            if found == 0 or full_name is None:
                return found
            index = hit(full_name)
            return found if index is None or (found is not None and found < index) else index

        return first

    def _set_hit(self, full_name: str) -> int | None:
        compiled = self._set
        assert compiled is not None  # bought
        return compiled.matches(full_name)[0] if compiled.match(full_name) else None

    def _set_any(self, full_name: str | None) -> bool:
        compiled = self._set
        assert compiled is not None  # bought
        return full_name is not None and compiled.match(full_name)

    def candidates(self, full_names: Sequence[str], text: bytes) -> list[int]:
        """The indices of the names some pattern equals (by last segment) or matches, given
        ``text``, their ``joined_lines``; for an exact list only (compiled now: one pass over
        every name pays for it)."""
        return selected_by(self.compiled(), self._by_name.keys(), full_names, text)


def _union(first_at: dict[str, int]) -> tuple[Callable[[str], re.Match[str] | None], list[int]]:
    """One ``re`` regex of distinct plain patterns, each an alternative in a group of its own, in
    list order, and the index of the pattern each group stands for. ``re`` tries alternatives in
    order, so the group that matched (``lastindex``) is the first pattern that matches."""
    alternatives = (seed_regex(p).replace("(.*)", "(?:.*)") for p in first_at)
    regex = "|".join(f"({alternative})" for alternative in alternatives)
    return re.compile(regex).match, [-1, *first_at.values()]


_MAPPING, _TARGETS, _EXCLUDES = range(3)


class _Cache:
    """A matcher's compiled lists; a copy or an unpickled matcher starts afresh."""

    __slots__ = ("owner", "slots")

    def __init__(self, owner: int) -> None:
        self.owner = owner
        self.slots: list[_Compiled | None] = [None, None, None]

    def __reduce__(self) -> tuple[type[_Cache], tuple[int]]:
        return (_Cache, (0,))


@dataclass
class ModuleMatcher(reference.ModuleMatcher):
    """Megatron-Bridge's ``ModuleMatcher`` (a mutable dataclass base of its ``LoRA``), compiled.

    ``match`` returns ``(pattern, full_name)`` for the first pattern of ``canonical_mapping``, else
    of ``target_modules``, equal to the short name or matching ``prefix.name``; with neither, each
    linear module no ``exclude_modules`` entry names. Fields may change at any time. The fields and
    the alias bookkeeping are the reference's, which restates Megatron-Bridge's line for line.
    """

    _logger: ClassVar[logging.Logger] = logger

    def match(
        self, m: Any, name: str | None = None, prefix: str | None = None
    ) -> tuple[str, str] | None:
        """``(pattern, full_name)`` for the pattern that claims module ``m``, else None."""
        full_name = f"{prefix}.{name}" if prefix else name
        if len(self.canonical_mapping or []) > 0:
            assert len(self.exclude_modules) == 0, (
                "exclude_modules should be empty when using canonical_mapping"
            )
            return self._claim(_MAPPING, self.canonical_mapping, name, full_name)
        if len(self.target_modules or []) > 0:
            assert len(self.exclude_modules) == 0, (
                "exclude_modules should be empty when using target_modules"
            )
            return self._claim(_TARGETS, self.target_modules, name, full_name)
        types = _linear_types()
        excludes = self.exclude_modules
        if (
            name not in excludes
            and not self._excluded(excludes, full_name)
            and isinstance(m, types)
        ):
            self._record_match(name, full_name)  # type: ignore[arg-type]
            return (name, full_name)  # type: ignore[return-value]
        return None

    def select(self, model: Any) -> list[tuple[str, Any, str | None]]:
        """``(name, module, pattern)`` for each module of ``model.named_modules()`` that matches.

        Each module is asked about as Megatron-Bridge's walk asks: ``match(module, short_name,
        parent_path)``, the root with no name. ``pattern`` is ``match``'s first item (in the
        no-targets mode the short name; None for the root). Matches are recorded, as by the walk.
        """
        full_names, modules = walked(model)
        selected: list[tuple[str, Any, str | None]] = []
        for index in self.candidates(full_names):
            full_name, module = full_names[index], modules[index]
            found = self.match(module, *split(full_name)) if full_name else self.match(module)
            if found is not None:
                selected.append((full_name, module, found[0]))
        return selected

    def candidates(self, full_names: Sequence[str]) -> Sequence[int]:
        """The indices of the modules ``match`` may claim, ascending, walked as ``select``
        walks them: with ``canonical_mapping`` or ``target_modules``, those a pattern equals or
        matches (in one pass over all the names where every pattern is plain); otherwise, or
        where a subclass overrides ``match``, every one.

        Asking ``match`` about these alone gives what asking about every module gives, the
        matches recorded included, where the patterns take the compiled path.
        """
        everything = range(len(full_names))
        if type(self).match is not ModuleMatcher.match:  # a subclass's own match: ask it all
            return everything
        try:
            if len(self.canonical_mapping or []) > 0:
                compiled, _ = self._compiled(_MAPPING, self.canonical_mapping)
            elif len(self.target_modules or []) > 0:
                compiled, _ = self._compiled(_TARGETS, self.target_modules)
            else:
                return everything
            if len(self.exclude_modules) != 0:
                return everything  # upstream's assertion, raised by the first module asked
        except Exception:  # what upstream raises for these fields: match raises it
            return everything
        keys, text = seed_keys(full_names)
        if text is None or compiled.compiled() is None:
            return everything
        return compiled.candidates(keys, text)

    def _claim(self, slot: int, value: Any, name: Any, full_name: Any) -> tuple[str, str] | None:
        """Upstream's loop: the first pattern of ``value`` equal to ``name`` or matching ``full_name``."""
        if type(value) is list and (count := asked_first(len(value))):
            for pattern in value[:count]:  # upstream's loop, its first steps
                if name == pattern or _re_wildcard_match(pattern, full_name):
                    self._record_match(pattern, full_name)
                    return (pattern, full_name)
        compiled, patterns = self._compiled(slot, value)
        if compiled.exact and (name is None or type(name) is str):
            index = compiled.first(name, full_name)
            if index is None:
                return None
            pattern = patterns[index]
        else:
            for pattern in patterns:
                if name == pattern or _re_wildcard_match(pattern, full_name):
                    break
            else:
                return None
        self._record_match(pattern, full_name)
        return (pattern, full_name)

    def _excluded(self, excludes: Any, full_name: Any) -> bool:
        """Whether some pattern of ``excludes`` matches ``full_name``, as upstream's ``any``."""
        compiled, patterns = self._compiled(_EXCLUDES, excludes)
        if compiled.exact and (full_name is None or type(full_name) is str):
            return compiled.any(full_name)
        return any(_re_wildcard_match(pattern, full_name) for pattern in patterns)

    def _compiled(self, slot: int, value: Any) -> tuple[_Compiled, Sequence[Any]]:
        """``value`` compiled, recompiled if it changed since; and the sequence it iterates as."""
        cache: _Cache | None = getattr(self, "_modmatch_cache", None)
        if cache is None or cache.owner != id(self):
            cache = _Cache(id(self))
            self._modmatch_cache = cache
        compiled = cache.slots[slot]
        if type(value) is list:
            # List equality stops at the first differing element and skips identical ones.
            if compiled is None or value != compiled.source:
                compiled = cache.slots[slot] = _Compiled(value.copy(), tuple(value))
            return compiled, value
        patterns = tuple(value)  # a str iterates by character, a mapping by key
        if compiled is None or patterns != compiled.source:
            compiled = cache.slots[slot] = _Compiled(patterns, patterns)
        return compiled, patterns
