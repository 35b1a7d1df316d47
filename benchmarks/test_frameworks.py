"""Each drop-in against its framework's own implementation, side by side in one run.

Targets: ``modmatch.peft.check_target_module_exists`` >= 100x faster than PEFT's with a list of
10,000 full names and >= 10x with a 64-alternative regex; ``modmatch.automodel`` >= 20x faster
than nemo-automodel's ``ModuleMatcher.match`` at 64 patterns. Both sides answer the same
selection first; the framework runs on an evenly spread sample of names (it is slow), modmatch
on all of them with a new matcher each round (compiling included). Met targets are guarded at
half; unmet ones are printed.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import pytest
from torch import nn

from modmatch import automodel, peft
from test_targets import best_per_name, report
from timing import timed
from workloads import FULL, expert_patterns, names

MODULE = nn.Linear(1, 1, device="meta")  # Automodel asks about Linear modules only
QWEN = [name for name in names("qwen3-235b-a22b") if name]
KIMI = [name for name in names("kimi-k2") if name]


def framework(module: str) -> ModuleType:
    """The real framework: required in CI (installed by the oracles extra), else optional."""
    if os.environ.get("CI") == "true":
        return importlib.import_module(module)
    return pytest.importorskip(module)


def _sample(every: list[str], count: int) -> list[str]:
    return every[:: max(1, len(every) // count)]


def _peft_list() -> list[str]:
    """10,000 full names: the per-expert projections of Qwen3-235B's first layers."""
    wanted = [n for n in QWEN if ".experts." in n and n.endswith(("gate_proj", "up_proj"))]
    return wanted[:10_000]


def _peft_regex() -> str:
    """64 alternatives, one per (layer, expert), each a full-name regex as PEFT users write."""
    return "|".join(
        rf".*\.layers\.{layer}\.mlp\.experts\.{expert}\..*_proj"
        for layer in range(2)
        for expert in range(32)
    )


def _selecting(check: Callable[[Any, str], Any], config: Any, keys: list[str]) -> list[str]:
    return [key for key in keys if check(config, key)]


Runner = Callable[[Sequence[str]], list[str]]
# The framework's runner, modmatch's, the names, how many of them the framework runs on, the
# target and whether CI guards it (at half the target; an unmet one is only printed).
Case = tuple[Callable[[], Runner], Callable[[], Runner], list[str], int, float, bool]


def _cases() -> dict[str, Case]:
    def peft_real(targets: Any) -> Callable[[], Runner]:
        def build() -> Runner:
            check = framework("peft.tuners.tuners_utils").check_target_module_exists
            lora = framework("peft").LoraConfig(target_modules=targets)
            return lambda keys: _selecting(check, lora, list(keys))

        return build

    def peft_ours(targets: Any) -> Callable[[], Runner]:
        def build() -> Runner:
            # A new config each round: modmatch compiles again, a cold start.
            lora = framework("peft").LoraConfig(target_modules=targets)
            return lambda keys: _selecting(peft.check_target_module_exists, lora, list(keys))

        return build

    patterns = list(expert_patterns(64))

    def automodel_real() -> Runner:
        module = framework("nemo_automodel.components._peft.module_matcher")
        matcher = module.ModuleMatcher(target_modules=patterns)
        return lambda keys: [key for key in keys if matcher.match(MODULE, key)]

    def automodel_ours() -> Runner:
        matcher = automodel.ModuleMatcher(target_modules=patterns)
        return lambda keys: [key for key in keys if matcher.match(MODULE, key)]

    return {
        "peft: 10,000 full names": (
            peft_real(_peft_list()),
            peft_ours(_peft_list()),
            QWEN,
            60 if not FULL else 600,
            100,
            True,
        ),
        "peft: 64-alternative regex": (
            peft_real(_peft_regex()),
            peft_ours(_peft_regex()),
            QWEN,
            1_000 if not FULL else 10_000,
            10,
            False,  # not met: see the README
        ),
        "automodel: 64 patterns": (automodel_real, automodel_ours, KIMI, 2_000, 20, True),
    }


CASES = _cases()


@pytest.mark.parametrize("case", list(CASES))
def test_framework_against_modmatch(case: str) -> None:
    real, ours, every, count, target, guarded = CASES[case]
    sample = _sample(every, count)
    assert real()(sample) == ours()(sample)  # the same answers first

    def on(build: Callable[[], Runner], keys: list[str]) -> Callable[[], Callable[[], object]]:
        return lambda: functools.partial(build(), keys)

    theirs = best_per_name(on(real, sample), len(sample), False)
    mine = best_per_name(on(ours, every), len(every), False)
    report(f"{case}: framework / modmatch, per name", theirs / mine, ">=", target, guarded)


@pytest.mark.parametrize("side", ["framework", "modmatch"])
@pytest.mark.parametrize("case", list(CASES))
def test_timed(benchmark: Any, case: str, side: str) -> None:
    real, ours, every, count, _, _ = CASES[case]
    build, keys = (real, _sample(every, count)) if side == "framework" else (ours, every)
    timed(
        benchmark,
        f"frameworks:{case}",
        lambda: functools.partial(build(), keys),
        side == "modmatch",  # modmatch cold: a new config or matcher, so no answer is cached
        case=f"frameworks:{case}",
        contender=side,
        names=len(keys),
        patterns=0,
    )
