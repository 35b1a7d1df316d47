"""Serving a saved adapter: what its files hold (:mod:`.adapter`), and whether an inference
server applies it as trained: one module per engine (:mod:`.vllm`), each with the attributes of
:class:`Engine`, registered by one line in ``_REGISTERED``."""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any, Protocol

from .adapter import SavedAdapter
from .verdict import Verdict

__all__ = ["Engine", "Verdict", "engines"]

# The registry: one module name per engine.
_REGISTERED = ("vllm",)


class Engine(Protocol):
    """A serving engine's module: its name, the ranks it takes, and its verdict."""

    NAME: str  # ``--engine NAME``
    TITLE: str
    MAX_LORA_RANK: int  # the engine's default --max-lora-rank
    MAX_LORA_RANKS: tuple[int, ...]  # the values it accepts

    def check(
        self, adapter: SavedAdapter, model_config: Any, model_path: str, max_lora_rank: int
    ) -> Verdict:
        """The engine's verdict on ``adapter`` served on the model of ``model_config`` (read
        from ``model_path``)."""
        ...


@cache
def engines() -> dict[str, Engine]:
    """The registered serving engines by name."""
    found: dict[str, Engine] = {}
    for name in _REGISTERED:
        module: Engine = importlib.import_module(f"{__name__}.{name}")
        found[module.NAME] = module
    return found
