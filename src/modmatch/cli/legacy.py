"""The single-command form of modmatch 0.1 (``modmatch -t ... --hf-config ...``), kept for one
release: its flags read into the same requests as ``match``, ``preview`` and ``serve``."""

from __future__ import annotations

import argparse
import dataclasses

from ..errors import InputError
from ..frontends import front_ends
from ..inputs.configs import PEFT
from ..inputs.models import DEFAULT_MODEL
from ..inputs.shapes import SHAPES
from ..peft import rules_version
from ..preview.compute import Request
from ..serving import Settings, engines
from .flags import add_output, add_patterns, options, pattern_flags

__all__ = ["DEPRECATED", "parser", "request"]

DEPRECATED = (
    "the single-command form is deprecated and goes in the next release: use "
    "'modmatch match', 'modmatch preview CONFIG' or 'modmatch serve ADAPTER' (modmatch --help)"
)


def parser() -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(prog="modmatch", add_help=False)
    source = found.add_mutually_exclusive_group()
    source.add_argument("--model", choices=sorted(SHAPES))
    source.add_argument("--names", metavar="FILE")
    source.add_argument("--hf-config", metavar="CONFIG")
    add_patterns(found, "seed; peft with a config")
    config = found.add_mutually_exclusive_group()
    config.add_argument("--peft-config", metavar="PATH")
    for name in front_ends():
        config.add_argument(f"--{name}-config", metavar="FILE")
    found.add_argument("--serve", choices=sorted(engines()))
    found.add_argument("--max-lora-rank", type=int, metavar="N")
    add_output(found)
    return found


def request(args: argparse.Namespace) -> Request:
    flag, path, kind = next(
        (
            (f"--{kind}-config", path, kind)
            for kind in (PEFT, *front_ends())
            if (path := getattr(args, f"{kind}_config")) is not None
        ),
        (None, None, None),
    )
    rules = args.rules or ("peft" if path else "seed")
    if args.max_lora_rank is not None and not args.serve:
        raise InputError("--max-lora-rank is the server's: it needs --serve")
    if args.serve and args.emit:
        raise InputError("--emit prints only a regex: it cannot go with --serve")
    if args.serve and not (args.peft_config and args.hf_config):
        raise InputError(
            "--serve reads a saved adapter and the served model: give --peft-config ADAPTER_DIR "
            "(the folder save_pretrained wrote) and --hf-config MODEL"
        )
    if path is not None:
        if rules != "peft":
            raise InputError(
                f"{flag} is read by PEFT's rules: it cannot be read by --rules {rules}"
            )
        if any(value is not None for value in pattern_flags(args).values()) or args.all_linear:
            raise InputError(f"{flag} already sets the targets: drop the pattern flags")
        if kind is not None and kind != PEFT and not args.hf_config:
            title = front_ends()[kind].TITLE.split()[0]
            raise InputError(
                f"{flag}: {title}'s translation reads the model's modules: give --hf-config"
            )
    flags = options(args, rules)
    if kind not in (None, PEFT) and args.peft_version is None:
        # The release as this form chose it: the installed PEFT's, not the front-end's pin.
        flags = dataclasses.replace(flags, peft_version=rules_version(None))
    return Request(
        rules,
        flags,
        model=args.hf_config or args.model or (None if args.names else DEFAULT_MODEL),
        names=args.names,
        config=path,
        kind=kind,
        explain=tuple(args.explain),
        emit=args.emit is not None,
        engine=args.serve,
        serving=Settings(max_lora_rank=args.max_lora_rank),
        model_flag="--hf-config" if args.hf_config else "--model",
    )
