"""``modmatch preview``: what a PEFT adapter config or a front-end's config adapts on a model."""

from __future__ import annotations

import argparse

from ..frontends import front_ends
from ..inputs.configs import kinds
from ..preview.compute import Request
from ..preview.rules import Options
from .flags import add_output, add_peft_version

__all__ = ["add_parser", "request"]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    titles = ", ".join(end.TITLE for end in front_ends().values())
    parser = commands.add_parser(
        "preview",
        help="what a PEFT adapter config or a front-end's config adapts on a model",
        description="What a config adapts on a model, under PEFT's rules: an adapter_config.json "
        f"(or its folder), or a training front-end's config ({titles}) read as the front-end "
        "builds its LoraConfig. The PEFT release is the installed one where the front-end is "
        "installed beside it, else the one it pins.",
    )
    parser.add_argument("config", metavar="CONFIG", help="the config file, or an adapter folder")
    parser.add_argument(
        "--model",
        metavar="MODEL",
        help="a config.json, a model folder, or a Hub id in the local Hugging Face cache "
        "(nothing is downloaded); for a PEFT config also a built-in shape; default: the base "
        "model the config names, where it is local or cached",
    )
    parser.add_argument(
        "--as", dest="kind", choices=kinds(), help="the config's kind (default: from its content)"
    )
    add_peft_version(parser)
    add_output(parser)


def request(args: argparse.Namespace) -> Request:
    return Request(
        None,
        Options(peft_version=args.peft_version),
        model=args.model,
        config=args.config,
        kind=args.kind,
        explain=tuple(args.explain),
        emit=args.emit is not None,
    )
