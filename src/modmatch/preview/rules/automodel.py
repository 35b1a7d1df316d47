"""NeMo Automodel 0.7's rules: its matcher, asked about the Linear modules alone, with the full
name, as ``apply_lora_to_linear_modules`` asks."""

from __future__ import annotations

import logging

from ... import automodel
from ...engine.syntax import AUTOMODEL
from ...inputs.models import Model
from .base import Options
from .named import NameRuleSet, built

__all__ = ["NAME", "build"]

NAME = "automodel"


class _AutomodelRuleSet(NameRuleSet):
    def asked_modules(self, model: Model) -> list[tuple[str, bool]]:
        # Automodel 0.7.0 hands only Linear modules to its matcher.
        return [(name, is_linear) for name, is_linear in model.modules if is_linear]


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
