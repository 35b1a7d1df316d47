"""The PEFT preview against what it stands in for, side by side in one run.

- The preview (``modmatch.preview.peft.preview`` after one ``named_modules()`` walk) against
  ``get_peft_model`` on the same meta-device model and config: transformers 5 DeepSeek-V3
  (PEFT's rewriting included on both sides) and the transformers-4.x shape as a module tree.
- Handing PEFT a selection of 10,000 full names: ``exact_target_modules``' regex against the
  list, each as PEFT applies it (``_find_minimal_target_modules`` shortening the list, then
  ``check_target_module_exists`` on every module). PEFT's matching of the long list runs on an
  evenly spread sample of the names and is counted per name (it costs about a millisecond each).

There are no targets here: the ratios are reported.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable
from typing import Any

from modmatch.inputs.shapes import SHAPES
from modmatch.peft import PeftMatcher, exact_target_modules
from modmatch.preview.peft import preview
from oracles import wrapped
from test_frameworks import framework
from test_targets import report
from workloads import FULL

_DEEPSEEK_V3 = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "moe_intermediate_size": 8,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "vocab_size": 64,
    "q_lora_rank": 8,
    "kv_lora_rank": 8,
    "qk_rope_head_dim": 4,
    "qk_nope_head_dim": 4,
    "v_head_dim": 4,
}


def _transformers_model() -> Any:
    transformers = framework("transformers")
    import torch

    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(
            transformers.DeepseekV3Config(**_DEEPSEEK_V3)
        )


def _tree() -> Any:
    """The transformers-4.x DeepSeek-V3 shape as a module tree: 75,397 modules on meta."""
    from torch import nn

    root = nn.Module()
    for name, is_linear in SHAPES["deepseek-v3"].modules():
        if name:
            parent, _, leaf = name.rpartition(".")
            module = nn.Linear(2, 2, bias=False, device="meta") if is_linear else nn.Module()
            (root.get_submodule(parent) if parent else root).add_module(leaf, module)
    return root


def _best(run: Callable[[Any], Any], build: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    """Best seconds of ``run(build())`` (building is not timed), and the last result."""
    best, result = float("inf"), None
    for _ in range(rounds):
        model = build()
        start = time.perf_counter()
        result = run(model)
        best = min(best, time.perf_counter() - start)
    return best, result


def _previewed(model: Any, config: dict[str, Any]) -> list[str]:
    lora = framework("peft").LoraConfig(**config)
    modules = list(model.named_modules())
    names = [name for name, _ in modules]
    return preview(PeftMatcher.from_config(lora), names, set(), model).wrapped


def _adapted(model: Any, config: dict[str, Any]) -> Any:
    real = framework("peft")
    return real.get_peft_model(model, real.LoraConfig(**config))


def _compare(label: str, build: Callable[[], Any], config: dict[str, Any], rounds: int) -> None:
    theirs, adapted = _best(lambda model: _adapted(model, config), build, rounds)
    ours, previewed = _best(lambda model: _previewed(model, config), build, rounds)
    assert set(previewed) == wrapped(adapted)
    report(f"{label}: get_peft_model / preview", theirs / ours)


def test_preview_against_get_peft_model_on_transformers_5() -> None:
    # PEFT moves gate_proj and up_proj to the fused experts' gate_up_proj.
    config = {"target_modules": ["q_a_proj", "o_proj", "gate_proj", "up_proj"]}
    _compare("DeepSeek-V3 (transformers 5)", _transformers_model, config, 3)


def test_preview_against_get_peft_model_on_a_75k_module_tree() -> None:
    # 180 adapters: get_peft_model's time is mostly its walk and matching, not creating them.
    config = {"target_modules": ["q_a_proj", "o_proj", "shared_experts.up_proj"]}
    _compare("DeepSeek-V3 (75,397 modules)", _tree, config, 3 if FULL else 1)


def test_exact_regex_against_a_10000_name_list() -> None:
    tuners = framework("peft.tuners.tuners_utils")
    lora_config = framework("peft").LoraConfig
    names = [name for name, _ in SHAPES["qwen3-235b-a22b"].modules() if name]
    wanted = [n for n in names if ".experts." in n and n.endswith(("gate_proj", "up_proj"))]
    chosen = wanted[: 10_000 if FULL else 2_000]
    sample = names[:: max(1, len(names) // (300 if FULL else 30))]

    def by_list() -> float:
        lora = lora_config(target_modules=chosen)
        start = time.perf_counter()
        # inject_adapter's shortening, on the modules no entry selects.
        suffixes = tuple("." + target for target in lora.target_modules)
        others = [n for n in names if n not in lora.target_modules and not n.endswith(suffixes)]
        shorter = tuners._find_minimal_target_modules(lora.target_modules, others)
        if len(shorter) < len(lora.target_modules):
            lora.target_modules = shorter
        shortening = time.perf_counter() - start
        start = time.perf_counter()
        for name in sample:
            tuners.check_target_module_exists(lora, name)
        return shortening + (time.perf_counter() - start) / len(sample) * len(names)

    def by_regex() -> float:
        start = time.perf_counter()
        lora = lora_config(target_modules=exact_target_modules(chosen, names))
        selected = [n for n in names if tuners.check_target_module_exists(lora, n)]
        elapsed = time.perf_counter() - start
        assert selected == chosen
        return elapsed

    theirs = min(by_list() for _ in range(3 if FULL else 1))
    ours = min(by_regex() for _ in range(3))
    report(f"{len(chosen):,} full names to PEFT: list / exact regex", theirs / ours)


def test_preview_seconds_on_the_built_in_deepseek_v3() -> None:
    """The whole command on 75,397 names (seconds, not a ratio), and reading them alone."""
    from modmatch.cli import main

    reading = min(_seconds(lambda: list(SHAPES["deepseek-v3"].modules())) for _ in range(3))
    for flags in (["-t", "q_a_proj", "-t", "gate_proj", "-t", "up_proj"], ["--all-linear"]):
        with contextlib.redirect_stdout(io.StringIO()):
            args = ["match", "--rules", "peft", *flags]
            whole = min(_seconds(lambda args=args: main(args)) for _ in range(3))
        print(f"\npeft preview {' '.join(flags)}: {whole:.2f} s, reading the names {reading:.2f} s")


def _seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start
