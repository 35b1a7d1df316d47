"""``modmatch match``: what a pattern list selects on a model, under one framework's rules."""

from __future__ import annotations

import argparse

from ..inputs.models import DEFAULT_MODEL
from ..preview.compute import Request
from .flags import add_output, add_patterns, model_help, options

__all__ = ["add_parser", "request"]

DEFAULT_RULES = "peft"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "match",
        help="what target patterns select on a model, under one framework's rules",
        description="Which modules a target list selects on a model, and why, under the rules "
        "of PEFT 0.17 to 0.21 (the default), NeMo Automodel's matcher of July 2025 (seed), "
        "NeMo Automodel 0.7 or Megatron-Bridge.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", metavar="MODEL", help=model_help(DEFAULT_MODEL))
    source.add_argument(
        "--names",
        metavar="FILE",
        help="module names, one per line, optionally a tab and the class name; - for stdin",
    )
    add_patterns(parser, DEFAULT_RULES)
    add_output(parser)


def request(args: argparse.Namespace) -> Request:
    rules = args.rules or DEFAULT_RULES
    return Request(
        rules,
        options(args, rules),
        model=args.model,
        names=args.names,
        explain=tuple(args.explain),
        emit=args.emit is not None,
    )
