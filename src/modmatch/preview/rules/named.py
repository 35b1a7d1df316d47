"""The rule sets whose ``ModuleMatcher`` selects a module by the name passed to ``match`` or by
its full name (the seed, Automodel, Megatron-Bridge): what they share."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ...engine.patternset import PatternSet
from ...engine.syntax import Syntax
from ...errors import InputError
from ...inputs.models import Model
from ..report import NameRuleSelects
from .base import Options, RuleSet, Verdict

__all__ = ["NameRuleSet", "built", "modules"]


def modules() -> tuple[Any, Any]:
    from torch import nn

    return nn.Linear(1, 1, device="meta"), nn.Identity()


class NameRuleSet(RuleSet):
    """The seed, Automodel and Megatron-Bridge: a ``ModuleMatcher`` whose patterns select a
    module by the name passed to ``match`` or by its full name."""

    # What the framework asks its matcher about, where not every module (explain says so).
    asks = "Linear modules"

    def __init__(self, name: str, matcher: Any, call: str, syntax: Syntax) -> None:
        self.name, self.matcher, self.call, self._syntax = name, matcher, call, syntax

    def arguments(self, name: str) -> tuple[str | None, str | None]:
        """``(name, prefix)`` as the framework passes them to ``match``."""
        if self.call == "full-name":
            return name, None
        prefix, _, short = name.rpartition(".")
        return short, prefix

    @property
    def patterns(self) -> list[str]:
        return list(self.matcher.target_modules or self.matcher.exclude_modules or [])

    @property
    def excludes(self) -> list[str]:
        return list(self.matcher.exclude_modules or [])

    def selected(self, model: Model) -> list[str]:
        linear, other = modules()
        match, arguments = self.matcher.match, self.arguments
        asked = self.asked_modules(model)
        return [
            name
            for name, is_linear in map(asked.__getitem__, self.candidates(asked))
            if match(linear if is_linear else other, *arguments(name))
        ]

    def candidates(self, asked: list[tuple[str, bool]]) -> Sequence[int]:
        """The indices of the asked modules ``match`` may select: all, unless the matcher can
        rule some out in one pass."""
        return range(len(asked))

    def selects(self, patterns: list[str] | None = None) -> Callable[[str], Iterable[int]]:
        patterns = self.patterns if patterns is None else patterns
        compiled = PatternSet(patterns, cache_size=0, syntax=self._syntax)
        return NameRuleSelects(patterns, compiled, split=self.call == "split")

    def explain(self, name: str, is_linear: bool | None, model: Model) -> Verdict:
        if name not in set(self.asked(model)):
            return Verdict(False, f"not asked: {self.name} asks only about {self.asks}")
        linear, other = modules()
        module = linear if is_linear else other
        short, prefix = self.arguments(name)
        result = self.matcher.match(module, short, prefix)
        hits = sorted(set(self.selects()(name)))
        decided = self.patterns[hits[0]] if hits else None
        matched = bool(result)
        if self.matcher.target_modules:
            rule = "target pattern" if matched else "no target matched"
            return Verdict(matched, rule, decided if matched else None)
        if decided is not None:
            return Verdict(False, "excluded", decided)
        return Verdict(matched, "Linear, not excluded" if matched else "not Linear")


def built(
    name: str,
    options: Options,
    call: str,
    build: Callable[[Options, str, bool], NameRuleSet],
    *,
    defaults_by: str,
    megatron_defaults: bool,
) -> NameRuleSet:
    """The rule set ``build`` makes, once the options are checked to be its kind's; with the
    framework's default targets said where the options give none."""
    peft_only = [
        flag
        for flag, value in (
            ("--layers-to-transform", options.layers_to_transform),
            ("--layers-pattern", options.layers_pattern),
            ("--target-parameters", options.target_parameters),
            ("--modules-to-save", options.modules_to_save),
            ("--target-regex", options.target_regex),
            ("--exclude-regex", options.exclude_regex),
        )
        if value is not None
    ]
    if peft_only:
        raise InputError(f"{peft_only[0]} is a PEFT option: add --rules peft")
    defaults = not options.targets and not options.excludes and not options.all_linear
    found = build(options, options.call or call, defaults)
    found.built_by, found.built, found.built_as = options.built_by, options.built, options.built_as
    if defaults:
        found.defaults_used = f"{defaults_by}'s default targets: " + " ".join(found.patterns)
        if megatron_defaults:
            found.defaults_used += " (Megatron-Core names; give -t for a Hugging Face model)"
    return found
