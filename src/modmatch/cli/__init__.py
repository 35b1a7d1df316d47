"""The ``modmatch`` command: one thin module per subcommand (:mod:`.match`, :mod:`.preview`,
:mod:`.serve`) and the single-command form of 0.1 (:mod:`.legacy`). Each parses its arguments
into a request; the library answers it; :mod:`.text` or the JSON renders the result."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any, TextIO

from ..errors import InputError
from ..preview.compute import run
from ..preview.result import Failed, Result
from . import legacy, match, preview, serve, text
from .progress import Terminal

__all__ = ["main"]

_COMMANDS: dict[str, Any] = {"match": match, "preview": preview, "serve": serve}

_EPILOG = """\
exit codes:
  0 done; 1 --strict and a pattern matched nothing, an exclude excluded nothing, or the server
  does not apply a module of the adapter as trained; 2 bad input or a config the framework
  refuses (one line on stderr), or the server refuses the adapter or fails the first request
  with it; 130 interrupted

examples:
  modmatch match -t q_proj -t v_proj --model path/to/model
  modmatch match --rules seed -t '*.self_attn.*_proj' --model qwen3-235b-a22b
  modmatch preview adapter_config.json --model path/to/model --explain NAME
  modmatch preview axolotl.yml --json
  modmatch serve path/to/adapter --model path/to/model --engine vllm
  modmatch serve path/to/adapter --engine sglang --lora-target-modules q_proj v_proj
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (see ``modmatch --help``)."""
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        print("modmatch: interrupted", file=sys.stderr)
        return 130


def _main(argv: list[str]) -> int:
    if argv and argv[0] not in _COMMANDS and argv[0] not in ("-h", "--help", "--version"):
        print(f"modmatch: warning: {legacy.DEPRECATED}", file=sys.stderr)
        args, command = legacy.parser().parse_args(argv), legacy
    else:
        args = _parser().parse_args(argv)
        if args.command is None:
            _parser().print_help(sys.stderr)
            return 2
        command = _COMMANDS[args.command]
    try:
        result = run(command.request(args), Terminal())
    except (Failed, InputError) as error:
        failed = error if isinstance(error, Failed) else Failed(str(error))
        for line in failed.warnings:
            print(f"modmatch: warning: {line}", file=sys.stderr)
        print(f"modmatch: error: {failed}", file=sys.stderr)
        if args.json:
            _dump(sys.stdout, failed.to_dict())
        return 2
    for line in result.warnings:
        print(f"modmatch: warning: {line}", file=sys.stderr)
    try:
        _write(sys.stdout, result, args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader left (`modmatch ... | head`): stop quietly, as other commands do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return result.exit_code(args.strict)


def _write(out: TextIO, result: Result, args: argparse.Namespace) -> None:
    if result.regex is not None:
        print(result.regex, file=out)
    elif args.json:
        _dump(out, result.to_dict())
    else:
        text.write(out, result)


def _dump(out: TextIO, document: dict[str, Any]) -> None:
    json.dump(document, out, indent=2)
    out.write("\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modmatch",
        description="Which modules of a model a LoRA/PEFT target list adapts, and why, under "
        "the exact rules of the framework you train with; and whether a server applies a saved "
        "adapter as trained.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {metadata.version('modmatch')}"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in _COMMANDS.values():
        command.add_parser(commands)
    return parser
