"""NeMo Automodel 0.7.0's rules on plain Python ``re``: the oracle for :mod:`modmatch.automodel`.

Restated from the behaviour of ``nemo_automodel/components/_peft/module_matcher.py`` (PyPI
``nemo-automodel==0.7.0``): ``*`` and ``.*`` are wildcards, but a ``.*`` after a whole dotted
segment or a numeric index means "that segment's children, or nothing".
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["ModuleMatcher", "automodel_regex", "wildcard_match"]

_WILDCARD = re.compile(r"(\.?\*)")
_NUMERIC_INDEX = re.compile(r"\.\d+$")


def automodel_regex(pattern: str) -> str:
    """The regex Automodel 0.7.0 compiles for ``pattern`` and runs with ``re.match``."""
    parts = _WILDCARD.split(pattern)
    regex = ""
    for i, part in enumerate(parts):
        if i % 2 == 0:
            regex += part
            continue
        before = parts[i - 1]
        whole_segment = before.startswith(".") or (i == 1 and before != "")
        if part == ".*" and (whole_segment or _NUMERIC_INDEX.search(before)):
            regex += r"(\..*)?"
        else:
            regex += "(.*)"
    return "^" + regex + "$"


def wildcard_match(pattern: str, key: str | None) -> bool:
    """Whether ``pattern`` matches ``key``; False for a None key."""
    if key is None:
        return False
    return re.match(automodel_regex(pattern), key) is not None


def is_linear(module: Any) -> bool:
    """nn.Linear, or Transformer Engine's Linear when it imports."""
    from torch import nn

    try:
        import transformer_engine.pytorch as te
    except (ImportError, OSError):  # OSError: a TE build that does not load (CUDA mismatch)
        return isinstance(module, nn.Linear)
    return isinstance(module, (nn.Linear, te.Linear))


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


@dataclass
class ModuleMatcher:
    """Automodel 0.7.0's matcher: targets (default ``*_proj``), or excludes, or every Linear;
    never two of them. Its warnings and errors are Automodel's, word for word."""

    target_modules: list[str] = field(default_factory=list)
    exclude_modules: list[str] = field(default_factory=list)
    match_all_linear: bool = field(default=False)
    is_causal_lm: bool = field(default=False)  # accepted, never read
    # Where the warnings go: the module the class is used from.
    _logger: ClassVar[logging.Logger] = logging.getLogger(__name__)

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
            self._logger.warning(_DEFAULT_WARNING)
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
            self._logger.warning(_ALL_LINEAR_WARNING)

    def match(self, m: Any, name: str | None = None, prefix: str | None = None) -> bool:
        full_name = f"{prefix}.{name}" if prefix else name
        if self.match_all_linear and is_linear(m):
            return True
        if self.target_modules:
            return any(name == p or wildcard_match(p, full_name) for p in self.target_modules)
        return (
            name not in self.exclude_modules
            and not any(wildcard_match(p, full_name) for p in self.exclude_modules)
            and is_linear(m)
        )
