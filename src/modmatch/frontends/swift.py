"""ms-swift 4.6: being written (issue 27); detected by no file until its reading is restated."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

NAME = "swift"
TITLE = "ms-swift 4.6"
RULES = "peft"
CONFIG_CLASS = "LoraConfig"
PEFT_PIN: str | None = "0.20.0"
PARAMETER_DROPOUT: float | None = None
KEYS: frozenset[str] = frozenset()


def read(path: str | Path) -> dict[str, Any]:
    raise ValueError(f"{TITLE} configs are not read yet")


def base_model(settings: Mapping[str, Any]) -> str | None:
    return None


def lora_config(settings: Mapping[str, Any], model: Any) -> dict[str, Any]:
    raise ValueError(f"{TITLE} configs are not read yet")


def build_model(settings: Mapping[str, Any], config: Any) -> Any | None:
    return None
