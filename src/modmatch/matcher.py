"""The seed's API, ``wildcard_match`` and ``ModuleMatcher``, as a thin layer over PatternSet.

This is the only module that knows ``nn.Linear``, ``lm_head`` and the seed's rule order; it
imports torch on first use, so ``import modmatch`` stays light.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from .engine.batch import merged, seed_keys, split, walked
from .engine.namerule import NameRule
from .engine.patternset import DEFAULT_CACHE_SIZE, PatternSet

__all__ = ["Explanation", "ModuleMatcher", "Rule", "wildcard_match"]

_DEFAULT_TARGETS = ("linear_qkv", "linear_proj", "linear_fc1", "linear_fc2")
_UNSEEN = object()
# Answers kept per matcher for targets-only configurations (as PatternSet's default cache).
_ANSWERS = DEFAULT_CACHE_SIZE
_linear_type: type | None = None


def _linear() -> type:
    global _linear_type
    if _linear_type is None:
        from torch import nn

        _linear_type = nn.Linear
    return _linear_type


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str) -> PatternSet:
    return PatternSet([pattern], cache_size=0)


@functools.lru_cache(maxsize=1 << 16)
def _cached_match(pattern: str, key: str) -> bool:
    return _compiled(pattern).match(key)


def wildcard_match(pattern: str, key: str | None) -> bool | None:
    """Whether ``pattern`` matches ``key`` as the seed decides; None when ``key`` is None."""
    if key is None:
        return None
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a str, got {type(pattern).__name__}: {pattern!r}")
    if not isinstance(key, str):
        raise TypeError(f"key must be a str or None, got {type(key).__name__}: {key!r}")
    return _cached_match(pattern, key)


class _ReadOnlyList(list):  # type: ignore[type-arg]
    """A list the matcher owns: equal to the list it was given, but refusing changes."""

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(
            "ModuleMatcher patterns are read-only; build a new ModuleMatcher with the changed list"
        )

    append = extend = insert = pop = remove = clear = sort = reverse = _refuse
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self))

    def __reduce__(self) -> tuple[type[list[Any]], tuple[list[Any]]]:
        return (list, (list(self),))

    def __copy__(self) -> _ReadOnlyList:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _ReadOnlyList:
        return self


def _owned(field_name: str, value: Any) -> Any:
    """The seed's normalisation (a str becomes a one-element list), as an unchangeable copy."""
    if isinstance(value, str):
        return _ReadOnlyList([value])
    if isinstance(value, list):
        return _ReadOnlyList(value)
    if value is None or isinstance(value, tuple):
        return value
    raise TypeError(
        f"{field_name} must be a str, a list of str or None, got {type(value).__name__}: {value!r}"
    )


@dataclass(frozen=True)
class ModuleMatcher:
    """Decides per module whether it gets an adapter, exactly as the seed does.

    Targets match a module by its short ``name`` or by a pattern matching ``prefix.name``;
    ``match_all_linear`` takes every ``nn.Linear``; with no targets, every ``nn.Linear`` not
    excluded matches. The matcher is immutable: patterns are compiled once, at construction.
    """

    target_modules: list[str] = field(default_factory=lambda: list(_DEFAULT_TARGETS))
    exclude_modules: list[str] = field(default_factory=list)
    match_all_linear: bool = field(default=False)
    is_causal_lm: bool = field(default=False)
    # Refuse, with a PatternError, a pattern only Python's re can run (which may backtrack).
    strict: bool = field(default=False, kw_only=True)

    def __post_init__(self) -> None:
        targets = _owned("target_modules", self.target_modules)
        excludes = _owned("exclude_modules", self.exclude_modules)
        object.__setattr__(self, "target_modules", targets)
        object.__setattr__(self, "exclude_modules", excludes)
        targets_empty = not isinstance(targets, list) or len(targets) == 0
        excludes_empty = not isinstance(excludes, list) or len(excludes) == 0
        # `is False`, as in the seed: a falsy non-bool such as 0 passes this check.
        if self.match_all_linear is False and targets_empty and excludes_empty:
            raise ValueError(
                "Expected match_all_linear to be true or target_modules/exclude_modules to be non-empty"
            )
        # Targets alone (nearly every real configuration): the answer depends on the name and
        # the prefix only, so it is kept per (name, prefix) and a warm call is a dict hit; the
        # pattern set's own cache would only repeat it.
        # Excludes by truth, as match's assertion reads them (a tuple counts, unlike above).
        targets_only = (
            bool(targets) and not excludes and not self.match_all_linear and not self.is_causal_lm
        )
        cache_size = 0 if targets_only else DEFAULT_CACHE_SIZE
        rule = NameRule(targets, strict=self.strict, cache_size=cache_size)
        object.__setattr__(self, "_targets", rule)
        object.__setattr__(self, "_excludes", NameRule(excludes, strict=self.strict))
        object.__setattr__(self, "_answers", {} if targets_only else None)
        if targets_only:
            # What a name not seen before is asked of, as attributes of its own: match's
            # cold path reads them without going through the rule.
            object.__setattr__(self, "_short_names", rule.names)
            object.__setattr__(self, "_set_match", rule.full_name_matcher.set_match)  # type: ignore[union-attr]
            object.__setattr__(self, "_any_full", rule.full_name_matcher.any)  # type: ignore[union-attr]

    def match(self, m: Any, name: str | None = None, prefix: str | None = None) -> bool | None:
        """True or False as the seed decides; None when there are targets and none matched."""
        answers = self._answers  # type: ignore[attr-defined]
        if answers is not None and type(name) is str and (prefix is None or type(prefix) is str):
            key = (name, prefix)
            found = answers.get(key, _UNSEEN)
            if found is _UNSEEN:
                # The targets rule of _decide with PatternSet.match's cold path inlined: a
                # name not seen before costs this frame and RE2's call, nothing between them.
                if name in self._short_names:  # type: ignore[attr-defined]
                    found = True
                else:
                    full_name = f"{prefix}.{name}" if prefix else name
                    try:
                        hits = self._set_match(str.encode(full_name))  # type: ignore[attr-defined]
                    except UnicodeEncodeError:  # a lone surrogate
                        hits = None
                    found = (len(hits) > 1 if hits else self._any_full(full_name)) or None  # type: ignore[attr-defined]
                answers[key] = found
                if len(answers) > _ANSWERS:
                    answers.clear()  # emptied when full, as PatternSet's caches are
            return found  # type: ignore[no-any-return]
        return self._decide(m, name, prefix)

    def _decide(self, m: Any, name: str | None, prefix: str | None) -> bool | None:
        full_name = f"{prefix}.{name}" if prefix else name
        if self.is_causal_lm and "lm_head" in full_name:  # type: ignore[operator]
            return False
        if self.match_all_linear and isinstance(m, _linear()):
            return True
        if self.target_modules:
            assert not self.exclude_modules, (
                "`exclude_modules` must be empty when `target_modules` is used."
            )
            # None, not False, when no target matches: the seed falls off its end.
            return self._targets.matches(name, full_name) or None  # type: ignore[attr-defined]
        return not self._excludes.matches(name, full_name) and isinstance(m, _linear())  # type: ignore[attr-defined]

    def explain(
        self, name: str | None, prefix: str | None = None, module: Any = None
    ) -> Explanation:
        """Which rule decides ``match(module, name, prefix)``, and the pattern that decided."""
        full_name = f"{prefix}.{name}" if prefix else name
        if self.is_causal_lm and "lm_head" in full_name:  # type: ignore[operator]
            return Explanation(False, Rule.CAUSAL_LM_HEAD)
        if self.match_all_linear and isinstance(module, _linear()):
            return Explanation(True, Rule.ALL_LINEAR)
        if self.target_modules:
            assert not self.exclude_modules, (
                "`exclude_modules` must be empty when `target_modules` is used."
            )
            decided = self._targets.first(name, full_name)  # type: ignore[attr-defined]
            if decided is None:
                return Explanation(None, Rule.NO_TARGET_MATCHED)
            rule = Rule.EXACT_NAME if decided == name else Rule.TARGET_PATTERN
            return Explanation(True, rule, decided)
        if name in self.exclude_modules:
            return Explanation(False, Rule.EXCLUDED_BY_NAME, name)
        decided = self._excludes.first(None, full_name)  # type: ignore[attr-defined]
        if decided is not None:
            return Explanation(False, Rule.EXCLUDED_BY_PATTERN, decided)
        if not isinstance(module, _linear()):
            return Explanation(False, Rule.NOT_LINEAR)
        return Explanation(True, Rule.LINEAR_NOT_EXCLUDED)

    def select(self, model: Any) -> list[tuple[str, Any]]:
        """The ``(name, module)`` pairs of ``model.named_modules()`` that match, in that order.

        Each module is decided as ``match(module, name, prefix)`` decides it, with the name
        split at its last dot; plain patterns run over all the model's names in one pass.
        """
        full_names, modules = walked(model)
        chosen = None
        if type(self).match is ModuleMatcher.match:  # a subclass's own match is asked instead
            chosen = self.select_indices(
                full_names, lambda: [isinstance(module, _linear()) for module in modules]
            )
        if chosen is None:
            match = self.match
            chosen = [
                index
                for index, (full_name, module) in enumerate(zip(full_names, modules, strict=True))
                if match(module, *split(full_name))
            ]
        return [(full_names[index], modules[index]) for index in chosen]

    def select_indices(
        self, full_names: Sequence[str], linear: Callable[[], Sequence[bool]]
    ) -> list[int] | None:
        """The indices of the modules ``select`` takes, ascending, given their full names and
        ``linear()``, which says which are ``nn.Linear`` (asked only when a rule needs it).

        None where the seed's answer is not one pass over the names: targets with excludes
        (its assertion), excludes of None (its TypeError), or names that do not join into
        lines (no names, a name that is not a str or holds a newline or a lone surrogate); the
        caller then asks ``match`` module by module.
        """
        keys, text = seed_keys(full_names)
        if text is None:
            return None
        targets: NameRule = self._targets  # type: ignore[attr-defined]
        excludes: NameRule = self._excludes  # type: ignore[attr-defined]
        if self.target_modules:
            if self.exclude_modules:
                return None
            chosen = targets.filter_lines(keys, text)
            if self.match_all_linear:
                chosen = merged(chosen, [index for index, flag in enumerate(linear()) if flag])
        elif self.exclude_modules is None:
            return None
        elif self.match_all_linear:
            # Every Linear module, excluded or not; no other module.
            chosen = [index for index, flag in enumerate(linear()) if flag]
        else:
            excluded = set(excludes.filter_lines(keys, text))
            chosen = [
                index for index, flag in enumerate(linear()) if flag and index not in excluded
            ]
        if self.is_causal_lm:
            chosen = [index for index in chosen if "lm_head" not in keys[index]]
        return chosen

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            functools.partial(type(self), strict=self.strict),
            (self.target_modules, self.exclude_modules, self.match_all_linear, self.is_causal_lm),
        )


class Rule(enum.Enum):
    """The rule of the seed's that decided a module."""

    CAUSAL_LM_HEAD = "causal-LM lm_head skip"
    ALL_LINEAR = "all-linear"
    EXACT_NAME = "exact short name"
    TARGET_PATTERN = "target pattern"
    NO_TARGET_MATCHED = "no target matched"
    EXCLUDED_BY_NAME = "excluded by name"
    EXCLUDED_BY_PATTERN = "excluded by pattern"
    NOT_LINEAR = "not Linear"
    LINEAR_NOT_EXCLUDED = "Linear, not excluded"


@dataclass(frozen=True)
class Explanation:
    """Why a module matched or not: ``result`` is exactly what ``match`` returns."""

    result: bool | None
    rule: Rule
    pattern: str | None = None

    @property
    def matched(self) -> bool:
        """Whether the module gets an adapter."""
        return bool(self.result)
