"""What ``get_peft_model`` will do with a LoRA config on a model, worked out without running it:
the modules it wraps, the config it refuses (with its reason), and how PEFT rewrites the config
for the transformers-5 MoE models whose experts are fused.

The rewriting (PEFT 0.19 and later) is PEFT's own code (``convert_peft_config_for_transformers``),
called on a copy of the config where the installed PEFT is the release previewed, else that
release's rules restated (:mod:`modmatch.reference.peft_rewriting`): it moves expert projections
to ``target_parameters`` and, from 0.20, resolves a str against the model. Everything else is
modmatch's engine.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..peft import PeftMatcher, installed_is
from ..reference.peft import TASK_TYPES, release

__all__ = ["NothingMatched", "Preview", "Refused", "preview", "rewritten"]


class Refused(ValueError):
    """PEFT refuses the config on this model; the message is its reason, in one line."""


class NothingMatched(Refused):
    """PEFT refuses the config because it adapts nothing on this model."""


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
    matcher: PeftMatcher,
    names: list[str],
    linear: set[str],
    module: Any = None,
    lora_dropout: float = 0.0,
    flags: Iterable[str] = (),
) -> Preview:
    """The outcome of ``get_peft_model(module, config)`` for ``matcher``'s config, under the
    rules of PEFT ``matcher.version``.

    ``names`` are the model's module names, ``linear`` what ``"all-linear"`` stands for in it;
    ``module``, the model itself where it was built, adds parameters, module types and PEFT's
    rewriting; ``lora_dropout`` and ``flags`` (the LoraConfig options among ``fan_in_fan_out``,
    ``lora_bias``, ``use_dora`` set true) are what PEFT's ParamWrapper refuses. Raises
    :class:`Refused` where PEFT would raise.
    """
    notes = []
    matcher = _with_task_heads(matcher)
    changed = None if module is None else rewritten(matcher, module)
    literal = _outcome(matcher, names, linear, module)
    outcome = literal if changed is None else _outcome(changed, names, linear, module)
    _refuse(outcome, module, release(matcher.version))
    # Raised by LoRA's ParamWrapper, which every selected parameter gets, after the modules are
    # wrapped and before PEFT checks that something was; in PEFT's order.
    refused = [_WRAPPER_REFUSES[flag] for flag in _WRAPPER_REFUSES if flag in set(flags)]
    if lora_dropout != 0:
        refused.insert(0, f"lora_dropout != 0 (it is {lora_dropout!r})")
    if outcome.parameters and refused:
        added = ", added by PEFT's rewriting for transformers 5" if _added(matcher, outcome) else ""
        raise Refused(
            f"PEFT refuses this config: lora.ParamWrapper does not work with {refused[0]}. "
            f"(target_parameters selects {len(outcome.parameters):,} parameters{added})"
        )
    if outcome.parameters is None:
        notes.append("target_parameters are previewed only on a model built from its config")
    if changed is None:
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


def _with_task_heads(matcher: PeftMatcher) -> PeftMatcher:
    task = matcher.task_type
    found = TASK_TYPES.get(str(getattr(task, "value", task)))
    if found is None or not found.heads:
        return matcher
    settings = matcher.settings
    settings["modules_to_save"] = [*(settings["modules_to_save"] or ()), *found.heads]
    return PeftMatcher(**settings, version=matcher.version)


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
    if applied.target_modules is None and applied.target_parameters is None:
        return _Outcome([], [], applied, [], False, bool(names))  # nothing to match with
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


# Model types whose Mamba layers LoRA may not wrap by these names, and the release that added each.
_MAMBA_TYPES = {
    "falcon_h1": (0, 17),
    "mamba": (0, 17),
    "mamba2": (0, 17),
    "falcon_mamba": (0, 17),
    "nemotron_h": (0, 20),
}
_NOT_FOR_MAMBA = ("out_proj", "conv1d")


def _refuse(outcome: _Outcome, module: Any, peft: tuple[int, int]) -> None:
    """Raise Refused where ``get_peft_model`` of PEFT ``peft`` raises, in the order PEFT runs
    into them."""
    if module is not None:
        model_type = str(getattr(getattr(module, "config", None), "model_type", ""))
        since = _MAMBA_TYPES.get(model_type)
        mamba = since is not None and peft >= since
        find = module.get_submodule
        # Module by module, as PEFT's loop: the Mamba check, then whether LoRA can wrap it.
        for name in outcome.targeted:
            last = name.rpartition(".")[2]
            if mamba and last in _NOT_FOR_MAMBA:
                raise Refused(
                    f"PEFT refuses this config on this model: [PEFT:LORA] Module {last!r} is "
                    f"incompatible with Mamba-based models (model_type={model_type!r}); it "
                    "refuses out_proj and conv1d"
                )
            if not _wrappable(find(name)):
                break
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
    raise NothingMatched(f"PEFT refuses this config on this model: {reason}")


# The options ParamWrapper refuses after the dropout, in its order, as its messages name them.
_WRAPPER_REFUSES = {
    "fan_in_fan_out": "fan_in_fan_out",
    "lora_bias": "lora_bias=True",
    "use_dora": "use_dora=True",
}


def _added(matcher: PeftMatcher, outcome: _Outcome) -> bool:
    """Whether PEFT's rewriting, not the config, brought in the target_parameters."""
    return not matcher.target_parameters and bool(outcome.applied.target_parameters)


# Patterns longer than this are shown cut, with their length.
_SHOWN = 200


def _shown(targets: str | Iterable[str]) -> str:
    text = repr(targets) if isinstance(targets, str) else repr(sorted(targets))
    if len(text) <= _SHOWN:
        return text
    return f"{text[: _SHOWN // 2]}...{text[-_SHOWN // 4 :]} ({len(text):,} characters)"


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


def rewritten(matcher: PeftMatcher, module: Any) -> PeftMatcher | None:
    """The config as PEFT rewrites it for this transformers model before matching, or None
    where PEFT does not rewrite; raises Refused where the rewriting raises."""
    from ..reference import peft_rewriting

    # From 0.19, on transformers 5, for the MoE families in PEFT's tables; PEFT's function leaves
    # every other config as it is, so there is no rewriting to report.
    if release(matcher.version) < (0, 19) or peft_rewriting.moe_tables(module) is None:
        return None
    try:
        if installed_is(matcher.version):
            return _by_peft(matcher, module)
        fields = peft_rewriting.rewritten(matcher.settings, module, release(matcher.version))
    except ValueError as error:  # gate without up, and LoraConfig's own checks
        raise Refused(f"PEFT refuses this config on this model: {error}") from error
    return None if fields is None else PeftMatcher(**fields, version=matcher.version)


def _by_peft(matcher: PeftMatcher, module: Any) -> PeftMatcher:
    """The installed PEFT's own rewriting, on a config built from the matcher's fields."""
    from peft import LoraConfig
    from peft.utils.transformers_weight_conversion import convert_peft_config_for_transformers
    from transformers.conversion_mapping import get_model_conversion_mapping

    settings = {name: value for name, value in matcher.settings.items() if value is not None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LoraConfig's advice on its fields is not ours
        config = LoraConfig(**settings)
    conversions = get_model_conversion_mapping(module)  # what inject_adapter passes
    convert_peft_config_for_transformers(config, model=module, conversions=conversions)
    return PeftMatcher.from_config(config, version=matcher.version)
