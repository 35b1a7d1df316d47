"""Axolotl 0.18.0's LoRA config for a model, worked out from its YAML settings.

Restates Axolotl 0.18.0's ``_build_peft_lora_config``, ``find_all_linear_names`` and
``_get_peft_task_type`` (src/axolotl/loaders/adapter.py, reached through ``load_adapter`` and
``load_lora``), ``get_linear_embedding_layers`` (loaders/utils.py), ``load_cfg``'s reading of the
file (cli/config.py), and what its config schema does to these settings first: their types and
defaults (utils/schemas/peft.py ``LoraConfig``) and the checks that refuse them (that class's
validators, ``check_lora_target_modules_regex`` and ``check_quantize_moe_experts`` in
utils/schemas/config.py, ``check_peft_layers_pattern`` in utils/schemas/validation.py).

``lora_exclude_modules`` is not in 0.18.0's schema, which drops keys it does not know, so Axolotl
never passes ``exclude_modules`` to PEFT. Empty targets are passed as they are (PEFT then refuses
the config). ``lora_dropout`` is passed as written: where PEFT would move fused MoE experts into
``target_parameters`` and refuse a dropout there, Axolotl patches PEFT to take it as 0 for those
(``_peft_will_auto_convert_target_params``), which changes no module wrapped. Plugins
(``plugins:``), which may add adapters and LoraConfig arguments of their own, are not run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import yaml_file

if TYPE_CHECKING:
    import torch

__all__ = [
    "CONFIG_CLASS",
    "KEYS",
    "NAME",
    "PARAMETER_DROPOUT",
    "PEFT_PIN",
    "RULES",
    "TITLE",
    "base_model",
    "build_model",
    "lora_config",
    "notes",
    "read",
]

NAME = "axolotl"
TITLE = "Axolotl 0.18.0"
RULES = "peft"
CONFIG_CLASS = "LoraConfig"
PEFT_PIN: str | None = "0.19.1"
PARAMETER_DROPOUT: float | None = 0.0
KEYS = frozenset(
    {"adapter", "base_model", "datasets", "lora_target_linear", "micro_batch_size", "sequence_len"}
)

# get_linear_embedding_layers: the output embedding find_all_linear_names leaves out, by model type.
_OUTPUT_EMBEDDING = {"gpt_neox": "embed_out"}
# find_all_linear_names skips this class although its name says Linear.
_NOT_LINEAR = "LlamaLinearScalingRotaryEmbedding"
_TRUE = {"1", "on", "t", "true", "y", "yes"}  # pydantic's bool strings, any case
_FALSE = {"0", "off", "f", "false", "n", "no"}


def base_model(settings: Mapping[str, Any]) -> str | None:
    """The model the config trains (``base_model``)."""
    value = settings.get("base_model")
    return value if isinstance(value, str) else None


def notes(settings: Mapping[str, Any], model: Any) -> list[str]:
    """Nothing to note."""
    return []


def build_model(settings: Mapping[str, Any], config: Any) -> None:
    """Axolotl trains transformers' own classes."""
    return None


def read(path: str | Path) -> dict[str, Any]:
    """The YAML file as Axolotl's ``load_cfg`` reads it: ``yaml.safe_load``, a mapping."""
    settings: dict[str, Any] = yaml_file.mapping(path, "an Axolotl config")
    return settings


def lora_config(settings: Mapping[str, Any], model: torch.nn.Module) -> dict[str, Any]:
    """The keyword arguments of the ``peft.LoraConfig`` Axolotl builds for ``model`` from
    ``settings`` (the fields that decide targeting); ValueError where Axolotl refuses them."""
    s = _validated(settings)
    targets = s["lora_target_modules"] or []
    if s["lora_target_linear"]:
        entries = targets if isinstance(targets, list) else [targets]  # a regex becomes an entry
        targets = sorted(set(entries) | _linear_names(model))
    return {
        "target_modules": targets,
        "exclude_modules": None,
        "target_parameters": s["lora_target_parameters"] or [],
        "layers_to_transform": s["peft_layers_to_transform"],
        "layers_pattern": s["peft_layers_pattern"],
        "modules_to_save": s["lora_modules_to_save"] or None,
        "lora_dropout": 0.0 if s["lora_dropout"] is None else s["lora_dropout"],
        "task_type": _task_type(model),
        "r": s["lora_r"],  # no default: PEFT fails on None when it wraps a layer
        "lora_alpha": s["lora_alpha"],
        "bias": "none",
        "use_dora": bool(s["peft_use_dora"]),
    }


def _validated(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings read here as the schema leaves them; ValueError where Axolotl refuses them."""
    adapter = settings.get("adapter")
    if adapter not in ("lora", "qlora"):
        raise ValueError(
            f"adapter {adapter!r}: Axolotl builds a peft.LoraConfig for adapter lora or qlora only"
        )
    if settings.get("lora_model_dir"):
        raise ValueError(
            f"lora_model_dir {settings['lora_model_dir']!r}: Axolotl loads that saved adapter, "
            "whose adapter_config.json decides what is wrapped, not these settings"
        )
    if settings.get("peft_layers_pattern") and not settings.get("peft_layers_to_transform"):
        raise ValueError(
            f"peft_layers_pattern {settings['peft_layers_pattern']!r}: Axolotl requires "
            "peft_layers_to_transform with it"
        )
    entries = settings.get("lora_target_modules")
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, str) and not _compiles(entry):
            raise ValueError(
                f"lora_target_modules entry {entry!r}: Axolotl refuses an invalid regex pattern"
            )
    if settings.get("quantize_moe_experts") and settings.get("lora_target_linear"):
        raise ValueError(
            f"lora_target_linear {settings['lora_target_linear']!r}: Axolotl refuses it with "
            "quantize_moe_experts (target expert weights with lora_target_parameters)"
        )
    s = {name: _typed(name, settings.get(name), kind) for name, kind in _SCHEMA.items()}
    if adapter == "qlora":
        _check_qlora(s)
    if s["lora_target_parameters"] and s["lora_dropout"]:
        raise ValueError(
            f"lora_dropout {s['lora_dropout']!r}: Axolotl requires 0 with lora_target_parameters "
            "(PEFT's ParamWrapper has no dropout)"
        )
    return s


def _check_qlora(s: dict[str, Any]) -> None:
    """``validate_qlora``: 4-bit loading to train, no quantized loading to merge."""
    merging = bool(s["merge_lora"])
    for name in ("load_in_8bit", "gptq", "load_in_4bit")[: 3 if merging else 2]:
        if s[name]:
            with_what = "adapter qlora and merge_lora" if merging else "adapter qlora"
            raise ValueError(f"{name} {s[name]!r}: Axolotl refuses it with {with_what}")
    if not s["merge_lora"] and not s["load_in_4bit"]:
        raise ValueError(
            f"load_in_4bit {s['load_in_4bit']!r}: Axolotl requires load_in_4bit: true for qlora"
        )


def _linear_names(model: Any) -> set[str]:
    """``find_all_linear_names``: last name segments of the Linear modules (by type or by class
    name), less the output embedding's name."""
    from torch import nn

    names = set()
    for name, module in model.named_modules():
        kind = type(module).__name__
        if isinstance(module, nn.Linear) or ("Linear" in kind and kind != _NOT_LINEAR):
            names.add(name.rpartition(".")[2])
    model_type: str = getattr(getattr(model, "config", None), "model_type", None) or ""
    names.discard(_OUTPUT_EMBEDDING.get(model_type, "lm_head"))
    return names


def _task_type(model: Any) -> str:
    """``_get_peft_task_type``: by the model's class name."""
    kind = type(model).__name__
    if "SequenceClassification" in kind:
        return "SEQ_CLS"
    if "TokenClassification" in kind:
        return "TOKEN_CLS"
    return "CAUSAL_LM"


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def _typed(name: str, value: Any, kind: Callable[[Any], Any]) -> Any:
    """``value`` as the schema's field of that kind takes it (pydantic's lax conversions)."""
    if value is None:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} {value!r}: Axolotl's schema takes {kind.__doc__} here") from None


def _int(value: Any) -> int:
    """an integer"""
    if isinstance(value, str):
        value = float(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return int(value)  # a bool is 0 or 1
    raise TypeError


def _float(value: Any) -> float:
    """a number"""
    if isinstance(value, (str, int, float)):
        return float(value)
    raise TypeError


def _bool(value: Any) -> bool:
    """true or false"""
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise TypeError


def _str(value: Any) -> str:
    """a string"""
    if isinstance(value, str):
        return value
    raise TypeError


def _strs(value: Any) -> list[str]:
    """a list of strings"""
    if isinstance(value, (list, tuple)):
        return [_str(item) for item in value]
    raise TypeError


def _str_or_strs(value: Any) -> str | list[str]:
    """a string or a list of strings"""
    return value if isinstance(value, str) else _strs(value)


def _ints(value: Any) -> list[int]:
    """a list of integers"""
    if isinstance(value, (list, tuple)):
        return [_int(item) for item in value]
    raise TypeError


# The schema's type of each setting read here.
_SCHEMA: dict[str, Callable[[Any], Any]] = {
    "lora_target_modules": _str_or_strs,
    "lora_target_parameters": _str_or_strs,
    "lora_target_linear": _bool,
    "lora_modules_to_save": _strs,
    "peft_layers_to_transform": _ints,
    "peft_layers_pattern": _strs,
    "lora_r": _int,
    "lora_alpha": _int,
    "lora_dropout": _float,
    "peft_use_dora": _bool,
    "load_in_4bit": _bool,
    "load_in_8bit": _bool,
    "gptq": _bool,
    "merge_lora": _bool,
}
