"""A front-end's YAML config read as a mapping: what the front-ends' readers share."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["mapping", "yaml"]


def yaml() -> Any:
    """PyYAML, imported where a config is read (the ``frontends`` extra)."""
    try:
        return importlib.import_module("yaml")
    except ImportError as error:
        raise ImportError(
            "reading a front-end's config needs PyYAML: pip install 'modmatch[frontends]'"
        ) from error


def mapping(path: str | Path, what: str, loader: Callable[[Any], Any] | None = None) -> Any:
    """The YAML file's mapping, read with PyYAML's SafeLoader or the Loader ``loader`` makes
    from PyYAML; ValueError where it is not YAML, or ``what`` (as "an Axolotl config") is not
    a mapping."""
    module = yaml()
    with open(path, encoding="utf-8") as file:
        try:
            settings = module.load(file, Loader=loader(module) if loader else module.SafeLoader)
        except module.YAMLError as error:  # duplicate keys too, where the loader refuses them
            raise ValueError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(settings, dict):
        raise ValueError(f"{path}: {what} is a YAML mapping, not {type(settings).__name__}")
    return settings
