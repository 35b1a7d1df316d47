"""Serving a saved adapter: what a saved adapter holds, next to what training adapts, and whether the
server applies it as trained."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..inputs.models import Model
from ..serving import Settings, Verdict, engines
from ..serving import adapter as saved

__all__ = ["Audit", "audit", "check", "to_json"]


@dataclass(frozen=True)
class Audit:
    """The saved adapter: LoRA ranks per module (a fused experts module's rank per expert),
    the modules saved whole (``modules_to_save``), the embeddings whose base weights PEFT saved
    beside their LoRA (``save_embedding_layers``), and the modules training adapts that it
    does not hold."""

    ranks: Mapping[str, tuple[int, ...]]
    saved_whole: tuple[str, ...]
    base_weights: tuple[str, ...]
    not_saved: tuple[str, ...]


def audit(adapter: saved.SavedAdapter, model: Model, adapted: list[str]) -> Audit:
    """Compare the adapter's tensors with ``adapted``, the modules the preview says training
    wraps."""
    held = adapter.modules()
    ranks = {
        name: tuple(rank // _experts(model, name) for rank in entry.ranks)
        for name, entry in held.items()
        if entry.ranks
    }
    whole = tuple(name for name, entry in held.items() if "weight" in entry.parts)
    base = tuple(name for name, entry in held.items() if "base_weight" in entry.parts)
    # An adapter trained one module per expert (transformers 4) holds a fused layer's experts.
    per_expert = {m.group(1) for name in held if (m := _PER_EXPERT.match(name))}
    missing = tuple(
        name
        for name in adapted
        if name not in held and not (name in model.fused_experts and _layer(name) in per_expert)
    )
    return Audit(ranks, whole, base, missing)


# A module of one expert, and the layer it is in (the name up to its first number).
_PER_EXPERT = re.compile(r"(.*?\.\d+)\.(?:.*\.)?experts\.\d+\.")


def _layer(name: str) -> str | None:
    found = re.match(r"(.*?\.\d+)\.", name)
    return found.group(1) if found else None


def _experts(model: Model, name: str) -> int:
    """How many experts a module holds fused (PEFT saves one LoRA pair for them all, its rank
    times the experts); 1 for any other module."""
    stacked = model.fused_experts.get(name)
    if not stacked or model.module is None:
        return 1
    return int(getattr(model.module.get_submodule(name), stacked[0]).shape[0])


def check(
    engine: str, path: str, model: Model, model_path: str, settings: Settings
) -> tuple[saved.SavedAdapter, Verdict]:
    """The adapter in ``path`` and ``engine``'s verdict on it, served on ``model`` started
    with ``settings``."""
    adapter = saved.read(path)
    return adapter, engines()[engine].check(adapter, model.module, model_path, settings)


def to_json(found: Audit, verdict: Verdict) -> dict[str, Any]:
    document = asdict(verdict)
    document["rules"] = "built-in" if document.pop("built_in") else "installed"
    document["not_applied_why"] = {
        module: {"reason": reason, "served_name": name}
        for module, (reason, name) in document.pop("why").items()
    }
    return {
        "adapter": {
            "lora_ranks": {name: list(ranks) for name, ranks in found.ranks.items()},
            "saved_whole": list(found.saved_whole),
            "base_weights_saved": list(found.base_weights),
            "adapted_not_saved": list(found.not_saved),
        },
        "serve": document,
    }
