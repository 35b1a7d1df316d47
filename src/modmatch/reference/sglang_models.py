"""The modules SGLang 0.5.23 builds for a model, as far as LoRA goes, restated from its model
classes (``python/sglang/srt/models/``: ``llama.py``, ``qwen2.py``, ``qwen3.py``,
``qwen3_moe.py``, ``mixtral.py``, ``gemma3_causal.py``, ``deepseek_v2.py``) for the
architectures the built-in rules know."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["VERSION", "Layout", "Module", "layout"]

VERSION = "0.5.23"

# The way SGLang's LoRA layer for a module slices an adapter's weights before copying them
# (lora/layers.py: slice_lora_a_weights / slice_lora_b_weights): a column-parallel layer takes
# B's rows at the model's offsets, a row-parallel one A's columns; the others take both whole.
COLUMN, ROW, WHOLE, EXPERTS = "column", "row", "whole", "experts"


@dataclass(frozen=True)
class Module:
    """A module SGLang can wrap with a LoRA layer: its full name, how its layer slices, its
    input size and its output size per packed part (q, k, v for ``qkv_proj``)."""

    name: str
    slicing: str
    inputs: int
    outputs: tuple[int, ...]

    @property
    def leaf(self) -> str:
        return self.name.rpartition(".")[2]


@dataclass(frozen=True)
class Layout:
    """One model as SGLang builds it. ``modules``: the decoder layers' linear layers and fused
    experts; ``embedding_wrapped``: whether its embedding is a ``VocabParallelEmbedding`` (the
    only kind SGLang gives a LoRA layer); ``tied``: whether ``lm_head`` is the embedding;
    ``dense_mlp_buffers``: whether a MoE model keeps buffers for dense gate_up/down LoRA (it
    has shared experts); ``config``: transformers' text config, which sizes the buffers."""

    architecture: str
    layers: int
    modules: tuple[Module, ...]
    vocab_size: int
    hidden_size: int
    embedding_class: str
    embedding_wrapped: bool
    tied: bool
    experts: int
    dense_mlp_buffers: bool
    config: Any


def _get(config: Any, name: str, default: Any = None) -> Any:
    value = getattr(config, name, default)
    return default if value is None else value


def layout(config: Any) -> Layout:
    """What SGLang builds from a transformers config; ValueError for an architecture the
    restated model classes do not cover."""
    kind = getattr(config, "model_type", None)
    if kind not in _LAYERS:
        known = ", ".join(sorted(_LAYERS))
        raise ValueError(f"the built-in SGLang rules know {known}, not {kind!r}")
    hidden = config.hidden_size
    experts = _get(config, "num_experts") or _get(config, "num_local_experts") or 0
    experts = experts or _get(config, "n_routed_experts", 0)
    modules = tuple(
        module
        for layer in range(config.num_hidden_layers)
        for module in _LAYERS[kind](config, layer, f"model.layers.{layer}")
    )
    return Layout(
        architecture=(getattr(config, "architectures", None) or [kind])[0],
        layers=config.num_hidden_layers,
        modules=modules,
        vocab_size=config.vocab_size,
        hidden_size=hidden,
        embedding_class="Gemma3TextScaledWordEmbedding"
        if kind == "gemma3_text"
        else "VocabParallelEmbedding",
        embedding_wrapped=kind != "gemma3_text",
        tied=bool(getattr(config, "tie_word_embeddings", False)),
        experts=experts,
        dense_mlp_buffers=bool(
            _get(config, "n_shared_experts", 0)
            or _get(config, "shared_expert_intermediate_size", 0)
        ),
        config=config,
    )


def _head_dim(config: Any) -> int:
    return int(_get(config, "head_dim", config.hidden_size // config.num_attention_heads))


def _attention(config: Any, prefix: str) -> list[Module]:
    """QKVParallelLinear and RowParallelLinear (llama.py: LlamaAttention, and its likes)."""
    head, heads = _head_dim(config), config.num_attention_heads
    kv = head * _get(config, "num_key_value_heads", heads)
    return [
        Module(f"{prefix}.self_attn.qkv_proj", COLUMN, config.hidden_size, (head * heads, kv, kv)),
        Module(f"{prefix}.self_attn.o_proj", ROW, head * heads, (config.hidden_size,)),
    ]


def _mlp(prefix: str, hidden: int, inner: int) -> list[Module]:
    """MergedColumnParallelLinear and RowParallelLinear (llama.py: LlamaMLP)."""
    return [
        Module(f"{prefix}.gate_up_proj", COLUMN, hidden, (inner, inner)),
        Module(f"{prefix}.down_proj", ROW, inner, (hidden,)),
    ]


def _experts(prefix: str, hidden: int, inner: int, count: int) -> list[Module]:
    """A FusedMoE layer and its router, a ReplicatedLinear."""
    return [
        Module(f"{prefix}.experts", EXPERTS, hidden, (inner, inner)),
        Module(f"{prefix}.gate", WHOLE, hidden, (count,)),
    ]


def _dense(config: Any, layer: int, prefix: str) -> list[Module]:
    hidden = config.hidden_size
    return _attention(config, prefix) + _mlp(f"{prefix}.mlp", hidden, config.intermediate_size)


def _qwen3_moe(config: Any, layer: int, prefix: str) -> list[Module]:
    """qwen3_moe.py: Qwen3MoeDecoderLayer: sparse unless in mlp_only_layers or off the step."""
    hidden, step = config.hidden_size, _get(config, "decoder_sparse_step", 1)
    sparse = layer not in _get(config, "mlp_only_layers", []) and (layer + 1) % step == 0
    if sparse and _get(config, "num_experts", 0) > 0:
        mlp = _experts(f"{prefix}.mlp", hidden, config.moe_intermediate_size, config.num_experts)
    else:
        mlp = _mlp(f"{prefix}.mlp", hidden, config.intermediate_size)
    return _attention(config, prefix) + mlp


def _mixtral(config: Any, layer: int, prefix: str) -> list[Module]:
    """mixtral.py: MixtralDecoderLayer's block_sparse_moe."""
    moe = _experts(
        f"{prefix}.block_sparse_moe",
        config.hidden_size,
        config.intermediate_size,
        config.num_local_experts,
    )
    return _attention(config, prefix) + moe


def _deepseek(config: Any, layer: int, prefix: str) -> list[Module]:
    """deepseek_v2.py: DeepseekV2AttentionMLA (fused q_a and kv_a projections where the config
    has a q_lora_rank) and DeepseekV2DecoderLayer's MLP: MoE from first_k_dense_replace on,
    every moe_layer_freq layers (its router, MoEGate, is no linear layer)."""
    hidden, heads = config.hidden_size, config.num_attention_heads
    rope, nope, value = config.qk_rope_head_dim, config.qk_nope_head_dim, config.v_head_dim
    kv_rank, q_rank = config.kv_lora_rank, _get(config, "q_lora_rank")
    attention = f"{prefix}.self_attn"
    if q_rank:
        queries = [
            Module(
                f"{attention}.fused_qkv_a_proj_with_mqa", WHOLE, hidden, (q_rank, kv_rank + rope)
            ),
            Module(f"{attention}.q_b_proj", COLUMN, q_rank, (heads * (nope + rope),)),
        ]
    else:
        queries = [
            Module(f"{attention}.q_proj", COLUMN, hidden, (heads * (nope + rope),)),
            Module(f"{attention}.kv_a_proj_with_mqa", WHOLE, hidden, (kv_rank + rope,)),
        ]
    modules = [
        *queries,
        Module(f"{attention}.kv_b_proj", COLUMN, kv_rank, (heads * (nope + value),)),
        Module(f"{attention}.o_proj", ROW, heads * value, (hidden,)),
    ]
    first, every = _get(config, "first_k_dense_replace", 0), _get(config, "moe_layer_freq", 1)
    if _get(config, "n_routed_experts") and layer >= first and layer % every == 0:
        inner = config.moe_intermediate_size
        modules.append(Module(f"{prefix}.mlp.experts", EXPERTS, hidden, (inner, inner)))
        shared = _get(config, "n_shared_experts", 0)
        if shared:
            modules += _mlp(f"{prefix}.mlp.shared_experts", hidden, inner * shared)
    else:
        modules += _mlp(f"{prefix}.mlp", hidden, config.intermediate_size)
    return modules


def _unlayered(config: Any, layer: int, prefix: str) -> list[Module]:
    """gpt2.py: the blocks are ``h.N``, where SGLang's LoRA finds no layer number."""
    return []


_LAYERS = {
    "gpt2": _unlayered,
    "llama": _dense,
    "mistral": _dense,
    "qwen2": _dense,
    "qwen3": _dense,
    "gemma3_text": _dense,
    "qwen3_moe": _qwen3_moe,
    "mixtral": _mixtral,
    "deepseek_v2": _deepseek,
    "deepseek_v3": _deepseek,
}
