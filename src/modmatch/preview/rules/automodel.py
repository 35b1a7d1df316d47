"""NeMo Automodel 0.7's rules: its matcher, asked about the Linear modules and Automodel's own
grouped-experts MoE modules, with the full name, as ``apply_lora_to_linear_modules`` asks."""

from __future__ import annotations

import logging
from typing import Any

from ... import automodel
from ...engine.syntax import AUTOMODEL
from ...inputs.models import Model
from .base import Options
from .named import NameRuleSet, built

__all__ = ["NAME", "build"]

NAME = "automodel"


# apply_lora_to_linear_modules asks about these MoE classes (nemo_automodel.components.moe) and
# their subclasses, by module name, and replaces a matched one whole.
_GROUPED_EXPERTS = frozenset(
    {"GroupedExperts", "GroupedExpertsDeepEP", "GroupedExpertsTE", "GroupedExpertsMoK"}
)


class _AutomodelRuleSet(NameRuleSet):
    asks = "Linear modules and its grouped-experts MoE modules"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._experts: dict[int, tuple[Model, set[str]]] = {}  # per model: walked once

    def asked_modules(self, model: Model) -> list[tuple[str, bool]]:
        # Automodel 0.7.0 hands its matcher the Linear modules and its grouped experts.
        experts = self.adapts_whole(model)
        return [
            (name, is_linear) for name, is_linear in model.modules if is_linear or name in experts
        ]

    def adapts_whole(self, model: Model) -> set[str]:
        found = self._experts.get(id(model))
        if found is None or found[0] is not model:
            walked = model.module.named_modules() if model.module is not None else ()
            found = self._experts[id(model)] = (
                model,
                {name for name, module in walked if _grouped_experts(module)},
            )
        return found[1]


def _grouped_experts(module: Any) -> bool:
    """Whether ``module`` is one of Automodel's grouped-experts MoE modules (by class, without
    importing nemo_automodel: only a model Automodel built holds one)."""
    return any(
        kind.__name__ in _GROUPED_EXPERTS
        and kind.__module__.startswith("nemo_automodel.components.moe")
        for kind in type(module).__mro__
    )


def build(options: Options) -> NameRuleSet:
    return built(
        NAME,
        options,
        "full-name",
        lambda options, call, _: _AutomodelRuleSet(NAME, _automodel(options), call, AUTOMODEL),
        defaults_by="Automodel",
        megatron_defaults=False,
    )


def _automodel(options: Options) -> automodel.ModuleMatcher:
    # Automodel logs its default and all-linear notices; the command reports them itself.
    quiet = logging.getLogger(automodel.__name__)
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return automodel.ModuleMatcher(
            target_modules=options.targets or [],
            exclude_modules=options.excludes or [],
            match_all_linear=options.all_linear,
            is_causal_lm=options.causal_lm,
        )
    finally:
        quiet.setLevel(level)
