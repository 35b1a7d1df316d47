"""vLLM 0.33.0 loading a saved PEFT LoRA adapter, restated from its code: which adapters it
refuses, and which of the saved modules' weights reach a LoRA layer of the served model.

The steps follow ``vllm/lora/worker_manager.py:WorkerLoRAManager._load_adapter`` and the
adapter manager's ``add_adapter`` / ``activate_adapter`` (``vllm/lora/model_manager.py``); each
function names the one it restates. The served model's side (which modules vLLM builds, packs
and wraps) is :class:`Layout`, one per architecture, restated from ``vllm/model_executor/models``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ARCHITECTURES",
    "MAX_LORA_RANK",
    "MAX_LORA_RANKS",
    "VERSION",
    "Layout",
    "Refused",
    "counterpart",
    "layout",
    "parse_name",
    "serve",
    "validate_config",
]

VERSION = "0.33.0"
# vllm/config/lora.py: LoRAConfig.max_lora_rank's default and its allowed values.
MAX_LORA_RANK = 16
MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# What PEFT's save_pretrained puts before every module name.
PREFIX = "base_model.model."
# The id the command gives its one adapter request (it appears in one of vLLM's messages).
ADAPTER_ID = 1


class Refused(ValueError):
    """vLLM refuses the adapter (or the model, for LoRA): its message."""


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


# --- the served model's side: one layout per architecture (vllm/model_executor/models) ---


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


def _gemma3(config: Any) -> Layout:
    """models/gemma3.py:Gemma3ForCausalLM: Llama's layers, no ``embedding_modules``."""
    llama = _llama(config)
    return Layout(
        "Gemma3ForCausalLM",
        wrapped=tuple(n for n in llama.wrapped if n not in _EMBEDDINGS),
        supported=("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
        packed=llama.packed,
        vocab_size=llama.vocab_size,
    )


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
    "Gemma3ForCausalLM": _gemma3,
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


# --- the adapter's side ---


def validate_config(config: Mapping[str, Any], max_lora_rank: int = MAX_LORA_RANK) -> None:
    """lora/peft_helper.py: ``PEFTHelper.from_dict``, ``__post_init__`` and ``validate_legal``
    (every failed feature check in one message, joined by spaces)."""
    missing = {"r", "lora_alpha", "target_modules"} - set(config)
    if missing:
        raise Refused(f"Missing required configuration fields: {missing}")
    rank = config["r"]
    if rank <= 0:
        raise Refused(f"LoRA rank `r` must be a positive integer, got {rank}.")
    ranks = config.get("rank_pattern") or {}
    for key, value in ranks.items():
        if not isinstance(value, int) or value <= 0:
            raise Refused(
                f"LoRA rank for `{key}` in `rank_pattern` must be a positive integer, got {value}."
            )
    errors = []
    saved = config.get("modules_to_save")
    unsupported = [m for m in saved or () if m not in ("classifier", "score")]
    if unsupported:
        errors.append(
            "vLLM only supports modules_to_save being either None or "
            '["classifier", "score"] for classification models. '
            f"Unsupported modules_to_save: {unsupported}"
        )
    if config.get("use_dora"):
        errors.append("vLLM does not yet support DoRA.")
    if config.get("lora_bias"):
        errors.append("vLLM does not support LoRA bias (lora_bias).")
    init = config.get("init_lora_weights", True)
    if isinstance(init, str) and init.lower() not in (
        "gaussian",
        "eva",
        "orthogonal",
        "mica",
        "lora_ga",
    ):
        errors.append(
            f"vLLM does not support init_lora_weights={init!r}. Inits such as PiSSA, OLoRA, "
            "CorDA and LoftQ modify the base model weights when PEFT loads the adapter. Convert "
            "it to a regular LoRA adapter with PEFT's path_initial_model_for_weight_conversion, "
            "or set init_lora_weights to true if the served base model already contains the "
            "modified weights."
        )
    for key, message in (
        ("alora_invocation_tokens", "vLLM does not support Activated LoRA (aLoRA)."),
        ("layer_replication", "vLLM does not support layer_replication."),
        ("use_bdlora", "vLLM does not support block-diagonal LoRA (BD-LoRA)."),
        ("use_qalora", "vLLM does not support QALoRA."),
    ):
        if config.get(key):
            errors.append(message)
    highest = max([rank, *ranks.values()])
    if highest > max_lora_rank:
        errors.append(f"LoRA rank {highest} is greater than max_lora_rank {max_lora_rank}.")
    if config.get("bias", "none") != "none":
        errors.append("Adapter bias is not supported.")
    if errors:
        raise Refused(" ".join(errors))


# The PEFTHelper fields: what vLLM reads of adapter_config.json; it drops every other key.
READ_FIELDS = frozenset(
    {
        "r",
        "lora_alpha",
        "target_modules",
        "bias",
        "modules_to_save",
        "use_rslora",
        "use_dora",
        "lora_bias",
        "init_lora_weights",
        "alora_invocation_tokens",
        "layer_replication",
        "use_bdlora",
        "use_qalora",
        "rank_pattern",
        "alpha_pattern",
    }
)


def parse_name(tensor: str, renames: tuple[tuple[str, str], ...] | None = None) -> tuple[str, bool]:
    """lora/utils.py:parse_fine_tuned_lora_name: a tensor's module name, as vLLM looks it up,
    and whether it is a LoRA A. PEFT's prefix goes (with the model's renames applied after it);
    a classification head's weights are named by the head alone."""
    name = tensor
    if name.startswith(PREFIX):
        name = name.replace(PREFIX, "")
        if renames is not None:  # a mapper puts the prefix back, whatever it renames
            name = PREFIX + _rename(name, renames)
    elif renames is not None:
        name = _rename(name, renames)
    start = 2 if name.startswith(PREFIX) else 0
    parts = name.split(".")
    if parts[-1] in ("weight", "bias") and len(parts) >= 2:
        if parts[-2] in ("lora_A", "lora_B") and parts[-1] == "weight":
            return ".".join(parts[start:-2]), parts[-2] == "lora_A"
        if parts[-2] in ("score", "classifier"):
            return parts[-2], False
    if parts[-1] in ("lora_embedding_A", "lora_embedding_B"):
        return ".".join(parts[start:-1]), parts[-1] == "lora_embedding_A"
    raise Refused(f"{name} is unsupported LoRA weight")


def _rename(name: str, renames: tuple[tuple[str, str], ...]) -> str:
    # WeightsMapper's substring map: each key replaced where it occurs, in order.
    for old, new in renames:
        name = name.replace(old, new)
    return name


def _is_base_embedding(tensor: str) -> bool:
    """lora/utils.py:is_base_embedding_weights: a resized embedding PEFT saved whole, which
    vLLM skips (the served model keeps its own)."""
    return tensor.endswith((".embed_tokens.base_layer.weight", ".lm_head.base_layer.weight"))


def _expected(model: Layout) -> set[str]:
    """worker_manager.py:_load_adapter: the supported modules with each packed one replaced by
    the modules it holds; ``experts`` stays too."""
    expected: set[str] = set()
    for module in model.supported:
        expected.update(model.packed.get(module, (module,)))
        if module == "experts":
            expected.add(module)
    return expected


def serve(
    config: Mapping[str, Any],
    shapes: Mapping[str, tuple[int, ...]],
    model: Layout,
    folder: str,
    model_path: str,
    max_lora_rank: int = MAX_LORA_RANK,
) -> frozenset[str]:
    """The adapter's tensors whose weights vLLM applies when it serves one saved adapter
    (``config`` and its tensors' names and shapes) on ``model``; raises :class:`Refused` with
    vLLM's message where vLLM refuses it. ``folder`` and ``model_path`` are the adapter's and
    the model's paths, as vLLM names them in its messages. Every other tensor is loaded and
    never applied, without a message."""
    if not model.supports_lora:
        # config/lora.py:LoRAConfig.verify_with_model_config, at engine start.
        raise Refused(
            f"LoRA is not supported for {model.architecture} ({model_path}). Supported models "
            "implement the `SupportsLoRA` interface. Run this model without `enable_lora`."
        )
    validate_config(config, max_lora_rank)
    tensors = sorted(shapes)
    _check_unexpected(tensors, model, config.get("modules_to_save") or (), folder)
    loras, saved_whole = _from_tensors(tensors, shapes, model, config)
    _check_moe_format(loras, model)
    _check_head(saved_whole, shapes, model)
    found = _activate(loras, saved_whole, model)
    return frozenset(
        tensor
        for tensor in tensors
        if not _is_base_embedding(tensor) and parse_name(tensor, model.renames)[0] in found
    )


def _check_unexpected(tensors: list[str], model: Layout, saved: Iterable[str], folder: str) -> None:
    """lora_model.py:LoRAModel.from_local_checkpoint's ``check_unexpected_modules``: the last
    segment of each module (from ``experts`` on, for experts) must be one the model expects;
    names are not checked further, so a module the model lacks passes here."""
    expected = _expected(model)
    unexpected = []
    for tensor in tensors:
        if _is_base_embedding(tensor) or "base_layer" in tensor:
            continue
        module, _ = parse_name(tensor, model.renames)
        if ".experts" in module:
            if module[module.find(".experts") + 1 :] not in expected:
                unexpected.append(module)
        elif module.rpartition(".")[2] not in expected and module.rpartition(".")[2] not in saved:
            unexpected.append(module)
    if unexpected:
        raise Refused(
            f"While loading {folder}, expected target modules in {_sorted_set(expected)} but "
            f"received {unexpected}. Please verify that the loaded LoRA module is correct"
        )


def _from_tensors(
    tensors: list[str],
    shapes: Mapping[str, tuple[int, ...]],
    model: Layout,
    config: Mapping[str, Any],
) -> tuple[dict[str, bool], dict[str, set[str]]]:
    """lora_model.py:LoRAModel.from_lora_tensors: the LoRA modules by name (whether each has
    its A), and the classification head saved whole (at most one)."""
    saved = set(config.get("modules_to_save") or ())
    loras: dict[str, bool] = {}
    whole: dict[str, set[str]] = {}
    for tensor in tensors:
        if _is_base_embedding(tensor):
            continue
        module, is_a = parse_name(tensor, model.renames)
        if module in saved:
            whole.setdefault(module, set()).add(tensor.rpartition(".")[2])
            continue
        loras.setdefault(module, False)
        if is_a:
            vocabulary = shapes[tensor][1] if len(shapes[tensor]) > 1 else None
            if tensor.endswith("lora_embedding_A") and vocabulary != model.vocab_size:
                raise Refused(
                    f"The embedding LoRA size({vocabulary}) must be consistent with the base "
                    f"model's vocabulary size({model.vocab_size})."
                )
            loras[module] = True
    for module, parameters in whole.items():
        if "weight" not in parameters:
            raise Refused(f"Full module {module!r} is missing weight.")
    if len(whole) > 1:
        raise Refused(
            "Only one full classification module is supported per adapter, received "
            f"{sorted(whole)}."
        )
    return loras, whole


def counterpart(module: str, model: Layout) -> str | None:
    """For an adapter module no LoRA layer looks up: the name a served module would take its
    weights under (its own, or a packed module's parts') with the same last segment and
    the same numbers, sharing the longest ending with ``module``; None where there is none."""
    parts = module.split(".")
    numbers = [p for p in parts if p.isdigit()]
    best, shared = None, 0
    for wrapped in model.wrapped:
        parent, _, last = wrapped.rpartition(".")
        for child in (last, *model.packed.get(last, ())):
            name = f"{parent}.{child}" if parent else child
            other = name.split(".")
            if other[-1] != parts[-1] or [p for p in other if p.isdigit()] != numbers:
                continue
            common = next(
                (
                    i
                    for i, (a, b) in enumerate(zip(reversed(parts), reversed(other), strict=False))
                    if a != b
                ),
                min(len(parts), len(other)),
            )
            if common > shared:
                best, shared = name, common
    return best


def _sorted_set(names: set[str]) -> str:
    """A set as vLLM shows it, its names sorted (vLLM's order follows str hashing)."""
    return "{" + ", ".join(map(repr, sorted(names))) + "}"


def _lookup(loras: Mapping[str, Any], module: str, model: Layout) -> str | None:
    """model_manager.py:_get_lora_layer_weights: the wrapped module's own name; a pooling model
    also tries it without a leading ``model.``."""
    if module in loras:
        return module
    if model.pooling and module.removeprefix("model.") in loras:
        return module.removeprefix("model.")
    return None


def _is_experts(module: str) -> bool:
    return module.rpartition(".")[2] == "experts"


def _check_moe_format(loras: Mapping[str, bool], model: Layout) -> None:
    """model_manager.py:_validate_moe_lora_format: PEFT's fused (3-D) expert weights, saved
    under the experts module's own name, on a model whose experts vLLM wraps per expert (2-D,
    every model here)."""
    for module in model.wrapped:
        found = _lookup(loras, module, model)
        if _is_experts(module) and found is not None and loras[found]:
            raise Refused(
                f"LoRA adapter {ADAPTER_ID} contains fused 3D MoE weights for {module!r}, but "
                "the model uses a 2D MoE LoRA wrapper. Start the engine with "
                "enable_mixed_moe_lora_format=True (--enable-mixed-moe-lora-format) and set "
                "is_3d_lora_weight=True on the LoRA request."
            )


def _check_head(
    whole: Mapping[str, set[str]], shapes: Mapping[str, tuple[int, ...]], model: Layout
) -> None:
    """model_manager.py:_validate_classification_head_lora: a head saved whole needs a model
    with that head, and a weight of at most its labels by its hidden size."""
    if not whole:
        return
    saved = next(iter(whole))
    if model.head is None:
        raise Refused(
            f"Cannot load full module {saved!r}: the model does not expose a unique "
            "classification head."
        )
    head, labels, hidden = model.head
    if saved != head:
        raise Refused(
            f"Full module {saved!r} does not match the model's classification head {head!r}."
        )
    shape = next(s for t, s in shapes.items() if t.endswith(f"{head}.weight"))
    if len(shape) != 2 or not 1 <= shape[0] <= labels or shape[1] != hidden:
        raise Refused(
            f"Full module {saved!r} for {head!r} has an incompatible weight shape: expected "
            f"(1..{labels}, {hidden}), received {tuple(shape)}."
        )


def _activate(loras: Mapping[str, bool], whole: Mapping[str, set[str]], model: Layout) -> set[str]:
    """model_manager.py:_create_merged_loras_inplace and activate_adapter: each wrapped module
    looks up its own name, a packed one the names of the modules it holds; a name no wrapped
    module looks up is never read. Gives the names looked up and found whose LoRA runs."""
    found: set[str] = set()
    for module in model.wrapped:
        parent, _, last = module.rpartition(".")
        if last in model.packed:
            parts = [
                hit
                for child in model.packed[last]
                for hit in [_lookup(loras, f"{parent}.{child}", model)]
                if hit is not None
            ]
            if parts and _is_experts(module):
                _check_experts_complete(parts, model.packed[last], parent)
        else:
            hit = _lookup(loras, module, model) or (module if module in whole else None)
            parts = [hit] if hit is not None else []
        if module not in model.held_by_attention:
            found.update(parts)
    return found


def _check_experts_complete(parts: list[str], expected: tuple[str, ...], parent: str) -> None:
    """lora_weights.py:PackedLoRALayerWeights.pack_moe: once any expert has weights, every
    expert needs all three projections (a bare assert in vLLM)."""
    if len(parts) != len(expected):
        raise Refused(
            f"AssertionError: vLLM packs {parent}.experts only when every expert has all of "
            f"its projections ({len(parts)} of {len(expected)} present)"
        )
