"""Seeded configs of many shapes, as users write them, for the performance fuzz (test_fuzz.py).

Each config is one framework's target list (or regex, or excludes), drawn from a shape family
at 1 to 4,096 entries and filled from a model's own names, so most entries select something:
literal short names and dotted suffixes, full names from the state dict, per-expert and
per-layer globs, globs sharing literals or differing only by numbers, duplicated lists, mixed
lists, excludes, PEFT regex strings (``\\d``, ``(?i)``, alternations, lookarounds) and
``layers_to_transform``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workloads import modules

SIZES = (1, 2, 4, 16, 64, 256, 1024, 4096)
FRAMEWORKS = ("automodel", "peft", "megatron-bridge", "seed")


@dataclass(frozen=True)
class Config:
    """One drawn config: the framework whose rules apply, the model, the family and the fields."""

    framework: str
    model: str
    family: str
    size: int
    fields: dict[str, Any] = field(hash=False)
    # Which draw of this framework, model, family and size it is (the first is 1).
    draw: int = 1

    @property
    def id(self) -> str:
        again = f" #{self.draw}" if self.draw > 1 else ""
        return f"{self.framework}/{self.model}/{self.family}/{self.size}{again}"

    @property
    def entries(self) -> int:
        """How many entries the config holds: its lists' lengths, a regex's alternatives. The
        drawn ``size`` is what was asked; a family drawn from a model's names (short names,
        PEFT's suffixes) holds no more entries than the model has names."""
        count = 0
        for name, value in self.fields.items():
            if name == "layers_to_transform":
                continue
            count += value.count("|") + 1 if isinstance(value, str) else len(value)
        return count


class _Names:
    """A model's names cut into what patterns are written from."""

    def __init__(self, model: str) -> None:
        every = [name for name, _ in modules(model) if name]
        self.every = every
        self.linear = [name for name, is_linear in modules(model) if is_linear]
        self.segments = sorted({n.rpartition(".")[2] for n in every if not n[-1].isdigit()})
        self.linear_segments = sorted({n.rpartition(".")[2] for n in self.linear})
        self.layers = sorted({int(p) for n in every for p in n.split(".")[2:3] if p.isdigit()})
        experts = {
            int(parts[parts.index("experts") + 1])
            for n in every
            if "experts" in (parts := n.split("."))
            and parts.index("experts") + 1 < len(parts)
            and parts[parts.index("experts") + 1].isdigit()
        }
        self.experts = sorted(experts) or [0]


def _glob_families(rnd: random.Random, n: _Names) -> dict[str, Callable[[int], list[str]]]:
    """Wildcard list families (seed, Automodel, Megatron-Bridge syntaxes), each by size."""
    layer = lambda: rnd.choice(n.layers or [0])  # noqa: E731
    expert = lambda: rnd.choice(n.experts)  # noqa: E731
    segment = lambda: rnd.choice(n.linear_segments or n.segments)  # noqa: E731
    return {
        "short names": lambda k: rnd.sample(n.segments, min(k, len(n.segments))),
        "suffix globs": lambda k: [f"*.{segment()}" for _ in range(k)],
        "full names": lambda k: rnd.sample(n.every, min(k, len(n.every))),
        "per-expert": lambda k: [f"*.layers.{layer()}.mlp.experts.{expert()}.*" for _ in range(k)],
        "per-layer": lambda k: [f"*.layers.{layer()}.self_attn.*" for _ in range(k)],
        "numbers only": lambda k: [f"*.{i}.*_proj" for i in range(k)],
        "duplicates": lambda k: (
            [f"*.layers.{i}.*" for i in n.layers[:61]] * max(1, k // max(1, len(n.layers[:61])))
        ),
        "shared literal": lambda k: [f"*{segment()}*" for _ in range(k)],
        "mixed": lambda k: [
            rnd.choice(
                (
                    f"*.layers.{layer()}.*.{segment()}",
                    f"*.experts.{expert()}.*_proj",
                    f"model.layers.{layer()}.mlp.experts.{expert()}.*",
                    f"*.{segment()}",
                    f"*{segment()}*",
                    rnd.choice(n.every),
                )
            )
            for _ in range(k)
        ],
    }


def _peft_regex(rnd: random.Random, n: _Names, k: int) -> str:
    """A PEFT regex string of about ``k`` alternatives, in one of the ways people write them."""
    segment = lambda: rnd.choice(n.linear_segments or n.segments)  # noqa: E731
    kind = rnd.choice(("digits", "ignorecase", "alternation", "lookaround", "per-layer"))
    if kind == "digits":
        return rf".*\.layers\.\d+\.(self_attn|mlp)\.({segment()}|{segment()})"
    if kind == "ignorecase":
        return rf"(?i).*\.LAYERS\.1\d\..*{segment().upper()}"
    if kind == "lookaround":
        return rf"^(?!.*experts).*\.({segment()}|{segment()})$"
    if kind == "per-layer":
        layers = rnd.sample(n.layers or [0], min(k, len(n.layers or [0])))
        return r".*\.layers\.(" + "|".join(map(str, layers)) + rf")\..*{segment()}"
    return "|".join(rf".*\.{segment()}" for _ in range(k))


def draw(
    seed: int, frameworks: tuple[str, ...], models: tuple[str, ...], count: int
) -> list[Config]:
    """``count`` configs, the same on every run of the same arguments."""
    rnd = random.Random(seed)
    names = {model: _Names(model) for model in models}
    drawn: list[Config] = []
    draws: Counter[tuple[str, str, str, int]] = Counter()
    while len(drawn) < count:
        framework = rnd.choice(frameworks)
        model = rnd.choice(models)
        size = rnd.choice(SIZES)
        n = names[model]
        families = _glob_families(rnd, n)
        if framework == "peft":
            family = rnd.choice(("suffixes", "full names", "regex", "layers", "excludes"))
            if family == "regex":
                fields: dict[str, Any] = {"target_modules": _peft_regex(rnd, n, size)}
            elif family == "full names":
                fields = {"target_modules": rnd.sample(n.linear, min(size, len(n.linear)))}
            else:
                picked = rnd.sample(n.linear_segments, min(size, len(n.linear_segments)))
                fields = {"target_modules": picked}
                if family == "layers":
                    layers = n.layers or [0]
                    fields["layers_to_transform"] = rnd.sample(layers, max(1, len(layers) // 3))
                if family == "excludes":
                    excludes = rnd.choice((r".*\.layers\.[0-2]\..*", families["full names"](size)))
                    fields["exclude_modules"] = excludes
                    family += ": regex" if isinstance(excludes, str) else ": full names"
        else:
            family = rnd.choice(sorted(families))
            entries = families[family](size)
            if framework == "automodel" and rnd.random() < 0.2:
                family, fields = f"excludes: {family}", {"exclude_modules": entries}
            else:
                fields = {"target_modules": entries}
        draws[framework, model, family, size] += 1
        drawn.append(
            Config(framework, model, family, size, fields, draws[framework, model, family, size])
        )
    return drawn
