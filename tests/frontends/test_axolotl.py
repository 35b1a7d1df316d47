"""Axolotl 0.18.0's LoRA config from its YAML (modmatch.frontends.axolotl) on tiny transformers
models on the meta device: against Axolotl's own schema and loader where Axolotl imports, against
its rules everywhere, and what PEFT then wraps against modmatch's preview of it."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from modmatch.frontends import axolotl
from modmatch.peft import PeftMatcher
from modmatch.preview.peft import Refused, preview
from oracles import LORA_FIELDS, front_end, oracle, wrapped

# Axolotl sends telemetry on import unless told not to; the tests have no network.
os.environ["AXOLOTL_DO_NOT_TRACK"] = "1"

FIXTURES = Path(__file__).parent / "fixtures" / "axolotl"
CONFIGS = sorted(path.name for path in FIXTURES.glob("*.y*ml"))
# The example configs that build a LoRA config; the others are refused (no adapter).
LORA_CONFIGS = [name for name in CONFIGS if "fsdp2" not in name]

_TEXT = {"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2, "vocab_size": 64}
_LLAMA = {"model_type": "llama", **_TEXT, "num_hidden_layers": 2, "num_key_value_heads": 1}
MODELS: dict[str, dict[str, Any]] = {
    "llama": _LLAMA,
    "llama-seq-cls": {**_LLAMA, "num_labels": 3},
    "qwen3_moe": {
        "model_type": "qwen3_moe",
        **_TEXT,
        "num_hidden_layers": 2,
        "num_key_value_heads": 1,
        "head_dim": 8,
        "moe_intermediate_size": 8,
        "num_experts": 4,
        "num_experts_per_tok": 2,
    },
    "mixtral": {
        "model_type": "mixtral",
        **_TEXT,
        "num_hidden_layers": 2,
        "num_key_value_heads": 1,
        "num_local_experts": 4,
    },
    "gpt_neox": {"model_type": "gpt_neox", **_TEXT, "num_hidden_layers": 2},
    "llava": {
        "model_type": "llava",
        "text_config": _LLAMA,
        "vision_config": {
            "model_type": "clip_vision_model",
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 28,
            "patch_size": 14,
            "projection_dim": 16,
        },
    },
}


def build(kind: str) -> Any:
    """A fresh tiny model of that kind, on the meta device."""
    transformers = oracle("transformers")
    import torch

    settings = dict(MODELS[kind])
    auto = transformers.AutoModelForCausalLM
    if kind == "llava":
        auto = transformers.AutoModelForImageTextToText
    elif kind.endswith("seq-cls"):
        auto = transformers.AutoModelForSequenceClassification
    with torch.device("meta"):
        return auto.from_config(transformers.AutoConfig.for_model(**settings))


@functools.cache
def model(kind: str) -> Any:
    """A tiny model of that kind, shared: only for reading."""
    return build(kind)


def fixture(name: str) -> dict[str, Any]:
    return axolotl.read(FIXTURES / name)


def linear_names(module: Any) -> set[str]:
    """What lora_target_linear adds, worked out another way: the last names of the nn.Linear
    modules but the output embedding's (found by identity), which Axolotl knows by the name
    its model type gives it: GPT-NeoX's is embed_out, lm_head in transformers 5.14 and later."""
    from torch import nn

    output = module.get_output_embeddings()  # None for a classifier: its head is targeted
    names = {
        name.rpartition(".")[2]
        for name, child in module.named_modules()
        if isinstance(child, nn.Linear) and child is not output
    }
    if module.config.model_type == "gpt_neox" and hasattr(module, "lm_head"):
        names.add("lm_head")  # Axolotl misses it
    return names


def matcher(kwargs: dict[str, Any]) -> PeftMatcher:
    return PeftMatcher(
        kwargs["target_modules"],
        exclude_modules=kwargs["exclude_modules"],
        modules_to_save=kwargs["modules_to_save"],
        layers_to_transform=kwargs["layers_to_transform"],
        layers_pattern=kwargs["layers_pattern"],
        target_parameters=kwargs["target_parameters"],
        task_type=kwargs["task_type"],
    )


# --- reading -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CONFIGS)
def test_fixtures_read_as_mappings(name: str) -> None:
    settings = fixture(name)
    assert settings["base_model"]
    assert "lora_r" in settings or "adapter" not in settings


def test_lora_dropout_written_as_an_exponent_is_a_number(tmp_path: Path) -> None:
    # yaml.safe_load reads 5e-2 as a str; Axolotl's schema makes a float of it.
    path = tmp_path / "config.yml"
    path.write_text("adapter: lora\nlora_r: '8'\nlora_dropout: 5e-2\nlora_target_modules: q_proj\n")
    kwargs = axolotl.lora_config(axolotl.read(path), model("llama"))
    assert (kwargs["lora_dropout"], kwargs["r"]) == (0.05, 8)


# --- the rules, everywhere -----------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("name", LORA_CONFIGS)
def test_fixture_configs_follow_axolotls_rules(name: str, kind: str) -> None:
    settings = fixture(name)
    module = model(kind)
    kwargs = axolotl.lora_config(settings, module)
    entries = settings.get("lora_target_modules") or []
    if settings.get("lora_target_linear"):
        assert set(kwargs["target_modules"]) == set(entries) | linear_names(module)
    else:
        assert kwargs["target_modules"] == entries
    assert kwargs["target_parameters"] == (settings.get("lora_target_parameters") or [])
    assert kwargs["modules_to_save"] == (settings.get("lora_modules_to_save") or None)
    assert kwargs["exclude_modules"] is None
    assert (kwargs["r"], kwargs["lora_alpha"]) == (settings["lora_r"], settings["lora_alpha"])
    assert kwargs["lora_dropout"] == (settings.get("lora_dropout") or 0.0)
    assert kwargs["task_type"] == ("SEQ_CLS" if kind.endswith("seq-cls") else "CAUSAL_LM")
    assert kwargs["bias"] == "none" and kwargs["use_dora"] is False


NAMES = st.sampled_from(["q_proj", "k_proj", "o_proj", "gate_proj", "lm_head", "fc1", "mlp"])
ENTRIES = st.lists(NAMES | st.from_regex(r"[a-z_]{1,8}", fullmatch=True), max_size=5)


@given(
    kind=st.sampled_from(sorted(MODELS)),
    entries=ENTRIES,
    as_str=st.booleans(),
    target_linear=st.sampled_from([None, False, True, "true", "no", 1]),
    to_save=st.lists(NAMES, max_size=2),
)
def test_targets_are_the_entries_with_the_linear_names(
    kind: str, entries: list[str], as_str: bool, target_linear: Any, to_save: list[str]
) -> None:
    value: Any = "|".join(entries) if as_str else entries  # a str is one regex
    settings = {
        "adapter": "lora",
        "lora_target_modules": value,
        "lora_target_linear": target_linear,
        "lora_modules_to_save": to_save,
    }
    module = model(kind)
    kwargs = axolotl.lora_config(settings, module)
    linear = target_linear in (True, "true", 1)
    if not linear:
        assert kwargs["target_modules"] == (value or [])
    elif as_str and value:
        assert set(kwargs["target_modules"]) == {value} | linear_names(module)
    else:
        assert set(kwargs["target_modules"]) == set(entries) | linear_names(module)
    assert kwargs["modules_to_save"] == (to_save or None)


BAD_SETTINGS: list[tuple[dict[str, Any], str, Any]] = [
    ({"adapter": None}, "adapter", None),
    ({"adapter": "llama-adapter"}, "adapter", "llama-adapter"),
    ({"adapter": "LoRA"}, "adapter", "LoRA"),
    ({"lora_model_dir": "out/adapter"}, "lora_model_dir", "out/adapter"),
    ({"peft_layers_pattern": ["layers"]}, "peft_layers_pattern", ["layers"]),
    ({"lora_target_modules": ["q_proj", "(?P<x"]}, "lora_target_modules", "(?P<x"),
    (
        {"quantize_moe_experts": True, "lora_target_linear": True},
        "lora_target_linear",
        True,
    ),
    ({"lora_target_parameters": ["experts.down_proj"], "lora_dropout": 0.1}, "lora_dropout", 0.1),
    ({"lora_target_modules": 3}, "lora_target_modules", 3),
    ({"lora_target_modules": ["q_proj", 1]}, "lora_target_modules", ["q_proj", 1]),
    ({"lora_modules_to_save": "lm_head"}, "lora_modules_to_save", "lm_head"),
    ({"peft_layers_to_transform": 1}, "peft_layers_to_transform", 1),
    ({"lora_r": 8.5}, "lora_r", 8.5),
    ({"lora_dropout": "some"}, "lora_dropout", "some"),
    ({"lora_target_linear": "maybe"}, "lora_target_linear", "maybe"),
    ({"adapter": "qlora"}, "load_in_4bit", None),
    ({"adapter": "qlora", "load_in_4bit": True, "load_in_8bit": True}, "load_in_8bit", True),
    ({"adapter": "qlora", "load_in_4bit": True, "gptq": True}, "gptq", True),
    ({"adapter": "qlora", "merge_lora": True, "load_in_4bit": True}, "load_in_4bit", True),
]


@pytest.mark.parametrize(("bad", "name", "value"), BAD_SETTINGS)
def test_refusals_name_the_setting_and_its_value(
    bad: dict[str, Any], name: str, value: Any
) -> None:
    settings = {"adapter": "lora", "lora_r": 8, "lora_target_modules": ["q_proj"], **bad}
    with pytest.raises(ValueError) as refusal:
        axolotl.lora_config(settings, model("llama"))
    assert str(refusal.value).startswith(name) and repr(value) in str(refusal.value)


@given(adapter=st.text(max_size=12).filter(lambda text: text not in ("lora", "qlora")))
def test_any_other_adapter_is_refused_by_value(adapter: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"adapter {adapter!r}")):
        axolotl.lora_config({"adapter": adapter}, model("llama"))


def test_example_without_an_adapter_is_refused() -> None:
    with pytest.raises(ValueError, match="adapter None"):
        axolotl.lora_config(fixture("llama-3-3b-fp8-fsdp2.yaml"), model("llama"))


def test_gpt_neox_output_layer_is_left_out_by_the_name_axolotl_knows() -> None:
    # Axolotl 0.18.0 leaves out GPT-NeoX's output layer as embed_out; transformers 5.14 renamed
    # it lm_head, which lora_target_linear then targets.
    module = model("gpt_neox")
    kwargs = axolotl.lora_config({"adapter": "lora", "lora_target_linear": True}, module)
    assert "embed_out" not in kwargs["target_modules"]
    assert {"query_key_value", "dense", "dense_h_to_4h"} <= set(kwargs["target_modules"])
    renamed = hasattr(module, "lm_head")
    assert ("lm_head" in kwargs["target_modules"]) == renamed


# --- what PEFT wraps, against modmatch's preview, everywhere PEFT is -------------------------


def get_peft_model_as_axolotl(peft: Any, kind: str, kwargs: dict[str, Any]) -> Any:
    """get_peft_model on a fresh model as Axolotl calls it: where PEFT moves fused experts to
    target_parameters, Axolotl patches ParamWrapper to take lora_dropout as 0 rather than refuse
    it; the modules wrapped are those of the config with lora_dropout 0."""
    try:
        return peft.get_peft_model(build(kind), peft.LoraConfig(**kwargs))
    except ValueError as error:
        if "ParamWrapper does not work with lora_dropout" not in str(error):
            raise
    return peft.get_peft_model(build(kind), peft.LoraConfig(**{**kwargs, "lora_dropout": 0.0}))


@pytest.mark.parametrize(
    ("name", "kind"),
    [(name, kind) for name in LORA_CONFIGS for kind in sorted(MODELS)],
)
def test_what_peft_wraps_is_the_preview(name: str, kind: str) -> None:
    peft = oracle("peft")
    module = build(kind)
    kwargs = axolotl.lora_config(fixture(name), module)
    names = [name for name, _ in module.named_modules()]
    try:
        shown = preview(matcher(kwargs), names, set(), module)
    except Refused as refused:
        with pytest.raises(ValueError):
            get_peft_model_as_axolotl(peft, kind, kwargs)
        print(f"{name} on {kind}: refused: {refused}")
        return
    # PEFT extends modules_to_save in place for a classifier: the preview is asked first.
    adapted = get_peft_model_as_axolotl(peft, kind, kwargs)
    assert set(shown.wrapped) == wrapped(adapted), (name, kind)


def test_no_targets_at_all_reach_peft_which_refuses_as_the_preview_says() -> None:
    peft = oracle("peft")
    module = build("llama")
    kwargs = axolotl.lora_config({"adapter": "lora", "lora_r": 8, "lora_alpha": 16}, module)
    assert (kwargs["target_modules"], kwargs["target_parameters"]) == ([], [])
    names = [name for name, _ in module.named_modules()]
    with pytest.raises(Refused, match="no target_modules"):
        preview(matcher(kwargs), names, set(), module)
    with pytest.raises(ValueError, match="target_modules"):
        peft.get_peft_model(module, peft.LoraConfig(**kwargs))


# --- against Axolotl itself, where it imports -------------------------------------------------


def axolotl_config(settings: dict[str, Any], module: Any) -> Any:
    """The config Axolotl's own code builds: the adapter's settings through its schema as
    load_cfg does (validate_config), then load_adapter(config_only=True)."""
    validate_config = front_end("axolotl.utils.config").validate_config
    load_adapter = front_end("axolotl.loaders.adapter").load_adapter
    DictDefault = front_end("axolotl.utils.dict").DictDefault
    cfg = validate_config(DictDefault(adapter_settings(settings)))
    return load_adapter(module, cfg, cfg.adapter, config_only=True)[1]


def adapter_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings as Axolotl's schema takes them here: with the data set, batch sizes and
    learning rate it requires, without plugins (which bring in modules of their own) and without warmup_steps,
    which its expert_parallel example writes as 0.1 where the schema wants an int."""
    required = {
        "datasets": [{"path": "tiny", "type": "alpaca"}],
        "micro_batch_size": 1,
        "gradient_accumulation_steps": 1,
        "learning_rate": 1e-4,
    }
    dropped = ("plugins", "warmup_steps")
    return {**required, **{k: v for k, v in settings.items() if k not in dropped}}


def same_fields(ours: Any, theirs: Any) -> None:
    for field in LORA_FIELDS:
        assert getattr(ours, field) == getattr(theirs, field), field


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("name", CONFIGS)
def test_fixture_configs_are_axolotls(name: str, kind: str) -> None:
    peft = oracle("peft")
    settings = fixture(name)
    module = model(kind)
    theirs = axolotl_config(settings, module)
    if not isinstance(theirs, peft.LoraConfig):
        with pytest.raises(ValueError):
            axolotl.lora_config(settings, module)
        return
    same_fields(peft.LoraConfig(**axolotl.lora_config(settings, module)), theirs)


LAYERS = st.none() | st.lists(st.integers(0, 3), max_size=3)


@given(
    kind=st.sampled_from(["llama", "qwen3_moe", "llava", "gpt_neox"]),
    entries=st.none() | ENTRIES | NAMES,
    target_linear=st.sampled_from([None, False, True]),
    parameters=st.sampled_from([None, [], ["mlp.experts.down_proj"], ["gate_up_proj"]]),
    layers=LAYERS,
    pattern=st.sampled_from([None, ["layers"], ["h"]]),
    to_save=st.none() | st.lists(NAMES, max_size=2),
    dropout=st.sampled_from([None, 0, 0.05, "1e-1"]),
    adapter=st.sampled_from(["lora", "qlora", None]),
    load_in_4bit=st.booleans(),
    dora=st.sampled_from([None, False, True]),
)
def test_any_config_is_axolotls(kind: str, **chosen: Any) -> None:
    """Random settings: Axolotl refuses exactly those modmatch refuses, and otherwise builds the
    same LoraConfig (or both fail building it, PEFT's own checks)."""
    peft = oracle("peft")
    settings = {
        "base_model": "tiny",
        "adapter": chosen["adapter"],
        "load_in_4bit": chosen["load_in_4bit"],
        "lora_r": 4,
        "lora_alpha": 8,
        "lora_target_modules": chosen["entries"],
        "lora_target_linear": chosen["target_linear"],
        "lora_target_parameters": chosen["parameters"],
        "peft_layers_to_transform": chosen["layers"],
        "peft_layers_pattern": chosen["pattern"],
        "lora_modules_to_save": chosen["to_save"],
        "lora_dropout": chosen["dropout"],
        "peft_use_dora": chosen["dora"],
    }
    module = model(kind)
    try:
        theirs = axolotl_config(settings, module)
    except ValueError:  # their schema's refusal (pydantic's ValidationError), or PEFT's
        theirs = None
    try:
        kwargs = axolotl.lora_config(settings, module)
    except ValueError:
        assert not isinstance(theirs, peft.LoraConfig), settings
        event("both refuse")
        return
    try:
        ours = peft.LoraConfig(**kwargs)
    except (TypeError, ValueError):
        assert theirs is None, settings  # PEFT refused building theirs the same way
        event("PEFT refuses both")
        return
    assert isinstance(theirs, peft.LoraConfig), settings
    same_fields(ours, theirs)
    event("the same LoraConfig")
