"""How Hugging Face PEFT 0.19 to 0.21 rewrites a LoRA config's targets for the transformers-5 MoE
models whose experts are fused, before it matches a single module: what modmatch applies where
the installed PEFT is not the release asked about.

Restated from ``peft/utils/transformers_weight_conversion.py`` of PEFT 0.19.0/0.19.1, 0.20.0 and
0.21.0 to 0.21.2: ``convert_peft_config_for_transformers``, ``_convert_peft_config_moe``,
``_resolve_string_target_modules`` (new in 0.20.0) and the module's tables
(``_MOE_TARGET_MODULE_MAPPING``, ``_MOE_FUSED_TARGETS`` and its ``"mixtral"`` entry over
transformers' ``_MODEL_TO_CONVERSION_PATTERN``), the same in all three releases. PEFT 0.18 and
earlier have no such rewriting.

``BaseTuner.inject_adapter`` (``peft/tuners/tuners_utils.py``) rewrites first, on transformers 5
only and on a model whose ``config`` has a ``model_type``: before ``_prepare_adapter_config``
puts its defaults in place of ``target_modules=None`` and before ``_maybe_include_all_linear_layers``
expands ``"all-linear"``. So where a model type is rewritten, None becomes an empty set (no
defaults follow), and the rewriting sees a str as the user wrote it:

- 0.19 takes it for a collection like a list: its characters become the entries.
- 0.20 and 0.21 resolve it against the model first: ``"all-linear"`` (any case) to the last
  segments of the linear modules' names plus every renamed transformers-4 name; a regex to the
  last segments of the module and parameter names it matches, plus each renamed name it matches
  under a container of the parameter that name now lives in. Where nothing is found, the config
  is left as it is.

Then every entry ending in a renamed transformers-4 name (``w1``, ``gate_proj``, the router's
``gate``, ...) leaves ``target_modules`` and the parameter holding its weights joins
``target_parameters``; naming some but not all of the names fused into one parameter is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from .peft import all_linear_names, check_target_module_exists

if TYPE_CHECKING:
    import torch

__all__ = ["moe_tables", "rewritten"]


@dataclass(frozen=True)
class _Moe:
    """PEFT's tables for one family of MoE models."""

    # The transformers-4 module names whose weights transformers 5 renamed or fused, each with the
    # parameter holding them now; in PEFT's order, the first name an entry ends with counting.
    renamed: Mapping[str, str]
    # The fused parameters, each with the transformers-4 names fused into it.
    fused: Mapping[str, tuple[str, ...]]


# Model types PEFT files under a family itself, over transformers' _MODEL_TO_CONVERSION_PATTERN.
_FAMILY_OVERRIDES = {"mixtral": "mixtral"}
_FAMILIES = {
    "mixtral": _Moe(
        renamed={
            "gate": "gate.weight",
            "w1": "gate_up_proj",
            "w3": "gate_up_proj",
            "w2": "down_proj",
        },
        fused={"gate_up_proj": ("w1", "w3")},
    ),
    "qwen2_moe": _Moe(
        renamed={
            "gate": "gate.weight",
            "gate_proj": "gate_up_proj",
            "up_proj": "gate_up_proj",
            "down_proj": "down_proj",
        },
        fused={"gate_up_proj": ("gate_proj", "up_proj")},
    ),
}
_ALL_LINEAR = "all-linear"


def rewritten(
    settings: Mapping[str, Any], model: torch.nn.Module, release: tuple[int, int]
) -> dict[str, Any] | None:
    """The LoRA config fields (target_modules, target_parameters; and exclude etc. unchanged) as
    PEFT ``release`` ((0, 19) or later) rewrites them before matching on this transformers model,
    or None where it does not rewrite (release < (0, 19), not a transformers-5 model, model type
    without a conversion mapping). Raises ValueError with PEFT's message where PEFT raises (gate
    without up, ...); an invalid regex fails as in PEFT 0.20 and later, with ``re.error``."""
    if release < (0, 19):
        return None
    family = moe_tables(model)
    if family is None:
        return None
    targets = settings.get("target_modules")
    if isinstance(targets, str) and release >= (0, 20):
        targets = _resolved(targets, settings, model, family, release)
        if not targets:
            return None
    entries = set(targets or ())  # in 0.19 a str's characters
    parameters = set(settings.get("target_parameters") or ())
    kept = set()
    present: dict[str, set[str]] = {fused: set() for fused in family.fused}
    for entry in entries:
        old = next(
            (old for old in family.renamed if entry == old or entry.endswith(f".{old}")), None
        )
        if old is None:
            kept.add(entry)
            continue
        new = family.renamed[old]
        parameters.add(new)
        if new in present:
            present[new].add(old)
    for fused, olds in family.fused.items():
        if 0 < len(present[fused]) < len(olds):
            raise ValueError(
                f"Cannot convert PEFT target(s) {', '.join(sorted(present[fused]))} without also "
                f"targeting {', '.join(sorted(set(olds) - present[fused]))} because they are fused "
                f"into {fused}."
            )
    return {**settings, "target_modules": kept, "target_parameters": parameters}


def moe_tables(model: torch.nn.Module) -> _Moe | None:
    """PEFT's tables for ``model``, or None where PEFT leaves its configs alone."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type is None:
        return None  # not a transformers model
    try:
        import transformers
    except ImportError:  # then no model is a transformers one, nor are there tables
        return None
    if int(transformers.__version__.split(".")[0]) < 5:
        return None
    from transformers.conversion_mapping import (
        _MODEL_TO_CONVERSION_PATTERN,
        get_checkpoint_conversion_mapping,
    )

    if get_checkpoint_conversion_mapping(model_type) is None:
        return None
    family: str | None = {**_MODEL_TO_CONVERSION_PATTERN, **_FAMILY_OVERRIDES}.get(model_type)
    return None if family is None else _FAMILIES.get(family)


def _resolved(
    targets: str,
    settings: Mapping[str, Any],
    model: torch.nn.Module,
    family: _Moe,
    release: tuple[int, int],
) -> set[str]:
    """The entries PEFT 0.20 and later put in place of the str ``targets``."""
    if targets.lower() == _ALL_LINEAR:
        linear = all_linear_names(model, settings.get("task_type"))
        return {name.rpartition(".")[2] for name in linear} | set(family.renamed)
    config = SimpleNamespace(**{"target_parameters": None, **settings})
    modules = [name for name, _ in model.named_modules()]
    parameters = [name for name, _ in model.named_parameters()]
    found = {
        key.rpartition(".")[2]
        for key in modules + parameters
        if check_target_module_exists(config, key, release)
    }
    # A renamed name is no key of the model: PEFT tries it under each module holding its parameter
    # (never the router's gate: its parameter's last segment is "weight", not "gate.weight").
    holders: dict[str, set[str]] = {}
    for name in parameters:
        holder, _, leaf = name.rpartition(".")
        holders.setdefault(leaf, set()).add(holder)
    for old, new in family.renamed.items():
        if old not in found and any(
            check_target_module_exists(config, f"{holder}.{old}", release)
            for holder in holders.get(new, ())
        ):
            found.add(old)
    return found
