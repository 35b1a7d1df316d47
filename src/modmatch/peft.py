"""Hugging Face PEFT 0.21.2's target rules, compiled once: ``check_target_module_exists`` and
:class:`PeftMatcher`.

Answers are PEFT's (reference: :mod:`modmatch.reference.peft`) without importing PEFT: a str
is a regex the whole key must match (on RE2, or on ``re`` where only ``re`` can run it), list
entries are literal dotted suffixes, looked up in a hash set, and every answer is cached per key.
"""

from __future__ import annotations

import operator
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any

from .patternset import DEFAULT_CACHE_SIZE, PatternSet
from .reference.peft import Excluded
from .suffixset import SuffixSet
from .syntax import MODULES_TO_SAVE, REGEX, as_framework

__all__ = ["Excluded", "PeftMatcher", "check_target_module_exists"]

_EXCLUDED = Excluded()
_UNSEEN = object()
# The attributes of a PEFT config that decide a key, in the order PEFT reads them.
_CONFIG_FIELDS = (
    "exclude_modules",
    "modules_to_save",
    "target_modules",
    "target_parameters",
    "layers_to_transform",
    "layers_pattern",
)
_ALL_LINEAR = "all-linear"
_SEQ_CLS_HEADS = ("classifier", "score")


class PeftMatcher:
    """PEFT's decision for each module key, with every pattern compiled once.

    ``match(key)`` answers as ``check_target_module_exists`` does; ``select(model)`` lists the
    modules PEFT adapts (``"all-linear"`` expanded as PEFT expands it) and
    ``select_parameters(model)`` the ``module.parameter`` names ``target_parameters`` picks.
    """

    __slots__ = (
        "_cache",
        "_excludes",
        "_layer_regexes",
        "_layers",
        "_targets",
        "_to_save",
        "_unset_targets",
        "exclude_modules",
        "layers_pattern",
        "layers_to_transform",
        "modules_to_save",
        "target_modules",
        "target_parameters",
        "task_type",
    )

    def __init__(
        self,
        target_modules: str | Iterable[str] | None = None,
        *,
        exclude_modules: str | Iterable[str] | None = None,
        modules_to_save: Iterable[str] | None = None,
        layers_to_transform: int | Iterable[int] | None = None,
        layers_pattern: str | Iterable[str] | None = None,
        target_parameters: Iterable[str] | None = None,
        task_type: str | None = None,
    ) -> None:
        self.target_modules = target_modules
        self.exclude_modules = exclude_modules
        self.modules_to_save = modules_to_save
        self.layers_to_transform = layers_to_transform
        self.layers_pattern = layers_pattern
        self.target_parameters = target_parameters
        self.task_type = task_type
        self._excludes = _compiled_rule(exclude_modules) if exclude_modules else None
        self._to_save = None
        if modules_to_save:
            with as_framework(MODULES_TO_SAVE):
                self._to_save = PatternSet(list(modules_to_save), syntax=MODULES_TO_SAVE)
        # PEFT answers False for every key when only parameters are targeted.
        self._unset_targets = target_modules is None and target_parameters is not None
        self._targets = None if target_modules is None else _compiled_rule(target_modules)
        layers: Any = layers_to_transform
        using_layers = layers is not None and (
            len(layers) != 0 if isinstance(layers, list) else True
        )
        self._layers = layers if using_layers else None
        self._layer_regexes = _layer_regexes(layers_pattern)
        self._cache: dict[str, bool | Excluded | None] = {}

    @classmethod
    def from_config(cls, config: Any) -> PeftMatcher:
        """The matcher for a ``peft.LoraConfig``, or any object with its attributes."""
        return cls(
            config.target_modules,
            exclude_modules=getattr(config, "exclude_modules", None),
            modules_to_save=getattr(config, "modules_to_save", None),
            layers_to_transform=getattr(config, "layers_to_transform", None),
            layers_pattern=getattr(config, "layers_pattern", None),
            target_parameters=getattr(config, "target_parameters", None),
            task_type=getattr(config, "task_type", None),
        )

    def match(self, key: str) -> bool | Excluded | None:
        """True when PEFT adapts the module ``key``; an :class:`Excluded` (falsy) when its
        excludes or ``modules_to_save`` rule it out; False or None (as PEFT) otherwise.

        Where PEFT returns the ``re.Match`` of a str target, this returns True.
        """
        try:
            found = self._cache.get(key, _UNSEEN)
        except TypeError:  # unhashable
            raise TypeError(f"key must be a str, got {type(key).__name__}: {key!r}") from None
        if found is _UNSEEN:
            if len(self._cache) >= DEFAULT_CACHE_SIZE:
                self._cache.clear()  # emptied when full, as PatternSet's caches are
            found = self._cache[key] = self._decide(key)
        return found  # type: ignore[return-value]

    def _decide(self, key: str) -> bool | Excluded | None:
        if self._excludes is not None and self._excludes.match(key):
            return _EXCLUDED
        if self._to_save is not None and self._to_save.match(key):
            return _EXCLUDED
        targets = self._targets
        if targets is None:
            if self._unset_targets:
                return False
            # PEFT fails here too, testing `key in None`.
            raise TypeError("target_modules is None and target_parameters is None")
        if isinstance(targets, PatternSet):
            return targets.match(key) or None  # PEFT: a Match, or None
        if targets.equals(key):
            return True  # an exact full name skips the layer filter
        found = targets.ends_with(key)
        if not found or self._layers is None:
            return found
        index = self._layer_index(key)
        if index is None:
            return False
        layers = self._layers
        return index == layers if isinstance(layers, int) else index in layers

    def _layer_index(self, key: str) -> int | None:
        # The first regex that matches decides, as in PEFT; the index is its first number.
        for regex in self._layer_regexes:
            found = regex.match(key)
            if found is not None:
                return int(found["idx"])
        return None

    def explain(self, key: str) -> tuple[str, Any]:
        """Which of PEFT's rules decides ``key``, and the entry (or regex) that decided it."""
        found = self.match(key)
        if isinstance(found, Excluded):
            if self._excludes is not None and self._excludes.match(key):
                return "excluded", _first_entry(self._excludes, key)
            return "in modules_to_save", _first_entry(self._to_save, key)  # type: ignore[arg-type]
        targets = self._targets
        if targets is None:
            return "no target_modules", None
        entry = _first_entry(targets, key)
        if isinstance(targets, PatternSet):
            return ("target regex" if found else "target regex does not match"), entry
        if targets.equals(key):
            return "exact full name (no layer filter)", key
        if entry is None:
            return "no target entry", None
        if not found:
            return "layer index not in layers_to_transform", entry
        return "target entry" + (", layer index kept" if self._layers is not None else ""), entry

    def select(self, model: Any) -> list[str]:
        """Names of the modules of ``model`` that PEFT adapts, in ``named_modules()`` order."""
        modules = list(model.named_modules())
        matcher = self
        if isinstance(self.target_modules, str) and self.target_modules.lower() == _ALL_LINEAR:
            matcher = self._with_targets(_all_linear_names(model, modules, self.task_type))
        return [name for name, _ in modules if name and matcher.match(name)]

    def select_parameters(self, model: Any) -> list[str]:
        """The ``module.parameter`` names ``target_parameters`` selects, as PEFT matches them."""
        if not self.target_parameters:
            return []
        wanted = SuffixSet(sorted(set(self.target_parameters)))
        return [
            key
            for module_name, module in model.named_modules()
            for parameter_name, _ in module.named_parameters(recurse=False)
            if wanted.match(key := f"{module_name}.{parameter_name}")
        ]

    def _with_targets(self, target_modules: set[str]) -> PeftMatcher:
        return PeftMatcher(
            target_modules,
            exclude_modules=self.exclude_modules,
            modules_to_save=self.modules_to_save,
            layers_to_transform=self.layers_to_transform,
            layers_pattern=self.layers_pattern,
            target_parameters=self.target_parameters,
            task_type=self.task_type,
        )

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in ("target_modules", *_CONFIG_FIELDS[:2], *_CONFIG_FIELDS[3:], "task_type")
            if getattr(self, name) is not None
        )
        return f"PeftMatcher({fields})"


def _first_entry(rule: PatternSet | SuffixSet, key: str) -> Any:
    if isinstance(rule, SuffixSet):
        return next(iter(rule.matching(key)), None)
    hits = rule.matches(key)
    return rule.patterns[hits[0]] if hits else None


def _compiled_rule(patterns: str | Iterable[str]) -> PatternSet | SuffixSet:
    """A str is one regex for the whole key; anything else is a collection of literal entries."""
    if isinstance(patterns, str):
        with as_framework(REGEX):
            return PatternSet([patterns], syntax=REGEX)
    return SuffixSet(patterns)


def _layer_regexes(layers_pattern: Any) -> tuple[re.Pattern[str], ...]:
    """PEFT's regexes for the layer index: lazy, so an expert index after it is not taken."""
    if layers_pattern is None or len(layers_pattern) == 0:
        return (re.compile(r".*?\.[^.]*\.(?P<idx>\d+)\."),)
    patterns = [layers_pattern] if isinstance(layers_pattern, str) else layers_pattern
    return tuple(re.compile(rf"(?:^|.*?\.){p}\.(?P<idx>\d+)\.") for p in patterns)


def _all_linear_names(model: Any, modules: list[tuple[str, Any]], task_type: Any) -> set[str]:
    """What PEFT puts in place of ``"all-linear"``: every Linear/Conv1D but the output layer."""
    from torch import nn

    linear: tuple[type, ...] = (nn.Linear,)
    pytorch_utils = sys.modules.get("transformers.pytorch_utils")
    if pytorch_utils is not None:  # a model holding transformers' Conv1D has imported it
        linear += (pytorch_utils.Conv1D,)
    names = {name for name, module in modules if isinstance(module, linear)}
    if not _is_pretrained(model):
        return names
    output = model.get_output_embeddings()
    heads = [output] if output is not None else []
    if output is None and str(getattr(task_type, "value", task_type)) == "SEQ_CLS":
        heads = [getattr(model, h) for h in _SEQ_CLS_HEADS if getattr(model, h, None) is not None]
        heads = heads[:1]
    for head in heads:
        names.discard(next(name for name, module in modules if module is head))
    return names


def _is_pretrained(model: Any) -> bool:
    """Whether ``model`` is a transformers ``PreTrainedModel`` (PEFT only trims those)."""
    modeling = sys.modules.get("transformers.modeling_utils")
    return modeling is not None and isinstance(model, modeling.PreTrainedModel)


_BY_CONFIG_SIZE = 64
_CONTAINERS = (list, set, dict)


class _Compiled:
    """A config's matcher, with the fields it was compiled from and how to read them again."""

    __slots__ = ("config", "fields", "matcher", "read", "sized", "sizes")

    def __init__(self, config: Any) -> None:
        self.config = config
        self.read: Callable[[Any], tuple[Any, ...]] = operator.attrgetter(*_CONFIG_FIELDS)
        try:
            self.fields = self.read(config)
        except AttributeError:  # PEFT reads a missing field as None
            self.read = _read_with_defaults
            self.fields = self.read(config)
        self.sized = tuple(value for value in self.fields if type(value) in _CONTAINERS)
        self.sizes = tuple(map(len, self.sized))
        self.matcher = PeftMatcher.from_config(config)

    def fresh(self, config: Any) -> bool:
        """Whether ``config`` still holds the very fields compiled, at the sizes compiled."""
        return (
            config is self.config
            and all(map(operator.is_, self.read(config), self.fields))
            and tuple(map(len, self.sized)) == self.sizes
        )


def _read_with_defaults(config: Any) -> tuple[Any, ...]:
    return tuple(getattr(config, name, None) for name in _CONFIG_FIELDS)


_BY_CONFIG: dict[int, _Compiled] = {}


def check_target_module_exists(config: Any, key: str) -> bool | Excluded | None:
    """PEFT 0.21.2's ``check_target_module_exists``: truthy exactly when PEFT's is.

    The compiled matcher is kept per config, and compiled again when one of its fields is
    replaced or changes size. A field changed in place that keeps its size is not seen: build
    a :class:`PeftMatcher` (or assign a new list) after such a change.
    """
    compiled = _BY_CONFIG.get(id(config))
    if compiled is None or not compiled.fresh(config):
        if len(_BY_CONFIG) >= _BY_CONFIG_SIZE:
            _BY_CONFIG.clear()
        compiled = _BY_CONFIG[id(config)] = _Compiled(config)
    return compiled.matcher.match(key)
