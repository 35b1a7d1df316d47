"""The real frameworks as second oracles: skipped where not installed, required in CI."""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

import pytest


def oracle(module: str) -> ModuleType:
    """Import a framework's module; outside CI a missing one skips, in CI it fails the test."""
    if os.environ.get("CI") == "true":
        return importlib.import_module(module)
    return pytest.importorskip(module)


def front_end(module: str) -> ModuleType:
    """Import a training front-end's module. Each front-end is installed only in the environment
    of the PEFT release it pins; the run names it in MODMATCH_FRONT_END, and there a missing
    module fails the test. Elsewhere the test skips."""
    named = os.environ.get("MODMATCH_FRONT_END")
    if named is not None and module.split(".")[0] not in named.split(","):
        # Another front-end's environment: a release of this one installed there as a
        # dependency (LLaMA-Factory's TRL) is not the release restated.
        pytest.skip(f"'{module}' is not tested here: CI runs this in its front-end's environment")
    if named is not None:
        return importlib.import_module(module)
    reason = f"'{module}' is not installed: CI runs this in its front-end's environment"
    return pytest.importorskip(module, reason=reason)


# The fields of a LoraConfig that decide what PEFT wraps, or whether it refuses.
LORA_FIELDS = (
    "target_modules",
    "exclude_modules",
    "target_parameters",
    "layers_to_transform",
    "layers_pattern",
    "modules_to_save",
    "lora_dropout",
    "task_type",
    "r",
    "lora_alpha",
    "bias",
    "use_dora",
    "peft_type",
)


def wrapped(adapted: Any) -> set[str]:
    """The base model's module names real PEFT replaced by a tuner layer (nested ones once)."""
    base_layer = oracle("peft.tuners.tuners_utils").BaseTunerLayer
    return {
        name.removeprefix("base_model.model.").replace(".base_layer", "")
        for name, module in adapted.named_modules()
        if isinstance(module, base_layer)
    }
