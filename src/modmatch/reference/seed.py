"""The seed's semantics on plain Python ``re``: slow, readable, and the oracle for everything fast.

This restates NeMo Automodel's ``module_matcher.py`` rule for rule. modmatch's fast path is
tested against it, and it is the path for the few inputs RE2 cannot answer identically.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ModuleMatcher", "seed_regex", "wildcard_match"]


def seed_regex(pattern: str) -> str:
    """The regex the seed compiles for ``pattern``: every ``*`` becomes ``(.*)``, anchored by ``^...$``."""
    return "^" + pattern.replace("*", "(.*)") + "$"


def wildcard_match(pattern: str, key: str | None) -> bool | None:
    """True if ``pattern`` matches ``key`` with the seed's regex, None when ``key`` is None."""
    if key is None:
        return None
    return re.compile(seed_regex(pattern)).match(key) is not None


def _default_targets() -> list[str]:
    return ["linear_qkv", "linear_proj", "linear_fc1", "linear_fc2"]


@dataclass
class ModuleMatcher:
    """The seed's ModuleMatcher: decides per module whether it gets an adapter."""

    target_modules: list[str] = field(default_factory=_default_targets)
    exclude_modules: list[str] = field(default_factory=list)
    match_all_linear: bool = field(default=False)
    is_causal_lm: bool = field(default=False)

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, str):
            self.target_modules = [self.target_modules]
        if isinstance(self.exclude_modules, str):
            self.exclude_modules = [self.exclude_modules]
        targets_empty = not isinstance(self.target_modules, list) or len(self.target_modules) == 0
        excludes_empty = (
            not isinstance(self.exclude_modules, list) or len(self.exclude_modules) == 0
        )
        # `is False`, as in the seed: a falsy non-bool such as 0 passes this check.
        if self.match_all_linear is False and targets_empty and excludes_empty:
            raise ValueError(
                "Expected match_all_linear to be true or target_modules/exclude_modules to be non-empty"
            )

    def match(self, m: Any, name: str | None = None, prefix: str | None = None) -> bool | None:
        """True/False as the seed decides; None when target patterns exist and none matched."""
        from torch import nn

        full_name = f"{prefix}.{name}" if prefix else name
        if self.is_causal_lm and "lm_head" in full_name:  # type: ignore[operator]
            return False
        if self.match_all_linear and isinstance(m, nn.Linear):
            return True
        if self.target_modules:
            assert not self.exclude_modules, (
                "`exclude_modules` must be empty when `target_modules` is used."
            )
            for pattern in self.target_modules:
                if name == pattern or wildcard_match(pattern, full_name):
                    return True
            return None
        return (
            name not in self.exclude_modules
            and not any(wildcard_match(pattern, full_name) for pattern in self.exclude_modules)
            and isinstance(m, nn.Linear)
        )
