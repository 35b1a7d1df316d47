"""Saved adapters for the serving tests, made as users make them: real PEFT ``get_peft_model``
and ``save_pretrained`` on tiny transformers models, each beside the config.json of the model it
is served on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SMALL = {"hidden_size": 64, "intermediate_size": 128, "vocab_size": 256}
_ATTENTION = {"num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16}


def _llama(**extra: Any) -> dict[str, Any]:
    return {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "num_hidden_layers": 2,
        **_SMALL,
        **_ATTENTION,
        **extra,
    }


def _qwen3_moe(**extra: Any) -> dict[str, Any]:
    return {
        "model_type": "qwen3_moe",
        "architectures": ["Qwen3MoeForCausalLM"],
        "num_hidden_layers": 2,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 32,
        **_SMALL,
        **_ATTENTION,
        **extra,
    }


def _deepseek_v3(**extra: Any) -> dict[str, Any]:
    return {
        "model_type": "deepseek_v3",
        "architectures": ["DeepseekV3ForCausalLM"],
        "num_hidden_layers": 2,
        "first_k_dense_replace": 1,
        "n_routed_experts": 4,
        "n_shared_experts": 1,
        "num_experts_per_tok": 2,
        "n_group": 1,
        "topk_group": 1,
        "moe_intermediate_size": 32,
        "q_lora_rank": 32,
        "kv_lora_rank": 16,
        "qk_nope_head_dim": 16,
        "qk_rope_head_dim": 8,
        "v_head_dim": 16,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        # As real DeepSeek-V3 configs have them (SGLang's CPU rotary embedding takes only yarn).
        "rope_scaling": {
            "type": "yarn",
            "factor": 40,
            "original_max_position_embeddings": 4096,
            "beta_fast": 32,
            "beta_slow": 1,
            "mscale": 1.0,
            "mscale_all_dim": 1.0,
        },
        "moe_layer_freq": 1,
        "topk_method": "noaux_tc",
        "scoring_func": "sigmoid",
        "norm_topk_prob": True,
        "routed_scaling_factor": 2.5,
        **_SMALL,
        **extra,
    }


MODELS: dict[str, dict[str, Any]] = {
    "llama": _llama(),
    "llama-4-layers": _llama(num_hidden_layers=4),
    # The same names at other sizes: twice the hidden size, or twice the MLP's.
    "llama-hidden-128": _llama(hidden_size=128, intermediate_size=256),
    "llama-intermediate-256": _llama(intermediate_size=256),
    # Past the largest vocabulary whose output layer vLLM 0.33 gives a LoRA (258,048).
    "llama-large-vocabulary": _llama(vocab_size=262_144),
    "llama-classifier": _llama(architectures=["LlamaForSequenceClassification"], num_labels=2),
    "gemma3": {
        "model_type": "gemma3_text",
        "architectures": ["Gemma3ForCausalLM"],
        "num_hidden_layers": 2,
        **_SMALL,
        **_ATTENTION,
    },
    "qwen2": {
        "model_type": "qwen2",
        "architectures": ["Qwen2ForCausalLM"],
        "num_hidden_layers": 2,
        **_SMALL,
        **_ATTENTION,
    },
    "qwen3-moe": _qwen3_moe(),
    "qwen3-moe-sparse-every-2": _qwen3_moe(decoder_sparse_step=2),
    "qwen3-moe-dense-first": _qwen3_moe(mlp_only_layers=[0]),
    "mixtral": {
        "model_type": "mixtral",
        "architectures": ["MixtralForCausalLM"],
        "num_hidden_layers": 2,
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        **_SMALL,
        **_ATTENTION,
    },
    "deepseek-v3": _deepseek_v3(),
    # DeepSeek-V2-Lite's attention: no q_lora_rank, so q_proj where V3 has q_a_proj and q_b_proj.
    "deepseek-v2-lite": _deepseek_v3(q_lora_rank=None),
    "gpt2": {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "n_layer": 2,
        "n_embd": 64,
        "n_head": 4,
        "vocab_size": 256,
    },
    "gpt2-classifier": {
        "model_type": "gpt2",
        "architectures": ["GPT2ForSequenceClassification"],
        "n_layer": 2,
        "n_embd": 64,
        "n_head": 4,
        "vocab_size": 256,
        "num_labels": 2,
        "pad_token_id": 0,
    },
}


@dataclass(frozen=True)
class Case:
    """One adapter: the model it is trained on, its LoraConfig, the model it is served on
    (the same unless given), and a change to its saved tensor names (a renaming slip)."""

    trained_on: str
    lora: dict[str, Any]
    served_on: str | None = None
    rename: tuple[str, str] | None = None
    task: str = "CAUSAL_LM"
    # LoRA pairs added per expert, as transformers 4 named them (one module per expert): the
    # projections, on every expert of every layer (an adapter trained before transformers 5).
    per_expert: tuple[str, ...] = ()
    # The first expert's rank, where it differs from the others'.
    first_expert_rank: int | None = None
    # The saved tensors whose names hold this are dropped ("" drops them all).
    drop: str | None = None
    # LoRA pairs added as (module, in, out): a module the saved model's PEFT would not adapt.
    added: tuple[tuple[str, int, int], ...] = ()
    # Fields of adapter_config.json changed after saving.
    config_changes: tuple[tuple[str, Any], ...] = ()
    # The server's flags.
    flags: tuple[str, ...] = ()
    # The one engine the case is for (a flag the other has not), else None: every engine.
    only: str | None = None


_QKVO = ["q_proj", "k_proj", "v_proj", "o_proj"]
_PARAMETERS = ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]
_DENSE_MLP = tuple(
    (f"model.layers.0.mlp.{name}", *sizes)
    for name, sizes in (("gate_proj", (64, 128)), ("up_proj", (64, 128)), ("down_proj", (128, 64)))
)

# The cases of issue 19, each as a user would write it.
CASES: dict[str, Case] = {
    "llama-qkvo": Case("llama", {"target_modules": _QKVO}),
    "llama-mlp": Case("llama", {"target_modules": ["gate_proj", "up_proj", "down_proj"]}),
    "llama-lm-head": Case("llama", {"target_modules": ["q_proj", "v_proj", "lm_head"]}),
    "llama-embeddings": Case("llama", {"target_modules": ["q_proj", "embed_tokens"]}),
    "save-lm-head": Case("llama", {"target_modules": ["q_proj"], "modules_to_save": ["lm_head"]}),
    "save-embed-tokens": Case(
        "llama", {"target_modules": ["q_proj"], "modules_to_save": ["embed_tokens"]}
    ),
    "classifier-score": Case("llama-classifier", {"target_modules": _QKVO}, task="SEQ_CLS"),
    "classifier-served-as-causal-lm": Case(
        "llama-classifier", {"target_modules": ["q_proj"]}, served_on="llama", task="SEQ_CLS"
    ),
    "dora": Case("llama", {"target_modules": ["q_proj", "v_proj"], "use_dora": True}),
    "bias-lora-only": Case("llama", {"target_modules": ["q_proj"], "bias": "lora_only"}),
    "lora-bias": Case("llama", {"target_modules": ["q_proj"], "lora_bias": True}),
    "rank-pattern": Case("llama", {"target_modules": _QKVO, "r": 8, "rank_pattern": {"o_proj": 4}}),
    "rank-pattern-above-maximum": Case(
        "llama", {"target_modules": _QKVO, "r": 8, "rank_pattern": {"o_proj": 32}}
    ),
    "rslora": Case("llama", {"target_modules": _QKVO, "use_rslora": True}),
    "rank-32": Case("llama", {"target_modules": ["q_proj", "v_proj"], "r": 32}),
    "qwen3-moe-target-parameters": Case(
        "qwen3-moe", {"target_modules": ["q_proj"], "target_parameters": _PARAMETERS}
    ),
    "qwen3-moe-attention": Case("qwen3-moe", {"target_modules": _QKVO}),
    "qwen3-moe-per-expert": Case(
        "qwen3-moe",
        {"target_modules": ["q_proj"]},
        per_expert=("gate_proj", "up_proj", "down_proj"),
    ),
    "qwen3-moe-per-expert-without-up": Case(
        "qwen3-moe", {"target_modules": ["q_proj"]}, per_expert=("gate_proj", "down_proj")
    ),
    "mixtral-per-expert": Case(
        "mixtral", {"target_modules": ["q_proj"]}, per_expert=("w1", "w2", "w3")
    ),
    "deepseek-v3-kv-b-proj": Case(
        "deepseek-v3", {"target_modules": ["q_b_proj", "kv_b_proj", "o_proj"]}
    ),
    "deepseek-v3-lm-head": Case("deepseek-v3", {"target_modules": ["o_proj", "lm_head"]}),
    "mixtral-experts": Case(
        "mixtral", {"target_modules": ["q_proj"], "target_parameters": _PARAMETERS}
    ),
    "mixtral-attention": Case("mixtral", {"target_modules": _QKVO}),
    "gemma3": Case("gemma3", {"target_modules": _QKVO}),
    "gemma3-embeddings": Case("gemma3", {"target_modules": ["q_proj", "embed_tokens"]}),
    "wrong-prefix": Case(
        "llama",
        {"target_modules": _QKVO},
        rename=("base_model.model.model.layers.", "base_model.model.model.language_model.layers."),
    ),
    "layers-not-served": Case("llama-4-layers", {"target_modules": _QKVO}, served_on="llama"),
    "trainable-token-indices": Case(
        "llama", {"target_modules": ["q_proj"], "trainable_token_indices": [3, 5]}
    ),
    "pissa": Case("llama", {"target_modules": ["q_proj", "v_proj"], "init_lora_weights": "pissa"}),
    "gpt2": Case("gpt2", {"target_modules": ["c_attn"], "fan_in_fan_out": True}),
    # (SGLang builds this classifier only on an accelerator: "No accelerator ... is available")
    "gpt2-classifier": Case(
        "gpt2-classifier",
        {"target_modules": ["c_attn"], "fan_in_fan_out": True},
        task="SEQ_CLS",
        only="vllm",
    ),
    # Adapters broken on the way: vLLM fails on them without a message of its own.
    "empty": Case("llama", {"target_modules": _QKVO}, drop=""),
    "lora-a-only": Case("llama", {"target_modules": ["o_proj"], "lora_alpha": 16}, drop="lora_B"),
    "lora-a-only-at-scale-1": Case(
        "llama", {"target_modules": ["o_proj"], "lora_alpha": 8}, drop="lora_B"
    ),
    "lora-a-only-in-packed-modules-at-scale-1": Case(
        "llama", {"target_modules": ["q_proj", "v_proj"], "lora_alpha": 8}, drop="lora_B"
    ),
    "lora-b-only": Case("llama", {"target_modules": ["o_proj"]}, drop="lora_A"),
    "lora-b-only-in-packed-modules": Case(
        "llama", {"target_modules": ["q_proj", "v_proj"], "lora_alpha": 16}, drop="lora_A"
    ),
    "lora-b-only-under-another-prefix": Case(
        "llama",
        {"target_modules": ["o_proj"]},
        rename=("base_model.model.model.layers.", "base_model.model.model.language_model.layers."),
        drop="lora_A",
    ),
    "lora-a-only-in-packed-modules": Case(
        "llama", {"target_modules": ["q_proj", "v_proj"], "lora_alpha": 16}, drop="lora_B"
    ),
    "tensors-above-their-rank": Case(
        "llama", {"target_modules": ["o_proj"], "r": 32}, config_changes=(("r", 8),)
    ),
    "experts-of-two-ranks": Case(
        "qwen3-moe",
        {"target_modules": ["q_proj"]},
        per_expert=("gate_proj", "up_proj", "down_proj"),
        first_expert_rank=4,
    ),
    "large-vocabulary": Case("llama-large-vocabulary", {"target_modules": _QKVO}),
    # The layouts vLLM builds from a config's own switches.
    # (PEFT's rewriting moves gate/up/down to the experts' parameters on every layer, so the
    # dense layer's MLP LoRA is added as an adapter trained otherwise would hold it)
    "qwen3-moe-dense-layer-every-2": Case(
        "qwen3-moe-sparse-every-2", {"target_modules": ["q_proj"]}, added=_DENSE_MLP
    ),
    "qwen3-moe-dense-first-layer": Case(
        "qwen3-moe-dense-first", {"target_modules": ["q_proj"]}, added=_DENSE_MLP
    ),
    # Trained at one size, served at another (issue 28).
    "served-on-larger-hidden": Case(
        "llama", {"target_modules": _QKVO}, served_on="llama-hidden-128"
    ),
    "served-on-smaller-hidden": Case(
        "llama-hidden-128", {"target_modules": _QKVO}, served_on="llama"
    ),
    "served-on-larger-mlp": Case(
        "llama",
        {"target_modules": ["q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"]},
        served_on="llama-intermediate-256",
    ),
    # The server's --lora-target-modules: what it leaves out is never applied.
    "server-targets-o-proj": Case(
        "llama", {"target_modules": _QKVO}, flags=("--lora-target-modules", "o_proj")
    ),
    "server-targets-packed-parent": Case(
        "llama",
        {"target_modules": ["q_proj", "o_proj", "gate_proj", "up_proj"]},
        flags=("--lora-target-modules", "qkv_proj", "up_proj"),
    ),
    "served-on-smaller-mlp": Case(
        "llama-intermediate-256",
        {"target_modules": ["q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"]},
        served_on="llama",
    ),
    "rank-32-at-maximum-16": Case(
        "llama", {"target_modules": ["q_proj", "v_proj"], "r": 32}, flags=("--max-lora-rank", "16")
    ),
    # The cases of issue 28: SGLang's own rules, one at a time.
    "llama-qv": Case("llama", {"target_modules": ["q_proj", "v_proj"]}),
    "llama-kv-without-q": Case("llama", {"target_modules": ["k_proj", "v_proj"]}),
    "llama-kv-without-q-strict": Case(
        "llama",
        {"target_modules": ["k_proj", "v_proj"]},
        flags=("--lora-strict-loading",),
        only="sglang",
    ),
    "llama-up-without-gate": Case("llama", {"target_modules": ["up_proj", "down_proj"]}),
    "llama-qv-save-lm-head": Case(
        "llama", {"target_modules": ["q_proj", "v_proj"], "modules_to_save": ["lm_head"]}
    ),
    "llama-qv-lm-head": Case("llama", {"target_modules": ["q_proj", "v_proj", "lm_head"]}),
    "llama-all-linear": Case("llama", {"target_modules": "all-linear"}),
    "llama-regex-targets": Case("llama", {"target_modules": r".*\.(q|v)_proj"}),
    "server-targets-all": Case(
        "llama", {"target_modules": _QKVO}, flags=("--lora-target-modules", "all"), only="sglang"
    ),
    "server-targets-unknown-name": Case(
        "llama", {"target_modules": _QKVO}, flags=("--lora-target-modules", "w1")
    ),
    "qwen3-moe-qkv-target-parameters": Case(
        "qwen3-moe",
        {"target_modules": ["q_proj", "k_proj", "v_proj"], "target_parameters": _PARAMETERS},
    ),
    "qwen3-moe-qkv-per-expert": Case(
        "qwen3-moe",
        {"target_modules": ["q_proj", "k_proj", "v_proj"]},
        per_expert=("gate_proj", "up_proj", "down_proj"),
        config_changes=(
            ("target_modules", ["q_proj", "k_proj", "v_proj", "gate_proj", "up_proj", "down_proj"]),
        ),
    ),
    "qwen3-moe-qkv-per-expert-unlisted": Case(
        "qwen3-moe",
        {"target_modules": ["q_proj", "k_proj", "v_proj"]},
        per_expert=("gate_proj", "up_proj", "down_proj"),
    ),
    "qwen3-moe-qkv-per-expert-down-only": Case(
        "qwen3-moe",
        {"target_modules": ["q_proj", "k_proj", "v_proj"]},
        per_expert=("down_proj",),
        config_changes=(("target_modules", ["q_proj", "k_proj", "v_proj", "down_proj"]),),
    ),
    "mixtral-qkv-per-expert": Case(
        "mixtral",
        {"target_modules": ["q_proj", "k_proj", "v_proj"]},
        per_expert=("w1", "w2", "w3"),
        config_changes=(("target_modules", ["q_proj", "k_proj", "v_proj", "w1", "w2", "w3"]),),
    ),
    "mixtral-qkv-per-expert-as-gate-up-down": Case(
        "mixtral",
        {"target_modules": ["q_proj", "k_proj", "v_proj"]},
        per_expert=("w1", "w2", "w3"),
        config_changes=(
            ("target_modules", ["q_proj", "k_proj", "v_proj", "gate_proj", "up_proj", "down_proj"]),
        ),
    ),
    "qwen2-qkvo": Case("qwen2", {"target_modules": _QKVO}),
    "qwen2-all-linear": Case("qwen2", {"target_modules": "all-linear"}),
    "qwen2-embeddings": Case("qwen2", {"target_modules": ["q_proj", "v_proj", "embed_tokens"]}),
    "gemma3-qv-embeddings": Case(
        "gemma3", {"target_modules": ["q_proj", "v_proj", "embed_tokens"]}
    ),
    "gemma3-qv-lm-head": Case("gemma3", {"target_modules": ["q_proj", "v_proj", "lm_head"]}),
    "qwen3-moe-router": Case(
        "qwen3-moe", {"target_modules": ["q_proj", "k_proj", "v_proj", "gate"]}
    ),
    "deepseek-v3-q-a-proj": Case(
        "deepseek-v3", {"target_modules": ["q_a_proj", "kv_a_proj_with_mqa", "o_proj"]}
    ),
    "deepseek-v2-lite-attention": Case(
        "deepseek-v2-lite", {"target_modules": ["q_proj", "kv_a_proj_with_mqa", "kv_b_proj"]}
    ),
}


def model_folder(root: Path, name: str) -> Path:
    """A folder holding the config.json of the model ``name``, as transformers writes it."""
    import transformers

    folder = root / "models" / name
    if not (folder / "config.json").exists():
        settings = dict(MODELS[name])
        config = transformers.AutoConfig.for_model(settings.pop("model_type"), **settings)
        config.save_pretrained(folder)
    return folder


def make(root: Path, name: str) -> tuple[Path, Path]:
    """Train nothing, save the case's adapter: (adapter folder, served model's folder)."""
    import peft
    import torch
    import transformers

    case = CASES[name]
    adapter = root / "adapters" / name
    served = model_folder(root, case.served_on or case.trained_on)
    if (adapter / "adapter_config.json").exists():
        return adapter, served
    config = transformers.AutoConfig.from_pretrained(model_folder(root, case.trained_on))
    kind = {
        "CAUSAL_LM": transformers.AutoModelForCausalLM,
        "SEQ_CLS": transformers.AutoModelForSequenceClassification,
    }[case.task]
    torch.manual_seed(0)
    model = kind.from_config(config)
    lora = peft.LoraConfig(task_type=case.task, lora_dropout=0.0, **case.lora)
    peft.get_peft_model(model, lora).save_pretrained(adapter)
    if case.rename is not None or case.per_expert or case.drop is not None or case.added:
        _rewrite(adapter / "adapter_model.safetensors", case, config)
    if case.config_changes:
        saved = json.loads((adapter / "adapter_config.json").read_text())
        saved.update(case.config_changes)
        (adapter / "adapter_config.json").write_text(json.dumps(saved))
    return adapter, served


def _rewrite(file: Path, case: Case, config: Any) -> None:
    """Rename the saved tensors, or add per-expert ones, as a conversion script would."""
    import torch
    from safetensors.torch import load_file, save_file

    tensors = load_file(file)
    if case.rename is not None:
        tensors = {name.replace(*case.rename): t for name, t in tensors.items()}
    if case.drop is not None:
        tensors = {name: t for name, t in tensors.items() if case.drop not in name}
    for module, size_in, size_out in case.added:
        tensors[f"base_model.model.{module}.lora_A.weight"] = torch.zeros(8, size_in)
        tensors[f"base_model.model.{module}.lora_B.weight"] = torch.zeros(size_out, 8)
    hidden, inner = config.hidden_size, getattr(config, "moe_intermediate_size", None)
    inner = inner or config.intermediate_size
    block = "block_sparse_moe" if config.model_type == "mixtral" else "mlp"
    for layer in range(config.num_hidden_layers):
        for expert in range(config.num_local_experts if case.per_expert else 0):
            for projection in case.per_expert:
                inward = projection in ("gate_proj", "up_proj", "w1", "w3")
                size_in, size_out = (hidden, inner) if inward else (inner, hidden)
                name = (
                    f"base_model.model.model.layers.{layer}.{block}.experts.{expert}.{projection}"
                )
                rank = case.lora.get("r", 8)
                if expert == 0 and case.first_expert_rank is not None:
                    rank = case.first_expert_rank
                tensors[f"{name}.lora_A.weight"] = torch.zeros(rank, size_in)
                tensors[f"{name}.lora_B.weight"] = torch.zeros(size_out, rank)
    save_file(tensors, file)
