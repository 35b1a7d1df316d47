"""Performance fuzz (issue 26): never slower than the framework, on any list a user writes.

Configs are drawn by ``fuzz_configs.draw`` (seeded). For each, the whole-model walk is timed as
the framework runs it, against modmatch's drop-in doing the same walk, both built fresh
(construction and first call included), interleaved and repeated, the best of each kept:
nemo-automodel's ``ModuleMatcher.match`` over the Linear modules, PEFT's
``check_target_module_exists`` over every module key (the installed release), Megatron-Bridge's
matcher (its restatement, ``modmatch.reference.megatron_bridge``: megatron-core does not install
here) and the July-2025 seed's (``modmatch.reference.seed``) over every module by short name and
prefix. A framework whose walk would take longer than a time budget runs on an evenly spread
sample of the modules and its time is scaled to all of them; the answers are compared on that
sample. The ratio is framework time / modmatch time.

CI runs a small slice on the transformers-5 and other small layouts and guards the worst ratio;
``MODMATCH_BENCH=full`` runs the full draw, the transformers-4.x layouts included, and prints
the table benchmarks/README.md shows.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
from torch import nn

import modmatch
from fuzz_configs import FRAMEWORKS, Config, draw
from modmatch import automodel, megatron_bridge, peft
from modmatch.reference import megatron_bridge as megatron_bridge_reference
from modmatch.reference import seed as seed_reference
from test_frameworks import framework
from workloads import FULL, modules

LINEAR = nn.Linear(1, 1, device="meta")
OTHER = nn.Module()

if FULL:
    MODELS: tuple[str, ...] = (
        "deepseek-v3",
        "deepseek-v3-transformers5",
        "qwen3-235b-a22b",
        "qwen3-235b-a22b-transformers5",
        "mixtral-8x22b",
        "llama-3.1-405b",
    )
    COUNT, ROUNDS, BUDGET = 160, 3, 2.0
else:
    MODELS = (
        "deepseek-v3-transformers5",
        "qwen3-235b-a22b-transformers5",
        "mixtral-8x22b-transformers5",
        "llama-3.1-405b",
    )
    COUNT, ROUNDS, BUDGET = 48, 3, 0.15
SEED = 26
# CI guards the worst ratio at the target itself, 0.5x: the slice's worst was 0.78-0.82x in five
# runs on the shared machine (benchmarks/README.md, "Performance fuzz"), a margin of 1.5.
WORST_FLOOR = 0.5

# A walk: given the module indices to visit, the names it selected.
Walk = Callable[[list[int]], list[str]]


def _walks(config: Config) -> tuple[Callable[[], Walk], Callable[[], Walk], int]:
    """Builders of the framework's walk and modmatch's, and how many modules a walk visits.

    Each builder is called inside the timing: the config or matcher is made fresh there."""
    every = list(modules(config.model))
    fields = config.fields
    if config.framework == "automodel":
        keys = [name for name, is_linear in every if is_linear]

        def automodel_walk(matcher_class: Any) -> Callable[[], Walk]:
            def build() -> Walk:
                match = matcher_class(**fields).match
                return lambda chosen: [keys[i] for i in chosen if match(LINEAR, keys[i])]

            return build

        real = framework("nemo_automodel.components._peft.module_matcher").ModuleMatcher
        return automodel_walk(real), automodel_walk(automodel.ModuleMatcher), len(keys)
    if config.framework == "peft":
        keys = [name for name, _ in every if name]
        lora_config = framework("peft").LoraConfig
        real_check = framework("peft.tuners.tuners_utils").check_target_module_exists

        def peft_walk(check: Callable[[Any, str], Any]) -> Callable[[], Walk]:
            def build() -> Walk:
                lora = lora_config(**fields)
                return lambda chosen: [keys[i] for i in chosen if check(lora, keys[i])]

            return build

        return peft_walk(real_check), peft_walk(peft.check_target_module_exists), len(keys)
    split = [
        (name.rpartition(".")[2], name.rpartition(".")[0], LINEAR if is_linear else OTHER, name)
        for name, is_linear in every
        if name
    ]

    def module_walk(matcher_class: Any) -> Callable[[], Walk]:
        def build() -> Walk:
            match = matcher_class(**fields).match
            return lambda chosen: [
                split[i][3] for i in chosen if match(split[i][2], split[i][0], split[i][1])
            ]

        return build

    if config.framework == "megatron-bridge":
        reference_class = megatron_bridge_reference.ModuleMatcher
        return module_walk(reference_class), module_walk(megatron_bridge.ModuleMatcher), len(split)
    return (
        module_walk(seed_reference.ModuleMatcher),
        module_walk(modmatch.ModuleMatcher),
        len(split),
    )


def _timed(build: Callable[[], Walk], chosen: list[int]) -> tuple[float, list[str]]:
    start = time.perf_counter()
    selected = build()(chosen)
    return time.perf_counter() - start, selected


def _spread(total: int, count: int) -> list[int]:
    step = max(1, total // max(1, count))
    return list(range(0, total, step))


def measure(config: Config) -> float:
    """Framework time / modmatch time for the whole walk, both fresh, best of ROUNDS each."""
    theirs_build, ours_build, total = _walks(config)
    everything = list(range(total))
    # The framework's cost per module, from a small sample, sizes the sample it runs on.
    probe = _spread(total, 16)
    seconds, _ = _timed(theirs_build, probe)
    affordable = int(BUDGET / max(seconds / len(probe), 1e-9))
    sample = everything if affordable >= total else _spread(total, max(affordable, 16))
    theirs = ours = float("inf")
    for _ in range(ROUNDS):
        seconds, their_answer = _timed(theirs_build, sample)
        theirs = min(theirs, seconds * total / len(sample))
        seconds, our_answer = _timed(ours_build, everything)
        ours = min(ours, seconds)
    sampled, index = set(sample), _indexer(config)
    assert [name for name in our_answer if index[name] in sampled] == their_answer, config.id
    return theirs / ours


def _indexer(config: Config) -> dict[str, int]:
    """Module name to the index a walk of ``config``'s framework gives it."""
    every = list(modules(config.model))
    if config.framework == "automodel":
        names = [name for name, is_linear in every if is_linear]
    else:
        names = [name for name, _ in every if name]
    return {name: i for i, name in enumerate(names)}


def _drawn() -> list[Config]:
    """The draw, without configs the framework itself refuses to build."""
    configs = []
    for config in draw(SEED, FRAMEWORKS, MODELS, COUNT):
        if config.framework == "peft":
            try:
                framework("peft").LoraConfig(**config.fields)
            except (ValueError, TypeError):
                continue
        configs.append(config)
    return configs


def test_fuzz_never_slower() -> None:
    """Worst and median ratios over the draw; CI guards the worst (>= WORST_FLOOR)."""
    logging.disable(logging.WARNING)  # Automodel warns on construction; not what is timed
    try:
        results = [(measure(config), config) for config in _drawn()]
    finally:
        logging.disable(logging.NOTSET)
    results.sort(key=lambda pair: pair[0])
    ratios = [ratio for ratio, _ in results]
    large = [ratio for ratio, config in results if config.entries >= 256]
    print(f"\nperformance fuzz: {len(results)} configs, seed {SEED}, models {', '.join(MODELS)}")
    print(f"worst {ratios[0]:.2f}x, median {statistics.median(ratios):.2f}x", end="")
    if large:
        median = statistics.median(large)
        print(f", median at >= 256 entries {median:.2f}x ({len(large)} configs)", end="")
    print("\nworst configs (framework / modmatch):")
    for ratio, config in results[:6]:
        print(f"  {ratio:8.2f}x  {config.id}")
    for name in FRAMEWORKS:
        mine = [ratio for ratio, config in results if config.framework == name]
        if mine:
            print(
                f"  {name}: {len(mine)} configs, worst {mine[0]:.2f}x, "
                f"median {statistics.median(mine):.2f}x"
            )
    assert ratios[0] >= WORST_FLOOR, results[0][1].id


@pytest.mark.parametrize("seed", [1, 2])
def test_draw_is_seeded(seed: int) -> None:
    """The same seed draws the same configs."""
    first = draw(seed, FRAMEWORKS, MODELS[:1], 8)
    assert first == draw(seed, FRAMEWORKS, MODELS[:1], 8)
    assert [c.fields for c in first] == [c.fields for c in draw(seed, FRAMEWORKS, MODELS[:1], 8)]
