"""``modmatch serve``: will a serving engine apply a saved adapter as trained?"""

from __future__ import annotations

import argparse

from ..inputs.configs import PEFT
from ..preview.compute import Request
from ..serving import Settings, engines
from .flags import add_output

__all__ = ["add_parser", "request"]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "serve",
        help="whether a serving engine loads a saved adapter and applies it as trained",
        description="What a saved adapter (the folder save_pretrained wrote) holds, next to what "
        "training adapts, and whether the serving engine loads it and which of its modules it "
        "applies.",
    )
    parser.add_argument("adapter", metavar="ADAPTER", help="the adapter's folder")
    parser.add_argument(
        "--model",
        metavar="MODEL",
        help="the served model: a config.json, a model folder, or a Hub id in the local Hugging "
        "Face cache (default: the adapter's base_model_name_or_path, where local or cached)",
    )
    parser.add_argument("--engine", required=True, choices=sorted(engines()))
    server = parser.add_argument_group("the server's flags")
    server.add_argument("--max-lora-rank", type=int, metavar="N", help="default: the engine's")
    server.add_argument(
        "--lora-target-modules",
        nargs="+",
        metavar="NAME",
        help="the modules the server gives a LoRA layer (default: vLLM all it supports, "
        "SGLang the adapter's own targets)",
    )
    server.add_argument(
        "--lora-strict-loading",
        action="store_true",
        help="SGLang's: the first request fails at once on weights that match no target "
        "(else after a warning)",
    )
    add_output(parser, emit=False)


def request(args: argparse.Namespace) -> Request:
    return Request(
        "peft",
        model=args.model,
        config=args.adapter,
        kind=PEFT,
        explain=tuple(args.explain),
        engine=args.engine,
        serving=Settings(
            args.max_lora_rank,
            None if args.lora_target_modules is None else tuple(args.lora_target_modules),
            args.lora_strict_loading,
        ),
    )
