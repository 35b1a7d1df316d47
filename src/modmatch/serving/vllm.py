"""Will vLLM serve a saved adapter as trained? The installed vLLM 0.33's own loading answers
where it imports (:mod:`.vllm_run`); elsewhere vLLM 0.33.0's rules, restated in
:mod:`modmatch.reference.vllm`."""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from ..reference import vllm as reference
from ..reference import vllm_models
from . import shapes
from .adapter import SavedAdapter, split
from .settings import Settings
from .verdict import Verdict

__all__ = ["FLAGS", "MAX_LORA_RANKS", "NAME", "TITLE", "Verdict", "check", "installed"]

NAME = "vllm"
TITLE = "vLLM"
FLAGS = frozenset({"--max-lora-rank", "--lora-target-modules"})
MAX_LORA_RANKS: tuple[int, ...] | None = reference.MAX_LORA_RANKS

# The LoraConfig fields that change what a saved adapter computes, with PEFT's defaults: one
# of these set and not among the fields the server reads (its PEFTHelper's, which change with
# the release: vLLM up to 0.25 had no rank_pattern) is served otherwise than trained.
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

# Why a module's weights are never applied.
NO_SUCH_MODULE = "the served model has no module of this name"
HELD_BY_ATTENTION = "the attention backend computes with its base weights (MLA)"
PADDED = "zero-padded: trained as {trained}, served as {served} (in→out)"


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
    ignored = tuple(
        name
        for name, default in _INFERENCE_FIELDS.items()
        if name not in read and adapter.config.get(name, default) not in (default, None)
    )
    modules = adapter.modules()
    held = sorted(modules)
    trained = shapes.trained_sizes(adapter)
    served = shapes.served_sizes(model, trained)
    found = {"engine_version": version, "built_in": vllm_run is None, "ignored_settings": ignored}
    try:
        with _model_folder(model_path) as folder:
            applied_tensors = run(adapter, model, folder, settings, served)
    except reference.Refused as refused:
        return Verdict(
            loads=False, error=_one_line(refused), applied=(), not_applied=tuple(held), **found
        )
    # A LoRA set without its B (a packed module's missing slice is zeros) applies nothing.
    applied = {
        name
        for name in {split(tensor)[0] for tensor in applied_tensors}
        if {"lora_A", "lora_B"} <= modules[name].parts or "weight" in modules[name].parts
    }
    # A smaller adapter's weights are copied into a corner of the model's buffers (set_lora).
    padded = {
        name: (PADDED.format(trained=trained[name], served=sizes), None)
        for name, sizes in shapes.mismatched(trained, served).items()
        if name in applied
    }
    not_applied = tuple(name for name in held if name not in applied or name in padded)
    return Verdict(
        loads=True,
        error=None,
        applied=tuple(name for name in held if name in applied and name not in padded),
        not_applied=not_applied,
        why={**_why(not_applied, model.config), **padded},
        resized=tuple(sorted(padded)),
        **found,
    )


def installed() -> ModuleType | None:
    """The installed vLLM's runner, or None where vLLM 0.33 is not installed. A vLLM that is
    installed and not used (another release, whose internals the runner does not know, or
    one that does not import) is said on stderr. Importing the runner sets vLLM's environment
    for this process (see :mod:`.vllm_run`)."""
    if importlib.util.find_spec("vllm") is None:
        return None
    try:
        release = metadata.version("vllm")
    except metadata.PackageNotFoundError:  # a source tree on the path: no metadata to read
        release = None
    if release is not None and not _runs(release):
        _not_used(f"vLLM {release} is installed; modmatch runs the loading code of 0.33 only")
        return None
    try:
        from . import vllm_run
    except Exception as error:  # an import can fail by any exception type
        _not_used(f"vLLM is installed but does not import ({error})")
        return None
    if not _runs(vllm_run.VERSION):
        _not_used(f"vLLM {vllm_run.VERSION} is found; modmatch runs the loading code of 0.33 only")
        return None
    return vllm_run


def _runs(release: str) -> bool:
    return release.startswith(reference.VERSION.rpartition(".")[0] + ".")


@contextlib.contextmanager
def _model_folder(model_path: str) -> Iterator[str]:
    """The folder vLLM reads the model's config.json from: the one given, the one holding a
    config.json given, or a temporary one holding a config file of another name as that."""
    path = Path(model_path)
    if not path.is_file():
        yield model_path
    elif path.name == "config.json":
        yield str(path.parent)
    else:
        with tempfile.TemporaryDirectory() as folder:
            shutil.copy(path, Path(folder) / "config.json")
            yield folder


def _not_used(reason: str) -> None:
    print(
        f"modmatch: warning: {reason}: the built-in rules of vLLM {reference.VERSION} answer",
        file=sys.stderr,
    )


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


def _why(modules: tuple[str, ...], model_config: Any) -> dict[str, tuple[str, str | None]]:
    """Why vLLM never applies each module: the served model computes without its LoRA layer,
    or has no module of that name (and the one it has instead)."""
    try:
        model = vllm_models.layout(model_config)
    except ValueError:  # an architecture the restated layouts do not know
        return {}
    served = _served_names(model)
    return {
        module: (HELD_BY_ATTENTION, None)
        if module in model.held_by_attention
        else (NO_SUCH_MODULE, _counterpart(module, served))
        for module in modules
    }


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
