"""The sizes an adapter was trained for against the sizes of the model it is served on: a LoRA
computes ``B @ A`` with A of rank by in and B of out by rank, so each module's (in, out) is read
off its saved A and B and compared with the served module's. A server that copies the saved
weights into buffers of the model's sizes pads a smaller adapter with zeros (it computes, but
not as trained) and cannot take a larger one."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .adapter import SavedAdapter, split

__all__ = ["Sizes", "mismatched", "resizing", "served_sizes", "trained_sizes"]

# A module of one expert, as adapters trained one module per expert name it.
_EXPERT = re.compile(r"(?P<experts>.*\.experts)\.\d+\.(?P<projection>\w+)$")
# The projections a fused experts layer holds as gate_up_proj (halves) or as down_proj.
_GATE_UP = ("gate_proj", "up_proj", "w1", "w3")
_DOWN = ("down_proj", "w2")


@dataclass(frozen=True)
class Sizes:
    """A module's input and output sizes (for an embedding: the vocabulary and its width)."""

    inputs: int
    outputs: int

    def __str__(self) -> str:
        return f"{self.inputs}→{self.outputs}"


def trained_sizes(adapter: SavedAdapter) -> dict[str, Sizes]:
    """Each module's sizes as its saved LoRA says: A's columns in, B's rows out (a module
    without both, or with fused experts' 3-D weights, is left out)."""
    parts: dict[str, dict[str, tuple[int, ...]]] = {}
    for tensor, shape in adapter.shapes.items():
        name, part = split(tensor)
        if part in ("lora_A", "lora_B") and len(shape) == 2:
            parts.setdefault(name, {})[part] = shape
    return {
        name: Sizes(found["lora_A"][1], found["lora_B"][0])
        for name, found in parts.items()
        if len(found) == 2
    }


def served_sizes(model: Any, names: Iterable[str]) -> dict[str, Sizes]:
    """The sizes of the served model's modules of these names (a transformers model, on the
    meta device): a Linear's, a GPT-2 Conv1D's, an Embedding's, or one expert's share of a
    fused experts layer. A name the model lacks is left out."""
    found: dict[str, Sizes] = {}
    for name in names:
        sizes = _module_sizes(model, name)
        if sizes is None and (expert := _EXPERT.match(name)) is not None:
            sizes = _expert_sizes(model, expert["experts"], expert["projection"])
        if sizes is not None:
            found[name] = sizes
    return found


def mismatched(trained: Mapping[str, Sizes], served: Mapping[str, Sizes]) -> dict[str, Sizes]:
    """The modules whose trained sizes differ from the served ones, with the served sizes."""
    return {
        name: served[name]
        for name, sizes in trained.items()
        if name in served and served[name] != sizes
    }


def _submodule(model: Any, name: str) -> Any:
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


def _module_sizes(model: Any, name: str) -> Sizes | None:
    module = _submodule(model, name)
    if module is None:
        return None
    if hasattr(module, "in_features") and hasattr(module, "out_features"):
        return Sizes(module.in_features, module.out_features)
    if hasattr(module, "num_embeddings"):
        return Sizes(module.num_embeddings, module.embedding_dim)
    if type(module).__name__ == "Conv1D":  # GPT-2's: weight is in by out, out is module.nf
        return Sizes(module.weight.shape[0], module.nf)
    return None


def _expert_sizes(model: Any, experts: str, projection: str) -> Sizes | None:
    """A fused layer's weights are experts by out by in (transformers 5): gate and up share
    gate_up_proj, each half of its rows."""
    module = _submodule(model, experts)
    if projection in _GATE_UP and hasattr(module, "gate_up_proj"):
        _, rows, columns = module.gate_up_proj.shape
        return Sizes(columns, rows // 2)
    if projection in _DOWN and hasattr(module, "down_proj"):
        _, rows, columns = module.down_proj.shape
        return Sizes(columns, rows)
    return None


def resizing(trained: Sizes, served: Sizes) -> str:
    """How a server that copies weights into buffers of the served sizes changes them."""
    smaller = trained.inputs <= served.inputs and trained.outputs <= served.outputs
    larger = trained.inputs >= served.inputs and trained.outputs >= served.outputs
    how = "zero-padded" if smaller else "cut" if larger else "cut and zero-padded"
    return f"{how}: trained as {trained}, served as {served} (in→out)"
