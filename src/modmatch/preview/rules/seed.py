"""The seed's rules: NeMo Automodel's matcher of July 2025 (:class:`modmatch.ModuleMatcher`),
asked about every module with the short name and the parent's path, as a module walk does."""

from __future__ import annotations

from typing import Any

from ...engine.syntax import SEED
from ...errors import InputError
from ...inputs.models import Model
from ...matcher import ModuleMatcher
from .base import Options, Verdict
from .named import NameRuleSet, built, modules

__all__ = ["NAME", "build"]

NAME = "seed"


class _SeedRuleSet(NameRuleSet):
    def selected(self, model: Model) -> list[str]:
        names = [name for name, _ in model.modules]
        chosen = None
        if self.call == "split":  # select_indices splits names as a module walk does
            chosen = self.matcher.select_indices(names, lambda: [bool(f) for _, f in model.modules])
        if chosen is None:  # decided module by module, as the seed does
            return super().selected(model)
        return [names[index] for index in chosen]

    def explain(self, name: str, is_linear: bool | None, model: Model) -> Verdict:
        linear, other = modules()
        short, prefix = self.arguments(name)
        found = self.matcher.explain(short, prefix, linear if is_linear else other)
        return Verdict(found.matched, found.rule.value, found.pattern)


def build(options: Options) -> NameRuleSet:
    return built(
        NAME,
        options,
        "split",
        lambda options, call, _: _SeedRuleSet(NAME, _seed(options), call, SEED),
        defaults_by="the seed",
        megatron_defaults=True,
    )


def _seed(options: Options) -> ModuleMatcher:
    if options.targets and options.excludes:
        # The seed asserts on this combination at the first module it cannot decide otherwise.
        raise InputError(
            "--target and --exclude cannot be combined: excludes apply only without targets"
        )
    arguments: dict[str, Any] = {
        "match_all_linear": options.all_linear,
        "is_causal_lm": options.causal_lm,
    }
    if options.targets:
        arguments["target_modules"] = options.targets
    elif options.excludes or options.all_linear:
        arguments["target_modules"] = []
    if options.excludes:
        arguments["exclude_modules"] = options.excludes
    return ModuleMatcher(**arguments)
