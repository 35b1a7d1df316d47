"""Megatron-Bridge's matcher restated on plain ``re``: the oracle for ``modmatch.megatron_bridge``.

Megatron-Bridge keeps it in ``peft/module_matcher.py`` (``wildcard_match`` in ``peft/utils.py``).
megatron is never imported here: its linear classes are the inert module-level names below,
which tests replace as Megatron-Bridge's own tests patch them.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .seed import wildcard_match

__all__ = ["ModuleMatcher", "wildcard_match"]

logger = logging.getLogger(__name__)


class _Unavailable:
    """Stands in for a class that is not installed: nothing is an instance of it."""


ColumnParallelLinear: Any = _Unavailable
RowParallelLinear: Any = _Unavailable
TEColumnParallelLinear: Any = _Unavailable
TELayerNormColumnParallelLinear: Any = _Unavailable
TERowParallelLinear: Any = _Unavailable
HAVE_TE_COL_LINEAR: Any = False
HAVE_TE_LN_COL_LINEAR: Any = False
HAVE_TE_ROW_LINEAR: Any = False


def _linear_types() -> tuple[type, ...]:
    """nn.Linear, the parallel linears, and each Transformer Engine linear that is available."""
    from torch import nn

    types = [ColumnParallelLinear, RowParallelLinear, nn.Linear]
    if HAVE_TE_COL_LINEAR:
        types.append(TEColumnParallelLinear)
    if HAVE_TE_LN_COL_LINEAR:
        types.append(TELayerNormColumnParallelLinear)
    if HAVE_TE_ROW_LINEAR:
        types.append(TERowParallelLinear)
    return tuple(types)


@dataclass
class ModuleMatcher:
    """Megatron-Bridge's ModuleMatcher: which pattern, if any, claims a module."""

    target_modules: list[str] = field(
        default_factory=lambda: ["linear_qkv", "linear_proj", "linear_fc1", "linear_fc2"]
    )
    exclude_modules: list[str] = field(default_factory=list)
    canonical_mapping: dict[str, set[Any]] = field(default_factory=lambda: defaultdict(set))
    _pattern_to_alias: dict[str, set[str]] = field(
        default_factory=lambda: defaultdict(set), init=False, repr=False
    )
    _alias_to_pattern: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _alias_matches: dict[str, set[str]] = field(
        default_factory=lambda: defaultdict(set), init=False, repr=False
    )
    # Where the unmatched-target warning goes: the module the class is used from.
    _logger: ClassVar[logging.Logger] = logger

    def match(
        self, m: Any, name: str | None = None, prefix: str | None = None
    ) -> tuple[str, str] | None:
        """``(pattern, full_name)`` for the first pattern that claims the module, else None."""
        full_name = f"{prefix}.{name}" if prefix else name
        if len(self.canonical_mapping or []) > 0:
            assert len(self.exclude_modules) == 0, (
                "exclude_modules should be empty when using canonical_mapping"
            )
            return self._first(self.canonical_mapping, name, full_name)
        if len(self.target_modules or []) > 0:
            assert len(self.exclude_modules) == 0, (
                "exclude_modules should be empty when using target_modules"
            )
            return self._first(self.target_modules, name, full_name)
        # No targets: every linear module whose names no exclude pattern matches.
        types = _linear_types()
        if (
            name not in self.exclude_modules
            and not any(wildcard_match(pattern, full_name) for pattern in self.exclude_modules)
            and isinstance(m, types)
        ):
            self._record_match(name, full_name)  # type: ignore[arg-type]
            return (name, full_name)  # type: ignore[return-value]
        return None

    def _first(self, patterns: Any, name: Any, full_name: Any) -> tuple[str, str] | None:
        """The first of ``patterns`` equal to the short name or matching the full name."""
        for pattern in patterns:
            if name == pattern or wildcard_match(pattern, full_name):
                self._record_match(pattern, full_name)
                return (pattern, full_name)
        return None

    def register_target_alias(self, alias: str, pattern: str) -> None:
        """Record that matches of ``pattern`` count for the user's target entry ``alias``."""
        if alias is None or pattern is None:
            return
        previous = self._alias_to_pattern.get(alias)
        if previous:  # truthiness, as upstream: an empty previous pattern keeps the alias
            self._pattern_to_alias[previous].discard(alias)
        self._alias_to_pattern[alias] = pattern
        self._pattern_to_alias[pattern].add(alias)
        self._alias_matches.setdefault(alias, set())

    def _init_target_match_state(self) -> None:
        """Forget all aliases and matches, then register each current target as its own alias."""
        self._pattern_to_alias.clear()
        self._alias_to_pattern.clear()
        self._alias_matches.clear()
        for target in self.target_modules or []:
            self.register_target_alias(target, target)

    def _record_match(self, pattern: str, full_name: str | None) -> None:
        """Note ``full_name`` (or the alias itself when it is empty) under each alias of ``pattern``."""
        for alias in self._pattern_to_alias.get(pattern, ()):
            self._alias_matches.setdefault(alias, set()).add(full_name or alias)

    def _reset_target_match_state(self) -> None:
        """Empty every alias's recorded matches, keeping the aliases."""
        for alias in self._alias_matches:
            self._alias_matches[alias].clear()

    def _validate_target_matches(self) -> None:
        """Log a warning naming, sorted, each registered alias that matched no module."""
        if not self._alias_to_pattern:
            return
        unmatched = sorted(alias for alias, found in self._alias_matches.items() if len(found) == 0)
        if unmatched:
            self._logger.warning(
                "No modules matched the requested target_modules entries: %s", ", ".join(unmatched)
            )
