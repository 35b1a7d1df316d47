"""modmatch.reference.peft_rewriting rewrites a LoRA config as the installed PEFT does: against
its own convert_peft_config_for_transformers (PEFT 0.19 and later) on tiny transformers-5 models
built on the meta device, and, where PEFT 0.18 is installed, against get_peft_model, which does
not rewrite. CI runs it with PEFT 0.21.2, 0.19.1 and 0.18.1."""

from __future__ import annotations

import functools
import re
import warnings
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from modmatch.reference import peft as reference
from modmatch.reference import peft_rewriting
from modmatch.reference.peft_rewriting import rewritten
from oracles import oracle

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

_TINY = {
    "hidden_size": 16,
    "intermediate_size": 16,
    "num_hidden_layers": 4,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "vocab_size": 32,
    "num_experts_per_tok": 1,
    "moe_intermediate_size": 8,
}
_MODELS: dict[str, dict[str, Any]] = {
    "qwen3_moe": {"num_experts": 2},
    "qwen2_moe": {"num_experts": 2, "shared_expert_intermediate_size": 8},
    "mixtral": {"num_local_experts": 2},
    "deepseek_v3": {
        "n_routed_experts": 2,
        "first_k_dense_replace": 1,  # layer 0 keeps a dense MLP of Linear gate/up/down_proj
        "q_lora_rank": 8,
        "kv_lora_rank": 8,
        "qk_rope_head_dim": 4,
        "qk_nope_head_dim": 4,
        "v_head_dim": 4,
        "n_group": 1,
        "topk_group": 1,
    },
    "llama": {},
}
# The transformers-4 names of the experts and the router, and full names of transformers 4's.
_V4_NAMES = ["gate", "gate_proj", "up_proj", "down_proj", "w1", "w2", "w3"]
_V4_PATHS = [
    "model.layers.3.mlp.experts.0.gate_proj",
    "model.layers.3.mlp.up_proj",
    "model.layers.1.block_sparse_moe.experts.1.w3",
    "block_sparse_moe.gate",
]

CONFIGS: list[dict[str, Any]] = [
    {"target_modules": ["gate_proj", "up_proj", "down_proj"]},
    {"target_modules": ["q_proj", "gate_proj", "up_proj"]},
    {"target_modules": ["q_proj", "gate_proj"]},  # gate without up: refused where fused
    {"target_modules": ["w1", "w2", "w3"]},
    {"target_modules": ["w1", "w2"]},  # w1 without w3: refused on Mixtral
    {"target_modules": ["gate", "o_proj"]},  # the router
    {"target_modules": ["model.layers.3.mlp.experts.0.gate_proj", "model.layers.3.mlp.up_proj"]},
    {"target_modules": ["block_sparse_moe.experts.0.w1", "experts.1.w3", "mlp.w2"]},
    {"target_modules": r".*\.layers\.[0-9]\.self_attn\.q_b_proj"},
    {"target_modules": r".*(gate|up)_proj"},
    {"target_modules": r".*experts.*"},
    {"target_modules": r".*\.experts\.w1"},  # w1 found by probing, without w3
    {"target_modules": r".*\.(w1|w3|o_proj)"},
    {"target_modules": r".*"},  # the root module's "" too
    {"target_modules": "q_proj"},  # a regex no key matches
    {"target_modules": r".*(gate"},  # invalid: re.error from 0.20 on, characters in 0.19
    {"target_modules": "all-linear"},
    {"target_modules": "ALL-LINEAR", "exclude_modules": ["o_proj"]},
    {"target_modules": None},
    {"target_modules": None, "target_parameters": ["o_proj.weight"]},
    {"target_modules": [], "target_parameters": ["experts.gate_up_proj"]},
    {"target_modules": ["gate_proj", "up_proj"], "target_parameters": ["mlp.experts.down_proj"]},
    {"target_modules": ["gate_proj", "up_proj"], "exclude_modules": ["shared_experts.gate_proj"]},
    {"target_modules": r".*(gate|up)_proj", "exclude_modules": r".*\.layers\.1\..*"},
    {"target_modules": r".*_proj", "exclude_modules": ["experts", "model.layers.0.mlp.experts"]},
    {"target_modules": r".*gate.*", "modules_to_save": ["gate"]},
    {
        "target_modules": ["o_proj", "down_proj"],
        "layers_to_transform": [1],
        "layers_pattern": "layers",
    },
]


def _release() -> tuple[int, int]:
    return reference.release(oracle("peft").__version__)


@functools.cache
def _model(model_type: str) -> Any:
    transformers = oracle("transformers")
    if model_type not in transformers.CONFIG_MAPPING:
        pytest.skip(f"transformers {transformers.__version__} has no {model_type}")
    import torch

    config = transformers.AutoConfig.for_model(model_type, **_TINY, **_MODELS[model_type])
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(config)


@functools.cache
def _conversions(model: Any) -> Any:
    """What inject_adapter passes as conversions (the same each time: computed once)."""
    return oracle("peft.utils.transformers_weight_conversion").get_model_conversion_mapping(model)


def _theirs(settings: dict[str, Any], model: Any) -> tuple[Any, ...]:
    """What the installed PEFT's own conversion makes of a LoraConfig holding ``settings``."""
    real = oracle("peft")
    conversion = oracle("peft.utils.transformers_weight_conversion")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = real.LoraConfig(**{k: v for k, v in settings.items() if v is not None})
    try:
        conversion.convert_peft_config_for_transformers(
            config, model=model, conversions=_conversions(model)
        )
    except (ValueError, re.error) as error:
        return ("refused", type(error).__name__, str(error))
    # Rewriting leaves a set in target_parameters; the settings give a list or None.
    if not isinstance(config.target_parameters, set):
        return ("kept",)
    return ("rewritten", config.target_modules, config.target_parameters)


def _ours(settings: dict[str, Any], model: Any) -> tuple[Any, ...]:
    try:
        result = rewritten(settings, model, _release())
    except (ValueError, re.error) as error:
        return ("refused", type(error).__name__, str(error))
    if result is None:
        return ("kept",)
    assert _others(result) == _others(settings)
    return ("rewritten", result["target_modules"], result["target_parameters"])


def _others(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k not in ("target_modules", "target_parameters")}


def _installed_rewrites() -> None:
    if _release() < (0, 19):
        pytest.skip(
            f"PEFT {oracle('peft').__version__} does not rewrite configs: this test needs 0.19 "
            "or later (the main environment and .ci/releases' 0.19.1 run it)"
        )


@pytest.mark.parametrize("model_type", sorted(_MODELS))
@pytest.mark.parametrize("settings", CONFIGS, ids=str)
def test_rewritten_as_installed_peft(model_type: str, settings: dict[str, Any]) -> None:
    _installed_rewrites()
    model = _model(model_type)
    assert _ours(settings, model) == _theirs(settings, model)


def _segments(model: Any) -> list[str]:
    """The dotted tails of the model's module and parameter names, and transformers 4's names."""
    names = [n for n, _ in model.named_modules()] + [n for n, _ in model.named_parameters()]
    parts = {".".join(name.split(".")[i:]) for name in names if name for i in range(6)}
    return sorted(parts - {""}) + _V4_NAMES + _V4_PATHS


@functools.cache
def _settings(model_type: str) -> st.SearchStrategy[dict[str, Any]]:
    """Configs whose entries and regexes are made of the model's own names."""
    segment = st.sampled_from(_segments(_model(model_type)))
    entries = st.lists(segment, max_size=5)
    regex = st.one_of(
        segment.map(lambda s: rf".*\.{re.escape(s)}"),
        segment.map(lambda s: rf".*{re.escape(s)}.*"),
        st.lists(segment, min_size=1, max_size=3).map(
            lambda ss: rf".*\.({'|'.join(map(re.escape, ss))})"
        ),
        st.sampled_from([r".*", r".*_proj", r".*\.layers\.[13]\..*", "all-linear", "All-Linear"]),
    )
    others = st.fixed_dictionaries(
        {
            "exclude_modules": st.one_of(st.none(), entries, regex),
            "modules_to_save": st.one_of(st.none(), st.lists(segment, max_size=2)),
            "target_parameters": st.one_of(
                st.none(), st.lists(st.sampled_from(["o_proj.weight", "down_proj"]))
            ),
        }
    )
    layers = st.one_of(  # LoraConfig refuses them with a str
        st.just({}),
        st.fixed_dictionaries(
            {
                "layers_to_transform": st.lists(st.integers(0, 3), min_size=1, max_size=2),
                "layers_pattern": st.sampled_from([None, "layers", "experts"]),
            }
        ),
    )
    return st.one_of(
        st.builds(lambda t, o: {"target_modules": t, **o}, regex, others),
        st.builds(
            lambda t, lay, o: {"target_modules": t, **lay, **o},
            st.one_of(st.none(), entries),
            layers,
            others,
        ),
    )


@given(model_type=st.sampled_from(sorted(_MODELS)), data=st.data())
def test_rewritten_as_installed_peft_on_the_models_names(model_type: str, data: Any) -> None:
    _installed_rewrites()
    assume(model_type in oracle("transformers").CONFIG_MAPPING)
    model = _model(model_type)
    settings = data.draw(_settings(model_type))
    assert _ours(settings, model) == _theirs(settings, model)


def test_tables_are_peft_s() -> None:
    _installed_rewrites()
    theirs = oracle("peft.utils.transformers_weight_conversion")
    families = peft_rewriting._FAMILIES
    assert {k: dict(v.renamed) for k, v in families.items()} == theirs._MOE_TARGET_MODULE_MAPPING
    assert {
        k: {new: list(olds) for new, olds in v.fused.items()} for k, v in families.items()
    } == theirs._MOE_FUSED_TARGETS
    transformers_table = oracle("transformers.conversion_mapping")._MODEL_TO_CONVERSION_PATTERN
    overrides = peft_rewriting._FAMILY_OVERRIDES
    assert {**transformers_table, **overrides} == theirs._MODEL_TO_CONVERSION_PATTERN


@pytest.mark.parametrize("model_type", ["qwen3_moe", "mixtral"])
def test_no_rewriting_before_0_19(model_type: str) -> None:
    model = _model(model_type)
    for release in [(0, 17), (0, 18)]:
        assert rewritten({"target_modules": ["gate_proj", "up_proj"]}, model, release) is None
        assert rewritten({"target_modules": ["w1", "w2", "w3"]}, model, release) is None


def test_no_rewriting_but_for_transformers_moe_models() -> None:
    from torch import nn

    settings = {"target_modules": ["gate_proj", "up_proj", "down_proj"]}
    assert rewritten(settings, nn.Linear(2, 2, device="meta"), (0, 21)) is None
    not_a_transformers_model = nn.Module()
    not_a_transformers_model.config = SimpleNamespace(model_type=None)
    assert rewritten(settings, not_a_transformers_model, (0, 21)) is None
    assert rewritten(settings, _model("llama"), (0, 21)) is None


@pytest.mark.parametrize("model_type", ["qwen3_moe", "deepseek_v3"])
def test_a_str_per_release(model_type: str) -> None:
    """0.19 reads a str's characters as entries; 0.20 resolves it against the model first."""
    model = _model(model_type)
    for targets in ["all-linear", r".*experts.*", "q_proj"]:
        result = rewritten({"target_modules": targets}, model, (0, 19))
        assert result == {"target_modules": set(targets), "target_parameters": set()}
    resolved = rewritten({"target_modules": "all-linear"}, model, (0, 20))
    assert resolved is not None
    assert resolved["target_parameters"] == {"gate.weight", "gate_up_proj", "down_proj"}
    # The Linear gate/up/down_proj of dense and shared MLPs leave target_modules with the experts.
    assert not resolved["target_modules"] & {"gate_proj", "up_proj", "down_proj", "gate"}
    assert rewritten({"target_modules": "q_proj"}, model, (0, 21)) is None  # nothing resolved


_LITERAL_CONFIGS = [
    {"target_modules": ["gate_proj", "up_proj", "down_proj"]},
    {"target_modules": ["q_proj", "gate_proj"]},
    {"target_modules": r".*\.layers\.[0-9]\.self_attn\.(q_proj|k_proj)"},
]


@pytest.mark.parametrize("settings", _LITERAL_CONFIGS, ids=str)
def test_peft_0_18_matches_the_entries_as_written(settings: dict[str, Any]) -> None:
    """Where PEFT 0.18 is installed, get_peft_model wraps what the entries select literally, and
    refuses where they select nothing: no rewriting."""
    if _release() >= (0, 19):
        pytest.skip(
            f"PEFT {oracle('peft').__version__} rewrites configs: this test needs PEFT 0.18 "
            "(.ci/releases runs it under 0.18.1)"
        )
    real = oracle("peft")
    model = _model("qwen3_moe")
    assert rewritten(settings, model, _release()) is None
    config = SimpleNamespace(**{"target_parameters": None, **settings})
    literal = {
        name
        for name, _ in model.named_modules()
        if reference.check_target_module_exists(config, name, _release())
    }
    _model.cache_clear()  # get_peft_model changes the model it wraps
    try:
        adapted = real.get_peft_model(model, real.LoraConfig(**settings))
    except ValueError as error:
        assert not literal, error
        assert "not found in the base model" in str(error)
        return
    wrapped = {
        name.removeprefix("base_model.model.")
        for name, module in adapted.named_modules()
        if hasattr(module, "lora_A") and not name.endswith("base_layer")
    }
    assert wrapped == literal
    assert adapted.peft_config["default"].target_parameters is None
