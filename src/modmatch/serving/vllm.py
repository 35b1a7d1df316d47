"""Will vLLM serve a saved adapter as trained? The installed vLLM 0.33's own loading answers
where it imports (:mod:`.vllm_run`); elsewhere vLLM 0.33.0's rules, restated in
:mod:`modmatch.reference.vllm`."""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

from ..reference import vllm as reference
from ..reference import vllm_models
from . import installed as engine_code
from . import shapes
from .adapter import SavedAdapter
from .settings import Settings
from .verdict import Verdict, ignored_settings, loaded

__all__ = ["FLAGS", "MAX_LORA_RANKS", "NAME", "TITLE", "Verdict", "check", "installed"]

NAME = "vllm"
TITLE = "vLLM"
FLAGS = frozenset({"--max-lora-rank", "--lora-target-modules"})
MAX_LORA_RANKS: tuple[int, ...] | None = reference.MAX_LORA_RANKS

# Why a module's weights are never applied.
NO_SUCH_MODULE = "the served model has no module of this name"
HELD_BY_ATTENTION = "the attention backend computes with its base weights (MLA)"
LEFT_OUT = "--lora-target-modules gives its layer no LoRA"


def check(adapter: SavedAdapter, model: Any, model_path: str, settings: Settings) -> Verdict:
    """vLLM's verdict on ``adapter`` served on ``model`` (a transformers model on the meta
    device, built from the config read from ``model_path``) started with ``settings``."""
    vllm_run = installed()
    if vllm_run is not None:
        version, read = vllm_run.VERSION, vllm_run.read_fields()
        run = vllm_run.serve
    else:
        version, read = reference.VERSION, reference.READ_FIELDS
        run = _built_in
    served = shapes.served_sizes(model, shapes.trained_sizes(adapter))
    found: dict[str, Any] = {
        "engine_version": version,
        "built_in": vllm_run is None,
        "ignored_settings": ignored_settings(adapter.config, read),
    }
    try:
        with engine_code.model_folder(model_path) as folder:
            tensors = run(adapter, model, folder, settings, served)
    except reference.Refused as refused:
        return Verdict(
            loads=False,
            error=_one_line(refused),
            applied=(),
            not_applied=tuple(sorted(adapter.modules())),
            **found,
        )
    targets = settings.target_modules
    return loaded(
        adapter, tensors, served, lambda names: _why(names, model.config, targets), **found
    )


def installed() -> ModuleType | None:
    """The installed vLLM's runner (:mod:`.vllm_run`), or None where vLLM 0.33 is not
    installed. Importing the runner sets vLLM's environment for this process."""
    return engine_code.runner("vllm", TITLE, reference.VERSION, f"{__package__}.vllm_run")


def _built_in(
    adapter: SavedAdapter,
    model: Any,
    model_path: str,
    settings: Settings,
    sizes: Mapping[str, shapes.Sizes],
) -> frozenset[str]:
    return reference.serve(
        adapter.config,
        adapter.shapes,
        vllm_models.layout(model.config),
        str(adapter.path),
        model_path,
        settings.max_lora_rank or reference.MAX_LORA_RANK,
        settings.target_modules,
        {name: (found.inputs, found.outputs) for name, found in sizes.items()},
    )


def _why(
    modules: tuple[str, ...], model_config: Any, targets: tuple[str, ...] | None
) -> dict[str, tuple[str, str | None]]:
    """Why vLLM never applies each module: the served model computes without its LoRA layer,
    --lora-target-modules leaves its layer out, or the model has no module of that name (and
    the one it has instead)."""
    try:
        model = vllm_models.layout(model_config)
    except ValueError:  # an architecture the restated layouts do not know
        return {}
    served = _served_names(model)
    kept = {
        n for names in _served_names(reference.deployed(model, targets)).values() for n in names
    }
    every = {name for names in served.values() for name in names}

    def reason(module: str) -> tuple[str, str | None]:
        if module in model.held_by_attention:
            return HELD_BY_ATTENTION, None
        if module in every and module not in kept:
            return LEFT_OUT, None
        return NO_SUCH_MODULE, _counterpart(module, served)

    return {module: reason(module) for module in modules}


def _served_names(model: vllm_models.Layout) -> dict[tuple[str, tuple[str, ...]], list[str]]:
    """The names the served model takes weights under (each wrapped module's own, and a packed
    one's parts'), by their last segment and their numbers."""
    index: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for wrapped in model.wrapped:
        parent, _, last = wrapped.rpartition(".")
        for part in (last, *model.packed.get(last, ())):
            name = f"{parent}.{part}" if parent else part
            index.setdefault(_key(name), []).append(name)
    return index


def _key(name: str) -> tuple[str, tuple[str, ...]]:
    segments = name.split(".")
    return segments[-1], tuple(s for s in segments if s.isdigit())


def _counterpart(
    module: str, served: Mapping[tuple[str, tuple[str, ...]], list[str]]
) -> str | None:
    """The served name with the same last segment and numbers as ``module`` that shares the
    longest ending with it (a different prefix, or a different block name)."""
    candidates = served.get(_key(module), [])
    mine = module.split(".")[::-1]

    def shared(name: str) -> int:
        theirs = name.split(".")[::-1]
        return next(
            (i for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b),
            min(len(mine), len(theirs)),
        )

    return max(candidates, key=shared, default=None)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
