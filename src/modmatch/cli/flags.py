"""The flags ``match`` and the single-command form share: patterns and rule options, read into
the library's :class:`~modmatch.preview.rules.Options`."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import InputError
from ..inputs.shapes import SHAPES
from ..preview.rules import CALLS, RULES, Options

__all__ = [
    "add_output",
    "add_patterns",
    "add_peft_version",
    "model_help",
    "options",
    "pattern_flags",
]


def model_help(default: str) -> str:
    return (
        f"a built-in shape ({', '.join(sorted(SHAPES))}), a config.json, a model folder, or a "
        f"Hub id in the local Hugging Face cache (nothing is downloaded); default: {default}"
    )


def add_patterns(parser: argparse.ArgumentParser, default_rules: str) -> None:
    """The pattern and rule flags."""
    parser.add_argument(
        "--rules", choices=RULES, help=f"whose rules read the patterns (default: {default_rules})"
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
    peft.add_argument("--target-regex", metavar="REGEX", help="target_modules as one regex")
    peft.add_argument("--exclude-regex", metavar="REGEX", help="exclude_modules as one regex")
    peft.add_argument(
        "--layers-to-transform", metavar="N", action="append", type=int, help="repeatable"
    )
    peft.add_argument("--layers-pattern", metavar="NAME", action="append", help="repeatable")
    peft.add_argument("--target-parameters", metavar="NAME", action="append", help="repeatable")
    peft.add_argument("--modules-to-save", metavar="NAME", action="append", help="repeatable")
    add_peft_version(peft)


def add_peft_version(group: Any) -> None:
    group.add_argument(
        "--peft-version",
        metavar="V",
        help="the PEFT release whose rules apply, 0.17 to 0.21 (default: the installed PEFT's "
        "where it is one of these, else 0.21.2)",
    )


def add_output(parser: argparse.ArgumentParser, emit: bool = True) -> None:
    """``--explain``, ``--json`` (or ``--emit``) and ``--strict``."""
    parser.add_argument(
        "--explain", metavar="NAME", action="append", default=[], help="why NAME matched or not"
    )
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="the result as JSON")
    if emit:
        shown.add_argument(
            "--emit",
            choices=["peft-regex"],
            help="print only this: peft-regex, a regex for PEFT's target_modules that selects "
            "exactly the modules selected here",
        )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 if a pattern matched nothing, an exclude excluded nothing, or the server "
        "never applies a module of the adapter",
    )


def pattern_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The pattern flags given, by option name."""
    return {
        "targets": args.target,
        "excludes": args.exclude,
        "target_regex": args.target_regex,
        "exclude_regex": args.exclude_regex,
        "layers_to_transform": args.layers_to_transform,
        "layers_pattern": args.layers_pattern,
        "target_parameters": args.target_parameters,
        "modules_to_save": args.modules_to_save,
    }


def options(args: argparse.Namespace, rules: str) -> Options:
    """The options the flags ask for, under ``rules``."""
    if args.peft_version is not None and rules != "peft":
        raise InputError(f"--peft-version is a PEFT option: it cannot apply to --rules {rules}")
    return Options(
        all_linear=args.all_linear,
        causal_lm=args.causal_lm,
        call=args.call,
        peft_version=args.peft_version,
        **pattern_flags(args),
    )
