"""``modmatch match``: what a pattern list selects on a model, under one framework's rules."""

from __future__ import annotations

import argparse

from ..inputs.models import DEFAULT_MODEL
from ..preview.compute import Request
from .flags import add_output, add_patterns, model_help, options

__all__ = ["add_parser", "request"]

DEFAULT_RULES = "peft"

_PATTERNS = """\
patterns:
  peft: a list entry is a module's name or a dotted suffix of it (q_proj, self_attn.q_proj);
  --target-regex is one regex the whole name must match.
  seed, megatron-bridge: a pattern equals the module's short name, or matches its whole dotted
  name as a Python regex, anchored at both ends, with * for any run of characters: '*.q_proj'
  matches every q_proj. A '.' is any character, so '*.layers.1.*' also matches layers 10 to
  19; '*.layers.1\\.*' is layer 1 alone. automodel: the same, on the full name only.
  Quote patterns in the shell, where * is a wildcard too. With neither -t nor -x, the seed's
  and Megatron-Bridge's default targets are Megatron-Core names (linear_qkv, ...).
"""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "match",
        help="what target patterns select on a model, under one framework's rules",
        description="Which modules a target list selects on a model, and why, under the rules "
        "of PEFT 0.17 to 0.21 (the default), NeMo Automodel's matcher of July 2025 (seed), "
        "NeMo Automodel 0.7 or Megatron-Bridge.",
        epilog=_PATTERNS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
