"""What a preview adds to the selection: suggestions for patterns that matched nothing, patterns
broader than written, notes on what the preview could not show, and why one module is selected."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..inputs.models import Model
from .advice import Advice, Suggestion, fused_experts_note, literal_reading, suggest, why_broader
from .report import Report, report
from .result import Explanation
from .rules import RuleSet

__all__ = ["Findings", "advise", "explain", "findings", "notes"]

# The rule sets that read a pattern in the seed's syntax, where '.' and '|' are regex.
_DOT_IS_ANY = ("seed", "megatron-bridge")
# The MLP projections whose selection shows the patterns were aimed at the experts too.
_MLP_PROJECTIONS = frozenset({"gate_proj", "up_proj", "down_proj", "w1", "w2", "w3"})


@dataclass(frozen=True)
class Findings:
    """The advice on one selection."""

    unmatched: tuple[str, ...]
    suggestions: Mapping[str, tuple[Suggestion, ...]]
    full_name_hints: Mapping[str, str]
    fused_experts: Mapping[str, str]
    broader: Mapping[str, Mapping[str, Any]]
    not_linear: int | None
    moved: Mapping[str, tuple[str, ...]]


def findings(rules: RuleSet, model: Model, counts: Report, selected: list[str]) -> Findings:
    """Suggestions per unmatched pattern, the full-name hints, the fused-experts note, patterns
    broader than written, selected modules that are not Linear, and the entries PEFT's
    rewriting moved to parameters (which are not unmatched)."""
    moved = {pattern: tuple(added) for pattern, added in rules.moved(model).items()}
    unmatched = tuple(pattern for pattern in counts.unmatched if pattern not in moved)
    suggested, hints, fused = advise(rules, model, unmatched)
    broader = _broader_than_written(rules, model, counts) if rules.name in _DOT_IS_ANY else {}
    not_linear = None
    if model.typed and any(is_linear for _, is_linear in rules.asked_modules(model)):
        flags = dict(model.modules)
        # A module held for PEFT's target_parameters is wrapped for its parameters: not a slip.
        held = {p.rpartition(".")[0] for p in rules.selected_parameters(model) or ()}
        whole = rules.adapts_whole(model)  # not Linear, and adapted as such
        not_linear = sum(
            1 for name in selected if not flags[name] and name not in held and name not in whole
        )
    return Findings(unmatched, suggested, hints, fused, broader, not_linear, moved)


def advise(
    rules: RuleSet, model: Model, unmatched: tuple[str, ...]
) -> tuple[dict[str, tuple[Suggestion, ...]], dict[str, str], dict[str, str]]:
    """For each pattern that matched nothing: the patterns to try (each with why, where a
    prefix moved), the full-name hints and the fused-experts notes."""
    asked = rules.asked_modules(model)
    names = [name for name, _ in asked]
    linear: set[str] | None = {name for name, is_linear in asked if is_linear}
    # Without nn.Linear modules (Megatron-Core's parallel layers), "Linear only" cannot guide.
    found = Advice(names, linear if model.typed and linear else None, rules.selector)
    hints = _full_name_hints(rules, unmatched, asked)
    # Fused experts the rules adapt whole are asked about as they are: no PEFT advice for them.
    whole = rules.adapts_whole(model)
    elsewhere = {k: v for k, v in model.fused_experts.items() if k not in whole}
    fused = {
        pattern: note for pattern in unmatched if (note := fused_experts_note(pattern, elsewhere))
    }
    # A pattern aimed at fused experts gets the note alone: any close pattern selects
    # something else (the dense or shared MLPs).
    suggested: dict[str, tuple[Suggestion, ...]] = {}
    for pattern in unmatched:
        if pattern in fused:
            suggested[pattern] = ()
        elif pattern in hints:
            suggested[pattern] = (Suggestion(hints[pattern]),)
        else:
            suggested[pattern] = tuple(
                suggest(
                    pattern,
                    found,
                    full_name=rules.call == "full-name",
                    dot_is_any=rules.name in _DOT_IS_ANY,
                    regex=rules.regex_patterns,
                )
            )
    return suggested, hints, fused


def _full_name_hints(
    rules: RuleSet, unmatched: tuple[str, ...], asked: list[tuple[str, bool]]
) -> dict[str, str]:
    """For a bare target that selects nothing because the framework compares it with the whole
    name: the pattern that selects what the split call would have."""
    if rules.call != "full-name" or rules.name == "peft":
        return {}
    last_segments = {name.rpartition(".")[2] for name, _ in asked if "." in name}
    return {pattern: f"*.{pattern}" for pattern in unmatched if pattern in last_segments}


def _broader_than_written(rules: RuleSet, model: Model, counts: Report) -> dict[str, Any]:
    """The matched patterns that select more than their literal reading, the readings counted
    in one pass over the names, as the patterns were."""
    readings = {
        count.pattern: (count.matched, reading)
        for count in counts.patterns
        if count.matched and (reading := literal_reading(count.pattern)) is not None
    }
    if not readings:
        return {}
    literals = [reading for _, reading in readings.values()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # readings that match nothing are the point
        read = report(literals, rules.asked(model), selects=rules.selects(literals))
    return {
        pattern: {"selected": matched, "literal": literal.matched, "why": why_broader(pattern)}
        for (pattern, (matched, _)), literal in zip(readings.items(), read.patterns, strict=True)
        if matched > literal.matched
    }


def explain(rules: RuleSet, name: str, model: Model) -> Explanation:
    """Why ``name`` is selected or not; a name the model lacks is said to be so."""
    is_linear = dict(model.modules).get(name)
    holder = next((h for h in model.fused_experts if name.startswith(h + ".")), None)
    if is_linear is None:
        rule = "not in the model"
        if holder is not None:
            rule = f"not in the model: {holder} holds its experts fused"
        return Explanation(
            name,
            False,
            False,
            rule,
            fused_into=holder,
            fused=model.fused_experts.get(holder or "", ()),
        )
    verdict = rules.explain(name, is_linear, model)
    return Explanation(name, True, verdict.matched, verdict.rule, verdict.pattern)


def notes(rules: RuleSet, model: Model, selected: list[str], *, needs_types: bool) -> list[str]:
    """What the preview could not show, and what the input left out; ``needs_types`` where the
    selection depends on which modules are Linear."""
    found = rules.notes(model)
    if not model.typed and needs_types:
        found.append(
            "the names file gives no class names, so no module counts as nn.Linear: add a tab "
            "and the class name to each line (Linear and its subclasses count)"
        )
    held = {p.rpartition(".")[0] for p in rules.selected_parameters(model) or ()}
    adapted = held | set(selected)
    mlp = any(name.rpartition(".")[2] in _MLP_PROJECTIONS for name in selected)
    if mlp and model.fused_experts and not adapted & model.fused_experts.keys():
        some = next(iter(model.fused_experts))
        stacked = ", ".join(model.fused_experts[some])
        reached = "only PEFT's target_parameters reaches"
        if some in rules.adapts_whole(model):
            reached = f"{rules.name}'s rules adapt whole where a target names them ('*.experts')"
        found.append(
            f"MLP projections are adapted, the experts are not: {len(model.fused_experts):,} "
            f"modules such as {some} "
            f"hold them fused as 3-D parameters ({stacked}), which {reached}"
        )
    return found
