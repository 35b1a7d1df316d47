"""Real adapter_config.json files, as PEFT's save_pretrained wrote them in public repositories
(tests/fixtures/adapter_configs, sources in its SOURCES.md): on a tiny model of each base model's
type, built on the meta device, `modmatch preview FILE --model DIR --json` selects the modules
get_peft_model wraps, or exits 2 where get_peft_model raises; the single-command form alike."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from modmatch.cli import main
from oracles import oracle

FIXTURES = Path(__file__).parent.parent / "fixtures" / "adapter_configs"

# The model_type of each file's base model (base_model_name_or_path), the one it is tested on.
MODEL_TYPES = {
    "bert-seq-cls.json": "bert",
    "distilbert-seq-cls.json": "distilbert",
    "flan-t5-seq2seq.json": "t5",
    "gemma3-unsloth-regex.json": "gemma3",
    "gemma4-exclude-regex.json": "gemma4",
    "gpt-oss-20b.json": "gpt_oss",
    "gpt2-conv1d.json": "gpt2",
    "gpt2-seq-cls.json": "gpt2",
    "llama2-old-peft.json": "llama",
    "mistral-7b-r1.json": "mistral",
    "mixtral-8x7b.json": "mixtral",
    "nemotron-3-nano-moe.json": "nemotron_h",
    "phi-1_5.json": "phi",
    "phi3-mini.json": "phi3",
    "qwen2.5-7b.json": "qwen2",
    "qwen3.5-peft-0.21.json": "qwen3_5",
    "roberta-seq-cls.json": "roberta",
}

# Two layers, tiny widths; the names each config class maps these to are its own.
_SMALL = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 8,
    "vocab_size": 64,
    "pad_token_id": 0,
    "bos_token_id": 0,
    "eos_token_id": 0,
}
# Where _SMALL does not do: sizes it does not name, and the multimodal configs' parts.
_TINY: dict[str, dict[str, Any]] = {
    "t5": _SMALL | {"d_ff": 32, "d_kv": 8, "num_decoder_layers": 2},
    # Its default layers, one each of Mamba, MoE, attention and MLP, and its default
    # time_step_limit (0, inf), which config.json holds in transformers' encoding of inf.
    "nemotron_h": _SMALL
    | {
        "mamba_num_heads": 4,
        "mamba_head_dim": 8,
        "n_groups": 1,
        "ssm_state_size": 4,
        "chunk_size": 8,
        "n_routed_experts": 2,
        "moe_intermediate_size": 8,
        "moe_shared_expert_intermediate_size": 8,
    },
    "qwen3_5": {
        "text_config": _SMALL
        | {
            "layer_types": ["linear_attention", "full_attention"],
            "linear_key_head_dim": 8,
            "linear_value_head_dim": 8,
            "linear_num_key_heads": 2,
            "linear_num_value_heads": 2,
        },
    },
    "gemma3": {
        "text_config": _SMALL,
        "vision_config": {
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 28,
            "patch_size": 14,
        },
        "mm_tokens_per_image": 4,
    },
    "gemma4": {
        "text_config": _SMALL
        | {"vocab_size_per_layer_input": 64, "hidden_size_per_layer_input": 8},
        "vision_config": {
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "head_dim": 8,
        },
        "audio_config": {
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "subsampling_conv_channels": [8, 4],
            "output_proj_dims": 16,
        },
    },
}
# The model class PEFT's task_type is meant for; AutoModelForCausalLM for the rest.
_AUTO_CLASS = {
    "SEQ_CLS": "AutoModelForSequenceClassification",
    "SEQ_2_SEQ_LM": "AutoModelForSeq2SeqLM",
}


def _real_peft(settings: dict[str, Any], config: Any) -> tuple[set[str] | None, str]:
    """The modules get_peft_model wraps (None where it raises) and its error."""
    peft, transformers = oracle("peft"), oracle("transformers")
    import torch

    auto_class = _AUTO_CLASS.get(settings.get("task_type"), "AutoModelForCausalLM")
    if hasattr(config, "text_config") and auto_class == "AutoModelForCausalLM":
        # A vision-language model: the trainers build its image-text-to-text class.
        auto_class = "AutoModelForImageTextToText"
    with torch.device("meta"):
        model = getattr(transformers, auto_class).from_config(config)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the fields this PEFT does not know, and its advice
            # As PeftConfig.from_pretrained reads the file: the config class of its peft_type,
            # given the fields that class takes (the others dropped, with a warning).
            adapted = peft.get_peft_model(model, peft.PeftConfig.from_peft_type(**settings))
    except Exception as error:  # whatever get_peft_model raises is its refusal
        return None, f"{type(error).__name__}: {error}"
    wrapped = {
        name.removeprefix("base_model.model.").replace(".base_layer", "")
        for name, module in adapted.named_modules()
        if hasattr(module, "base_layer")
    }
    return wrapped, ""


def _modmatch(capsys: Any, file: Path, folder: Path) -> tuple[set[str] | None, str]:
    """The modules `modmatch preview` says PEFT wraps (None where it exits 2) and its stderr;
    the single-command form answers alike."""
    code = main(["preview", str(file), "--model", str(folder), "--json"])
    out, err = capsys.readouterr()
    assert code in (0, 2), err
    old_code = main(["--peft-config", str(file), "--hf-config", str(folder), "--json"])
    old, _ = capsys.readouterr()
    assert old_code == code
    if code == 0:
        assert json.loads(old)["selected_names"] == json.loads(out)["selected_names"]
    return (set(json.loads(out)["selected_names"]) if code == 0 else None), err


@pytest.mark.parametrize("file", sorted(FIXTURES.glob("*.json")), ids=lambda file: file.name)
def test_modmatch_previews_what_peft_wraps(file: Path, tmp_path: Path, capsys: Any) -> None:
    transformers = oracle("transformers")
    model_type = MODEL_TYPES[file.name]
    if model_type not in transformers.CONFIG_MAPPING:  # older releases (PEFT 0.18.1's 5.8.0)
        pytest.skip(f"transformers {transformers.__version__} has no model type {model_type}")
    config = transformers.AutoConfig.for_model(model_type, **_TINY.get(model_type, _SMALL))
    config.save_pretrained(str(tmp_path))
    settings = json.loads(file.read_text(encoding="utf-8"))

    peft_wraps, peft_error = _real_peft(settings, config)
    modmatch_wraps, modmatch_error = _modmatch(capsys, file, tmp_path)

    if peft_wraps is None:
        assert modmatch_wraps is None, (peft_error, sorted(modmatch_wraps))
        # Refused by PEFT's rules, not for want of the model.
        assert "cannot build a model" not in modmatch_error, (peft_error, modmatch_error)
    else:
        assert modmatch_wraps is not None, (sorted(peft_wraps), modmatch_error[:300])
        assert sorted(modmatch_wraps) == sorted(peft_wraps)
