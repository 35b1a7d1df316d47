"""Built-in shapes reproduce the module names and counts of the real models (meta device)."""

from __future__ import annotations

import pytest

from modmatch.inputs.shapes import SHAPES
from oracles import oracle


@pytest.mark.parametrize(
    ("model", "modules", "linear"),
    [
        ("deepseek-v3", 75_397, 45_033),
        ("kimi-k2", 116_363, 69_609),
        ("qwen3-235b-a22b", 61_389, 36_567),
        ("mixtral-8x22b", 2_863, 1_625),
        ("llama-3.1-405b", 1_645, 883),
    ],
)
def test_counts(model: str, modules: int, linear: int) -> None:
    names = list(SHAPES[model].modules())
    assert (len(names), sum(is_linear for _, is_linear in names)) == (modules, linear)
    assert len({name for name, _ in names}) == modules


def test_names_look_like_transformers() -> None:
    names = {name for name, _ in SHAPES["deepseek-v3"].modules()}
    for name in [
        "model.layers.3.mlp.experts.17.gate_proj",
        "model.layers.3.self_attn.kv_a_proj_with_mqa",
        "model.layers.3.mlp.shared_experts.down_proj",
        "model.layers.3.mlp.gate",
        "lm_head",
    ]:
        assert name in names
    megatron = {name for name, _ in SHAPES["megatron-gpt"].modules()}
    assert "decoder.layers.0.self_attention.linear_qkv" in megatron
    assert "decoder.layers.1.mlp.experts.local_experts.7.linear_fc1" in megatron


@pytest.mark.parametrize(
    ("shape", "model"),
    [
        ("deepseek-v3-transformers5", "deepseek-v3"),
        ("qwen3-235b-a22b-transformers5", "qwen3-235b"),
        ("mixtral-8x22b-transformers5", "mixtral-8x22b"),
    ],
)
def test_transformers5_shapes_are_the_real_models(shape: str, model: str) -> None:
    transformers = oracle("transformers")
    if int(transformers.__version__.split(".")[0]) < 5:
        pytest.skip("the fused layout is transformers 5's")
    import torch
    from test_peft_preview import MODELS

    with torch.device("meta"):
        built = transformers.AutoModelForCausalLM.from_config(
            transformers.AutoConfig.for_model(**MODELS[model])
        )
    real = [(name, isinstance(m, torch.nn.Linear)) for name, m in built.named_modules()]
    assert list(SHAPES[shape].modules()) == real
