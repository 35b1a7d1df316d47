"""TRL 1.16.0's LoRA config for a model, worked out from a ``trl sft --config`` YAML file.

Restates, from TRL 1.16.0:

- the reading of the file: ``make_parser`` (trl/scripts/sft.py) hands ``ScriptArguments``,
  ``SFTConfig``, ``ModelConfig`` and ``DatasetMixtureConfig`` to ``TrlParser``, whose
  ``parse_args_and_config`` (trl/scripts/utils.py) reads the file with ``yaml.safe_load``,
  refuses anything but a mapping, sets its ``env`` mapping aside, and makes every other key that
  names an argument that argument's default (``set_defaults_with_config``). argparse converts a
  default only where it is a str, by the argument's type (trl/scripts/_hf_argparser.py
  ``HfArgumentParser._parse_dataclass_field``: ``int``, ``float``, ``string_to_bool``, and
  ``str`` for a list's entries), so any other value reaches the dataclass as written. Keys no
  argument knows are passed on (``trl sft`` gives them to ``accelerate launch``), not refused;
- ``ModelConfig`` (trl/trainer/model_config.py): its defaults, and its ``__post_init__``, which
  refuses 8-bit with 4-bit loading and turns a ``lora_target_modules`` of one item into that
  item: ``[q_proj]`` becomes the str ``'q_proj'``, which PEFT reads as one regex over the whole
  module name (it matches no module), while ``[all-linear]`` becomes PEFT's ``'all-linear'``;
- ``get_peft_config`` (trl/trainer/utils.py): no config at all unless ``use_peft`` (tested with
  ``is False``: a 0 or a null still adds the adapter), else ``LoraConfig`` with ``bias="none"``,
  ``target_parameters`` only where given, and the other settings as they are;
- the model ``SFTTrainer`` trains (trl/trainer/sft_trainer.py ``__init__`` through
  ``create_model_from_path`` in trl/trainer/utils.py): the transformers class the config's
  ``architectures[0]`` names, else (remote code) a causal LM.

Not restated: with ``chat_template_path`` naming a tokenizer, ``SFTTrainer`` clones its chat
template and, where that adds tokens, adds ``lm_head`` to ``modules_to_save`` and trains the new
tokens' embeddings (``trainable_token_indices``); which tokens that adds only the tokenizers
tell. Where a key is also given on the command line, the command line wins; only the file is
read here.
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

NAME = "trl"
TITLE = "TRL 1.16.0"
RULES = "peft"
CONFIG_CLASS = "LoraConfig"
PEFT_PIN: str | None = None  # TRL 1.16.0 takes any peft>=0.13: the installed PEFT's rules
PARAMETER_DROPOUT: float | None = None
# Settings of TRL's own dataclasses (ModelConfig, ScriptArguments, SFTConfig) no other
# front-end's configs use.
KEYS = frozenset(
    {
        "use_peft",
        "lora_task_type",
        "dataset_name",
        "dataset_train_split",
        "dataset_test_split",
        "dataset_text_field",
        "chat_template_path",
        "completion_only_loss",
        "assistant_only_loss",
    }
)

_ALL_LINEAR = "all-linear"  # PEFT's word for every Linear layer, in any case
_PLAIN_NAME = re.compile(r"[\w.]+")


def _bool(value: str) -> bool:
    """true or false (yes/no, true/false, t/f, y/n, 1/0, in any case)"""
    if value.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if value.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise ValueError(value)


def _int(value: str) -> int:
    """an integer"""
    return int(value)


def _float(value: str) -> float:
    """a number"""
    return float(value)


def _str(value: str) -> str:
    """a string"""
    return value


# The ModelConfig settings read here: their defaults, and how argparse converts a str value.
_SETTINGS: dict[str, tuple[Any, Callable[[str], Any]]] = {
    "use_peft": (False, _bool),
    "lora_r": (16, _int),
    "lora_alpha": (32, _int),
    "lora_dropout": (0.05, _float),
    "lora_target_modules": (None, _str),
    "lora_target_parameters": (None, _str),
    "lora_modules_to_save": (None, _str),
    "lora_task_type": ("CAUSAL_LM", _str),
    "use_rslora": (False, _bool),
    "use_dora": (False, _bool),
    "load_in_8bit": (False, _bool),
    "load_in_4bit": (False, _bool),
}


def base_model(settings: Mapping[str, Any]) -> str | None:
    """The model the config trains (``model_name_or_path``)."""
    value = settings.get("model_name_or_path")
    return value if isinstance(value, str) else None


def build_model(settings: Mapping[str, Any], config: Any) -> Any | None:
    """The model ``create_model_from_path`` builds: the transformers class ``architectures[0]``
    names, else a causal LM. None where the config names no class (TRL would fail on it):
    transformers' default class stands in."""
    import transformers

    names = getattr(config, "architectures", None)
    if not names:
        return None
    kind = getattr(transformers, str(names[0]), None)
    if kind is None:
        return transformers.AutoModelForCausalLM.from_config(config)
    return kind(config)


def read(path: str | Path) -> dict[str, Any]:
    """The YAML file as ``TrlParser.parse_args_and_config`` reads it: ``yaml.safe_load``, a
    mapping, its ``env`` (a mapping) set aside."""
    settings: dict[str, Any] = yaml_file.mapping(path, "a TRL config")
    env = settings.pop("env", {})
    if not isinstance(env, dict):
        raise ValueError(f"{path}: env {env!r}: TRL takes a mapping of environment variables")
    return settings


def lora_config(settings: Mapping[str, Any], model: torch.nn.Module | None) -> dict[str, Any]:
    """The keyword arguments of the ``peft.LoraConfig`` TRL's ``get_peft_config`` builds from
    ``settings``, whatever the model; ValueError where TRL builds none, or it or PEFT refuses
    (PEFT's causal-LM wrapper on ``model``, where given, a model that does not generate)."""
    s = _model_config(settings)
    if s["use_peft"] is False:
        written = "use_peft False" if "use_peft" in settings else "use_peft not set (False)"
        raise ValueError(
            f"{written}: TRL's get_peft_config builds no LoRA config, so TRL trains the whole "
            "model and no lora_* setting applies (set use_peft: true for LoRA)"
        )
    _check_targets(s)
    _check_task_type(s, model)
    built = {
        "task_type": s["lora_task_type"],
        "r": s["lora_r"],
        "target_modules": _copy(s["lora_target_modules"]),
        "lora_alpha": s["lora_alpha"],
        "lora_dropout": s["lora_dropout"],
        "bias": "none",
        "use_rslora": s["use_rslora"],
        "use_dora": s["use_dora"],
        "modules_to_save": _copy(s["lora_modules_to_save"]),
    }
    if s["lora_target_parameters"] is not None:
        built["target_parameters"] = _copy(s["lora_target_parameters"])
    return built


def notes(settings: Mapping[str, Any], model: Any) -> list[str]:
    """What TRL does with these settings that their reader may not expect, in a line each."""
    found = []
    written = settings.get("lora_target_modules")
    if isinstance(written, list) and len(written) == 1 and isinstance(written[0], str):
        entry = written[0]
        if entry.lower() != _ALL_LINEAR:
            found.append(_one_entry_note(written, entry))
    use_peft = settings.get("use_peft", False)
    if not isinstance(use_peft, (bool, str)):
        found.append(
            f"use_peft {use_peft!r}: TRL adds the LoRA adapter for any value but false "
            "(get_peft_config tests `use_peft is False`)"
        )
    template = settings.get("chat_template_path")
    if isinstance(template, str) and not template.endswith((".jinja", ".j2")):
        found.append(
            f"chat_template_path {template!r}: where the chat template TRL clones adds tokens, "
            "SFTTrainer also trains lm_head (modules_to_save) and the new tokens' embeddings, "
            "which this preview does not show"
        )
    return found


def _one_entry_note(written: list[str], entry: str) -> str:
    """Why a one-entry target list is read as a regex, and what to write instead."""
    advice = "write the regex yourself"
    if _PLAIN_NAME.fullmatch(entry):
        regex = ".*\\." + re.escape(entry)
        advice = f"to match it as a name's last segments write two entries, or the regex {regex!r}"
    return (
        f"lora_target_modules {written!r}: TRL's ModelConfig passes a one-entry list as its entry, "
        f"the str {entry!r}, which PEFT reads as one regex over the whole module name; {advice}"
    )


def _model_config(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings read here as ``ModelConfig`` holds them: defaults, argparse's conversion of
    str values, ``__post_init__``; ValueError where TRL refuses them."""
    s = {}
    for name, (default, kind) in _SETTINGS.items():
        value = settings.get(name, default)
        if isinstance(value, str):
            try:
                value = kind(value)
            except ValueError:
                raise ValueError(
                    f"{name} {value!r}: TRL's parser takes {kind.__doc__} here"
                ) from None
        s[name] = value
    if s["load_in_8bit"] and s["load_in_4bit"]:
        raise ValueError(
            f"load_in_8bit {s['load_in_8bit']!r}: TRL's ModelConfig refuses it with load_in_4bit"
        )
    targets = s["lora_target_modules"]
    if isinstance(targets, (list, str)) and len(targets) == 1:  # a mapping TRL fails on
        s["lora_target_modules"] = targets[0]
    return s


def _check_targets(s: dict[str, Any]) -> None:
    """ValueError for target and saved-module settings PEFT cannot read as names."""
    targets = s["lora_target_modules"]
    if not (targets is None or isinstance(targets, str) or _names(targets)):
        raise ValueError(
            f"lora_target_modules {targets!r}: PEFT takes a list of module names or one regex"
        )
    parameters = s["lora_target_parameters"]
    if not (parameters is None or isinstance(parameters, str) or _names(parameters)):
        raise ValueError(f"lora_target_parameters {parameters!r}: PEFT takes parameter names")
    to_save = s["lora_modules_to_save"]
    if isinstance(to_save, str):
        raise ValueError(
            f"lora_modules_to_save {to_save!r}: TRL passes a str as it is, and PEFT takes each "
            f"of its characters for a module name (it would copy whole blocks to train): write "
            f"a list, [{to_save}]"
        )
    if not (to_save is None or _names(to_save)):
        raise ValueError(f"lora_modules_to_save {to_save!r}: PEFT takes a list of module names")


def _check_task_type(s: dict[str, Any], model: Any) -> None:
    """ValueError where PEFT's causal-LM wrapper cannot take the model TRL builds: one that does
    not generate (``PeftModelForCausalLM`` reads its ``prepare_inputs_for_generation``)."""
    task_type = s["lora_task_type"]
    if task_type != "CAUSAL_LM" or model is None:
        return
    if not hasattr(model, "prepare_inputs_for_generation"):
        kind = type(model).__name__
        raise ValueError(
            f"lora_task_type {task_type!r}: TRL builds {kind} (the class the config's "
            "architectures names), which does not generate, and PEFT's causal-LM wrapper fails "
            "on it: set lora_task_type to the model's task (SEQ_CLS for a classifier)"
        )


def _names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _copy(value: Any) -> Any:
    """A list copied (PEFT may extend it in place); anything else as it is."""
    return list(value) if isinstance(value, list) else value
