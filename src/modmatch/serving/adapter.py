"""A saved PEFT adapter as its files say: ``adapter_config.json``, and the tensor names and
shapes in ``adapter_model.safetensors``' header. The tensors themselves are never read."""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..reference.peft import SAVED_PREFIX as PREFIX

__all__ = ["Held", "SavedAdapter", "read", "split"]

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
# A safetensors header is a JSON object; real ones are kilobytes to a few megabytes.
_MAX_HEADER = 100 * 2**20

# The endings PEFT saves, each with what it is; the rest of the name is the module's.
_PARTS = (
    (".lora_A.weight", "lora_A"),
    (".lora_B.weight", "lora_B"),
    (".lora_B.bias", "lora_bias"),
    (".lora_embedding_A", "lora_A"),
    (".lora_embedding_B", "lora_B"),
    (".lora_magnitude_vector.weight", "dora_magnitude"),
    (".lora_magnitude_vector", "dora_magnitude"),
    (".token_adapter.trainable_tokens_delta", "trainable_tokens"),
    (".embed_tokens.base_layer.weight", "base_weight"),
    (".lm_head.base_layer.weight", "base_weight"),
    (".weight", "weight"),
    (".bias", "bias"),
)


@dataclass
class Held:
    """What the adapter holds for one module: the LoRA ranks (two where PEFT wraps two of its
    parameters, as with fused experts), and which other parts were saved."""

    ranks: list[int] = field(default_factory=list)
    parts: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class SavedAdapter:
    """An adapter folder: its config, and each tensor's name and shape."""

    path: Path
    config: Mapping[str, Any]
    shapes: Mapping[str, tuple[int, ...]]

    def modules(self) -> dict[str, Held]:
        """The adapter's modules by the names the user trained: each tensor's name less PEFT's
        prefix, its ending, and a trailing ``.base_layer`` (PEFT's nesting of wrappers)."""
        held: dict[str, Held] = {}
        for tensor in sorted(self.shapes):
            name, part = split(tensor)
            entry = held.setdefault(name, Held())
            entry.parts.add(part)
            if part == "lora_A":
                entry.ranks.append(self.shapes[tensor][0])
        return held


def split(tensor: str) -> tuple[str, str]:
    """A tensor's module name (as :meth:`SavedAdapter.modules` gives it) and its part."""
    name = "." + tensor.removeprefix(PREFIX)
    part = "unknown"
    for ending, kind in _PARTS:
        if name.endswith(ending):
            # An embedding's base weights end in its own name, which stays.
            kept = ending.partition(".base_layer")[0] if kind == "base_weight" else ""
            name, part = name[: -len(ending)] + kept, kind
            break
    name = name[1:]
    if part in ("weight", "bias") and any(
        segment == "base_layer" or segment.startswith("lora_") for segment in name.split(".")
    ):
        part = "unknown"  # a LoRA or base tensor saved under a name PEFT does not give
    while name.endswith(".base_layer"):
        name = name.removesuffix(".base_layer")
    return name, part


def read(path: str | Path) -> SavedAdapter:
    """The adapter saved in ``path`` (a folder, or its ``adapter_config.json``)."""
    folder = Path(path)
    if folder.name == CONFIG:
        folder = folder.parent
    config_file = folder / CONFIG
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"cannot read {config_file}: {error.strerror}") from error
    except ValueError as error:  # JSON or UTF-8
        raise ValueError(f"{config_file} is not a JSON config: {error}") from error
    if not isinstance(config, dict):
        raise ValueError(f"{config_file} is not a PEFT config: expected a JSON object")
    return SavedAdapter(folder, config, _header(folder / WEIGHTS))


def _header(file: Path) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape from a safetensors file's header: an 8-byte little-endian length,
    then that many bytes of JSON."""
    try:
        with file.open("rb") as stream:
            head = stream.read(8)
            (size,) = struct.unpack("<Q", head) if len(head) == 8 else (0,)
            text = stream.read(size) if 0 < size <= _MAX_HEADER else b""
    except OSError as error:
        bin_file = file.with_suffix(".bin")
        if bin_file.exists():
            raise ValueError(
                f"{file.parent} holds {bin_file.name}: only {WEIGHTS} is read (a pickle is "
                "not opened); save with safe_serialization=True"
            ) from error
        raise ValueError(f"cannot read {file}: {error.strerror}") from error
    try:
        header = json.loads(text)
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise ValueError(f"{file} is not a safetensors file: no JSON header")
    return {
        name: tuple(entry["shape"])
        for name, entry in header.items()
        if name != "__metadata__" and isinstance(entry, dict) and "shape" in entry
    }
