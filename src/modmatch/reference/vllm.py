"""vLLM 0.33.0 loading a saved PEFT LoRA adapter, restated from its code: which adapters it
refuses, and which of the saved modules' weights reach a LoRA layer of the served model.

The steps follow ``vllm/lora/worker_manager.py:WorkerLoRAManager._load_adapter`` and the
adapter manager's ``add_adapter`` / ``activate_adapter`` (``vllm/lora/model_manager.py``); each
function names the one it restates. The served model's side (which modules vLLM builds, packs
and wraps) is :mod:`.vllm_models`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .peft import SAVED_PREFIX as PREFIX
from .vllm_models import VERSION, Layout

__all__ = [
    "ADAPTER_ID",
    "MAX_LORA_RANK",
    "MAX_LORA_RANKS",
    "READ_FIELDS",
    "VERSION",
    "Refused",
    "deployed",
    "parse_name",
    "serve",
    "validate_config",
]

# vllm/config/lora.py: LoRAConfig.max_lora_rank's default and its allowed values.
MAX_LORA_RANK = 16
MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# layers/logits_processor.py: the largest vocabulary whose output layer takes a LoRA.
_MAX_LORA_VOCABULARY = 258048
# The id the command gives its one adapter request (it appears in one of vLLM's messages).
ADAPTER_ID = 1


class Refused(ValueError):
    """vLLM refuses the adapter (or the model, for LoRA): its message."""


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
    # WeightsMapper's substring map: each key found replaced once, in order.
    for old, new in renames:
        name = name.replace(old, new, 1)
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
    target_modules: tuple[str, ...] | None = None,
    sizes: Mapping[str, tuple[int, int]] | None = None,
) -> frozenset[str]:
    """The adapter's tensors whose weights vLLM applies when it serves one saved adapter
    (``config`` and its tensors' names and shapes) on ``model`` started with
    ``--max-lora-rank`` and ``--lora-target-modules``; raises :class:`Refused` with vLLM's
    message where vLLM refuses it. ``folder`` and ``model_path`` are the adapter's and the
    model's paths, as vLLM names them in its messages; ``sizes``: the served modules' (in,
    out) by the adapter's module names, where known. Every other tensor is loaded and never
    applied, without a message."""
    if not model.supports_lora:
        # config/lora.py:LoRAConfig.verify_with_model_config, at engine start.
        raise Refused(
            f"LoRA is not supported for {model.architecture} ({model_path}). Supported models "
            "implement the `SupportsLoRA` interface. Run this model without `enable_lora`."
        )
    if "lm_head" in model.wrapped and (model.vocab_size or 0) > _MAX_LORA_VOCABULARY:
        # layers/logits_processor.py:LogitsProcessorWithLoRA.create_lora_weights, at start.
        raise Refused(f"When using LoRA, vocab size must be <= {_MAX_LORA_VOCABULARY}")
    validate_config(config, max_lora_rank)
    tensors = sorted(shapes)
    _check_unexpected(tensors, model, config.get("modules_to_save") or (), folder)
    loras, saved_whole = _from_tensors(tensors, shapes, model, config)
    _check_moe_format(loras, model)
    _check_head(saved_whole, shapes, model)
    wrapped = deployed(model, target_modules)
    found, packed = _activate(loras, saved_whole, wrapped)
    _check_pairs(loras, found, packed, config, max_lora_rank)
    _check_sizes(loras, _in_order(found, wrapped), sizes or {})
    return frozenset(
        tensor
        for tensor in tensors
        if not _is_base_embedding(tensor) and parse_name(tensor, model.renames)[0] in found
    )


def deployed(model: Layout, targets: tuple[str, ...] | None) -> Layout:
    """model_manager.py:_create_lora_modules with ``--lora-target-modules``: only the modules
    the filter passes are wrapped (utils.py:is_in_target_modules: the last segment or the full
    name is a target, or a packed module's parent or one of its parts is); a classification
    head is wrapped whatever it says. The adapter is checked against the supported modules
    as before, so what the filter leaves out is loaded and never applied, without a message
    (vllm-project/vllm#55193)."""
    if targets is None:
        return model

    def kept(module: str) -> bool:
        last = module.rpartition(".")[2]
        if last in targets or module in targets or (model.head and module == model.head[0]):
            return True
        if any(part in targets for part in model.packed.get(last, ())):
            return True
        return any(last in parts and parent in targets for parent, parts in model.packed.items())

    return replace(model, wrapped=tuple(filter(kept, model.wrapped)))


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
) -> tuple[dict[str, _Pair], dict[str, set[str]]]:
    """lora_model.py:LoRAModel.from_lora_tensors: the LoRA modules by name, and the
    classification head saved whole (at most one)."""
    saved = set(config.get("modules_to_save") or ())
    loras: dict[str, _Pair] = {}
    whole: dict[str, set[str]] = {}
    for tensor in tensors:
        if _is_base_embedding(tensor):
            continue
        module, is_a = parse_name(tensor, model.renames)
        if module in saved:
            whole.setdefault(module, set()).add(tensor.rpartition(".")[2])
            continue
        pair = loras.setdefault(module, _Pair(parse_name(tensor)[0]))
        if is_a:
            vocabulary = shapes[tensor][1] if len(shapes[tensor]) > 1 else None
            if tensor.endswith("lora_embedding_A") and vocabulary != model.vocab_size:
                raise Refused(
                    f"The embedding LoRA size({vocabulary}) must be consistent with the base "
                    f"model's vocabulary size({model.vocab_size})."
                )
            pair.rank = shapes[tensor][0]
            pair.inputs = shapes[tensor][-1]
        else:
            pair.b = True
            pair.outputs = shapes[tensor][0]
    for module, parameters in whole.items():
        if "weight" not in parameters:
            raise Refused(f"Full module {module!r} is missing weight.")
    if len(whole) > 1:
        raise Refused(
            "Only one full classification module is supported per adapter, received "
            f"{sorted(whole)}."
        )
    return loras, whole


@dataclass
class _Pair:
    """One module's LoRA as saved: its name before the model's renames (which rank_pattern
    reads), the rank of its A (None: no A), whether it has a B."""

    peft_name: str
    rank: int | None = None
    b: bool = False
    inputs: int | None = None  # A's columns
    outputs: int | None = None  # B's rows


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


def _check_moe_format(loras: Mapping[str, _Pair], model: Layout) -> None:
    """model_manager.py:_validate_moe_lora_format: PEFT's fused (3-D) expert weights, saved
    under the experts module's own name, on a model whose experts vLLM wraps per expert (2-D,
    every model here)."""
    for module in model.wrapped:
        found = _lookup(loras, module, model)
        if _is_experts(module) and found is not None and loras[found].rank is not None:
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


def _activate(
    loras: Mapping[str, _Pair], whole: Mapping[str, set[str]], model: Layout
) -> tuple[set[str], set[str]]:
    """model_manager.py:_create_merged_loras_inplace and activate_adapter: each wrapped module
    looks up its own name, a packed one the names of the modules it holds; a name no wrapped
    module looks up is never read. Gives the names looked up and found whose LoRA runs, and
    those of them a packed module holds."""
    found: set[str] = set()
    packed: set[str] = set()
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
                _check_experts(parts, loras, model.packed[last], parent)
            packed.update(parts)
        else:
            hit = _lookup(loras, module, model) or (module if module in whole else None)
            parts = [hit] if hit is not None else []
        if module not in model.held_by_attention:
            found.update(parts)
    return found, packed


def _check_experts(
    parts: list[str], loras: Mapping[str, _Pair], expected: tuple[str, ...], parent: str
) -> None:
    """lora_weights.py:PackedLoRALayerWeights.pack_moe: once any expert has weights, each
    projection needs one rank across the experts, and every expert all three projections
    (a bare assert in vLLM)."""
    for projection in {name.rpartition(".")[2] for name in expected}:
        ranks = {loras[p].rank for p in parts if p.endswith(f".{projection}")}
        if len(ranks) > 1:
            raise Refused(
                f"The experts of {parent}.experts have different LoRA ranks for the same "
                "projection, which is not supported."
            )
    if len(parts) != len(expected):
        raise Refused(
            f"AssertionError: vLLM packs {parent}.experts only when every expert has all of "
            f"its projections ({len(parts)} of {len(expected)} present)"
        )


def _check_pairs(
    loras: Mapping[str, _Pair],
    found: set[str],
    packed: set[str],
    config: Mapping[str, Any],
    max_lora_rank: int,
) -> None:
    """What vLLM meets once it packs and sets the LoRA it found, with no message of its own
    (the exception's type is given, with what the rules restated find): no LoRA at all, or
    only B's of packed modules (StopIteration in _create_merged_loras_inplace); an A without
    its B where alpha over r is not 1 (LoRALayerWeights.optimize scales a None B); no A in the
    first LoRA once packed ones move to the end (the assert after packing); a module set on
    its own (not packed) with one of A and B (set_lora asserts; a packed one takes a None B
    as a zero slice); a rank its buffers (of ``--max-lora-rank``) cannot hold (set_lora's
    copy)."""
    if not loras or all(name in packed and pair.rank is None for name, pair in loras.items()):
        raise Refused("StopIteration: the adapter holds no LoRA vLLM can set")
    for name, pair in loras.items():
        if pair.rank is not None and not pair.b and _scaling(config, pair.peft_name) != 1:
            raise Refused(f"TypeError: {name} has a lora_A and no lora_B")
    first = next((name for name in loras if name not in packed), None)
    if first is not None and loras[first].rank is None:
        raise Refused(f"AssertionError: {first} has a lora_B and no lora_A")
    for name in sorted(found & set(loras)):
        rank = loras[name].rank
        if name not in packed and (rank is None or not loras[name].b):
            raise Refused(f"AssertionError: {name} has only one of lora_A and lora_B")
        if rank is not None and rank > max_lora_rank:
            # A's rows copied into max_lora_rank rows (set_lora).
            raise Refused(
                f"RuntimeError: The size of tensor a ({max_lora_rank}) must match the size of "
                f"tensor b ({rank}) at non-singleton dimension 0"
            )


def _in_order(found: set[str], model: Layout) -> list[str]:
    """The names found, in the order activate_adapter sets them: the wrapped modules', a
    packed module's parts in its order."""
    order: dict[str, int] = {}
    for module in model.wrapped:
        parent, _, last = module.rpartition(".")
        for part in model.packed.get(last, (last,)):
            order.setdefault(f"{parent}.{part}" if parent else part, len(order))
    return sorted(found, key=lambda name: order.get(name, len(order)))


def _check_sizes(
    loras: Mapping[str, _Pair], found: list[str], sizes: Mapping[str, tuple[int, int]]
) -> None:
    """layers/base_linear.py:BaseLinearLayerWithLoRA.set_lora (and the packed layers' own):
    A and B are copied into the corner of buffers of the served module's sizes, so a larger
    A (copied first) or B fails torch's copy; a smaller one is zero-padded, silently."""
    for name in (name for name in found if name in loras):
        pair = loras[name]
        served = sizes.get(pair.peft_name)
        if served is None or pair.inputs is None or pair.outputs is None:
            continue
        for dimension, trained, room in ((1, pair.inputs, served[0]), (0, pair.outputs, served[1])):
            if trained > room:
                raise Refused(
                    f"RuntimeError: The size of tensor a ({room}) must match the size of tensor "
                    f"b ({trained}) at non-singleton dimension {dimension}"
                )


def _scaling(config: Mapping[str, Any], module: str) -> float:
    """peft_helper.py:PEFTHelper.get_rank_and_scaling: alpha over r (its root with rsLoRA),
    each from the first rank_pattern / alpha_pattern key ending ``module`` at a dot."""

    def pattern(field: str, default: float) -> float:
        for key, value in (config.get(field) or {}).items():
            if re.match(rf"(.*\.)?({key})$", module):
                return float(value)
        return default

    rank = pattern("rank_pattern", config["r"])
    alpha = pattern("alpha_pattern", config["lora_alpha"])
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
