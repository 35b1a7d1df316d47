"""The rule sets: each framework's matcher, asked about a model's modules the way that framework
asks (which modules, and whether it passes the short name or the full one).

Each rule set is one module of this package with a ``NAME`` and ``build(options) -> RuleSet``,
registered by one line in ``_REGISTERED``; ``--rules`` takes its choices from :data:`RULES`.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from .base import CALLS, Options, RuleSet, Verdict

__all__ = ["CALLS", "RULES", "Options", "RuleSet", "Verdict", "rule_set"]

# The registry: one module per rule set.
_REGISTERED = ("seed", "automodel", "megatron_bridge", "peft")


class _Rules(Protocol):
    NAME: str

    def build(self, options: Options) -> RuleSet: ...


_BY_NAME: dict[str, _Rules] = {
    module.NAME: module
    for module in (importlib.import_module(f"{__name__}.{name}") for name in _REGISTERED)
}
RULES = tuple(_BY_NAME)


def rule_set(rules: str, options: Options) -> RuleSet:
    """The chosen framework's matcher for ``options``; InputError names what does not fit."""
    return _BY_NAME[rules].build(options)
