"""Serving a saved adapter: what its files hold (:mod:`.adapter`), and whether an inference
server applies it as trained: one module per engine (:mod:`.vllm`, :mod:`.sglang`), each with the
attributes of :class:`Engine`, registered by one line in ``_REGISTERED``."""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any, Protocol

from .adapter import SavedAdapter
from .settings import Settings
from .verdict import Verdict

__all__ = ["Engine", "Settings", "Verdict", "engines"]

# The registry: one module name per engine.
_REGISTERED = ("vllm", "sglang")


class Engine(Protocol):
    """A serving engine's module: its name, the flags and ranks it takes, and its verdict."""

    NAME: str  # ``--engine NAME``
    TITLE: str
    FLAGS: frozenset[str]  # the server flags of Settings it has, as it spells them
    MAX_LORA_RANKS: tuple[int, ...] | None  # the --max-lora-rank values it takes; None: any

    def check(
        self, adapter: SavedAdapter, model: Any, model_path: str, settings: Settings
    ) -> Verdict:
        """The engine's verdict on ``adapter`` served on ``model`` (a transformers model on
        the meta device, built from the config in ``model_path``) started with
        ``settings``."""
        ...


@cache
def engines() -> dict[str, Engine]:
    """The registered serving engines by name."""
    found: dict[str, Engine] = {}
    for name in _REGISTERED:
        module: Engine = importlib.import_module(f"{__name__}.{name}")
        found[module.NAME] = module
    return found
