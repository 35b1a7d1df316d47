"""NeMo Automodel 0.7.0's ``wildcard_match`` and ``ModuleMatcher``, on modmatch's engine.

Answers, warnings and errors are those of ``nemo_automodel.components._peft.module_matcher``
in the 0.7.0 release (reference: :mod:`modmatch.reference.automodel`), without importing it.
Like the original, the matcher is a plain mutable dataclass: lists changed after construction
are compiled again on the next call.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .namerule import NameRule
from .patternset import PatternSet
from .recompiling import Recompiling
from .syntax import AUTOMODEL, as_framework

__all__ = ["ModuleMatcher", "wildcard_match"]

logger = logging.getLogger(__name__)

_DEFAULT_WARNING = (
    "No modules specified for LoRA. Will use target_modules='*_proj' by default."
    """
            Equivalent to the following YAML configuration:
            peft:
              target_modules: '*_proj'
            If this is not what you want, please specify target_modules or exclude_modules.
            """
)
_ALL_LINEAR_WARNING = (
    "match_all_linear is true. This will match all linear layers in the model (including lm_head). "
    "Please consider using target_modules or exclude_modules to specify the modules to match, to avoid issues with downstream tools "
    "For example, to match all linear layers except the lm_head, you can use: "
    "peft: "
    "  target_modules: '*_proj' "
)


@functools.lru_cache(maxsize=1)
def _linear_types() -> tuple[type, ...]:
    """nn.Linear, and Transformer Engine's Linear where it imports, as Automodel checks."""
    from torch import nn

    try:
        import transformer_engine.pytorch as te
    except (ImportError, OSError):  # OSError: a TE build that does not load (CUDA mismatch)
        return (nn.Linear,)
    return (nn.Linear, te.Linear)


def _compile(patterns: Sequence[str]) -> NameRule:
    with as_framework(AUTOMODEL):
        return NameRule(patterns, AUTOMODEL)


@functools.lru_cache(maxsize=1000)
def _compiled(pattern: str) -> PatternSet:
    with as_framework(AUTOMODEL):
        return PatternSet([pattern], cache_size=0, syntax=AUTOMODEL)


def wildcard_match(pattern: str, key: str | None) -> bool:
    """Whether ``pattern`` matches ``key`` as Automodel 0.7.0 reads it; False for a None key."""
    if key is None:
        return False
    return _compiled(pattern).match(key)


@dataclass
class ModuleMatcher:
    """Automodel 0.7.0's matcher: targets (default ``*_proj``), or excludes, or every Linear.

    ``match`` returns True or False. Combining targets with excludes, or ``match_all_linear``
    with either, is a ValueError at construction; ``is_causal_lm`` is accepted and unused.
    """

    target_modules: list[str] = field(default_factory=list)
    exclude_modules: list[str] = field(default_factory=list)
    match_all_linear: bool = field(default=False)
    is_causal_lm: bool = field(default=False)
    _targets: Recompiling[NameRule] = field(
        default_factory=lambda: Recompiling(_compile), init=False, repr=False, compare=False
    )
    _excludes: Recompiling[NameRule] = field(
        default_factory=lambda: Recompiling(_compile), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.target_modules is None:
            self.target_modules = []
        if self.exclude_modules is None:
            self.exclude_modules = []
        if isinstance(self.target_modules, str):
            self.target_modules = [self.target_modules]
        if isinstance(self.exclude_modules, str):
            self.exclude_modules = [self.exclude_modules]
        # `is False`, as in Automodel: a falsy non-bool such as 0 takes no default.
        if (
            self.match_all_linear is False
            and len(self.target_modules) == 0
            and len(self.exclude_modules) == 0
        ):
            logger.warning(_DEFAULT_WARNING)
            self.target_modules = ["*_proj"]
        if self.target_modules and self.exclude_modules:
            raise ValueError(
                "target_modules and exclude_modules are mutually exclusive. Please provide only one of them."
            )
        if self.match_all_linear and (
            len(self.target_modules) > 0 or len(self.exclude_modules) > 0
        ):
            raise ValueError(
                "Expected target_modules/exclude_modules to be empty when match_all_linear is true. Please provide only one of them."
            )
        if self.match_all_linear:
            logger.warning(_ALL_LINEAR_WARNING)

    def match(self, m: Any, name: str | None = None, prefix: str | None = None) -> bool:
        """Whether the module gets an adapter; Automodel passes the full name and no prefix."""
        full_name = f"{prefix}.{name}" if prefix else name
        if self.match_all_linear and isinstance(m, _linear_types()):
            return True
        if self.target_modules:
            assert not self.exclude_modules, (
                "`exclude_modules` must be empty when `target_modules` is used."
            )
            return self._targets.get(self.target_modules).matches(name, full_name)
        return not self._excludes.get(self.exclude_modules).matches(name, full_name) and isinstance(
            m, _linear_types()
        )
