"""What ``get_peft_model`` will do with a LoRA config on a model, worked out without running it:
the modules it wraps, the config it refuses (with its reason), and how PEFT rewrites the config
for the transformers-5 MoE models whose experts are fused.

The rewriting is PEFT's own code (``convert_peft_config_for_transformers``), called on a copy of
the config when PEFT is installed: it resolves a str against the model and moves expert
projections to ``target_parameters``, rules that change with PEFT's releases. Everything else is
modmatch's engine.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..peft import PeftMatcher

__all__ = ["Preview", "Refused", "preview"]


class Refused(ValueError):
    """PEFT refuses the config on this model; the message is its reason, in one line."""


@dataclass(frozen=True)
class Preview:
    """What ``get_peft_model`` does with a config on one model."""

    # The modules PEFT wraps, in named_modules() order: those target_modules selects and those
    # holding a parameter target_parameters selects.
    wrapped: list[str]
    # The module.parameter names target_parameters selects; None where parameters are unknown.
    parameters: list[str] | None
    # The config as get_peft_model applies it to this model.
    applied: PeftMatcher
    # Modules PEFT's transformers-5 rewriting adds and removes, against the literal entries;
    # None where PEFT does not rewrite this model's configs.
    widened: list[str] | None = None
    dropped: list[str] | None = None
    notes: list[str] = field(default_factory=list)


def preview(
    matcher: PeftMatcher, names: list[str], linear: set[str], module: Any = None
) -> Preview:
    """The outcome of ``get_peft_model(module, config)`` for ``matcher``'s config.

    ``names`` are the model's module names, ``linear`` what ``"all-linear"`` stands for in it;
    ``module``, the model itself where it was built, adds parameters, module types and PEFT's
    rewriting. Raises :class:`Refused` where PEFT would raise.
    """
    notes = []
    rewritten = None
    if module is not None:
        rewritten, note = _rewritten(matcher, module)
        notes += [note] if note else []
    literal = _outcome(matcher, names, linear, module)
    outcome = literal if rewritten is None else _outcome(rewritten, names, linear, module)
    _refuse(outcome, module)
    if outcome.parameters is None:
        notes.append("target_parameters are previewed only with --hf-config")
    if rewritten is None:
        return Preview(outcome.wrapped, outcome.parameters, outcome.applied, notes=notes)
    before, after = set(literal.wrapped), set(outcome.wrapped)
    return Preview(
        outcome.wrapped,
        outcome.parameters,
        outcome.applied,
        widened=[name for name in outcome.wrapped if name not in before],
        dropped=[name for name in literal.wrapped if name not in after],
        notes=notes,
    )


@dataclass(frozen=True)
class _Outcome:
    wrapped: list[str]
    parameters: list[str] | None
    applied: PeftMatcher
    targeted: list[str]  # selected by target_modules
    excluded: bool  # some module was excluded (or kept by modules_to_save)
    unmatched: bool  # some module was neither selected nor excluded


def _outcome(matcher: PeftMatcher, names: list[str], linear: set[str], module: Any) -> _Outcome:
    applied = matcher.for_model(module) if module is not None else matcher.as_applied(names, linear)
    match = applied.match
    targeted, excluded, unmatched = [], False, False
    for name in names:
        if not name:
            continue  # PEFT never asks about the root
        found = match(name)
        if found:
            targeted.append(name)
        elif found is None or found is False:
            unmatched = True
        else:
            excluded = True  # the excluded marker, falsy
    parameters = None
    if module is not None:
        parameters = applied.select_parameters(module)
    elif not applied.target_parameters:
        parameters = []
    holders = {parameter.rpartition(".")[0] for parameter in parameters or ()}
    chosen = set(targeted) | holders
    wrapped = [name for name in names if name in chosen]
    return _Outcome(wrapped, parameters, applied, targeted, excluded, unmatched)


def _refuse(outcome: _Outcome, module: Any) -> None:
    """Raise Refused where ``get_peft_model`` raises, checked in the order PEFT runs into them."""
    if module is not None:
        find = module.get_submodule
        unwrappable = [name for name in outcome.targeted if not _wrappable(find(name))]
        if unwrappable:
            kind = type(find(unwrappable[0])).__name__
            more = f" (and {len(unwrappable) - 1:,} more modules)" if len(unwrappable) > 1 else ""
            raise Refused(
                f"PEFT cannot wrap {unwrappable[0]} ({kind}){more}: LoRA wraps Linear, "
                "Embedding, Conv1d/2d/3d, MultiheadAttention and transformers' Conv1D modules, "
                "or a parameter through target_parameters"
            )
    targeted = set(outcome.targeted)
    for parameter in outcome.parameters or ():
        holder = parameter.rpartition(".")[0]
        if holder == "":
            raise Refused(f"PEFT cannot target {parameter!r}: it is on the top-level module")
        if holder in targeted:
            raise Refused(
                f"PEFT cannot wrap the parameter {parameter!r}: its module is also selected by "
                "target_modules"
            )
    if outcome.wrapped or outcome.parameters is None:
        return
    applied = outcome.applied
    if outcome.excluded and not outcome.unmatched:
        reason = "every module is excluded"
    elif not applied.target_modules and not outcome.excluded:
        reason = "no target_modules, and target_parameters selects no parameter"
    elif not outcome.excluded:
        reason = f"target_modules {_shown(applied.target_modules)} matches no module"
    else:
        reason = "the modules target_modules matches are excluded or in modules_to_save"
    if applied.layers_to_transform is not None:
        reason += f" (layers_to_transform {applied.layers_to_transform!r}"
        if applied.layers_pattern is not None:
            reason += f", layers_pattern {applied.layers_pattern!r}"
        reason += ")"
    raise Refused(f"PEFT refuses this config on this model: {reason}")


def _shown(targets: str | Iterable[str]) -> str:
    return repr(targets) if isinstance(targets, str) else repr(sorted(targets))


def _wrappable(module: Any) -> bool:
    """Whether LoRA's default dispatch takes this module type (PEFT 0.21's dispatch_default;
    quantized Linear classes subclass nn.Linear)."""
    from torch import nn

    kinds: tuple[type, ...] = (
        nn.Linear,
        nn.Embedding,
        nn.Conv1d,
        nn.Conv2d,
        nn.Conv3d,
        nn.MultiheadAttention,
    )
    pytorch_utils = sys.modules.get("transformers.pytorch_utils")
    if pytorch_utils is not None:
        kinds += (pytorch_utils.Conv1D,)
    return isinstance(module, kinds)


def _rewritten(matcher: PeftMatcher, module: Any) -> tuple[PeftMatcher | None, str | None]:
    """The config as PEFT rewrites it for this model, or None where PEFT does not rewrite (and
    a note where it would but cannot be asked)."""
    model_type = getattr(getattr(module, "config", None), "model_type", None)
    if model_type is None:
        return None, None  # not a transformers model: PEFT rewrites only those
    import transformers

    if int(transformers.__version__.split(".")[0]) < 5:
        return None, None
    from transformers.conversion_mapping import (
        get_checkpoint_conversion_mapping,
        get_model_conversion_mapping,
    )

    if get_checkpoint_conversion_mapping(model_type) is None:
        return None, None
    try:
        from peft import LoraConfig
        from peft.utils.transformers_weight_conversion import convert_peft_config_for_transformers
    except ImportError:
        return None, (
            f"PEFT is not installed: PEFT's rewriting of configs for {model_type} models on "
            "transformers 5 was not applied; this is the entries' literal selection"
        )
    settings = {name: value for name, value in matcher.settings.items() if value is not None}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LoraConfig's advice on its fields is not ours
            config = LoraConfig(**settings)
        conversions = get_model_conversion_mapping(module)  # what inject_adapter passes
        convert_peft_config_for_transformers(config, model=module, conversions=conversions)
    except ValueError as error:  # gate without up, and LoraConfig's own checks
        raise Refused(f"PEFT refuses this config on this model: {error}") from error
    return PeftMatcher.from_config(config), None
