"""The served model's side of vLLM 0.33.0's LoRA loading, restated per architecture from
``vllm/model_executor/models``: which modules vLLM builds, packs and wraps with a LoRA layer."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ARCHITECTURES", "VERSION", "Layout", "layout"]

VERSION = "0.33.0"


@dataclass(frozen=True)
class Layout:
    """What vLLM builds for one model, as far as LoRA goes.

    ``wrapped``: the full names of the modules that get a LoRA layer. ``supported``: the last
    segments vLLM counts as LoRA modules (``get_supported_lora_modules``; this also holds the
    ``embedding_modules`` of a model that builds no layer for them). ``packed``: each packed
    module's last segment and the modules it holds (``packed_modules_mapping``, with
    ``experts`` expanded per expert). ``renames``: the substring renames of the model's
    ``hf_to_vllm_mapper`` applied to the adapter's names (None: the model has no mapper).
    ``held_by_attention``: wrapped modules whose base layer the attention backend keeps and
    calls itself, so their LoRA never runs (MLA's ``kv_b_proj``, vllm-project/vllm#48974).
    ``head``: a pooling model's classification head, with (labels, hidden size).
    """

    architecture: str
    supports_lora: bool = True
    wrapped: tuple[str, ...] = ()
    supported: tuple[str, ...] = ()
    packed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    renames: tuple[tuple[str, str], ...] | None = ()
    held_by_attention: frozenset[str] = frozenset()
    head: tuple[str, int, int] | None = None
    vocab_size: int | None = None

    @property
    def pooling(self) -> bool:
        return self.head is not None


def _config(config: Any, name: str, default: Any = None) -> Any:
    """A config attribute as vLLM reads it (transformers' attribute maps apply: Qwen3-MoE's
    ``num_experts`` is saved as ``num_local_experts``)."""
    value = getattr(config, name, default)
    return default if value is None else value


def _dense_attention(prefix: str) -> list[str]:
    return [f"{prefix}.self_attn.qkv_proj", f"{prefix}.self_attn.o_proj"]


def _dense_mlp(prefix: str) -> list[str]:
    return [f"{prefix}.gate_up_proj", f"{prefix}.down_proj"]


_QKV = {"qkv_proj": ("q_proj", "k_proj", "v_proj")}
_GATE_UP = {"gate_up_proj": ("gate_proj", "up_proj")}
_EMBEDDINGS = ("model.embed_tokens", "lm_head")


def _experts(config: Any, count_key: str, names: tuple[str, ...]) -> dict[str, Any]:
    """``experts`` as ``process_packed_modules_mapping`` expands it: every expert's three
    projections, in vLLM's order (gate, down, up)."""
    count = int(_config(config, count_key, 0))
    return {"experts": tuple(f"experts.{e}.{n}" for e in range(count) for n in names)}


def _llama(config: Any) -> Layout:
    """models/llama.py:LlamaForCausalLM (Gemma 3 text differs only in its embeddings)."""
    layers = int(_config(config, "num_hidden_layers", 0))
    wrapped = [
        name
        for i in range(layers)
        for name in _dense_attention(f"model.layers.{i}") + _dense_mlp(f"model.layers.{i}.mlp")
    ]
    return Layout(
        "LlamaForCausalLM",
        wrapped=(*_EMBEDDINGS, *wrapped),
        supported=("qkv_proj", "o_proj", "gate_up_proj", "down_proj", "embed_tokens", "lm_head"),
        packed={**_QKV, **_GATE_UP},
        vocab_size=int(_config(config, "vocab_size", 0)),
    )


def _llama_classifier(config: Any) -> Layout:
    """models/adapters.py:as_seq_cls_model over LlamaForCausalLM: a top-level ``score`` head,
    and no ``lm_head`` layer (it stays a supported name)."""
    causal = _llama(config)
    labels = int(_config(config, "num_labels", 2))
    return Layout(
        "LlamaForSequenceClassification",
        wrapped=(*(n for n in causal.wrapped if n != "lm_head"), "score"),
        supported=(*causal.supported, "score"),
        packed=causal.packed,
        head=("score", labels, int(_config(config, "hidden_size", 0))),
        vocab_size=causal.vocab_size,
    )


def _without_embeddings(architecture: str) -> Callable[[Any], Layout]:
    """Llama's layers and no ``embedding_modules``: models/gemma3.py:Gemma3ForCausalLM and
    models/qwen2.py:Qwen2ForCausalLM."""

    def layout(config: Any) -> Layout:
        llama = _llama(config)
        return Layout(
            architecture,
            wrapped=tuple(n for n in llama.wrapped if n not in _EMBEDDINGS),
            supported=("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
            packed=llama.packed,
            vocab_size=llama.vocab_size,
        )

    return layout


def _qwen3_moe(config: Any) -> Layout:
    """models/qwen3_moe.py: a sparse block (router ``gate``, ``experts``) on the layers
    ``mlp_only_layers`` leaves out and ``decoder_sparse_step`` picks, a dense MLP elsewhere;
    ``gate_up_proj`` is packed only where ``mlp_only_layers`` is set."""
    layers = int(_config(config, "num_hidden_layers", 0))
    dense_only = set(_config(config, "mlp_only_layers", []))
    experts = int(_config(config, "num_experts", 0))
    step = int(_config(config, "decoder_sparse_step", 1))
    shared = int(_config(config, "shared_expert_intermediate_size", 0)) > 0
    wrapped: list[str] = list(_EMBEDDINGS)
    for i in range(layers):
        prefix = f"model.layers.{i}"
        wrapped += _dense_attention(prefix)
        if i not in dense_only and experts > 0 and (i + 1) % step == 0:
            wrapped += [f"{prefix}.mlp.gate", f"{prefix}.mlp.experts"]
            if shared:
                wrapped += [f"{prefix}.mlp.shared_expert_gate"]
                wrapped += _dense_mlp(f"{prefix}.mlp.shared_expert")
        else:
            wrapped += _dense_mlp(f"{prefix}.mlp")
    return Layout(
        "Qwen3MoeForCausalLM",
        wrapped=tuple(wrapped),
        supported=_last_segments(wrapped),
        packed={
            **_QKV,
            **(_GATE_UP if dense_only else {}),
            **_experts(config, "num_experts", ("gate_proj", "down_proj", "up_proj")),
        },
        vocab_size=int(_config(config, "vocab_size", 0)),
    )


def _mixtral(config: Any) -> Layout:
    """models/mixtral.py: the MoE block is ``block_sparse_moe`` (where transformers names it
    ``mlp``), its experts' projections ``w1``/``w2``/``w3``; the model's weights mapper renames
    ``gate_proj``/``up_proj``/``down_proj`` to those, in LoRA names too."""
    layers = int(_config(config, "num_hidden_layers", 0))
    wrapped: list[str] = list(_EMBEDDINGS)
    for i in range(layers):
        prefix = f"model.layers.{i}"
        wrapped += _dense_attention(prefix)
        wrapped += [f"{prefix}.block_sparse_moe.gate", f"{prefix}.block_sparse_moe.experts"]
    return Layout(
        "MixtralForCausalLM",
        wrapped=tuple(wrapped),
        supported=_last_segments(wrapped),
        packed={**_QKV, **_experts(config, "num_local_experts", ("w1", "w2", "w3"))},
        renames=((".gate_proj.", ".w1."), (".up_proj.", ".w3."), (".down_proj.", ".w2.")),
        vocab_size=int(_config(config, "vocab_size", 0)),
    )


def _deepseek(config: Any) -> Layout:
    """models/deepseek_v2.py:DeepseekV2ForCausalLM (V3 is the same class): MLA attention
    (``q_a_proj`` and ``kv_a_proj_with_mqa`` packed where ``q_lora_rank`` is set), MoE layers
    from ``first_k_dense_replace`` every ``moe_layer_freq``, no ``embedding_modules``. Under MLA
    (vLLM's default) the attention backend holds ``kv_b_proj``'s base layer: decode uses
    matrices split from its base weight, prefill calls the layer it captured before LoRA."""
    layers = int(_config(config, "num_hidden_layers", 0))
    first_moe = int(_config(config, "first_k_dense_replace", 0))
    every = int(_config(config, "moe_layer_freq", 1))
    routed = _config(config, "n_routed_experts")
    q_lora = _config(config, "q_lora_rank")
    wrapped: list[str] = []
    for i in range(layers):
        attention = f"model.layers.{i}.self_attn"
        if q_lora:
            wrapped += [f"{attention}.fused_qkv_a_proj", f"{attention}.q_b_proj"]
        else:
            wrapped += [f"{attention}.q_proj", f"{attention}.kv_a_proj_with_mqa"]
        wrapped += [f"{attention}.kv_b_proj", f"{attention}.o_proj"]
        mlp = f"model.layers.{i}.mlp"
        if routed is not None and i >= first_moe and i % every == 0:
            wrapped += [f"{mlp}.gate", f"{mlp}.experts"]
            if _config(config, "n_shared_experts") is not None:
                wrapped += _dense_mlp(f"{mlp}.shared_experts")
        else:
            wrapped += _dense_mlp(mlp)
    return Layout(
        "DeepseekV3ForCausalLM",
        wrapped=tuple(wrapped),
        supported=_last_segments(wrapped),
        packed={
            **_GATE_UP,
            **({"fused_qkv_a_proj": ("q_a_proj", "kv_a_proj_with_mqa")} if q_lora else {}),
            **_experts(config, "n_routed_experts", ("gate_proj", "down_proj", "up_proj")),
        },
        renames=None,
        held_by_attention=frozenset(n for n in wrapped if n.endswith(".kv_b_proj")),
        vocab_size=int(_config(config, "vocab_size", 0)),
    )


def _without_lora(architecture: str) -> Callable[[Any], Layout]:
    """A model class that does not implement vLLM's ``SupportsLoRA``."""
    return lambda config: Layout(architecture, supports_lora=False)


def _last_segments(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name.rpartition(".")[2] for name in names))


# Hugging Face architecture names (config.json's "architectures") -> vLLM's model, restated.
ARCHITECTURES: Mapping[str, Callable[[Any], Layout]] = {
    "LlamaForCausalLM": _llama,
    "LlamaForSequenceClassification": _llama_classifier,
    "Gemma3ForCausalLM": _without_embeddings("Gemma3ForCausalLM"),
    "Qwen2ForCausalLM": _without_embeddings("Qwen2ForCausalLM"),
    "Qwen3MoeForCausalLM": _qwen3_moe,
    "MixtralForCausalLM": _mixtral,
    "DeepseekV3ForCausalLM": _deepseek,
    "GPT2LMHeadModel": _without_lora("GPT2LMHeadModel"),
    "GPT2ForSequenceClassification": _without_lora("GPT2ForSequenceClassification"),
}


def layout(config: Any) -> Layout:
    """The layout vLLM builds for a Hugging Face config (transformers' config object)."""
    names = getattr(config, "architectures", None) or []
    for name in names:
        if name in ARCHITECTURES:
            return ARCHITECTURES[name](config)
    raise ValueError(
        f"no vLLM {VERSION} facts for the architecture {', '.join(names) or '(none given)'}: "
        f"modmatch knows {', '.join(sorted(ARCHITECTURES))}"
    )
