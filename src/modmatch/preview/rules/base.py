"""What every rule set is: the options it is asked for, its answer on one module, and the
questions the preview asks it (:class:`RuleSet`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ...engine.syntax import quietly
from ...errors import PatternError
from ...inputs.models import Model

__all__ = ["CALLS", "Options", "RuleSet", "Verdict"]

# What a framework passes to its matcher: the short name and the parent's path, or the full name.
CALLS = ("split", "full-name")


@dataclass(frozen=True)
class Options:
    """What the command line (or a PEFT config file) asks for."""

    targets: list[str] | None = None
    excludes: list[str] | None = None
    target_regex: str | None = None
    exclude_regex: str | None = None
    all_linear: bool = False
    causal_lm: bool = False
    call: str | None = None
    layers_to_transform: list[int] | int | None = None
    layers_pattern: list[str] | str | None = None
    target_parameters: list[str] | None = None
    modules_to_save: list[str] | None = None
    task_type: str | None = None
    peft_version: str | None = None
    lora_dropout: float = 0.0
    # The dropout PEFT's ParamWrapper sees, where a front-end changes it (Axolotl: 0), and the
    # LoraConfig options it refuses that are set (fan_in_fan_out, lora_bias, use_dora).
    parameter_dropout: float | None = None
    flags: tuple[str, ...] = ()
    # Where a training front-end built the config: its name, the config's fields and class.
    built_by: str | None = None
    built: dict[str, Any] | None = None
    built_as: str = "LoraConfig"


@dataclass(frozen=True)
class Verdict:
    """Why one module is selected or not."""

    matched: bool
    rule: str
    pattern: str | None = None


class RuleSet:
    """One framework's rules over a model: what it selects, why, and what each pattern selects."""

    name: str
    call: str
    defaults_used: str | None = None
    # PEFT's rules only: the release whose rules apply, and the config's task type.
    peft_version: str | None = None
    task_type: str | None = None
    # The training front-end that built the config, with the fields it built and its class.
    built_by: str | None = None
    built: dict[str, Any] | None = None
    built_as: str = "LoraConfig"
    # Whether the pattern is one regex over the whole name (PEFT's str target_modules), not a
    # list of names and wildcards: how a suggested pattern is read.
    regex_patterns = False

    @property
    def patterns(self) -> list[str]:
        """The patterns counted one by one: the targets, or without targets the excludes."""
        raise NotImplementedError

    @property
    def excludes(self) -> list[str]:
        """The exclude patterns, each counted by :meth:`unmatched_excludes`."""
        return []

    def unmatched_excludes(self, model: Model) -> list[str]:
        """The exclude patterns that exclude no module the framework asks about."""
        excludes = self.excludes
        if not excludes:
            return []
        selects = self.selects_excluded()
        counts = [0] * len(excludes)
        for name in self.asked(model):
            for index in set(selects(name)):
                counts[index] += 1
        return [pattern for pattern, count in zip(excludes, counts, strict=True) if not count]

    def selects_excluded(self) -> Callable[[str], Iterable[int]]:
        """The indices of :attr:`excludes` that rule out one name."""
        return self.selects(self.excludes)

    def on(self, model: Model) -> RuleSet:
        """These rules as they apply to ``model`` (PEFT fills in its default targets)."""
        return self

    def moved(self, model: Model) -> dict[str, list[str]]:
        """Target patterns the framework replaced by parameters on this model (PEFT's
        transformers-5 rewriting), with the parameter names put in their place."""
        return {}

    def config_shown(self) -> dict[str, Any]:
        """The config the framework builds, as shown (PEFT's rules)."""
        return {}

    def selected(self, model: Model) -> list[str]:
        raise NotImplementedError

    def explain(self, name: str, is_linear: bool | None, model: Model) -> Verdict:
        raise NotImplementedError

    def selects(self, patterns: list[str] | None = None) -> Callable[[str], Iterable[int]]:
        """The indices of ``patterns`` (default :attr:`patterns`) selecting one name, as this
        rule set reads them."""
        raise NotImplementedError

    def selector(self, pattern: str) -> Callable[[str], bool]:
        """Whether one more pattern, read by these rules, selects a name (for suggestions)."""
        try:
            with quietly():
                selects = self.selects([pattern])
        except PatternError:
            return lambda name: False
        return lambda name: bool(list(selects(name)))

    def selected_parameters(self, model: Model) -> list[str] | None:
        """The ``module.parameter`` names ``target_parameters`` selects (PEFT only), where the
        model's parameters are known."""
        return None

    def notes(self, model: Model) -> list[str]:
        """What the preview could not show on this model."""
        return []

    def rewritten(self, model: Model) -> dict[str, list[str]] | None:
        """What the framework adapts beyond (widened) or short of (dropped) the patterns' literal
        selection, where it rewrites them (PEFT on transformers-5 MoE models)."""
        return None

    def asked(self, model: Model) -> list[str]:
        """The names the framework asks its matcher about."""
        return [name for name, _ in self.asked_modules(model)]

    def asked_modules(self, model: Model) -> list[tuple[str, bool]]:
        """``(name, is Linear)`` of the modules the framework asks its matcher about."""
        return model.modules

    def adapts_whole(self, model: Model) -> set[str]:
        """Modules beside the Linear ones that the framework asks about and, where matched,
        adapts whole (NeMo Automodel's grouped-experts MoE modules; PEFT's embeddings and
        convolutions)."""
        return set()
