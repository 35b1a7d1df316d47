"""Will SGLang serve a saved adapter as trained? The installed SGLang 0.5's own loading answers
where it imports (:mod:`.sglang_run`); elsewhere SGLang 0.5.23's rules, restated in
:mod:`modmatch.reference.sglang`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from ..reference import sglang as reference
from ..reference import sglang_models
from . import installed as engine_code
from . import shapes
from .adapter import SavedAdapter
from .settings import Settings
from .verdict import Verdict, ignored_settings, loaded

__all__ = ["FLAGS", "MAX_LORA_RANKS", "NAME", "TITLE", "check", "installed"]

NAME = "sglang"
TITLE = "SGLang"
FLAGS = frozenset({"--max-lora-rank", "--lora-target-modules", "--lora-strict-loading"})
MAX_LORA_RANKS: tuple[int, ...] | None = None  # any; by default the adapter's r

# Why a module's weights are not applied.
OUTSIDE_LAYERS = "outside the decoder layers: dropped when loaded"
NOT_WRAPPED = "no LoRA layer of the served model takes it"


def check(adapter: SavedAdapter, model: Any, model_path: str, settings: Settings) -> Verdict:
    """SGLang's verdict on ``adapter`` served on ``model`` (a transformers model on the meta
    device, built from the config read from ``model_path``) started with ``settings``."""
    sglang_run = installed()
    served = shapes.served_sizes(model, shapes.trained_sizes(adapter))
    found: dict[str, Any] = {
        "engine": NAME,
        "engine_version": reference.VERSION if sglang_run is None else sglang_run.VERSION,
        "built_in": sglang_run is None,
        "ignored_settings": ignored_settings(adapter.config, reference.READ_FIELDS),
    }
    flags = (settings.max_lora_rank, settings.target_modules, settings.strict_loading)
    if sglang_run is not None:
        with engine_code.model_folder(model_path) as folder:
            outcome = sglang_run.serve(str(adapter.path), folder, *flags)
    else:
        layout = sglang_models.layout(model.config)
        outcome = reference.serve(adapter.config, adapter.shapes, layout, str(adapter.path), *flags)
    held = tuple(sorted(adapter.modules()))
    if outcome.startup_error is not None:
        return Verdict(
            loads=False, error=outcome.startup_error, applied=(), not_applied=held, **found
        )
    if outcome.request_error is not None:
        return Verdict(
            loads=True,
            error=None,
            request_error=outcome.request_error,
            applied=(),
            not_applied=held,
            **found,
        )
    why = lambda names: _why(names, adapter.config.get("target_modules"))  # noqa: E731
    return loaded(adapter, outcome.applied, served, why, **found)


def installed() -> ModuleType | None:
    """The installed SGLang's runner (:mod:`.sglang_run`), or None where SGLang 0.5 is not
    installed."""
    return engine_code.runner("sglang", TITLE, reference.VERSION, f"{__package__}.sglang_run")


def _why(modules: tuple[str, ...], targets: Any) -> Mapping[str, tuple[str, str | None]]:
    """SGLang files a tensor by the first ``layers.N.`` in its name; one without is dropped,
    but an embedding's or the head's the adapter targets, which is kept for a LoRA layer the
    model may not have (lora.py:LoRAAdapter._process_weight)."""
    named = {"all"} if isinstance(targets, str) else {t.rpartition(".")[2] for t in targets or ()}

    def reason(module: str) -> str:
        if re.search(r"layers\.\d+\.", module):
            return NOT_WRAPPED
        last = module.rpartition(".")[2]
        kept = last in ("embed_tokens", "lm_head") and ("all" in named or last in named)
        return NOT_WRAPPED if kept else OUTSIDE_LAYERS

    return {module: (reason(module), None) for module in modules}
