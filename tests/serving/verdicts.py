"""The command's `serve --engine ENGINE` answer on one saved adapter, in the form the recorded
verdicts keep: exit code, whether the engine loads it, its messages, and the modules applied
and not. Each engine's record is ``ENGINE_verdicts.json`` beside this file."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

from modmatch.cli import main

# What the record keeps of an answer: all but which rules answered, the reasons (from the
# restated layout on both) and the adapter audit.
KEPT = ("exit", "loads", "error", "request_error", "applied", "not_applied", "ignored_settings")


def cases(engine: str) -> list[str]:
    """The cases recorded for ``engine``."""
    import adapters

    return sorted(name for name, case in adapters.CASES.items() if case.only in (None, engine))


def record_file(engine: str) -> Path:
    return Path(__file__).parent / f"{engine}_verdicts.json"


def serve(adapter: Path, model: Path, *flags: str, engine: str = "vllm") -> dict[str, Any]:
    """Run the command in this process (the engine, where installed, is imported once) and
    read its JSON answer."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        args = ["serve", str(adapter), "--model", str(model), "--engine", engine]
        code = main([*args, "--json", *flags])
    document = json.loads(out.getvalue())
    served = document["serve"]
    return {
        "exit": code,
        "rules": served["rules"],
        "loads": served["loads"],
        "error": _general(served["error"], adapter, model),
        "request_error": _general(served["request_error"], adapter, model),
        "applied": served["applied"],
        "not_applied": served["not_applied"],
        "ignored_settings": served["ignored_settings"],
        "why": served["not_applied_why"],
        "adapter": document["adapter"],
    }


def _general(error: str | None, adapter: Path, model: Path) -> str | None:
    """A message without this run's paths, a set's names in order (vLLM shows a Python set)."""
    if error is None:
        return None
    error = error.replace(str(adapter.resolve()), "ADAPTER").replace(str(adapter), "ADAPTER")
    error = error.replace(str(model), "MODEL")
    # SGLang names an adapter by a hash of its name and path.
    error = re.sub(r"LoRA adapter '[0-9a-f]{32}'", "LoRA adapter 'UID'", error)
    return re.sub(
        r"\{('[^{}]*')\}",
        lambda m: "{" + ", ".join(sorted(m.group(1).split(", "))) + "}",
        error,
    )


def failure(error: str | None) -> str | None:
    """Where vLLM fails without a message of its own (an assert, an exception of torch's), the
    built-in rules give the exception's type with what they found: the type alone."""
    # (torch's copy refusing a larger adapter has a message of its own: kept whole)
    crashed = re.match(
        r"(AssertionError|TypeError|RuntimeError(?!: The size of tensor)|StopIteration)\b",
        error or "",
    )
    return crashed.group(1) if crashed else error


def recorded(engine: str = "vllm") -> dict[str, dict[str, Any]]:
    """Each case's answer from the engine's own code."""
    return json.loads(record_file(engine).read_text(encoding="utf-8"))["cases"]  # type: ignore[no-any-return]


def recorded_by(engine: str = "vllm") -> str:
    """The engine's release that gave the recorded answers."""
    return json.loads(record_file(engine).read_text(encoding="utf-8"))[engine]  # type: ignore[no-any-return]
