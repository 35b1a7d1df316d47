"""Megatron-Bridge's rules: its matcher, asked by its walk about each module with the short
name and the parent's path (the root with neither)."""

from __future__ import annotations

from collections.abc import Sequence

from ... import megatron_bridge
from ...engine.syntax import SEED
from ...errors import InputError
from .base import Options
from .named import NameRuleSet, built

__all__ = ["NAME", "build"]

NAME = "megatron-bridge"


class _MegatronBridgeRuleSet(NameRuleSet):
    def candidates(self, asked: list[tuple[str, bool]]) -> Sequence[int]:
        if self.call != "split":  # candidates assumes the split call, as Megatron-Bridge's walk
            return super().candidates(asked)
        found: Sequence[int] = self.matcher.candidates([name for name, _ in asked])
        return found

    def arguments(self, name: str) -> tuple[str | None, str | None]:
        # Megatron-Bridge's walk asks about the root with neither name nor prefix.
        return super().arguments(name) if name else (None, None)


def build(options: Options) -> NameRuleSet:
    return built(
        NAME,
        options,
        "split",
        _megatron_bridge,
        defaults_by="Megatron-Bridge",
        megatron_defaults=True,
    )


def _megatron_bridge(options: Options, call: str, defaults: bool) -> NameRuleSet:
    if options.causal_lm:
        raise InputError("--causal-lm: Megatron-Bridge's matcher has no is_causal_lm")
    if options.targets and options.excludes:
        # Megatron-Bridge asserts on this combination at the first module it is asked about.
        raise InputError(
            "--target and --exclude cannot be combined: "
            "Megatron-Bridge applies excludes only without targets"
        )
    # Megatron-Bridge reads empty target and exclude lists as "every linear layer".
    matcher = megatron_bridge.ModuleMatcher(exclude_modules=list(options.excludes or []))
    if not defaults:
        matcher.target_modules = list(options.targets or [])
    return _MegatronBridgeRuleSet("megatron-bridge", matcher, call, SEED)
