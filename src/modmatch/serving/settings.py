"""The server's own flags that change what it does with an adapter."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    """The LoRA flags a server is started with, as the check takes them. A field an engine
    does not have is refused by name (:attr:`modmatch.serving.Engine.FLAGS`)."""

    max_lora_rank: int | None = None  # --max-lora-rank; None: the engine's default
    target_modules: tuple[str, ...] | None = None  # --lora-target-modules; None: not given
    strict_loading: bool = False  # --lora-strict-loading

    def given(self) -> frozenset[str]:
        """The flags set otherwise than by default, as the server spells them."""
        return frozenset(
            flag
            for flag, value in (
                ("--max-lora-rank", self.max_lora_rank),
                ("--lora-target-modules", self.target_modules),
                ("--lora-strict-loading", self.strict_loading or None),
            )
            if value is not None
        )
