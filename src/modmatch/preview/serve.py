"""``--serve``: what a saved adapter holds, next to what training adapts, and whether the
server applies it as trained."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib.util import find_spec
from typing import Any, TextIO

from ..fold import fold
from ..reference.vllm import MAX_LORA_RANK
from ..serving import adapter as saved
from ..serving import vllm
from .rulesets import Model
from .text import counted, write_folded

__all__ = ["Audit", "audit", "check", "to_json", "write_text"]

# The servers --serve knows.
ENGINES = ("vllm",)


@dataclass(frozen=True)
class Audit:
    """The saved adapter: LoRA ranks per module (a fused experts module's rank per expert),
    the modules saved whole (``modules_to_save``), the embeddings whose base weights PEFT saved
    beside their LoRA (``save_embedding_layers``), and the modules training adapts that it
    does not hold."""

    ranks: Mapping[str, tuple[int, ...]]
    saved_whole: tuple[str, ...]
    base_weights: tuple[str, ...]
    not_saved: tuple[str, ...]


def audit(adapter: saved.SavedAdapter, model: Model, adapted: list[str]) -> Audit:
    """Compare the adapter's tensors with ``adapted``, the modules the preview says training
    wraps."""
    held = adapter.modules()
    ranks = {
        name: tuple(rank // _experts(model, name) for rank in entry.ranks)
        for name, entry in held.items()
        if entry.ranks
    }
    whole = tuple(name for name, entry in held.items() if "weight" in entry.parts)
    base = tuple(name for name, entry in held.items() if "base_weight" in entry.parts)
    # An adapter trained one module per expert (transformers 4) holds a fused layer's experts.
    per_expert = {m.group(1) for name in held if (m := _PER_EXPERT.match(name))}
    missing = tuple(
        name
        for name in adapted
        if name not in held and not (name in model.fused_experts and _layer(name) in per_expert)
    )
    return Audit(ranks, whole, base, missing)


# A module of one expert, and the layer it is in (the name up to its first number).
_PER_EXPERT = re.compile(r"(.*?\.\d+)\.(?:.*\.)?experts\.\d+\.")


def _layer(name: str) -> str | None:
    found = re.match(r"(.*?\.\d+)\.", name)
    return found.group(1) if found else None


def _experts(model: Model, name: str) -> int:
    """How many experts a module holds fused (PEFT saves one LoRA pair for them all, its rank
    times the experts); 1 for any other module."""
    stacked = model.fused_experts.get(name)
    if not stacked or model.module is None:
        return 1
    return int(getattr(model.module.get_submodule(name), stacked[0]).shape[0])


def check(
    path: str, model: Model, model_path: str, max_lora_rank: int | None
) -> tuple[saved.SavedAdapter, vllm.Verdict]:
    """The adapter in ``path`` and vLLM's verdict on it, served on ``model``."""
    adapter = saved.read(path)
    rank = MAX_LORA_RANK if max_lora_rank is None else max_lora_rank
    return adapter, vllm.check(adapter, model.module.config, model_path, rank)


def to_json(found: Audit, verdict: vllm.Verdict) -> dict[str, Any]:
    document = asdict(verdict)
    document["rules"] = "built-in" if document.pop("built_in") else "installed"
    document["not_applied_why"] = {
        module: {"reason": reason, "served_name": name}
        for module, (reason, name) in document.pop("why").items()
    }
    return {
        "adapter": {
            "lora_ranks": {name: list(ranks) for name, ranks in found.ranks.items()},
            "saved_whole": list(found.saved_whole),
            "base_weights_saved": list(found.base_weights),
            "adapted_not_saved": list(found.not_saved),
        },
        "serve": document,
    }


def write_text(out: TextIO, path: str, found: Audit, verdict: vllm.Verdict) -> None:
    by_rank: dict[tuple[int, ...], list[str]] = {}
    for name, ranks in found.ranks.items():
        by_rank.setdefault(tuple(sorted(set(ranks))), []).append(name)
    print(f"adapter {path} holds:", file=out)
    for ranks, names in sorted(by_rank.items()):
        shown = " and ".join(map(str, ranks))
        print(f"LoRA of rank {shown} on {counted(len(names), 'module')}:", file=out)
        write_folded(out, names)
    if found.saved_whole:
        print(f"whole weights of {counted(len(found.saved_whole), 'module')}:", file=out)
        write_folded(out, found.saved_whole)
    if found.base_weights:
        print(
            f"base weights of {counted(len(found.base_weights), 'embedding')}, saved beside their "
            "LoRA (vLLM serves its own):",
            file=out,
        )
        write_folded(out, found.base_weights)
    if found.not_saved:
        print(
            f"warning: training adapts {counted(len(found.not_saved), 'module')} the adapter does "
            "not hold:",
            file=out,
        )
        write_folded(out, found.not_saved)
    rules = "installed"
    if verdict.built_in:
        rules = "built-in rules" + ("" if find_spec("vllm") else ": vLLM is not installed")
    engine = f"vLLM {verdict.engine_version} ({rules})"
    if not verdict.loads:
        print(f"{engine} refuses the adapter: {verdict.error}", file=out)
        return
    print(
        f"{engine} loads the adapter; it applies {counted(len(verdict.applied), 'module')}:",
        file=out,
    )
    write_folded(out, verdict.applied)
    if verdict.not_applied:
        print(
            f"warning: vLLM never applies {counted(len(verdict.not_applied), 'module')} of the "
            "adapter, without a message (served as the base model there):",
            file=out,
        )
        _folded_why(out, verdict)
    if verdict.ignored_settings:
        print(f"warning: vLLM ignores {', '.join(verdict.ignored_settings)}", file=out)


def _folded_why(out: TextIO, verdict: vllm.Verdict) -> None:
    """The modules not applied, folded by reason, each group with the names the served model
    has instead where it has them."""
    by_reason: dict[str, list[str]] = {}
    for module in verdict.not_applied:
        reason, _ = verdict.why.get(module, ("", None))
        by_reason.setdefault(reason, []).append(module)
    for reason, modules in by_reason.items():
        write_folded(out, modules)
        instead = [name for m in modules if (name := verdict.why.get(m, ("", None))[1])]
        if instead:
            print(f"    {reason}; it has:", file=out)
            for line in fold(instead):
                print(f"      {line}", file=out)
        elif reason:
            print(f"    {reason}", file=out)
