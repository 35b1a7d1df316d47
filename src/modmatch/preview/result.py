"""One preview's answer, immutable: what is selected and why, what the framework rewrote or
refused, the advice, and (for a saved adapter) the server's verdict. The command renders it;
``--json`` is :meth:`Result.to_dict`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..fold import fold
from ..serving import Verdict
from .serve import Audit, to_json

__all__ = ["SCHEMA_VERSION", "Explanation", "Failed", "Result", "Served"]

# The version of :meth:`Result.to_dict`'s layout: raised when a key changes meaning or goes.
SCHEMA_VERSION = 2


class Failed(ValueError):
    """The preview could not be made: bad input, or a config the framework refuses. The message
    is one line; ``peft_version`` is the release whose rules refused, where PEFT's applied;
    ``warnings`` as in :attr:`Result.warnings`; ``suggestions`` for the patterns that matched
    nothing, where the framework refuses a config that adapts nothing."""

    def __init__(
        self,
        message: str,
        peft_version: str | None = None,
        warnings: tuple[str, ...] = (),
        suggestions: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        super().__init__(message)
        self.peft_version = peft_version
        self.warnings = warnings
        self.suggestions = dict(suggestions or {})

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "error": str(self)}
        if self.peft_version is not None:
            document["peft_version"] = self.peft_version
        if self.suggestions:
            document["suggestions"] = {p: list(s) for p, s in self.suggestions.items()}
        return document


@dataclass(frozen=True)
class Explanation:
    """Why one module (``--explain NAME``) is selected or not."""

    name: str
    in_model: bool
    matched: bool
    rule: str
    pattern: str | None = None
    # The module holding this name's experts fused (transformers 5), and its 3-D parameters.
    fused_into: str | None = None
    fused: tuple[str, ...] = ()


@dataclass(frozen=True)
class Served:
    """A saved adapter next to what training adapts, and the serving engine's verdict."""

    adapter: str
    audit: Audit
    verdict: Verdict
    # The engine's name as shown, and whether it is installed here (its own code answers).
    engine: str = "vLLM"
    installed: bool = False
    # What to change where the engine refuses (a rank above --max-lora-rank, say).
    hints: tuple[str, ...] = ()


@dataclass(frozen=True)
class Result:
    """What one preview found. Fields are plain values, so a library user reads them as the
    command does."""

    rules: str
    call: str
    model: str
    modules: int
    linear: int
    # Whether the model was built (a config), so module types are known.
    model_built: bool
    selected: tuple[str, ...]
    # (pattern, names it matched) in list order; the target patterns, or without targets the
    # excludes (``pattern_kind``).
    patterns: tuple[tuple[str, int], ...]
    pattern_kind: str
    unmatched_patterns: tuple[str, ...]
    unmatched_excludes: tuple[str, ...]
    suggestions: Mapping[str, tuple[str, ...]]
    # Why a suggestion is made, where the reason is not plain (the model moved a prefix).
    suggestion_notes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    defaults: str | None = None
    peft_version: str | None = None
    # The front-end that built the config, the fields it built, and the config's class.
    built_by: str | None = None
    lora_config: Mapping[str, Any] | None = None
    built_as: str = "LoraConfig"
    # The LoraConfig fields that decide, as PEFT's rules read them.
    config: Mapping[str, Any] | None = None
    selected_parameters: tuple[str, ...] | None = None
    selected_not_linear: int | None = None
    # Modules PEFT's transformers-5 rewriting adds ("widened") and drops ("dropped").
    rewritten: Mapping[str, tuple[str, ...]] | None = None
    # Entries that rewriting moved to target_parameters, with the parameters put in their place.
    moved: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    full_name_hints: Mapping[str, str] = field(default_factory=dict)
    fused_experts: Mapping[str, str] = field(default_factory=dict)
    broader: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    explanations: tuple[Explanation, ...] = ()
    # ``--emit peft-regex``: the selection as one regex for PEFT's target_modules.
    regex: str | None = None
    served: Served | None = None
    # Seconds per phase (reading the model, matching, advice, serving) and in all.
    timings: Mapping[str, float] = field(default_factory=dict)
    # Warnings for stderr: patterns only Python's re runs, what PEFT does to an emitted regex.
    warnings: tuple[str, ...] = ()

    def exit_code(self, strict: bool) -> int:
        """0 fine; 1 under ``strict`` where a pattern or exclude matched nothing or the server
        does not apply a module of the adapter as trained; 2 where the server refuses the
        adapter, or fails the first request with it."""
        verdict = self.served.verdict if self.served is not None else None
        if verdict is not None and (not verdict.loads or verdict.request_error is not None):
            return 2
        not_served = self.served is not None and bool(self.served.verdict.not_applied)
        found = self.unmatched_patterns or self.unmatched_excludes or not_served
        return 1 if strict and found else 0

    def to_dict(self) -> dict[str, Any]:
        """The result as ``--json`` writes it (see ``schema_version``)."""
        document: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "rules": self.rules}
        if self.peft_version is not None:
            document["peft_version"] = self.peft_version
        if self.lora_config is not None:
            document["built_by"] = self.built_by
            document["built_as"] = self.built_as
            document["lora_config"] = dict(self.lora_config)
        if self.config is not None:
            document["config"] = dict(self.config)
        document |= {
            "call": self.call,
            "model": self.model,
            "defaults": self.defaults,
            "modules": self.modules,
            "linear": self.linear,
            "selected": len(self.selected),
            "patterns": [{"pattern": p, "matched": n} for p, n in self.patterns],
            "unmatched_patterns": list(self.unmatched_patterns),
            "unmatched_excludes": list(self.unmatched_excludes),
            "selected_names": list(self.selected),
        }
        if self.selected_not_linear is not None:
            document["selected_not_linear"] = self.selected_not_linear
        document["suggestions"] = {p: list(s) for p, s in self.suggestions.items()}
        for key, value in (
            ("suggestion_notes", {p: dict(n) for p, n in self.suggestion_notes.items()}),
            ("full_name_hints", dict(self.full_name_hints)),
            ("fused_experts", dict(self.fused_experts)),
            ("broader_than_written", {p: dict(b) for p, b in self.broader.items()}),
            ("moved_to_target_parameters", {p: list(m) for p, m in self.moved.items()}),
            ("notes", list(self.notes)),
        ):
            if value:
                document[key] = value
        if self.selected_parameters is not None:
            document["selected_parameters"] = list(self.selected_parameters)
        if self.rewritten is not None:
            document["rewritten_by_peft"] = {
                change: [str(line) for line in fold(names)]
                for change, names in self.rewritten.items()
            }
        if self.explanations:
            document["explanations"] = [
                {
                    "name": e.name,
                    "in_model": e.in_model,
                    "fused_into": e.fused_into,
                    "matched": e.matched,
                    "rule": e.rule,
                    "pattern": e.pattern,
                }
                for e in self.explanations
            ]
        if self.regex is not None:
            document["regex"] = self.regex
        if self.served is not None:
            document |= to_json(self.served.audit, self.served.verdict)
        document["timings"] = {phase: round(s, 4) for phase, s in self.timings.items()}
        return document
