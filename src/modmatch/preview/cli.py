"""The ``modmatch`` command: preview what a pattern list selects on a model, and why, under
the rules of the seed, NeMo Automodel 0.7, Megatron-Bridge or PEFT 0.17 to 0.21."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import re
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

from ..errors import FallbackWarning, PatternError
from ..fold import fold
from ..frontends import axolotl, llamafactory
from ..peft import PeftMatcher, exact_target_modules, rules_version
from ..reference.vllm import MAX_LORA_RANK, MAX_LORA_RANKS
from . import serve
from .advice import Advice, fused_experts_note, literal_reading, suggestions, why_broader
from .peft import Refused, preview
from .report import Report, report
from .rulesets import CALLS, RULES, InputError, Model, Options, RuleSet, rule_set
from .shapes import SHAPES, Shape
from .text import counted, write_folded

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
    pattern or exclude, or a module the server never applies, 2 bad input, a config the
    framework refuses, or an adapter the server refuses)."""
    args = _parser().parse_args(argv)
    rules: RuleSet | None = None
    try:
        _check_serving(args)
        name, options = _options(args)
        front_end = _front_end(args)
        if front_end is None:
            with _fallback_warnings_as_lines(args):
                rules = rule_set(name, options)
        model = _load(args, options.task_type)
        if front_end is not None:
            options = _front_end_options(front_end, options, model)
            with _fallback_warnings_as_lines(args):
                rules = rule_set(name, options)
        assert rules is not None
        rules = rules.on(model)
        with warnings.catch_warnings():
            # torch warns on import when NumPy is absent, which the command never needs.
            warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
            import torch  # noqa: F401  (imported here, not inside the timed selection)
        start = time.perf_counter()
        selected = rules.selected(model)
        elapsed = time.perf_counter() - start
        regex = _peft_regex(rules, model, selected) if args.emit == "peft-regex" else None
        served = _serve(args, model, selected)
    except (InputError, PatternError, re.error, TypeError, ValueError) as error:
        message = _one_line(error, args)
        print(f"modmatch: error: {message}", file=sys.stderr)
        if args.json:
            _write_error(sys.stdout, message, rules, args)
        return 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unmatched patterns are part of the output
        counts = report(rules.patterns, rules.asked(model), selects=rules.selects())
    unmatched_excludes = rules.unmatched_excludes(model)
    # Entries PEFT's rewriting turned into parameters are accounted for, not unmatched.
    moved = rules.moved(model)
    unmatched = [pattern for pattern in counts.unmatched if pattern not in moved]
    advice = _advice(rules, model, counts, selected, moved) if regex is None else {}
    explanations = [_explain(rules, name, model) for name in args.explain or ()]
    try:
        if regex is not None:
            print(regex)
        elif args.json:
            extra = serve.to_json(*served) if served else {}
            _write_json(
                sys.stdout, args, rules, model, selected, counts, advice, explanations, extra
            )
        else:
            _write_text(sys.stdout, args, rules, model, selected, counts, advice, explanations)
            for pattern in unmatched_excludes:
                print(
                    f"unmatched exclude {_cut(repr(pattern))}: it excludes no module",
                    file=sys.stdout,
                )
            print(
                f"selected {len(selected):,} of {counted(len(model.modules), 'module')} "
                f"(matching took {elapsed * 1e3:.0f} ms; reading the model is not counted)",
                file=sys.stdout,
            )
            if served:
                serve.write_text(sys.stdout, args.peft_config, *served)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader left (`modmatch ... | head`): stop quietly, as other commands do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if served and not served[1].loads:
        return 2
    not_served = bool(served and served[1].not_applied)
    return 1 if args.strict and (unmatched or unmatched_excludes or not_served) else 0


def _check_serving(args: argparse.Namespace) -> None:
    if args.max_lora_rank is not None and not args.serve:
        raise InputError("--max-lora-rank is the server's: it needs --serve")
    if args.serve and args.emit:
        raise InputError("--emit prints only a regex: it cannot go with --serve")
    if args.serve and not (args.peft_config and args.hf_config):
        raise InputError(
            "--serve reads a saved adapter and the served model: give --peft-config ADAPTER_DIR "
            "(the folder save_pretrained wrote) and --hf-config MODEL"
        )


def _serve(
    args: argparse.Namespace, model: Model, selected: list[str]
) -> tuple[serve.Audit, Any] | None:
    """With ``--serve``: the audit of the saved adapter against the modules training adapts,
    and the engine's verdict on it."""
    if not args.serve:
        return None
    adapter, verdict = serve.check(args.peft_config, model, args.hf_config, args.max_lora_rank)
    return serve.audit(adapter, model, selected), verdict


def _write_error(
    out: TextIO, message: str, rules: RuleSet | None, args: argparse.Namespace
) -> None:
    """Under ``--json``, an error is a document too: the message, and the PEFT release whose
    rules refused (where PEFT's rules were chosen)."""
    document: dict[str, Any] = {"error": message}
    if rules is not None and rules.peft_version is not None:
        document["peft_version"] = rules.peft_version
    elif rules is None and _peft_chosen(args):
        try:
            document["peft_version"] = rules_version(args.peft_version)
        except ValueError:  # the version given is what was refused
            document["peft_version"] = args.peft_version
    json.dump(document, out, indent=2)
    out.write("\n")


def _peft_chosen(args: argparse.Namespace) -> bool:
    return args.rules == "peft" or any(
        (args.peft_config, args.axolotl_config, args.llamafactory_config)
    )


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
        matcher = PeftMatcher(regex, version=rules.peft_version)
        try:
            applied = preview(matcher, names, set(), model.module)
        except Refused as refused:
            print(f"modmatch: warning: PEFT {matcher.version}: {refused}", file=sys.stderr)
            return regex
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
        "exact rules of NeMo Automodel's matcher of July 2025 (the default), NeMo Automodel 0.7, "
        "Megatron-Bridge or Hugging Face PEFT 0.17 to 0.21.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {metadata.version('modmatch')}"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--model",
        choices=sorted(SHAPES),
        help=f"a built-in model shape (default: {DEFAULT_MODEL}); the Hugging Face ones have "
        "transformers 4.x module names, one module per expert, except the -transformers5 ones, "
        "whose experts are fused",
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
    peft.add_argument(
        "--peft-version",
        metavar="V",
        help="the PEFT release whose rules apply, 0.17 to 0.21 (default: the installed PEFT's "
        "where it is one of these, else 0.21.2)",
    )
    peft.add_argument(
        "--axolotl-config",
        metavar="FILE",
        help="an Axolotl YAML config, with --hf-config (needs modmatch[frontends])",
    )
    peft.add_argument(
        "--llamafactory-config",
        metavar="FILE",
        help="a LLaMA-Factory YAML config, with --hf-config (needs modmatch[frontends])",
    )
    serving = parser.add_argument_group("serving (--serve)")
    serving.add_argument(
        "--serve",
        choices=serve.ENGINES,
        help="with --peft-config ADAPTER_DIR (as save_pretrained wrote it) and --hf-config: "
        "whether the server loads the adapter and which of its modules it applies",
    )
    serving.add_argument(
        "--max-lora-rank",
        type=int,
        choices=MAX_LORA_RANKS,
        metavar="N",
        help=f"the server's --max-lora-rank (default {MAX_LORA_RANK})",
    )
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
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 if a pattern matched nothing, an exclude excluded nothing, or (--serve) the "
        "server never applies a module of the adapter",
    )
    return parser


_EPILOG = """\
patterns (default rules; see --rules for the others):
  A pattern matches a module when it equals the module's short name (its last segment,
  q_proj) or matches its whole dotted name (model.layers.0.self_attn.q_proj). The whole
  name is matched as a Python regex, anchored at both ends, with * standing for any run of
  characters, dots included: '*.q_proj' matches every q_proj. A '.' is any character, so
  '*.layers.1.*' also matches layers 10 to 19; '*.layers.1\\.*' is layer 1 alone. Quote
  patterns in the shell, where * is a wildcard too.
  --rules peft: list entries are literal, a module's name or a dotted suffix of it
  (q_proj, self_attn.q_proj); --target-regex is one regex the whole name must match.

  With neither -t nor -x, the default targets are Megatron-Core names (linear_qkv,
  linear_proj, linear_fc1, linear_fc2): on a Hugging Face model give -t.

exit codes:
  0 done; 1 --strict and a pattern matched nothing (or, with --serve, the server never applies
  a module of the adapter); 2 bad input (one line on stderr), or the server refuses the adapter

examples:
  modmatch -t '*.self_attn.*_proj' --model qwen3-235b-a22b
  modmatch --rules peft -t q_proj -t v_proj --hf-config path/to/model --json
  modmatch --peft-config adapter_config.json --hf-config path/to/model --explain NAME
  modmatch --peft-config path/to/adapter --hf-config path/to/model --serve vllm
"""


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
    config = next(
        (
            (flag, path)
            for flag, path in (
                ("--peft-config", args.peft_config),
                ("--axolotl-config", args.axolotl_config),
                ("--llamafactory-config", args.llamafactory_config),
            )
            if path is not None
        ),
        None,
    )
    rules = args.rules or ("peft" if config else "seed")
    if args.peft_version is not None and rules != "peft":
        raise InputError(f"--peft-version is a PEFT option: it cannot apply to --rules {rules}")
    if config is None:
        return rules, Options(
            all_linear=args.all_linear,
            causal_lm=args.causal_lm,
            call=args.call,
            peft_version=args.peft_version,
            **flags,
        )
    flag, path = config
    if rules != "peft":
        raise InputError(f"{flag} is read by PEFT's rules: it cannot be read by --rules {rules}")
    given = [name for name, value in flags.items() if value is not None]
    if given or args.all_linear:
        raise InputError(f"{flag} already sets the targets: drop the pattern flags")
    fields = _read_peft_config(path) if flag == "--peft-config" else {}
    return "peft", Options(
        call=args.call, causal_lm=args.causal_lm, peft_version=args.peft_version, **fields
    )


# The front-ends whose YAML the command reads: flag, module, name and release restated.
_FRONT_ENDS = {
    "axolotl_config": (axolotl, "Axolotl 0.18.0"),
    "llamafactory_config": (llamafactory, "LLaMA-Factory 0.9.5"),
}


def _front_end(args: argparse.Namespace) -> tuple[str, Any, str] | None:
    """The front-end config given, as (path, its reader module, the front-end's name)."""
    for flag, (module, name) in _FRONT_ENDS.items():
        path = getattr(args, flag)
        if path is not None:
            if not args.hf_config:
                raise InputError(
                    f"--{flag.replace('_', '-')}: {name.split()[0]}'s translation reads the "
                    "model's modules: give --hf-config"
                )
            return path, module, name
    return None


def _front_end_options(front_end: tuple[str, Any, str], options: Options, model: Model) -> Options:
    """The options for the LoraConfig the front-end builds from its YAML on this model."""
    path, module, name = front_end
    try:
        settings = module.read(path)
        built = module.lora_config(settings, model.module)
    except ImportError as error:
        raise InputError(f"{name.split()[0]} configs need PyYAML: {error}") from error
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from error
    except ValueError as error:  # the front-end refuses its settings, or the YAML is not valid
        raise InputError(f"{path}: {' '.join(str(error).split())}") from error
    fields = _lora_options(built)
    if module is axolotl:
        # Axolotl refuses dropout with target_parameters it was given, and patches PEFT's
        # ParamWrapper to take it as 0 for those PEFT's rewriting adds: PEFT never refuses it.
        fields["parameter_dropout"] = 0.0
    return dataclasses.replace(options, **fields, built_by=name, built=_jsonable(built))


def _jsonable(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        key: sorted(value) if isinstance(value, (set, frozenset)) else value
        for key, value in fields.items()
    }


def _read_json(path: str, in_folder: str) -> tuple[Path, Any]:
    """A JSON file, or the file named ``in_folder`` where ``path`` is a folder, with its path."""
    file = Path(path)
    if file.is_dir():
        file = file / in_folder
    try:
        return file, json.loads(file.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(f"cannot read {file}: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise InputError(
            f"cannot read {file}: not UTF-8 text (byte {error.object[error.start]:#04x} at "
            f"offset {error.start:,})"
        ) from error
    except ValueError as error:
        raise InputError(f"{file} is not JSON: {error}") from error


def _read_peft_config(path: str) -> dict[str, Any]:
    file, settings = _read_json(path, "adapter_config.json")
    if not isinstance(settings, dict):
        raise InputError(f"{file} is not a PEFT config: expected a JSON object")
    kind = settings.get("peft_type", "LORA")
    if kind != "LORA":
        raise InputError(
            f"{file}: peft_type {kind!r}: modmatch previews LoRA configs (peft_type 'LORA') only"
        )
    return _lora_options(settings)


def _lora_options(settings: dict[str, Any]) -> dict[str, Any]:
    """The rule set's options for a LoRA config's fields (as saved, or as a front-end builds
    them): a str target is a regex, or PEFT's "all-linear"."""
    options: dict[str, Any] = {
        "lora_dropout": settings.get("lora_dropout") or 0.0,
        "flags": tuple(f for f in ("fan_in_fan_out", "lora_bias", "use_dora") if settings.get(f)),
    }
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


def _load(args: argparse.Namespace, task_type: str | None) -> Model:
    """The chosen model's modules: (name, is Linear) each, and its output layer; a config is
    built as the class PEFT's ``task_type`` implies, else its ``architectures`` name."""
    if args.names:
        read = list(_progress(_read_names(args.names), "reading names"))
        if not read:
            raise InputError(f"no module names in {args.names}")
        modules = [(name, bool(is_linear)) for name, is_linear in read]
        known = {name for name, _ in modules}
        # A file of parameter names shows fused experts by their stacked projections.
        fused = {
            holder: tuple(p for p in _FUSED if f"{holder}.{p}" in known)
            for name in known
            if name.endswith(".gate_up_proj")
            for holder in [name.rpartition(".")[0]]
        }
        typed = any(is_linear is not None for _, is_linear in read)
        return Model(modules, typed=typed, fused_experts=fused)
    if args.hf_config:
        return _hf_model(args.hf_config, task_type)
    shape = SHAPES[args.model or DEFAULT_MODEL]
    modules = list(_progress(shape.modules(), "building the model"))
    fused = {}
    if isinstance(shape, Shape) and shape.fused:
        fused = {name: _FUSED for name, _ in modules if name.endswith(f".{shape.experts_path}")}
    return Model(modules, fused_experts=fused)


# The parameters transformers 5 stacks a layer's experts into.
_FUSED = ("gate_up_proj", "down_proj")

# The class names counted as nn.Linear in a names file: torch's nn.Linear and its subclasses
# in torch and bitsandbytes. Megatron-Core's and Transformer Engine's parallel linear layers
# are not nn.Linear subclasses, so the seed's all-linear rule does not take them either.
LINEAR_CLASSES = frozenset(
    {
        "Linear",
        "NonDynamicallyQuantizableLinear",
        "Linear8bitLt",
        "Linear4bit",
        "LinearFP4",
        "LinearNF4",
    }
)


def _read_names(path: str) -> Iterator[tuple[str, bool | None]]:
    """``(name, is Linear)`` per non-blank line; is Linear is None where no class is given."""
    try:
        raw = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from error
    # One decoding for files and stdin; utf-8-sig drops the byte-order mark some editors write.
    stream = io.TextIOWrapper(raw, encoding="utf-8-sig", newline=None)
    try:
        with stream:
            for line in stream:
                name, tab, class_name = line.rstrip("\n").partition("\t")
                if not name.strip():
                    continue
                yield name, (class_name.strip() in LINEAR_CLASSES) if tab else None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read {path}: {error}") from error


# The auto class PEFT's task types stand for (peft.PeftModelFor*'s base models).
_TASK_CLASSES = {
    "CAUSAL_LM": "AutoModelForCausalLM",
    "SEQ_CLS": "AutoModelForSequenceClassification",
    "SEQ_2_SEQ_LM": "AutoModelForSeq2SeqLM",
    "TOKEN_CLS": "AutoModelForTokenClassification",
    "QUESTION_ANS": "AutoModelForQuestionAnswering",
    "FEATURE_EXTRACTION": "AutoModel",
}
_NAMES_HINT = "list the module names with --names instead"


def _model_classes(transformers: Any, settings: dict[str, Any], task_type: str | None) -> list[Any]:
    """The classes to build a config as, in turn: the task type's auto class, else the
    config's own architecture, else a causal LM, then a base model."""
    if task_type in _TASK_CLASSES:
        return [getattr(transformers, _TASK_CLASSES[task_type])]
    for name in settings.get("architectures") or ():
        found = getattr(transformers, name, None) if isinstance(name, str) else None
        if found is not None:
            return [found]
    return [transformers.AutoModelForCausalLM, transformers.AutoModel]


def _built(kinds: list[Any], config: Any) -> Any:
    """The model of the first class that takes this config (an auto class may have none for
    its model type); ValueError naming the classes tried."""
    for kind in kinds:
        if not kind.__name__.startswith("Auto"):
            return kind(config)
        try:
            return kind.from_config(config)
        except ValueError as error:
            if not str(error).startswith("Unrecognized configuration class"):
                raise
    tried = " or ".join(kind.__name__ for kind in kinds)
    raise InputError(f"transformers has no {tried} for model type {config.model_type!r}")


def _hf_model(path: str, task_type: str | None = None) -> Model:
    try:
        import transformers
    except ImportError as error:
        raise InputError("--hf-config needs transformers: pip install 'modmatch[hf]'") from error
    import torch

    if not Path(path).exists():
        raise InputError(
            f"--hf-config {path}: no such file or folder (a local config.json or model folder; "
            "modmatch downloads nothing)"
        )
    file, settings = _read_json(path, "config.json")  # a model folder, as users have it
    if not isinstance(settings, dict) or "model_type" not in settings:
        raise InputError(
            f"{file} is not a Hugging Face model config: it has no model_type "
            f"(a remote-code model?): {_NAMES_HINT}"
        )
    if settings["model_type"] not in transformers.CONFIG_MAPPING:
        raise InputError(
            f"{file}: transformers {transformers.__version__} has no model type "
            f"{settings['model_type']!r}: {_NAMES_HINT}"
        )
    try:
        # from_pretrained reads the file as transformers wrote it (it encodes infinities).
        config = transformers.AutoConfig.from_pretrained(str(file))
        kinds = _model_classes(transformers, settings, task_type)
        with _ticking(f"building the model from {file}"), torch.device("meta"):
            model = _built(kinds, config)
    except InputError as error:
        raise InputError(f"{file}: {error}: {_NAMES_HINT}") from error
    except Exception as error:  # transformers reports a bad field by several exception types
        reason = " ".join(line.strip() for line in str(error).splitlines())
        raise InputError(
            f"cannot build a model from {file}: {_cut(reason)}; {_NAMES_HINT}"
        ) from error
    named = list(_progress(model.named_modules(), "walking the model"))
    output = model.get_output_embeddings()
    fused = {
        name: stacked
        for name, module in named
        if (stacked := tuple(p for p, v in module.named_parameters(recurse=False) if v.dim() == 3))
    }
    return Model(
        [(name, isinstance(module, torch.nn.Linear)) for name, module in named],
        next((name for name, module in named if module is output), None),
        model,
        fused_experts=fused,
        model_type=settings["model_type"],
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


# The rule sets that read a pattern in the seed's syntax, where '.' and '|' are regex.
_DOT_IS_ANY = ("seed", "megatron-bridge")


def _advice(
    rules: RuleSet, model: Model, counts: Report, selected: list[str], moved: dict[str, list[str]]
) -> dict[str, Any]:
    """For the output: suggestions per unmatched pattern, the full-name hints, the fused-experts
    note, patterns broader than written, selected modules that are not Linear, and the entries
    PEFT's rewriting moved to parameters (which are not unmatched)."""
    unmatched = [pattern for pattern in counts.unmatched if pattern not in moved]
    asked = rules.asked_modules(model)
    names = [name for name, _ in asked]
    linear: set[str] | None = {name for name, is_linear in asked if is_linear}
    # Without nn.Linear modules (Megatron-Core's parallel layers), "Linear only" cannot guide.
    typed = model.typed and bool(linear)
    linear = linear if typed else None
    found = Advice(names, linear, rules.selector)
    hints = _full_name_hints(rules, counts, model)
    fused = {
        pattern: note
        for pattern in unmatched
        if (note := fused_experts_note(pattern, model.fused_experts))
    }
    # A pattern aimed at fused experts gets the note alone: any close pattern selects
    # something else (the dense or shared MLPs).
    suggested = {
        pattern: []
        if pattern in fused
        else [hints[pattern]]
        if pattern in hints
        else suggestions(
            pattern,
            found,
            full_name=rules.call == "full-name",
            dot_is_any=rules.name in _DOT_IS_ANY,
        )
        if rules.literal_patterns
        else []
        for pattern in unmatched
    }
    broader = _broader_than_written(rules, model, counts) if rules.name in _DOT_IS_ANY else {}
    not_linear = None
    if typed:
        flags = dict(model.modules)
        # A module held for PEFT's target_parameters is wrapped for its parameters: not a slip.
        held = {p.rpartition(".")[0] for p in rules.selected_parameters(model) or ()}
        not_linear = sum(1 for name in selected if not flags[name] and name not in held)
    return {
        "suggestions": suggested,
        "full_name_hints": hints,
        "fused_experts": fused,
        "broader": broader,
        "not_linear": not_linear,
        "moved": moved,
    }


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


def _explain(rules: RuleSet, name: str, model: Model) -> dict[str, Any]:
    is_linear = dict(model.modules).get(name)
    verdict = rules.explain(name, is_linear, model)
    holder = next((h for h in model.fused_experts if name.startswith(h + ".")), None)
    return {
        "name": name,
        "in_model": is_linear is not None,
        "fused_into": holder if is_linear is None else None,
        "matched": verdict.matched,
        "rule": verdict.rule,
        "pattern": verdict.pattern,
    }


def _notes(args: argparse.Namespace, rules: RuleSet, model: Model) -> list[str]:
    """What the preview could not show, and what the input left out."""
    notes = rules.notes(model)
    needs_types = (
        args.all_linear or rules.name == "automodel" or not (args.target or args.peft_config)
    )
    if not model.typed and needs_types:
        notes.append(
            f"{args.names} gives no class names, so no module counts as nn.Linear: add a tab and "
            "the class name to each line (Linear and its subclasses count)"
        )
    return notes


# Longer texts (a pattern, an error) are shown cut, with their length.
_SHOWN = 300


def _cut(text: str) -> str:
    if len(text) <= _SHOWN:
        return text
    return f"{text[: _SHOWN * 2 // 3]} ... {text[-_SHOWN // 6 :]} ({len(text):,} characters)"


def _quoted(pattern: str) -> str:
    """The pattern as typed in a POSIX shell, always in single quotes."""
    return "'" + pattern.replace("'", "'\\''") + "'"


def _write_json(
    out: TextIO,
    args: argparse.Namespace,
    rules: RuleSet,
    model: Model,
    selected: list[str],
    counts: Report,
    advice: dict[str, Any],
    explanations: list[dict[str, Any]],
    extra: dict[str, Any],
) -> None:
    document: dict[str, Any] = {"rules": rules.name}
    if rules.peft_version is not None:
        document["peft_version"] = rules.peft_version
        if rules.built is not None:
            document["built_by"], document["lora_config"] = rules.built_by, rules.built
        document["config"] = rules.config_shown()
    document |= {
        "call": rules.call,
        "defaults": rules.defaults_used,
        "modules": len(model.modules),
        "selected": len(selected),
        "patterns": [{"pattern": c.pattern, "matched": c.matched} for c in counts.patterns],
        "unmatched_patterns": [p for p in counts.unmatched if p not in advice["moved"]],
        "unmatched_excludes": rules.unmatched_excludes(model),
        "selected_names": selected,
    }
    if advice["not_linear"] is not None:
        document["selected_not_linear"] = advice["not_linear"]
    document["suggestions"] = advice["suggestions"]
    for key, field in (
        ("full_name_hints", "full_name_hints"),
        ("fused_experts", "fused_experts"),
        ("broader", "broader_than_written"),
        ("moved", "moved_to_target_parameters"),
    ):
        if advice[key]:
            document[field] = advice[key]
    notes = _notes(args, rules, model)
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
    document |= extra
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
    advice: dict[str, Any],
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
    release = f" {rules.peft_version}" if rules.peft_version else ""
    print(f"rules: {rules.name}{release}, called as {call}", file=out)
    if rules.peft_version is not None:
        if rules.built is not None:
            built = ", ".join(f"{key}={value!r}" for key, value in rules.built.items())
            print(f"{rules.built_by} builds: LoraConfig({_cut(built)})", file=out)
        fields = ", ".join(f"{key}={value!r}" for key, value in rules.config_shown().items())
        print(f"config: {_cut(fields)}", file=out)
    if rules.defaults_used:
        print(f"no targets given: {rules.defaults_used}", file=out)
    for note in _notes(args, rules, model):
        print(f"note: {note}", file=out)
    print(f"selected {counted(len(selected), 'module')}:", file=out)
    write_folded(out, selected)
    if advice["not_linear"] and not (rules.name == "peft" and model.module is None):
        print(
            f"note: {advice['not_linear']:,} of them not nn.Linear (containers, activations, "
            "norms): most adapters wrap Linear layers only; narrow the patterns",
            file=out,
        )
    parameters = rules.selected_parameters(model)
    if parameters:
        print(f"selected {counted(len(parameters), 'parameter')}:", file=out)
        write_folded(out, parameters)
    rewritten = rules.rewritten(model)
    for change, what in (
        ("widened", "adapts {:,} modules the entries do not select"),
        ("dropped", "drops {:,} modules the entries select"),
    ):
        if rewritten and rewritten[change]:
            changed = len(rewritten[change])
            print(f"warning: PEFT's rewriting for transformers 5 {what.format(changed)}:", file=out)
            write_folded(out, rewritten[change])
    if counts.patterns:
        kind = "target" if args.target or args.peft_config or not args.exclude else "exclude"
        heading = f"{kind} patterns" + (", as written" if rewritten else "")
        print(f"{heading}:", file=out)
        shown = [_cut(_quoted(c.pattern)) for c in counts.patterns]
        width = max(map(len, shown))
        for text, count in zip(shown, counts.patterns, strict=True):
            print(f"  {text:<{width}}  {count.matched:>9,} names", file=out)
    for pattern, flagged in advice["broader"].items():
        print(
            f"warning: pattern {pattern!r} selects {flagged['selected']:,} names, "
            f"{flagged['literal']:,} read literally: {flagged['why']}",
            file=out,
        )
    if advice["moved"]:
        entries = ", ".join(map(repr, advice["moved"]))
        added = ", ".join(sorted({p for ps in advice["moved"].values() for p in ps}))
        print(
            f"note: PEFT's rewriting for transformers 5 moved {entries} to target_parameters "
            f"({added}): the parameters above are theirs",
            file=out,
        )
    hints = advice["full_name_hints"]
    for pattern, suggested in advice["suggestions"].items():
        if pattern in hints:
            print(
                f"unmatched pattern {pattern!r}: {rules.name} compares it with the whole module "
                f"name; {_quoted(hints[pattern])} selects the modules named {pattern}",
                file=out,
            )
        else:
            tries = f"; try {', '.join(map(_quoted, suggested))}" if suggested else ""
            print(f"unmatched pattern {pattern!r}{tries}", file=out)
        if pattern in advice["fused_experts"]:
            print(f"  {advice['fused_experts'][pattern]}", file=out)
    for item in explanations:
        where = "" if item["in_model"] else " (not in the model; taken as not Linear)"
        if item["fused_into"]:
            stacked = ", ".join(model.fused_experts[item["fused_into"]])
            where = f" (not in the model: {item['fused_into']} holds its experts fused: {stacked})"
        decided = f" by {item['pattern']!r}" if item["pattern"] is not None else ""
        verdict = "selected" if item["matched"] else "not selected"
        print(f"{item['name']}{where}: {verdict}, {item['rule']}{decided}", file=out)
