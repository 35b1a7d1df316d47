"""What a serving engine does with a saved adapter: the verdict every engine gives, and its
making from what the engine applies."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import shapes
from .adapter import SavedAdapter, split

__all__ = ["Verdict", "ignored_settings", "loaded"]

# The LoraConfig fields that change what a saved adapter computes, with PEFT's defaults: one
# of these set and not among the fields a server reads is served otherwise than trained.
_INFERENCE_FIELDS: Mapping[str, Any] = {
    "r": 8,
    "lora_alpha": 8,
    "use_rslora": False,
    "rank_pattern": {},
    "alpha_pattern": {},
    "bias": "none",
    "lora_bias": False,
    "use_dora": False,
    "modules_to_save": None,
    "init_lora_weights": True,
    "layer_replication": None,
    "trainable_token_indices": None,
    "alora_invocation_tokens": None,
    "use_qalora": False,
    "use_bdlora": None,
    "arrow_config": None,
}


@dataclass(frozen=True)
class Verdict:
    """What the server does with the adapter: whether it starts with it loaded (else its
    message), whether the first request with the adapter then fails (``request_error``, its
    message), which of the adapter's modules (by the names it was trained with) it applies as
    trained and which it holds but does not, and the config settings it does not read.
    ``why``: for each module not applied, the reason and the name the served model has
    instead (where the restated layout of the model knows one). ``resized``: the modules not
    applied as trained that the server computes with weights zero-padded or cut to the served
    model's sizes (the adapter was trained at other sizes)."""

    engine_version: str
    built_in: bool
    loads: bool
    error: str | None
    applied: tuple[str, ...]
    not_applied: tuple[str, ...]
    ignored_settings: tuple[str, ...]
    why: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)
    engine: str = "vllm"
    request_error: str | None = None
    resized: tuple[str, ...] = ()


def ignored_settings(config: Mapping[str, Any], read: Iterable[str]) -> tuple[str, ...]:
    """The fields of ``config`` set otherwise than by default that change what the adapter
    computes and that a server reading only ``read`` never sees."""
    read = frozenset(read)
    return tuple(
        name
        for name, default in _INFERENCE_FIELDS.items()
        if name not in read and config.get(name, default) not in (default, None)
    )


Why = Callable[[tuple[str, ...]], Mapping[str, tuple[str, str | None]]]


def loaded(
    adapter: SavedAdapter,
    tensors: Iterable[str],
    served: Mapping[str, shapes.Sizes],
    why: Why,
    **found: Any,
) -> Verdict:
    """The verdict on an adapter the server loads, of which ``tensors`` reach a LoRA layer:
    a module is applied where both its A and B do (a LoRA set without its B applies nothing),
    or its whole weight; and as trained only where its sizes are the ``served`` ones (else the
    server copied its weights into buffers of the model's sizes, zero-padded or cut). ``why``
    gives the reasons for the modules not applied."""
    modules = adapter.modules()
    held = sorted(modules)
    applied = {
        name
        for name in {split(tensor)[0] for tensor in tensors}
        if {"lora_A", "lora_B"} <= modules[name].parts or "weight" in modules[name].parts
    }
    trained = shapes.trained_sizes(adapter)
    resized = {
        name: (shapes.resizing(trained[name], sizes), None)
        for name, sizes in shapes.mismatched(trained, served).items()
        if name in applied
    }
    not_applied = tuple(name for name in held if name not in applied or name in resized)
    return Verdict(
        loads=True,
        error=None,
        applied=tuple(name for name in held if name in applied and name not in resized),
        not_applied=not_applied,
        why={**why(not_applied), **resized},
        resized=tuple(sorted(resized)),
        **found,
    )
