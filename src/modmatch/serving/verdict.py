"""What a serving engine does with a saved adapter: the verdict every engine gives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Verdict"]


@dataclass(frozen=True)
class Verdict:
    """What the server does with the adapter: whether it starts with it loaded (else its
    message), whether the first request with the adapter then fails (``request_error``, its
    message), which of the adapter's modules (by the names it was trained with) it applies as
    trained and which it holds but does not, and the config settings it does not read.
    ``why``: for each module not applied, the reason and the name the served model has
    instead (where the restated layout of the model knows one). ``resized``: the modules not
    applied as trained that the server computes with weights zero-padded or cut to the served
    model's sizes (the adapter was trained at other sizes)."""

    engine_version: str
    built_in: bool
    loads: bool
    error: str | None
    applied: tuple[str, ...]
    not_applied: tuple[str, ...]
    ignored_settings: tuple[str, ...]
    why: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)
    engine: str = "vllm"
    request_error: str | None = None
    resized: tuple[str, ...] = ()
