"""Training front-ends whose config files modmatch reads as the LoRA configs they build.

Each front-end is one module with the attributes of :class:`FrontEnd`, registered by one line
in ``_REGISTERED``; the command's choices, ``--help`` and the detection of a config's kind come
from :func:`front_ends`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Protocol

__all__ = ["FrontEnd", "front_ends"]

# The registry: one module name per front-end, in the order detection tries them.
_REGISTERED = ("axolotl", "llamafactory", "trl", "swift", "automodel_recipe")


class FrontEnd(Protocol):
    """A front-end module: what it is, the PEFT release it pins, and its reading of a config."""

    NAME: str  # its package's import name, and the kind's name on the command line (--as)
    TITLE: str  # the front-end and the release whose code is restated
    # The rule set that reads the config it builds: "peft", or a framework's own ("automodel"),
    # and the config's class as the framework names it ("LoraConfig").
    RULES: str
    CONFIG_CLASS: str
    # The PEFT release its requirements allow at most (None: whichever is installed).
    PEFT_PIN: str | None
    # The dropout PEFT's ParamWrapper sees for parameters PEFT's rewriting adds, where the
    # front-end changes it (None: the config's own).
    PARAMETER_DROPOUT: float | None
    KEYS: frozenset[str]  # settings only this front-end's configs hold: how a file is detected

    def read(self, path: str | Path) -> dict[str, Any]:
        """The config file as the front-end reads it; ValueError where it cannot."""
        ...

    def base_model(self, settings: Mapping[str, Any]) -> str | None:
        """The model the config trains, as written."""
        ...

    def lora_config(self, settings: Mapping[str, Any], model: Any) -> dict[str, Any]:
        """The fields of the config the front-end builds for ``model`` (a ``LoraConfig``'s, or
        its framework's own); ValueError where it refuses the settings."""
        ...

    def notes(self, settings: Mapping[str, Any], model: Any) -> list[str]:
        """What the front-end does with ``settings`` that their reader may not expect, a line
        each: shown as notes, and with PEFT's refusal of a config that adapts nothing."""
        ...

    def build_model(self, settings: Mapping[str, Any], config: Any) -> Any | None:
        """The model the front-end builds from transformers' ``config``, on the current device,
        where it is not the class transformers maps the config to (its own implementation);
        None for transformers' class."""
        ...


@cache
def front_ends() -> dict[str, FrontEnd]:
    """The registered front-ends by name."""
    found: dict[str, FrontEnd] = {}
    for name in _REGISTERED:
        module: FrontEnd = importlib.import_module(f"{__name__}.{name}")
        found[module.NAME] = module
    return found
