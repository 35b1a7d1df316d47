"""PEFT's default LoRA targets by model type, release by release: what ``get_peft_model`` puts in
place of ``target_modules=None`` (``TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING`` in
``peft/utils/constants.py``, read by ``LoraModel._prepare_adapter_config``).

Read from the released wheels. A tuple is a list of entries; a str is a regex.
"""

from __future__ import annotations

__all__ = ["MISSING", "lora_default_targets"]

# PEFT's message where the model type has no defaults and no target_parameters are given.
MISSING = "Please specify `target_modules` or `target_parameters`in `peft_config`"

_IN_0_17: dict[str, tuple[str, ...] | str] = {
    "RefinedWeb": ("query_key_value",),
    "RefinedWebModel": ("query_key_value",),
    "bart": ("q_proj", "v_proj"),
    "bert": ("query", "value"),
    "blip-2": ("q", "v", "q_proj", "v_proj"),
    "bloom": ("query_key_value",),
    "btlm": ("c_proj", "c_attn"),
    "chatglm": ("query_key_value",),
    "codegen": ("qkv_proj",),
    "deberta": ("in_proj",),
    "deberta-v2": ("query_proj", "value_proj"),
    "electra": ("query", "value"),
    "falcon": ("query_key_value",),
    "gemma": ("q_proj", "v_proj"),
    "gemma2": ("q_proj", "v_proj"),
    "gemma3_text": ("q_proj", "v_proj"),
    "gpt2": ("c_attn",),
    "gpt_bigcode": ("c_attn",),
    "gpt_neo": ("q_proj", "v_proj"),
    "gpt_neox": ("query_key_value",),
    "gptj": ("q_proj", "v_proj"),
    "layoutlm": ("query", "value"),
    "llama": ("q_proj", "v_proj"),
    "llama4": ("q_proj", "v_proj"),
    "mistral": ("q_proj", "v_proj"),
    "mixtral": ("q_proj", "v_proj"),
    "mpt": ("Wqkv",),
    "mt5": ("q", "v"),
    "opt": ("q_proj", "v_proj"),
    "phi": ("q_proj", "v_proj", "fc1", "fc2"),
    "qwen2": ("q_proj", "v_proj"),
    "qwen3": ("q_proj", "v_proj"),
    "roberta": ("query", "value"),
    "stablelm": ("q_proj", "v_proj"),
    "t5": ("q", "v"),
    "xlm-roberta": ("query", "value"),
}
# What each later release adds; none changes or removes an entry.
_ADDED: dict[tuple[int, int], dict[str, tuple[str, ...] | str]] = {
    (0, 18): {
        "rwkv": ("key", "value", "receptance", "output"),
        "rwkv7": ("r_proj", "k_proj", "v_proj", "o_proj", "key", "value"),
    },
    (0, 19): {"gemma4": r".*language_model\..*\.(q_proj|v_proj)"},
    (0, 20): {"nemotron_h": ("q_proj", "k_proj", "v_proj", "o_proj")},
}


def lora_default_targets(release: tuple[int, int]) -> dict[str, tuple[str, ...] | str]:
    """The table of PEFT ``release`` (``(major, minor)``, 0.17 or later)."""
    table = dict(_IN_0_17)
    for since, added in _ADDED.items():
        if release >= since:
            table.update(added)
    return table
