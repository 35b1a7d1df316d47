"""The ``modmatch`` command: preview what a pattern list selects on a model, and why, under
the rules of the seed, NeMo Automodel 0.7, Megatron-Bridge or PEFT 0.21."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from .errors import FallbackWarning, PatternError
from .fold import fold
from .peft import PeftMatcher, exact_target_modules
from .peftpreview import preview
from .report import Report, report
from .rulesets import CALLS, RULES, InputError, Model, Options, RuleSet, rule_set
from .shapes import SHAPES

__all__ = ["main"]

DEFAULT_MODEL = "deepseek-v3"
_PROGRESS_EVERY = 10_000
# The fields of PEFT's adapter_config.json that decide what it adapts.
_PEFT_FIELDS = {
    "target_modules": "targets",
    "exclude_modules": "excludes",
    "layers_to_transform": "layers_to_transform",
    "layers_pattern": "layers_pattern",
    "target_parameters": "target_parameters",
    "modules_to_save": "modules_to_save",
    "task_type": "task_type",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (0 fine, 1 ``--strict`` found an unmatched
    pattern, 2 bad input)."""
    args = _parser().parse_args(argv)
    try:
        with _fallback_warnings_as_lines(args):
            rules = rule_set(*_options(args))
        model = _load(args)
        with warnings.catch_warnings():
            # torch warns on import when NumPy is absent, which the command never needs.
            warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
            import torch  # noqa: F401  (imported here, not inside the timed selection)
        start = time.perf_counter()
        selected = rules.selected(model)
        elapsed = time.perf_counter() - start
        regex = _peft_regex(rules, model, selected) if args.emit == "peft-regex" else None
    except (InputError, PatternError, re.error, TypeError, ValueError) as error:
        print(f"modmatch: error: {_one_line(error, args)}", file=sys.stderr)
        return 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unmatched patterns are part of the output
        counts = report(rules.patterns, rules.asked(model), selects=rules.selects())
    hints = _full_name_hints(rules, counts, model)
    explanations = [_explain(rules, name, model) for name in args.explain or ()]
    try:
        if regex is not None:
            print(regex)
        elif args.json:
            _write_json(sys.stdout, rules, model, selected, counts, hints, explanations)
        else:
            _write_text(sys.stdout, args, rules, model, selected, counts, hints, explanations)
            print(
                f"selected {len(selected):,} of {len(model.modules):,} modules in "
                f"{elapsed * 1e3:.0f} ms",
                file=sys.stdout,
            )
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader left (`modmatch ... | head`): stop quietly, as other commands do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 1 if args.strict and counts.unmatched else 0


def _peft_regex(rules: RuleSet, model: Model, selected: list[str]) -> str:
    """What ``--emit peft-regex`` prints: the selected modules (not the holders of selected
    parameters, which stay in target_parameters) as one regex; warns where PEFT will not apply
    it as written."""
    holders = {parameter.rpartition(".")[0] for parameter in rules.selected_parameters(model) or ()}
    modules = [name for name in selected if name not in holders]
    if not modules:
        raise InputError("no module selected: PEFT refuses a target_modules that matches nothing")
    names = [name for name, _ in model.modules]
    regex = exact_target_modules(modules, names)
    if model.module is not None:
        applied = preview(PeftMatcher(regex), names, set(), model.module)
        for note in applied.notes:
            print(f"modmatch: warning: {note}", file=sys.stderr)
        if applied.widened or applied.dropped:
            print(
                "modmatch: warning: PEFT rewrites a str target_modules on this model type under "
                f"transformers 5: it will adapt {len(applied.widened or ()):,} modules this "
                f"regex does not select and leave {len(applied.dropped or ()):,} it selects",
                file=sys.stderr,
            )
    return regex


def _one_line(error: Exception, args: argparse.Namespace) -> str:
    if isinstance(error, PatternError):
        kind = _which_list(args, error.pattern, error.index)
        return str(error).replace("invalid pattern", f"invalid {kind} pattern", 1)
    if isinstance(error, re.error):
        return f"invalid pattern: {error} in the regex {error.pattern!r}"
    return str(error)


def _which_list(args: argparse.Namespace, pattern: str, index: int) -> str:
    """Whether the pattern at ``index`` is one of the excludes or one of the targets."""
    excludes = args.exclude or []
    if index < len(excludes) and excludes[index] == pattern:
        targets = args.target or []
        if not (index < len(targets) and targets[index] == pattern):
            return "exclude"
    return "target"


@contextlib.contextmanager
def _fallback_warnings_as_lines(args: argparse.Namespace) -> Iterator[None]:
    """Each FallbackWarning as one ``modmatch: warning:`` line, naming its list; other warnings
    as Python shows them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FallbackWarning)
        yield
    for warning in caught:
        found = warning.message
        if isinstance(found, FallbackWarning):
            kind = _which_list(args, found.pattern, found.index)
            print(f"modmatch: warning: {kind} {found}", file=sys.stderr)
        else:
            warnings.showwarning(found, warning.category, warning.filename, warning.lineno)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modmatch",
        description="Preview which modules LoRA/PEFT target patterns select on a model, with the "
        "exact rules of the seed (NeMo Automodel's matcher of July 2025), NeMo Automodel 0.7, "
        "Megatron-Bridge or Hugging Face PEFT 0.21.",
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
        metavar="CONFIG",
        help="a Hugging Face config.json or a model folder holding one, built on the meta "
        "device (needs transformers)",
    )
    parser.add_argument(
        "--rules",
        choices=RULES,
        help="whose rules read the patterns (default: seed; peft with --peft-config)",
    )
    parser.add_argument(
        "--call",
        choices=CALLS,
        help="what the framework passes to its matcher: the short name and the parent's path "
        "(split), or the whole name (full-name); default: as the framework does",
    )
    parser.add_argument("-t", "--target", action="append", help="target pattern (repeatable)")
    parser.add_argument("-x", "--exclude", action="append", help="exclude pattern (repeatable)")
    parser.add_argument("--all-linear", action="store_true", help="match every nn.Linear")
    parser.add_argument("--causal-lm", action="store_true", help="never match lm_head (seed)")
    peft = parser.add_argument_group("PEFT (--rules peft)")
    peft.add_argument(
        "--peft-config", metavar="PATH", help="PEFT's adapter_config.json, or its folder"
    )
    peft.add_argument("--target-regex", metavar="REGEX", help="target_modules as one regex")
    peft.add_argument("--exclude-regex", metavar="REGEX", help="exclude_modules as one regex")
    peft.add_argument(
        "--layers-to-transform", metavar="N", action="append", type=int, help="repeatable"
    )
    peft.add_argument("--layers-pattern", metavar="NAME", action="append", help="repeatable")
    peft.add_argument("--target-parameters", metavar="NAME", action="append", help="repeatable")
    peft.add_argument("--modules-to-save", metavar="NAME", action="append", help="repeatable")
    parser.add_argument(
        "--explain", metavar="NAME", action="append", help="why NAME matched or not"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--emit",
        choices=["peft-regex"],
        help="print only this: peft-regex, a regex for PEFT's target_modules that selects "
        "exactly the modules selected here",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 if a pattern matched nothing")
    return parser


def _options(args: argparse.Namespace) -> tuple[str, Options]:
    """The rule set's name and what it is asked for, from the flags or a PEFT config file."""
    flags: dict[str, Any] = {
        "targets": args.target,
        "excludes": args.exclude,
        "target_regex": args.target_regex,
        "exclude_regex": args.exclude_regex,
        "layers_to_transform": args.layers_to_transform,
        "layers_pattern": args.layers_pattern,
        "target_parameters": args.target_parameters,
        "modules_to_save": args.modules_to_save,
    }
    if args.peft_config is None:
        return args.rules or "seed", Options(
            all_linear=args.all_linear, causal_lm=args.causal_lm, call=args.call, **flags
        )
    if args.rules not in (None, "peft"):
        raise InputError(
            f"--peft-config is PEFT's config: it cannot be read by --rules {args.rules}"
        )
    given = [name for name, value in flags.items() if value is not None]
    if given or args.all_linear:
        raise InputError("--peft-config already sets the targets: drop the pattern flags")
    return "peft", Options(
        call=args.call, causal_lm=args.causal_lm, **_read_peft_config(args.peft_config)
    )


def _read_peft_config(path: str) -> dict[str, Any]:
    file = Path(path)
    if file.is_dir():
        file = file / "adapter_config.json"
    try:
        settings = json.loads(file.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(f"cannot read {file}: {error.strerror}") from error
    except ValueError as error:
        raise InputError(f"{file} is not JSON: {error}") from error
    if not isinstance(settings, dict):
        raise InputError(f"{file} is not a PEFT config: expected a JSON object")
    options: dict[str, Any] = {}
    for field, option in _PEFT_FIELDS.items():
        value = settings.get(field)
        if field == "target_modules" and isinstance(value, str):
            if value.lower() == "all-linear":
                options["all_linear"] = True
            else:
                options["target_regex"] = value
        elif field == "exclude_modules" and isinstance(value, str):
            options["exclude_regex"] = value
        elif value is not None:
            options[option] = value
    return options


def _load(args: argparse.Namespace) -> Model:
    """The chosen model's modules: (name, is Linear) each, and its output layer."""
    if args.names:
        modules = list(_progress(_read_names(args.names), "reading names"))
        if not modules:
            raise InputError(f"no module names in {args.names}")
        return Model(modules)
    if args.hf_config:
        return _hf_model(args.hf_config)
    shape = SHAPES[args.model or DEFAULT_MODEL]
    return Model(list(_progress(shape.modules(), "building the model")))


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


def _hf_model(path: str) -> Model:
    try:
        import transformers
    except ImportError as error:
        raise InputError("--hf-config needs transformers: pip install 'modmatch[hf]'") from error
    import torch

    file = Path(path)
    if file.is_dir():
        file = file / "config.json"  # a model folder, as Hugging Face users have it
    try:
        settings = json.loads(file.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(f"cannot read {file}: {error.strerror}") from error
    except ValueError as error:
        raise InputError(f"{file} is not JSON: {error}") from error
    if not isinstance(settings, dict) or "model_type" not in settings:
        raise InputError(f"{file} is not a Hugging Face model config: it has no model_type")
    if settings["model_type"] not in transformers.CONFIG_MAPPING:
        raise InputError(
            f"{file}: transformers {transformers.__version__} has no model type "
            f"{settings['model_type']!r}"
        )
    try:
        config = transformers.AutoConfig.for_model(**settings)
        with _ticking(f"building the model from {file}"), torch.device("meta"):
            model = transformers.AutoModelForCausalLM.from_config(config)
    except Exception as error:  # transformers reports a bad field by several exception types
        reason = " ".join(line.strip() for line in str(error).splitlines())
        raise InputError(f"cannot build a model from {file}: {reason}") from error
    named = list(_progress(model.named_modules(), "walking the model"))
    output = model.get_output_embeddings()
    return Model(
        [(name, isinstance(module, torch.nn.Linear)) for name, module in named],
        next((name for name, module in named if module is output), None),
        model,
    )


@contextlib.contextmanager
def _ticking(label: str, every: float = 0.5) -> Iterator[None]:
    """Show the seconds spent on stderr while the block runs, when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield
        return
    done = threading.Event()
    start = time.perf_counter()

    def tick() -> None:
        while not done.wait(every):
            elapsed = time.perf_counter() - start
            print(f"\r{label}: {elapsed:.0f} s", end="", file=sys.stderr, flush=True)

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
        print(f"\r{label}: {time.perf_counter() - start:.1f} s", file=sys.stderr)


def _progress(items: Iterable[Any], label: str) -> Iterator[Any]:
    """Pass items through, counting them on stderr when it is a terminal."""
    show = sys.stderr.isatty()
    count = 0
    for count, item in enumerate(items, 1):
        if show and count % _PROGRESS_EVERY == 0:
            print(f"\r{label}: {count:,} modules", end="", file=sys.stderr, flush=True)
        yield item
    if show and count >= _PROGRESS_EVERY:
        print(f"\r{label}: {count:,} modules", file=sys.stderr)


def _full_name_hints(rules: RuleSet, counts: Report, model: Model) -> dict[str, str]:
    """For a bare target that selects nothing because the framework compares it with the whole
    name: the pattern that selects what the split call would have."""
    if rules.call != "full-name" or rules.name == "peft":
        return {}
    last_segments = {name.rpartition(".")[2] for name in rules.asked(model) if "." in name}
    return {pattern: f"*.{pattern}" for pattern in counts.unmatched if pattern in last_segments}


def _explain(rules: RuleSet, name: str, model: Model) -> dict[str, Any]:
    is_linear = dict(model.modules).get(name)
    verdict = rules.explain(name, is_linear, model)
    return {
        "name": name,
        "in_model": is_linear is not None,
        "matched": verdict.matched,
        "rule": verdict.rule,
        "pattern": verdict.pattern,
    }


def _write_folded(out: TextIO, names: list[str]) -> None:
    for line in fold(names):
        print(f"  {line}" + (f"  x{line.count:,}" if line.count > 1 else ""), file=out)


def _write_json(
    out: TextIO,
    rules: RuleSet,
    model: Model,
    selected: list[str],
    counts: Report,
    hints: dict[str, str],
    explanations: list[dict[str, Any]],
) -> None:
    document: dict[str, Any] = {
        "rules": rules.name,
        "call": rules.call,
        "defaults": rules.defaults_used,
        "modules": len(model.modules),
        "selected": len(selected),
        "patterns": [{"pattern": c.pattern, "matched": c.matched} for c in counts.patterns],
        "unmatched_patterns": list(counts.unmatched),
        "selected_names": selected,
    }
    if hints:
        document["full_name_hints"] = hints
    notes = rules.notes(model)
    if notes:
        document["notes"] = notes
    parameters = rules.selected_parameters(model)
    if parameters is not None:
        document["selected_parameters"] = parameters
    rewritten = rules.rewritten(model)
    if rewritten is not None:
        document["rewritten_by_peft"] = {
            change: [str(line) for line in fold(names)] for change, names in rewritten.items()
        }
    if explanations:
        document["explanations"] = explanations
    json.dump(document, out, indent=2)
    out.write("\n")


_CALL_TEXT = {
    "split": "match(module, short name, prefix=parent path)",
    "full-name": "match(module, full name)",
}


def _write_text(
    out: TextIO,
    args: argparse.Namespace,
    rules: RuleSet,
    model: Model,
    selected: list[str],
    counts: Report,
    hints: dict[str, str],
    explanations: list[dict[str, Any]],
) -> None:
    source = args.names or args.hf_config or args.model or DEFAULT_MODEL
    linear = sum(is_linear for _, is_linear in model.modules)
    call = (
        "check_target_module_exists(config, key)"
        if rules.name == "peft"
        else _CALL_TEXT[rules.call]
    )
    print(f"{source}: {len(model.modules):,} modules, {linear:,} nn.Linear", file=out)
    print(f"rules: {rules.name}, called as {call}", file=out)
    if rules.defaults_used:
        print(f"no targets given: {rules.defaults_used}", file=out)
    for note in rules.notes(model):
        print(f"note: {note}", file=out)
    print(f"selected {len(selected):,} modules:", file=out)
    _write_folded(out, selected)
    parameters = rules.selected_parameters(model)
    if parameters:
        print(f"selected {len(parameters):,} parameters:", file=out)
        _write_folded(out, parameters)
    rewritten = rules.rewritten(model)
    for change, what in (
        ("widened", "adapts {:,} modules the entries do not select"),
        ("dropped", "drops {:,} modules the entries select"),
    ):
        if rewritten and rewritten[change]:
            changed = len(rewritten[change])
            print(f"warning: PEFT's rewriting for transformers 5 {what.format(changed)}:", file=out)
            _write_folded(out, rewritten[change])
    if counts.patterns:
        print("patterns, as written:" if rewritten else "patterns:", file=out)
        width = max(len(c.pattern) for c in counts.patterns)
        for count in counts.patterns:
            print(f"  {count.pattern:<{width}}  {count.matched:>9,} names", file=out)
    for count in counts.patterns:
        if count.matched:
            continue
        if count.pattern in hints:
            print(
                f"unmatched pattern {count.pattern!r}: {rules.name} compares it with the whole "
                f"module name; {hints[count.pattern]!r} selects the modules named {count.pattern}",
                file=out,
            )
            continue
        hint = f"; did you mean {', '.join(count.suggestions)}?" if count.suggestions else ""
        print(f"unmatched pattern {count.pattern!r}{hint}", file=out)
    for item in explanations:
        where = "" if item["in_model"] else " (not in the model; taken as not Linear)"
        decided = f" by {item['pattern']!r}" if item["pattern"] is not None else ""
        verdict = "selected" if item["matched"] else "not selected"
        print(f"{item['name']}{where}: {verdict}, {item['rule']}{decided}", file=out)
