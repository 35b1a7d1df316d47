"""The real frameworks as second oracles: skipped where not installed, required in CI."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

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
    if module.split(".")[0] in os.environ.get("MODMATCH_FRONT_END", "").split(","):
        return importlib.import_module(module)
    return pytest.importorskip(module)
