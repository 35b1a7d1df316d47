"""SGLang 0.5.23 serving one saved PEFT LoRA adapter (``--lora-paths adapter=PATH``), restated
from its code (``python/sglang/srt/lora/``): whether the server starts, whether the first request
with the adapter fails, and which of the saved tensors reach a LoRA layer.

The steps follow the server's own order: its flags (``arg_groups/lora_hook.py``), then
``LoRAManager.init_state`` (``lora_manager.py``: the adapter read and normalized by
``lora.py:LoRAAdapter``, the target modules and rank, the layers wrapped, the memory pool), then
the first request (``mem_pool.py:LoRAMemoryPool.load_lora_weight_to_buffer``). Each function
names the one it restates. The served model's side is :mod:`.sglang_models`.

Not restated: added tokens (``added_tokens.json``), tensor parallelism, Inkling, Mamba and DSA
indexer names, shared-outer expert formats, and modules of kinds the restated model classes do
not build.
"""

from __future__ import annotations

import argparse
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .sglang_models import COLUMN, EXPERTS, ROW, VERSION, Layout, Module

__all__ = ["ADAPTER_NAME", "READ_FIELDS", "VERSION", "Outcome", "serve"]

# The name the check gives its one adapter (--lora-paths NAME=PATH); SGLang's messages show it.
ADAPTER_NAME = "adapter"
# lora_config.py:LoRAConfig and lora.py:LoRAAdapter: the adapter_config.json keys SGLang reads.
READ_FIELDS = frozenset({"target_modules", "r", "lora_alpha", "use_dora", "peft_type"})

# utils/common.py: the choices of --lora-target-modules.
_FLAG_CHOICES = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "q_a_proj",
    "kv_a_proj_with_mqa",
    "q_b_proj",
    "kv_b_proj",
    "wq_b",
    "wk",
    "weights_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
    "qkv_proj",
    "gate_up_proj",
    "embed_tokens",
    "lm_head",
    "qkvr",
    "wo_ud",
    "all",
]
# utils.py:get_normalized_target_modules: a target's last segment, renamed.
_NORMALIZED = {
    "q_proj": "qkv_proj",
    "k_proj": "qkv_proj",
    "v_proj": "qkv_proj",
    "gate_proj": "gate_up_proj",
    "up_proj": "gate_up_proj",
    "vocab_emb": "embed_tokens",
    "embeddings": "embed_tokens",
    "word_embeddings": "embed_tokens",
    "output": "lm_head",
    "unembed_tokens": "lm_head",
    "q_a_proj": "fused_qkv_a_proj_with_mqa",
    "kv_a_proj_with_mqa": "fused_qkv_a_proj_with_mqa",
    "wq_b": "indexer.wq_b",
    "wk": "indexer.wk",
    "weights_proj": "indexer.weights_proj",
}
# utils.py:_KNOWN_LORA_TARGET_MODULES, less the names of models not restated.
_KNOWN = frozenset(
    {"qkv_proj", "o_proj", "up_proj", "gate_up_proj", "down_proj", "embed_tokens", "lm_head"}
    | {"fused_qkv_a_proj_with_mqa", "q_b_proj", "kv_b_proj"}
)
# utils.py:get_default_hidden_dim: the names the memory pool can size (the restated models
# define no get_hidden_dim of their own).
_SIZED = frozenset(
    {"qkv_proj", "o_proj", "gate_up_proj", "down_proj", "fused_qkv_a_proj_with_mqa"}
    | {"q_b_proj", "kv_b_proj", "gate_up_proj_moe", "down_proj_moe"}
)
_EMBEDDINGS = ("embed_tokens", "lm_head")
# utils.py:get_stacked_multiply: how many LoRA A's a module's buffer stacks.
_STACKED = {"qkv_proj": 3, "gate_up_proj": 2, "gate_up_proj_moe": 2, "fused_qkv_a_proj_with_mqa": 2}


@dataclass(frozen=True)
class Outcome:
    """SGLang's verdict: the message it refuses to start with, or the one the first request
    with the adapter fails with, and the saved tensors whose weights reach a LoRA layer."""

    startup_error: str | None
    request_error: str | None
    applied: frozenset[str]


class _Failed(Exception):
    """SGLang fails with this message (the exception's type first, but for a ValueError)."""


@dataclass
class _Weight:
    """A tensor as SGLang holds it once read: its shape and the saved tensors its data came
    from (none for the zeros SGLang puts in a missing part's place)."""

    shape: tuple[int, ...]
    sources: frozenset[str] = field(default_factory=frozenset)


@dataclass
class _Adapter:
    layers: list[dict[str, _Weight]]
    embeddings: dict[str, _Weight]


def serve(
    config: Mapping[str, Any],
    shapes: Mapping[str, tuple[int, ...]],
    model: Layout,
    folder: str,
    max_lora_rank: int | None = None,
    target_modules: tuple[str, ...] | None = None,
    strict_loading: bool = False,
) -> Outcome:
    """SGLang's verdict on one saved adapter (``config`` and its tensors' names and shapes, in
    ``folder``) served on ``model`` with ``--max-lora-rank``, ``--lora-target-modules`` and
    ``--lora-strict-loading``."""
    try:
        flagged = _flags(target_modules)
        adapter = _load(config, shapes, model)
        targets = _targets(config, model, flagged)
        rank = max_lora_rank or config["r"]
        wrapped = _wrap(model, targets)
        buffers = _buffers(model, targets, wrapped)
    except _Failed as failed:
        return Outcome(str(failed), None, frozenset())
    uid = uuid.uuid5(uuid.NAMESPACE_URL, f"{ADAPTER_NAME}\0{folder}").hex
    try:
        applied = _first_request(
            adapter, model, targets, wrapped, buffers, config["r"], rank, uid, strict_loading
        )
    except _Failed as failed:
        return Outcome(None, str(failed), frozenset())
    return Outcome(None, None, applied)


def _flags(target_modules: tuple[str, ...] | None) -> set[str] | None:
    """arg_groups/lora_hook.py:check_lora_server_args, after argparse's choices."""
    if target_modules is None:
        return None
    parser = argparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("--lora-target-modules", nargs="*", choices=_FLAG_CHOICES)
    try:
        parser.parse_args(["--lora-target-modules", *target_modules])
    except argparse.ArgumentError as error:
        raise _Failed(str(error)) from None
    if "all" in target_modules and len(target_modules) > 1:
        raise _Failed(
            "AssertionError: If 'all' is specified in --lora-target-modules, it should be the "
            "only module specified."
        )
    return set(target_modules)


def _normalized(targets: Any) -> set[str]:
    """utils.py:get_normalized_target_modules."""
    if isinstance(targets, str):
        if targets not in ("all", "all-linear"):
            raise _Failed("Only 'all' or 'all-linear' can be used as the string for target module")
        return {"all"}
    return {_NORMALIZED.get(name.split(".")[-1], name.split(".")[-1]) for name in targets}


def _load(
    config: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]], model: Layout
) -> _Adapter:
    """lora_manager.py:_load_lora_adapter (an error there stops the server, wrapped by
    init_lora_adapters): LoRAConfig's keys, validate_new_adapter, LoRAAdapter's checks, then
    initialize_weights (each saved tensor, in order, by _process_weight) and _normalize_weights."""
    try:
        for key in ("target_modules", "r", "lora_alpha"):
            if key not in config:
                raise _Failed(repr(key))
        if config.get("use_dora"):
            raise _Failed(
                f"Failed to load {ADAPTER_NAME} because LoRA serving currently doesn't support "
                "DoRA adapters"
            )
        if "peft_type" not in config:
            raise _Failed("'peft_type'")
        if str(config["peft_type"]).lower() != "lora":
            raise _Failed("")
        if config["r"] == 0:
            raise _Failed("division by zero")
        adapter = _Adapter([{} for _ in range(model.layers)], {})
        for name in sorted(shapes):
            _process(name, _Weight(tuple(shapes[name]), frozenset({name})), config, adapter)
        for layer in adapter.layers:
            _normalize(layer)
    except _Failed as failed:
        text = f"Failed to load LoRA adapter {ADAPTER_NAME}: {failed}".strip()
        raise _Failed(f"RuntimeError: {text}") from None
    return adapter


def _process(name: str, weight: _Weight, config: Mapping[str, Any], adapter: _Adapter) -> None:
    """lora.py:LoRAAdapter._process_weight: a tensor goes to the first layer its name holds
    (``layers.N.``, whatever comes before), or, naming an embedding the adapter targets, to the
    embeddings; any other is dropped without a word."""
    targets = _normalized(config["target_modules"])
    name = name.replace("unembed_tokens", "lm_head")
    layer = re.search(r"layers\.(\d+)\.", name)
    if layer is not None:
        index = int(layer.group(1))
        if index >= len(adapter.layers):
            raise _Failed(f"index {index} is out of range")
        adapter.layers[index][name] = weight
    elif "embed_tokens" in name or "lm_head" in name:
        module = "embed_tokens" if "embed_tokens" in name else "lm_head"
        if "all" in targets or module in targets:
            adapter.embeddings[name] = weight


def _normalize(weights: dict[str, _Weight]) -> None:
    """lora.py:LoRAAdapter._normalize_weights for the restated models: q/k/v stacked, Mixtral's
    expert names renamed, gate/up stacked, DeepSeek's q_a/kv_a stacked; a missing part is zeros
    (but v, which q's stacking reads)."""
    names = list(weights)
    present = {part for part in ("q_proj", "k_proj", "v_proj") if any(part in n for n in names)}
    for name in names:
        if "q_proj" in name:  # normalize_qkv_proj
            k, v = name.replace("q_proj", "k_proj"), name.replace("q_proj", "v_proj")
            if v not in weights:
                raise _Failed(repr(v))
            if "k_proj" in present and k not in weights:
                raise _Failed(repr(k))
            key = weights.pop(k) if "k_proj" in present else _Weight(weights[v].shape)
            weights[name.replace("q_proj", "qkv_proj")] = _stacked(
                weights.pop(name), key, weights.pop(v)
            )
        elif "qkv_proj" in name and "lora_A" in name:
            weights[name] = _repeated(weights[name], 3)
    for old in list(weights):  # _rename_expert_w_to_proj
        for was, now in ((".w1.", ".gate_proj."), (".w3.", ".up_proj."), (".w2.", ".down_proj.")):
            if was in old:
                weights[old.replace(was, now)] = weights.pop(old)
                break
    for name in list(weights):  # normalize_gate_up_proj
        if "gate_proj" in name:
            up = name.replace("gate_proj", "up_proj")
            gate = weights.pop(name)
            upper = weights.pop(up) if up in weights else _Weight(gate.shape)
            weights[name.replace("gate_proj", "gate_up_proj")] = _stacked(gate, upper)
        elif "gate_up_proj" in name and "lora_A" in name:
            weights[name] = _repeated(weights[name], 2)
    for name in list(weights):  # normalize_fused_qkv_a_proj
        if "q_a_proj" in name and "fused_qkv_a_proj_with_mqa" not in name:
            kv = name.replace("q_a_proj", "kv_a_proj_with_mqa")
            q = weights.pop(name)
            fused = _stacked(q, weights.pop(kv) if kv in weights else _Weight(q.shape))
            weights[name.replace("q_a_proj", "fused_qkv_a_proj_with_mqa")] = fused


def _stacked(*parts: _Weight) -> _Weight:
    """torch.cat along the rows (the next-to-last dimension)."""
    shape = list(parts[0].shape)
    shape[-2] = sum(part.shape[-2] for part in parts)
    return _Weight(tuple(shape), frozenset().union(*(part.sources for part in parts)))


def _repeated(weight: _Weight, times: int) -> _Weight:
    shape = list(weight.shape)
    shape[-2] *= times
    return _Weight(tuple(shape), weight.sources)


def _auto_detected(model: Layout) -> set[str]:
    """utils.py:auto_detect_lora_target_modules: the model's linear layers' names (fused
    experts as gate_up_proj and down_proj), its embedding and untied head where SGLang's own
    classes, that the memory pool knows."""
    found = (
        {"gate_up_proj", "down_proj"} if any(m.slicing == EXPERTS for m in model.modules) else set()
    )
    found |= {m.leaf for m in model.modules if m.slicing != EXPERTS}
    if model.embedding_wrapped:
        found.add("embed_tokens")
    if not model.tied:
        found.add("lm_head")
    return _normalized(found) & _KNOWN


def _targets(config: Mapping[str, Any], model: Layout, flagged: set[str] | None) -> set[str]:
    """lora_manager.py:init_lora_shapes: --lora-target-modules (``all``: every module found,
    and both embeddings), which each adapter's targets must be within; without it, the
    adapter's own."""
    if flagged == {"all"}:
        targets = _auto_detected(model) | set(_EMBEDDINGS)
    else:
        targets = _normalized(flagged) if flagged is not None else set()
    found = config["target_modules"]
    if isinstance(found, str):
        if flagged is None:
            targets |= _auto_detected(model)
        return targets
    mine = _normalized(found)
    if flagged is not None and not mine <= targets:
        raise _Failed(
            f"LoRA adapter '{ADAPTER_NAME}' contains target modules {sorted(mine - targets)} that "
            f"are not included in the specified --lora-target-modules {sorted(targets)}. Please "
            "update --lora-target-modules to include all required modules: "
            f"{sorted(targets | mine)}, or use 'all' to enable all supported modules."
        )
    return targets if flagged is not None else targets | mine


@dataclass
class _Wrapped:
    """The modules given a LoRA layer: per decoder layer, and the embedding and head."""

    layers: list[list[Module]]
    embedding: bool
    head: bool


def _wrap(model: Layout, targets: set[str]) -> _Wrapped:
    """lora_manager.py:init_lora_modules: a tied head is untied into a ParallelLMHead (which
    reads the embedding's org_vocab_size); the embedding gets a LoRA layer only where it is a
    VocabParallelEmbedding; a decoder module where its last name (or last two) is a target;
    fused experts where both gate_up_proj and down_proj are."""
    if "lm_head" in targets and model.tied and not model.embedding_wrapped:
        raise _Failed(
            f"AttributeError: '{model.embedding_class}' object has no attribute 'org_vocab_size'"
        )
    layers: list[list[Module]] = [[] for _ in range(model.layers)]
    for module in model.modules:
        parts = module.name.split(".")
        if module.slicing == EXPERTS:
            chosen = {"gate_up_proj", "down_proj"} <= targets
        else:
            chosen = parts[-1] in targets or ".".join(parts[-2:]) in targets
        if chosen:
            layers[int(parts[2])].append(module)
    embedding = "embed_tokens" in targets and model.embedding_wrapped
    return _Wrapped(layers, embedding, "lm_head" in targets)


def _buffers(model: Layout, targets: set[str], wrapped: _Wrapped) -> set[str]:
    """mem_pool.py:LoRAMemoryPool.init_buffers (a buffer per target; on a MoE model gate_up
    and down get expert buffers, and dense ones only beside shared experts), sized by
    utils.py:get_default_hidden_dim (NotImplementedError for a name it does not size); then
    lora_manager.py:update_lora_info, which reads each wrapped module's buffer."""
    moe = any(module.slicing == EXPERTS for module in model.modules)
    buffers: set[str] = set()
    for name in sorted(targets - set(_EMBEDDINGS)):
        if name in ("gate_up_proj", "down_proj") and moe:
            buffers.add(f"{name}_moe")
            if model.dense_mlp_buffers:
                buffers.add(name)
        else:
            buffers.add(name)
    unsized = sorted(buffers - _SIZED)
    if unsized:
        raise _Failed(f"NotImplementedError: get_hidden_dim not implemented for {unsized[0]}")
    for layer in wrapped.layers:
        for module in layer:
            if module.slicing != EXPERTS and _target(module.name, targets) not in buffers:
                raise _Failed(f"KeyError: '{_target(module.name, targets)}'")
    return buffers


def _target(name: str, targets: Iterable[str]) -> str | None:
    """utils.py:get_target_module_name: the longest target the name holds (a substring)."""
    found = [target for target in targets if target in name]
    return max(found, key=len, default=None)


def _set(names: Iterable[str]) -> str:
    """A set as SGLang shows it, its names sorted (its order follows str hashing)."""
    return "{" + ", ".join(map(repr, sorted(names))) + "}"


def _first_request(
    adapter: _Adapter,
    model: Layout,
    targets: set[str],
    wrapped: _Wrapped,
    buffers: set[str],
    rank: int,
    max_rank: int,
    uid: str,
    strict: bool,
) -> frozenset[str]:
    """mem_pool.py:LoRAMemoryPool.load_lora_weight_to_buffer: every tensor held must name a
    target (else a warning, or under --lora-strict-loading the request fails, and then the
    per-layer loop fails on it either way); each layer's tensors are sliced as its wrapped
    modules slice them and copied into buffers of exactly their shape. What reaches a wrapped
    module's buffers is applied; what SGLang copies for a module it did not wrap is not."""
    every = [name for layer in adapter.layers for name in layer] + list(adapter.embeddings)
    unmatched = sorted(name for name in every if _target(name, targets) is None)
    if unmatched and strict:
        raise _Failed(
            f"LoRA adapter '{uid}': {len(unmatched)} weight(s) skipped because they did not "
            f"match any target module in {sorted(targets)}. Skipped weights: {unmatched}. This "
            "likely indicates a mismatch between the adapter's target modules and the base "
            "model architecture."
        )
    applied: set[str] = set()
    for index, weights in enumerate(adapter.layers):
        applied |= _load_layer(
            index, weights, wrapped.layers[index], targets, buffers, rank, max_rank
        )
    for name, weight in adapter.embeddings.items():
        if _target(name, targets) is None:
            raise _Failed(f"Cannot find target module name for {name} in {_set(targets)}")
        if ("embed_tokens" in name and wrapped.embedding) or ("lm_head" in name and wrapped.head):
            applied |= weight.sources
    return frozenset(applied)


def _load_layer(
    index: int,
    weights: Mapping[str, _Weight],
    modules: list[Module],
    targets: set[str],
    buffers: set[str],
    rank: int,
    max_rank: int,
) -> set[str]:
    """One layer of load_lora_weight_to_buffer: the tensors filed by target (an expert's under
    the target's expert buffer), the active buffers' weights sliced, then copied."""
    filed: dict[str, dict[str, Any]] = {}
    for name, weight in weights.items():
        target = _target(name, targets)
        if target is None:
            raise _Failed(f"Cannot find target module name for {name} in {_set(targets)}")
        part = "A" if "lora_A" in name else "B"
        expert = re.search(r"experts\.(\d+)\.", name)
        if expert is not None:
            key = f"{target}_moe"
            if key not in buffers:
                raise _Failed(f"KeyError: '{key}'")
            filed.setdefault(key, {}).setdefault(part, {})[int(expert.group(1))] = weight
        else:
            key = f"{target}_moe" if "experts" in name and len(weight.shape) == 3 else target
            filed.setdefault(key, {})[part] = weight
    active: dict[str, Module] = {}
    for module in modules:
        if module.slicing == EXPERTS:
            active.update({"gate_up_proj_moe": module, "down_proj_moe": module})
            continue
        target = _target(module.name, targets)
        assert target is not None  # wrapped because its name is a target
        active[target] = module
        found = filed.get(target, {})
        if "A" in found:
            if "B" not in found:
                # A column-parallel layer slices the missing B; the others return it, and the
                # B's cache key after it is asserted.
                if module.slicing == COLUMN:
                    raise _Failed("TypeError: 'NoneType' object is not subscriptable")
                raise _Failed("AssertionError")
            found["A"], found["B"] = _sliced(module, found["A"], found["B"])
    applied: set[str] = set()
    for key, module in active.items():
        for part, found in filed.get(key, {}).items():
            for weight in found.values() if isinstance(found, dict) else [found]:
                _check(key, part, module, weight, rank, max_rank)
                applied |= weight.sources
    return applied


def _sliced(module: Module, a: _Weight, b: _Weight) -> tuple[_Weight, _Weight]:
    """layers.py: a row-parallel layer takes A's columns up to its input size; a column-
    parallel one takes, for each of its parts, B's rows at the model's offsets (a larger
    adapter's are cut, a smaller one's come out short)."""
    if module.slicing == ROW:
        a = _Weight((a.shape[0], min(a.shape[1], module.inputs)), a.sources)
    if module.slicing == COLUMN:
        rows, offset = 0, 0
        for size in module.outputs:
            rows += max(0, min(b.shape[0], offset + size) - offset)
            offset += size
        b = _Weight((rows, b.shape[1]), b.sources)
    return a, b


def _check(key: str, part: str, module: Module, weight: _Weight, rank: int, max_rank: int) -> None:
    """mem_pool.py: load_lora_weight_tensor's assert, on the buffer's view of the adapter's
    rank (cut at --max-lora-rank): A's rank times the stacked parts by the module's input, B
    its output by the rank; an expert's A is copied one stacked part at a time."""
    stacked = _STACKED.get(key, 1)
    kept = min(rank, max_rank)
    view: tuple[int, ...]
    given: tuple[int, ...]
    if module.slicing == EXPERTS:
        inner = module.outputs[0]
        outputs = 2 * inner if key == "gate_up_proj_moe" else module.inputs
        inputs = module.inputs if key == "gate_up_proj_moe" else inner
        if part == "A":
            view, given = (kept, inputs), (rank, weight.shape[-1])
        else:
            view, given = (outputs, kept), tuple(weight.shape[-2:])
    elif part == "A":
        view, given = (kept * stacked, module.inputs), weight.shape
    else:
        view, given = (sum(module.outputs), kept), weight.shape
    if tuple(view) != tuple(given):
        raise _Failed(
            f"AssertionError: LoRA buffer shape torch.Size({list(view)}) does not match weight "
            f"shape torch.Size({list(given)})."
        )
