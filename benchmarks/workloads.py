"""What the benchmarks run on: model names, the issue's pattern sets, meta-device module trees.

``MODMATCH_BENCH=full`` selects the full sizes; the default is the quick mode CI runs.
"""

from __future__ import annotations

import functools
import itertools
import os
import random
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from modmatch.inputs.shapes import SHAPES

FULL = os.environ.get("MODMATCH_BENCH", "quick") == "full"


@dataclass(frozen=True)
class Case:
    """One model's names and one pattern set: the unit every contender is timed on."""

    model: str
    pattern_set: str
    patterns: tuple[str, ...]

    @property
    def bare(self) -> bool:
        """Whether every pattern is a bare module name, as PEFT's list semantics takes them."""
        return all("." not in p and "*" not in p for p in self.patterns)

    @property
    def id(self) -> str:
        return f"{self.model}:{self.pattern_set}"


def expert_patterns(count: int) -> tuple[str, ...]:
    """``*.layers.L.mlp.experts.E.*`` for the first ``count`` (MoE layer, expert) pairs of Kimi-K2."""
    pairs = itertools.islice(itertools.product(range(1, 61), range(384)), count)
    return tuple(f"*.layers.{layer}.mlp.experts.{expert}.*" for layer, expert in pairs)


@functools.cache
def modules(model: str) -> tuple[tuple[str, bool], ...]:
    """``(name, is_linear)`` in ``named_modules()`` order, root included."""
    return tuple(SHAPES[model].modules())


@functools.cache
def names(model: str) -> tuple[str, ...]:
    return tuple(name for name, _ in modules(model))


# The shapes of a list people really write, side by side: per-layer, per-expert, bare names,
# full names ({i} a layer, {e} an expert, {s} a last segment, {n} a full module name).
MIXED_SHAPES = (
    "*.layers.{i}.*.{s}",
    "*.experts.{e}.*_proj",
    "model.layers.{i}.mlp.experts.{e}.*",
    "*.{s}",
    "*.layers.{i}.self_attn.*",
    "*{s}*",
    "{n}",
    "model.layers.{i}.mlp.*.{e}.*",
)


@functools.cache
def mixed_patterns(count: int, model: str = "deepseek-v3") -> tuple[str, ...]:
    """``count`` distinct patterns, the mixed shapes in turn, filled from ``model``'s own names
    (so most select something), the same list on every run."""
    every = [name for name in names(model) if name]
    segments = sorted({n.rpartition(".")[2] for n in every if not n[-1].isdigit()})
    rnd = random.Random(count)
    found: dict[str, None] = {}
    for shape in itertools.cycle(MIXED_SHAPES):
        layer, expert = rnd.randrange(61), rnd.randrange(256)
        filled = shape.format(i=layer, e=expert, s=rnd.choice(segments), n=rnd.choice(every))
        found.setdefault(filled, None)
        if len(found) == count:
            return tuple(found)
    raise AssertionError("unreachable")


PATTERN_SETS: dict[str, tuple[str, ...]] = {
    "seed defaults": ("linear_qkv", "linear_proj", "linear_fc1", "linear_fc2"),
    "HF short names": (
        "q_a_proj",
        "q_b_proj",
        "kv_a_proj_with_mqa",
        "kv_b_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ),
    "few wildcards": ("*.self_attn.*_proj", "*.shared_experts.*", "*.layers.0.mlp.*"),
    "61 per-layer": tuple(f"model.layers.{layer}.self_attn.*" for layer in range(61)),
    "64 per-expert": expert_patterns(64),
    "1,024 per-expert": expert_patterns(1024),
    "10,000 per-expert": expert_patterns(10_000),
}

CASES = [
    Case("megatron-gpt", "seed defaults", PATTERN_SETS["seed defaults"]),
    *(Case("kimi-k2", name, patterns) for name, patterns in list(PATTERN_SETS.items())[1:]),
    # Lists that mix shapes, on DeepSeek-V3 (whose names they are made of).
    *(Case("deepseek-v3", f"{n:,} mixed", mixed_patterns(n)) for n in (64, 1024, 4096)),
]


def tiled(model: str, count: int) -> list[str]:
    """``count`` distinct names: the model's names, repeated under ``copyN.`` prefixes."""
    base = names(model)
    copies = (f"copy{n}.{name}" for n in itertools.count() for name in base if name)
    return list(itertools.islice(itertools.chain(base, copies), count))


def meta_model(model: str) -> nn.Module:
    """The model as an ``nn.Module`` tree on the meta device: real modules, no weights."""
    with torch.device("meta"):
        return _tree(modules(model))


def _tree(named: Iterable[tuple[str, bool]]) -> nn.Module:
    # Linear layers are 1x1: on the meta device their size does not matter, only their type.
    built: dict[str, nn.Module] = {}
    for name, linear in named:
        module = nn.Linear(1, 1) if linear else nn.Module()
        if name:
            parent, _, child = name.rpartition(".")
            built[parent].add_module(child, module)
        built[name] = module
    return built[""]
