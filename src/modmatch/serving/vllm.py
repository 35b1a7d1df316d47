"""Will vLLM serve a saved adapter as trained? The installed vLLM's own loading answers where
it imports (:mod:`.vllm_run`); elsewhere vLLM 0.33.0's rules, restated in
:mod:`modmatch.reference.vllm`."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ..reference import vllm as reference
from .adapter import SavedAdapter, split

__all__ = ["Verdict", "check", "installed"]

# The LoraConfig fields that change what a saved adapter computes, with PEFT's defaults: one
# of these set, and not read by the server, is served otherwise than trained.
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
    """What the server does with the adapter: whether it loads it (else its message), which
    of the adapter's modules (by the names it was trained with) it applies and which it holds
    but never applies, and the config settings it does not read."""

    engine: str
    engine_version: str
    built_in: bool
    loads: bool
    error: str | None
    applied: tuple[str, ...]
    not_applied: tuple[str, ...]
    ignored_settings: tuple[str, ...]
    # Why each module is not applied, where the restated layout of the model says.
    why: Mapping[str, str] = field(default_factory=dict)


def check(
    adapter: SavedAdapter,
    model_config: Any,
    model_path: str,
    max_lora_rank: int = reference.MAX_LORA_RANK,
) -> Verdict:
    """vLLM's verdict on ``adapter`` served on the model of ``model_config`` (transformers'
    config, read from ``model_path``) with ``--max-lora-rank``."""
    vllm_run = installed()
    if vllm_run is not None:
        version, read = vllm_run.VERSION, vllm_run.read_fields()
        run = vllm_run.serve
    else:
        version, read = reference.VERSION, reference.READ_FIELDS
        run = _built_in
    ignored = tuple(
        name
        for name, default in _INFERENCE_FIELDS.items()
        if name not in read and adapter.config.get(name, default) not in (default, None)
    )
    held = sorted({split(tensor)[0] for tensor in adapter.shapes})
    try:
        applied_tensors = run(adapter, model_config, model_path, max_lora_rank)
    except reference.Refused as refused:
        return Verdict(
            "vllm", version, vllm_run is None, False, _one_line(refused), (), tuple(held), ignored
        )
    applied = {split(tensor)[0] for tensor in applied_tensors}
    not_applied = tuple(name for name in held if name not in applied)
    return Verdict(
        "vllm",
        version,
        vllm_run is None,
        True,
        None,
        tuple(name for name in held if name in applied),
        not_applied,
        ignored,
        _why(not_applied, model_config),
    )


def _why(modules: tuple[str, ...], model_config: Any) -> dict[str, str]:
    """Why vLLM never applies each module: the served model computes without its LoRA layer,
    or has no module of that name (and which it has instead)."""
    try:
        model = reference.layout(model_config)
    except ValueError:  # an architecture the restated rules do not know
        return {}
    why = {}
    for module in modules:
        if module in model.held_by_attention:
            why[module] = "the attention backend computes with its base weights (MLA)"
            continue
        found = reference.counterpart(module, model)
        why[module] = (
            f"the served model has no module of this name; it has {found}"
            if found is not None
            else "the served model has no module of this name"
        )
    return why


def installed() -> ModuleType | None:
    """The installed vLLM's runner, or None where vLLM is not installed. A vLLM that is
    installed but does not import is said on stderr, and the built-in rules answer."""
    if importlib.util.find_spec("vllm") is None:
        return None
    try:
        from . import vllm_run
    except Exception as error:  # an import can fail by any exception type
        print(
            f"modmatch: warning: vLLM is installed but does not import ({error}): the built-in "
            f"rules of vLLM {reference.VERSION} answer",
            file=sys.stderr,
        )
        return None
    return vllm_run


def _built_in(
    adapter: SavedAdapter, model_config: Any, model_path: str, max_lora_rank: int
) -> frozenset[str]:
    return reference.serve(
        adapter.config,
        adapter.shapes,
        reference.layout(model_config),
        str(adapter.path),
        model_path,
        max_lora_rank,
    )


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
