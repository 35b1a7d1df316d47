"""`python -m modmatch`: match a built-in model shape, show the selection and the time against the seed."""

from __future__ import annotations

import time
from collections.abc import Sequence

from . import reference
from .matcher import ModuleMatcher
from .shapes import SHAPES

MODEL = "deepseek-v3"
TARGETS = [
    "q_a_proj",
    "kv_a_proj_with_mqa",
    "*.layers.[0-9].mlp.experts.*_proj",
    "*.shared_experts.*",
]


def _select(
    matcher: ModuleMatcher | reference.ModuleMatcher, modules: Sequence[tuple[str, object]]
) -> tuple[list[str], float]:
    start = time.perf_counter()
    selected = []
    for full_name, module in modules:
        prefix, _, name = full_name.rpartition(".")
        if matcher.match(module, name, prefix):
            selected.append(full_name)
    return selected, time.perf_counter() - start


def main() -> int:
    from torch import nn

    linear, other = nn.Linear(1, 1, device="meta"), nn.Identity()
    modules = [
        (name, linear if is_linear else other) for name, is_linear in SHAPES[MODEL].modules()
    ]
    ours = ModuleMatcher(target_modules=TARGETS)
    seed = reference.ModuleMatcher(target_modules=TARGETS)
    theirs, seed_time = _select(seed, modules)
    cold, cold_time = _select(ours, modules)
    warm, warm_time = _select(ours, modules)
    assert cold == warm == theirs, "modmatch disagrees with the reference"
    print(f"{MODEL}: {len(modules):,} modules, targets {TARGETS}")
    print(f"selected {len(cold):,} modules, e.g.:")
    for name in [*cold[:3], "...", *cold[-3:]]:
        print(f"  {name}")
    per_name = 1e6 / len(modules)
    print(f"seed reference  {seed_time * per_name:7.2f} us/module")
    print(
        f"modmatch cold   {cold_time * per_name:7.2f} us/module  ({seed_time / cold_time:.0f}x faster)"
    )
    print(
        f"modmatch warm   {warm_time * per_name:7.2f} us/module  ({seed_time / warm_time:.0f}x faster)"
    )
    return 0
