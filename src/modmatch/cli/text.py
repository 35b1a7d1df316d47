"""The text output: a pure function of a :class:`~modmatch.preview.result.Result`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from ..fold import fold
from ..preview.result import Result, Served
from ..serving import Verdict

__all__ = ["counted", "write", "write_folded"]

_CALLS = {
    "split": "match(module, short name, prefix=parent path)",
    "full-name": "match(module, full name)",
}
# Longer texts (a pattern, an error) are shown cut, with their length.
_SHOWN = 300


def counted(number: int, noun: str) -> str:
    """``1 module``, ``1,024 modules``."""
    return f"{number:,} {noun}" + ("" if number == 1 else "s")


def write_folded(out: TextIO, names: Iterable[str], indent: str = "  ") -> None:
    """The names folded into lines, each with how many names it stands for."""
    for line in fold(names):
        print(f"{indent}{line}" + (f"  x{line.count:,}" if line.count > 1 else ""), file=out)


def _cut(text: str) -> str:
    if len(text) <= _SHOWN:
        return text
    return f"{text[: _SHOWN * 2 // 3]} ... {text[-_SHOWN // 6 :]} ({len(text):,} characters)"


def _quoted(pattern: str) -> str:
    """The pattern as typed in a POSIX shell, always in single quotes."""
    return "'" + pattern.replace("'", "'\\''") + "'"


def _fields(fields: dict[str, Any]) -> str:
    """LoraConfig fields, each whole but a long list of names folded and a long regex cut."""
    shown = []
    for key, value in fields.items():
        if isinstance(value, list) and len(value) > 8 and all(isinstance(v, str) for v in value):
            value = [str(line) for line in fold(value)]
        shown.append(f"{key}={_cut(repr(value)) if isinstance(value, str) else repr(value)}")
    return ", ".join(shown)


def write(out: TextIO, result: Result) -> None:
    """The whole text answer."""
    _write_header(out, result)
    print(f"selected {counted(len(result.selected), 'module')}:", file=out)
    write_folded(out, result.selected)
    if result.selected_not_linear and not (result.rules == "peft" and not result.model_built):
        print(
            f"note: {result.selected_not_linear:,} of them not nn.Linear (containers, "
            "activations, norms): most adapters wrap Linear layers only; narrow the patterns",
            file=out,
        )
    if result.selected_parameters:
        print(f"selected {counted(len(result.selected_parameters), 'parameter')}:", file=out)
        write_folded(out, result.selected_parameters)
    rewritten = result.rewritten or {}
    for change, what in (
        ("widened", "adapts {:,} modules the entries do not select"),
        ("dropped", "drops {:,} modules the entries select"),
    ):
        if rewritten.get(change):
            changed = len(rewritten[change])
            print(f"warning: PEFT's rewriting for transformers 5 {what.format(changed)}:", file=out)
            write_folded(out, rewritten[change])
    _write_patterns(out, result)
    _write_advice(out, result)
    for item in result.explanations:
        where = ""
        if item.fused_into:
            where = f" ({item.fused_into} holds its experts fused: {', '.join(item.fused)})"
        decided = f" by {item.pattern!r}" if item.pattern is not None else ""
        verdict = "selected" if item.matched else "not selected"
        if not item.in_model:
            verdict = "not in the model"
            print(f"{item.name}: {verdict}{where}", file=out)
            continue
        print(f"{item.name}: {verdict}, {item.rule}{decided}", file=out)
    for pattern in result.unmatched_excludes:
        print(f"unmatched exclude {_cut(repr(pattern))}: it excludes no module", file=out)
    phases = ", ".join(
        f"{phase} {_seconds(s)}" for phase, s in result.timings.items() if phase != "total"
    )
    print(
        f"selected {len(result.selected):,} of {counted(result.modules, 'module')} in "
        f"{_seconds(result.timings.get('total', 0.0))} ({phases})",
        file=out,
    )
    if result.served is not None:
        write_served(out, result.served)


def _seconds(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _write_header(out: TextIO, result: Result) -> None:
    print(f"{result.model}: {result.modules:,} modules, {result.linear:,} nn.Linear", file=out)
    call = (
        "check_target_module_exists(config, key)" if result.rules == "peft" else _CALLS[result.call]
    )
    release = f" {result.peft_version}" if result.peft_version else ""
    print(f"rules: {result.rules}{release}, called as {call}", file=out)
    if result.lora_config is not None:
        print(
            f"{result.built_by} builds: {result.built_as}({_fields(dict(result.lora_config))})",
            file=out,
        )
    if result.config is not None:
        print(f"config: {_fields(dict(result.config))}", file=out)
    if result.defaults:
        print(f"no targets given: {result.defaults}", file=out)
    for note in result.notes:
        print(f"note: {note}", file=out)


def _write_patterns(out: TextIO, result: Result) -> None:
    """Each pattern with the names it matched; patterns alike but for their numbers folded,
    with the names each matched."""
    if not result.patterns:
        return
    heading = f"{result.pattern_kind} patterns" + (", as written" if result.rewritten else "")
    print(f"{heading}:", file=out)
    by_count: dict[int, list[str]] = {}
    for pattern, matched in result.patterns:
        by_count.setdefault(matched, []).append(pattern)
    rows: list[tuple[str, str]] = []
    for pattern, matched in result.patterns:
        group = by_count.get(matched)
        if group is None:
            continue  # folded with an earlier pattern of the same count
        if len(group) == 1 or len(result.patterns) <= 8:
            rows.append((_cut(_quoted(pattern)), f"{matched:>9,} names"))
            group.remove(pattern)
            if not group:
                del by_count[matched]
            continue
        del by_count[matched]
        for line in fold(group):
            each = " each" if line.count > 1 else ""
            times = f"  x{line.count:,}" if line.count > 1 else ""
            rows.append((_cut(str(line)), f"{matched:>9,} names{each}{times}"))
    width = max(len(text) for text, _ in rows)
    for text, count in rows:
        print(f"  {text:<{width}}  {count}", file=out)


def _write_advice(out: TextIO, result: Result) -> None:
    for pattern, flagged in result.broader.items():
        print(
            f"warning: pattern {pattern!r} selects {flagged['selected']:,} names, "
            f"{flagged['literal']:,} read literally: {flagged['why']}",
            file=out,
        )
    if result.moved:
        entries = ", ".join(map(repr, result.moved))
        added = ", ".join(sorted({p for ps in result.moved.values() for p in ps}))
        print(
            f"note: PEFT's rewriting for transformers 5 moved {entries} to target_parameters "
            f"({added}): the parameters above are theirs",
            file=out,
        )
    hints = result.full_name_hints
    for pattern, suggested in result.suggestions.items():
        if pattern in hints:
            print(
                f"unmatched pattern {pattern!r}: {result.rules} compares it with the whole "
                f"module name; {_quoted(hints[pattern])} selects the modules named {pattern}",
                file=out,
            )
        else:
            tries = f"; try {', '.join(map(_quoted, suggested))}" if suggested else ""
            print(f"unmatched pattern {_cut(repr(pattern))}{tries}", file=out)
            for why in result.suggestion_notes.get(pattern, {}).values():
                print(f"  {why}", file=out)
        if pattern in result.fused_experts:
            print(f"  {result.fused_experts[pattern]}", file=out)


def _write_why(out: TextIO, modules: Sequence[str], verdict: Verdict) -> None:
    """Modules grouped by why the server does not apply them as trained."""
    by_reason: dict[str, list[str]] = {}
    for module in modules:
        by_reason.setdefault(verdict.why.get(module, ("", None))[0], []).append(module)
    for reason, group in by_reason.items():
        write_folded(out, group)
        instead = [other for m in group if (other := verdict.why.get(m, ("", None))[1])]
        if instead:
            print(f"    {reason}; it has:", file=out)
            write_folded(out, instead, indent="      ")
        elif reason:
            print(f"    {reason}", file=out)


def write_served(out: TextIO, served: Served) -> None:
    """The saved adapter's audit and the serving engine's verdict."""
    found, verdict = served.audit, served.verdict
    by_rank: dict[tuple[int, ...], list[str]] = {}
    for name, ranks in found.ranks.items():
        by_rank.setdefault(tuple(sorted(set(ranks))), []).append(name)
    print(f"adapter {served.adapter} holds:", file=out)
    for ranks, names in sorted(by_rank.items()):
        shown = " and ".join(map(str, ranks))
        print(f"LoRA of rank {shown} on {counted(len(names), 'module')}:", file=out)
        write_folded(out, names)
    if found.saved_whole:
        print(f"whole weights of {counted(len(found.saved_whole), 'module')}:", file=out)
        write_folded(out, found.saved_whole)
    if found.base_weights:
        print(
            f"base weights of {counted(len(found.base_weights), 'embedding')}, saved beside their "
            "LoRA (the server serves its own):",
            file=out,
        )
        write_folded(out, found.base_weights)
    if found.not_saved:
        print(
            f"warning: training adapts {counted(len(found.not_saved), 'module')} the adapter does "
            "not hold:",
            file=out,
        )
        write_folded(out, found.not_saved)
    rules = "installed"
    if verdict.built_in:
        rules = "built-in rules" + (
            "" if served.installed else f": {served.engine} is not installed"
        )
    engine = f"{served.engine} {verdict.engine_version} ({rules})"
    failure = None
    if not verdict.loads:
        failure = f"{engine} refuses the adapter: {verdict.error}"
    elif verdict.request_error is not None:
        failure = (
            f"{engine} starts with the adapter, and the first request with it fails: "
            f"{verdict.request_error}"
        )
    if failure is not None:
        print(failure, file=out)
        for hint in served.hints:
            print(f"hint: {hint}", file=out)
        return
    if verdict.applied:
        print(
            f"{engine} loads the adapter; it applies {counted(len(verdict.applied), 'module')}:",
            file=out,
        )
        write_folded(out, verdict.applied)
    else:
        print(f"{engine} loads the adapter and applies none of its modules", file=out)
    never = [module for module in verdict.not_applied if module not in verdict.resized]
    if never:
        print(
            f"warning: {served.engine} never applies {counted(len(never), 'module')} of the "
            "adapter, without a message (served as the base model there):",
            file=out,
        )
        _write_why(out, never, verdict)
    if verdict.resized:
        print(
            f"warning: {served.engine} computes {counted(len(verdict.resized), 'module')} of the "
            "adapter with weights resized to the model's, not as trained, without a message:",
            file=out,
        )
        _write_why(out, verdict.resized, verdict)
    if verdict.ignored_settings:
        print(f"warning: {served.engine} ignores {', '.join(verdict.ignored_settings)}", file=out)
