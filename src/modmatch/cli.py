"""The ``modmatch`` command: preview what a pattern list selects on a model, and why."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TextIO

from .errors import PatternError
from .fold import fold
from .matcher import ModuleMatcher
from .report import Report, report
from .shapes import SHAPES

__all__ = ["main"]

DEFAULT_MODEL = "deepseek-v3"
_PROGRESS_EVERY = 10_000


class InputError(Exception):
    """Input the command cannot use; its message is the one-line error shown."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (0 fine, 1 ``--strict`` found an unmatched
    pattern, 2 bad input)."""
    args = _parser().parse_args(argv)
    try:
        modules = _load(args)
        matcher = _matcher(args)
    except (InputError, PatternError, TypeError, ValueError) as error:
        print(f"modmatch: error: {error}", file=sys.stderr)
        return 2
    with warnings.catch_warnings():
        # torch warns on import when NumPy is absent, which the command never needs.
        warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
        from torch import nn

    linear, other = nn.Linear(1, 1, device="meta"), nn.Identity()
    start = time.perf_counter()
    selected = []
    for name, is_linear in modules:
        prefix, _, short = name.rpartition(".")
        if matcher.match(linear if is_linear else other, short, prefix):
            selected.append(name)
    elapsed = time.perf_counter() - start
    patterns = matcher.target_modules or matcher.exclude_modules or []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unmatched patterns are part of the output
        counts = report(patterns, [name for name, _ in modules])
    explanations = [_explain(matcher, name, modules, linear, other) for name in args.explain or ()]
    try:
        if args.json:
            _write_json(sys.stdout, modules, selected, counts, explanations)
        else:
            _write_text(sys.stdout, args, modules, selected, counts, explanations, elapsed)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader left (`modmatch ... | head`): stop quietly, as other commands do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 1 if args.strict and counts.unmatched else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modmatch",
        description="Preview which modules LoRA/PEFT target patterns select, with the exact "
        "semantics of NeMo Automodel's ModuleMatcher.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--model",
        choices=sorted(SHAPES),
        help=f"a built-in model shape (default: {DEFAULT_MODEL})",
    )
    source.add_argument(
        "--names",
        metavar="FILE",
        help="module names, one per line, optionally a tab and the class name; - for stdin",
    )
    source.add_argument(
        "--hf-config",
        metavar="CONFIG_JSON",
        help="a Hugging Face config.json, built on the meta device (needs transformers)",
    )
    parser.add_argument("-t", "--target", action="append", help="target pattern (repeatable)")
    parser.add_argument("-x", "--exclude", action="append", help="exclude pattern (repeatable)")
    parser.add_argument("--all-linear", action="store_true", help="match every nn.Linear")
    parser.add_argument("--causal-lm", action="store_true", help="never match lm_head")
    parser.add_argument(
        "--explain", metavar="NAME", action="append", help="why NAME matched or not"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a pattern matched nothing")
    return parser


def _matcher(args: argparse.Namespace) -> ModuleMatcher:
    if args.target and args.exclude:
        # The seed asserts on this combination at the first module it cannot decide otherwise.
        raise InputError(
            "--target and --exclude cannot be combined: excludes apply only without targets"
        )
    options: dict[str, Any] = {"match_all_linear": args.all_linear, "is_causal_lm": args.causal_lm}
    if args.target:
        options["target_modules"] = args.target
    elif args.exclude or args.all_linear:
        options["target_modules"] = []
    if args.exclude:
        options["exclude_modules"] = args.exclude
    return ModuleMatcher(**options)


def _load(args: argparse.Namespace) -> list[tuple[str, bool]]:
    """(name, is Linear) for every module of the chosen model."""
    if args.names:
        modules = list(_progress(_read_names(args.names), "reading names"))
        if not modules:
            raise InputError(f"no module names in {args.names}")
        return modules
    if args.hf_config:
        return list(_progress(_hf_modules(args.hf_config), "building the model"))
    return list(_progress(SHAPES[args.model or DEFAULT_MODEL].modules(), "building the model"))


def _read_names(path: str) -> Iterator[tuple[str, bool]]:
    try:
        stream = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from error
    try:
        with stream:
            for line in stream:
                name, _, class_name = line.rstrip("\r\n").partition("\t")
                # nn.Linear and its subclasses (Linear8bitLt, NonDynamicallyQuantizableLinear).
                yield name, "Linear" in class_name
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read {path}: {error}") from error


def _hf_modules(path: str) -> Iterator[tuple[str, bool]]:
    try:
        import transformers
    except ImportError as error:
        raise InputError("--hf-config needs transformers: pip install 'modmatch[hf]'") from error
    import torch

    try:
        with open(path, encoding="utf-8") as stream:
            settings = json.load(stream)
        config = transformers.AutoConfig.for_model(**settings)
        with torch.device("meta"):
            model = transformers.AutoModelForCausalLM.from_config(config)
    except (OSError, ValueError, KeyError) as error:
        raise InputError(f"cannot build a model from {path}: {error}") from error
    for name, module in model.named_modules():
        yield name, isinstance(module, torch.nn.Linear)


def _progress(items: Iterable[tuple[str, bool]], label: str) -> Iterator[tuple[str, bool]]:
    """Pass items through, counting them on stderr when it is a terminal."""
    show = sys.stderr.isatty()
    count = 0
    for count, item in enumerate(items, 1):
        if show and count % _PROGRESS_EVERY == 0:
            print(f"\r{label}: {count:,} modules", end="", file=sys.stderr, flush=True)
        yield item
    if show and count >= _PROGRESS_EVERY:
        print(f"\r{label}: {count:,} modules", file=sys.stderr)


def _explain(
    matcher: ModuleMatcher, name: str, modules: list[tuple[str, bool]], linear: Any, other: Any
) -> dict[str, Any]:
    is_linear = dict(modules).get(name)
    prefix, _, short = name.rpartition(".")
    explanation = matcher.explain(short, prefix, linear if is_linear else other)
    return {
        "name": name,
        "in_model": is_linear is not None,
        "matched": explanation.matched,
        "rule": explanation.rule.value,
        "pattern": explanation.pattern,
    }


def _write_json(
    out: TextIO,
    modules: list[tuple[str, bool]],
    selected: list[str],
    counts: Report,
    explanations: list[dict[str, Any]],
) -> None:
    document: dict[str, Any] = {
        "modules": len(modules),
        "selected": len(selected),
        "patterns": [{"pattern": c.pattern, "matched": c.matched} for c in counts.patterns],
        "unmatched_patterns": list(counts.unmatched),
        "selected_names": selected,
    }
    if explanations:
        document["explanations"] = explanations
    json.dump(document, out, indent=2)
    out.write("\n")


def _write_text(
    out: TextIO,
    args: argparse.Namespace,
    modules: list[tuple[str, bool]],
    selected: list[str],
    counts: Report,
    explanations: list[dict[str, Any]],
    elapsed: float,
) -> None:
    source = args.names or args.hf_config or args.model or DEFAULT_MODEL
    linear = sum(is_linear for _, is_linear in modules)
    print(f"{source}: {len(modules):,} modules, {linear:,} nn.Linear", file=out)
    print(f"selected {len(selected):,} modules:", file=out)
    for line in fold(selected):
        print(f"  {line}" + (f"  x{line.count:,}" if line.count > 1 else ""), file=out)
    if counts.patterns:
        print("patterns:", file=out)
        width = max(len(c.pattern) for c in counts.patterns)
        for count in counts.patterns:
            print(f"  {count.pattern:<{width}}  {count.matched:>9,} names", file=out)
    for count in counts.patterns:
        if not count.matched:
            hint = f"; did you mean {', '.join(count.suggestions)}?" if count.suggestions else ""
            print(f"unmatched pattern {count.pattern!r}{hint}", file=out)
    for item in explanations:
        where = "" if item["in_model"] else " (not in the model; taken as not Linear)"
        decided = f" by {item['pattern']!r}" if item["pattern"] is not None else ""
        verdict = "selected" if item["matched"] else "not selected"
        print(f"{item['name']}{where}: {verdict}, {item['rule']}{decided}", file=out)
    print(
        f"selected {len(selected):,} of {len(modules):,} modules in {elapsed * 1e3:.0f} ms",
        file=out,
    )
