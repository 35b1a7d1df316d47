"""LLaMA-Factory 0.9.5's LoRA config from its YAML (modmatch.frontends.llamafactory) on tiny
transformers models on the meta device, text and vision-language: against LLaMA-Factory's own
init_adapter where it imports, against its rules everywhere, and what PEFT then wraps against
modmatch's preview of it."""

from __future__ import annotations

import functools
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from modmatch.frontends import llamafactory
from modmatch.peft import PeftMatcher
from modmatch.preview.peft import Refused, preview
from oracles import LORA_FIELDS, front_end, oracle, wrapped

FIXTURES = Path(__file__).parent / "fixtures" / "llamafactory"
CONFIGS = sorted(path.name for path in FIXTURES.glob("*.yaml"))
# The example configs that add a LoRA adapter; the others train otherwise or do not train.
LORA_CONFIGS = [name for name in CONFIGS if name.startswith(("train_lora-", "ascend-"))]

_TEXT = {"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2, "vocab_size": 64}
_LLAMA = {"model_type": "llama", **_TEXT, "num_hidden_layers": 4, "num_key_value_heads": 1}
_QWEN3 = {**_LLAMA, "model_type": "qwen3", "head_dim": 8}
_MOE = {"moe_intermediate_size": 8, "num_experts": 4, "num_experts_per_tok": 2}
_QWEN_VISION = {
    "depth": 2,
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_heads": 2,
    "out_hidden_size": 16,
    "deepstack_visual_indexes": [0],
}
_TEXT_ONLY = {"num_hidden_layers": 2, "num_key_value_heads": 1, "head_dim": 8}
MODELS: dict[str, dict[str, Any]] = {
    "llama": _LLAMA,
    "qwen3": _QWEN3,
    "qwen3_moe": {**_QWEN3, "model_type": "qwen3_moe", **_MOE},
    "gpt_neox": {"model_type": "gpt_neox", **_TEXT, "num_hidden_layers": 2},
    "llava": {
        "model_type": "llava",
        "text_config": {**_LLAMA, "num_hidden_layers": 2},
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
    "qwen2_vl": {
        "model_type": "qwen2_vl",
        "text_config": {
            **_TEXT,
            **_TEXT_ONLY,
            "rope_scaling": {"rope_type": "default", "mrope_section": [1, 1, 2]},
        },
        "vision_config": {"depth": 2, "embed_dim": 16, "hidden_size": 16, "num_heads": 2},
    },
    "qwen3_vl": {
        "model_type": "qwen3_vl",
        "text_config": {**_TEXT, **_TEXT_ONLY},
        "vision_config": _QWEN_VISION,
    },
    "qwen3_vl_moe": {
        "model_type": "qwen3_vl_moe",
        "text_config": {**_TEXT, **_TEXT_ONLY, **_MOE},
        "vision_config": _QWEN_VISION,
    },
}
COMPOSITE = ("llava", "qwen2_vl", "qwen3_vl", "qwen3_vl_moe")


def build(kind: str) -> Any:
    """A fresh tiny model of that kind, on the meta device."""
    transformers = oracle("transformers")
    import torch

    auto = transformers.AutoModelForCausalLM
    if kind in COMPOSITE:
        auto = transformers.AutoModelForImageTextToText
    with torch.device("meta"):
        return auto.from_config(transformers.AutoConfig.for_model(**MODELS[kind]))


@functools.cache
def model(kind: str) -> Any:
    """A tiny model of that kind, shared: only for reading."""
    return build(kind)


def fixture(name: str) -> dict[str, Any]:
    return llamafactory.read(FIXTURES / name)


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


def linear_modules(module: Any) -> list[str]:
    """Full names of the modules whose class name says Linear, in named_modules() order."""
    return [
        name
        for name, child in module.named_modules()
        if "Linear" in type(child).__name__ and "Embedding" not in type(child).__name__
    ]


# --- reading -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CONFIGS)
def test_fixtures_read_as_mappings(name: str) -> None:
    settings = fixture(name)
    assert settings["model_name_or_path"]
    if name in LORA_CONFIGS:
        assert (settings["finetuning_type"], settings["lora_target"]) == ("lora", "all")


def test_reading_follows_omegaconf(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("learning_rate: 1e-4\nlora_dropout: 5e-2\nwhen: 2024-01-02\nlora_rank: 1_0\n")
    assert llamafactory.read(path) == {
        "learning_rate": 1e-4,  # a str to yaml.safe_load, a float to OmegaConf
        "lora_dropout": 0.05,
        "when": "2024-01-02",  # a date to yaml.safe_load
        "lora_rank": 10,
    }
    path.write_text("lora_rank: 8\nlora_rank: 16\n")  # yaml.safe_load keeps the last
    with pytest.raises(Exception, match="duplicate key lora_rank"):
        llamafactory.read(path)


@pytest.mark.parametrize("name", [*CONFIGS, "tricky"])
def test_reading_is_omegaconfs(name: str, tmp_path: Path) -> None:
    omegaconf = front_end("omegaconf")
    path = FIXTURES / name
    if name == "tricky":
        path = tmp_path / "tricky.yaml"
        path.write_text(
            "a: 1e-4\nb: 1_000\nc: .5\nd: 2024-01-02\ne: 1.0e+3\nf: [1e3, x]\n"
            "g: &base {lora_rank: 4}\nh: {<<: *base, lora_alpha: 8}\ni: 0x1f\nj: yes\n"
        )
    theirs = omegaconf.OmegaConf.to_container(omegaconf.OmegaConf.load(path))
    assert llamafactory.read(path) == theirs


# --- the rules, everywhere -----------------------------------------------------------------


@pytest.mark.parametrize("kind", [kind for kind in sorted(MODELS) if kind not in COMPOSITE])
@pytest.mark.parametrize("name", LORA_CONFIGS)
def test_all_on_a_text_model_is_every_linear_name_but_lm_head(name: str, kind: str) -> None:
    module = model(kind)
    kwargs = llamafactory.lora_config(fixture(name), module)
    expected = {name.rpartition(".")[2] for name in linear_modules(module) if "lm_head" not in name}
    assert set(kwargs["target_modules"]) == expected
    # GPT-NeoX's output layer is lm_head from transformers 5.14, embed_out before: then LoRA'd.
    assert ("embed_out" in expected) == (kind == "gpt_neox" and not hasattr(module, "lm_head"))
    assert kwargs == {
        "target_modules": kwargs["target_modules"],
        "exclude_modules": None,
        "target_parameters": None,
        "layers_to_transform": None,
        "layers_pattern": None,
        "modules_to_save": None,
        "lora_dropout": 0.0,
        "task_type": "CAUSAL_LM",
        "r": 8,
        "lora_alpha": 16,
        "bias": "none",
        "use_dora": False,
    }


# What each tiny composite model's parts are, by module name prefix.
_QWEN3_VL_TOWER = (
    "model.visual.blocks.",
    "model.visual.patch_embed",
    "model.visual.pos_embed",
    "model.visual.deepstack",
)
VISION = {
    "llava": ("model.vision_tower.",),
    "qwen2_vl": ("model.visual.blocks.", "model.visual.patch_embed"),
    "qwen3_vl": _QWEN3_VL_TOWER,
    "qwen3_vl_moe": _QWEN3_VL_TOWER,
}
PROJECTOR = {
    "llava": "model.multi_modal_projector.",
    "qwen2_vl": "model.visual.merger.",
    "qwen3_vl": "model.visual.merger.",
    "qwen3_vl_moe": "model.visual.merger.",
}


@pytest.mark.parametrize("kind", COMPOSITE)
@pytest.mark.parametrize("name", LORA_CONFIGS)
def test_all_on_a_composite_model_is_the_language_models_linear_modules(
    name: str, kind: str
) -> None:
    module = model(kind)
    kwargs = llamafactory.lora_config(fixture(name), module)
    language = [name for name in linear_modules(module) if ".language_model." in name]
    assert kwargs["target_modules"] == language  # full names: the vision tower is frozen


@pytest.mark.parametrize("kind", COMPOSITE)
def test_an_unfrozen_vision_tower_is_targeted_but_not_the_projector(kind: str) -> None:
    module = model(kind)
    settings = {**fixture("train_lora-qwen3vl_lora_sft.yaml"), "freeze_vision_tower": False}
    targets = llamafactory.lora_config(settings, module)["target_modules"]
    assert not [name for name in targets if name.startswith(PROJECTOR[kind])]
    vision = [name for name in linear_modules(module) if name.startswith(VISION[kind])]
    assert vision and set(vision) <= set(targets)
    assert not [name for name in targets if "patch_embed" in name]  # a LoRA conflict key


NAMES = st.sampled_from(
    ["q_proj", "proj", "fc1", "mlp", "linear_fc2", "qkv", "lm_head", "up", "layers.1", "0"]
)


@given(
    kind=st.sampled_from(sorted(MODELS)),
    entries=st.lists(NAMES | st.from_regex(r"[a-z_.0-9]{1,6}", fullmatch=True), max_size=4),
    spaced=st.booleans(),
    frozen=st.tuples(st.booleans(), st.booleans(), st.booleans()),
)
def test_named_targets_are_kept_or_matched_as_substrings(
    kind: str, entries: list[str], spaced: bool, frozen: tuple[bool, bool, bool]
) -> None:
    """Named targets reach PEFT as written on a text model; on a composite one, as the full
    names of the modules containing one, outside the frozen parts and the conflict keys."""
    if not entries or entries == ["all"]:
        return
    settings = {
        "do_train": True,
        "lora_target": (", " if spaced else ",").join(entries),
        "freeze_vision_tower": frozen[0],
        "freeze_multi_modal_projector": frozen[1],
        "freeze_language_model": frozen[2],
    }
    module = model(kind)
    targets = llamafactory.lora_config(settings, module)["target_modules"]
    if kind not in COMPOSITE:
        assert targets == entries
        return
    forbidden = ["patch_embed"] if kind != "llava" else []
    parts = (VISION[kind], (PROJECTOR[kind],), (".language_model.", "lm_head"))
    for on, keys in zip(frozen, parts, strict=True):
        forbidden += list(keys) if on else []
    expected = [
        name
        for name, _ in module.named_modules()
        if any(entry in name for entry in entries)
        and not any(key.rstrip(".") in name for key in forbidden)
    ]
    assert targets == expected


@given(
    rank=st.integers(1, 64),
    alpha=st.none() | st.integers(0, 64),
    dropout=st.sampled_from([0.0, 0.05, 0.1]),
    extra=st.none() | st.lists(st.sampled_from(["embed_tokens", "lm_head", "norm"]), min_size=1),
    resize=st.booleans(),
)
def test_rank_alpha_dropout_and_modules_to_save(
    rank: int, alpha: int | None, dropout: float, extra: list[str] | None, resize: bool
) -> None:
    settings = {
        "do_train": True,
        "lora_rank": rank,
        "lora_alpha": alpha,
        "lora_dropout": dropout,
        "additional_target": ",".join(extra) if extra else None,
        "resize_vocab": resize,
    }
    kwargs = llamafactory.lora_config(settings, model("llama"))
    assert (kwargs["r"], kwargs["lora_alpha"]) == (rank, alpha or 2 * rank)
    assert kwargs["lora_dropout"] == dropout
    if extra:
        assert kwargs["modules_to_save"] == extra
    else:
        assert kwargs["modules_to_save"] == (["embed_tokens", "lm_head"] if resize else None)


@pytest.mark.parametrize("kind", ["llama", "qwen3_moe"])
@pytest.mark.parametrize(("trainable", "layers"), [(1, [3]), (2, [1, 3]), (4, [0, 1, 2, 3])])
def test_llama_pro_targets_the_expanded_blocks(
    kind: str, trainable: int, layers: list[int]
) -> None:
    # LLaMA-Factory's llama_pro example trains by freezing; here the same settings with LoRA.
    settings = {
        **fixture("extras-llama_pro-llama3_freeze_sft.yaml"),
        "finetuning_type": "lora",
        "freeze_trainable_layers": trainable,
    }
    module = model(kind)
    targets = llamafactory.lora_config(settings, module)["target_modules"]
    assert targets and all(re.search(r"\.(\d+)\.", name) for name in targets)
    assert {int(re.findall(r"\.(\d+)\.", name)[0]) for name in targets} == set(layers)


BAD_SETTINGS: list[tuple[dict[str, Any], str, Any]] = [
    ({"finetuning_type": "oft"}, "finetuning_type", "oft"),
    ({"finetuning_type": "full"}, "finetuning_type", "full"),
    ({"do_train": False}, "do_train", False),
    ({"do_train": None}, "do_train", None),
    ({"use_galore": True}, "use_galore", True),
    ({"use_badam": True}, "use_badam", True),
    ({"use_unsloth": True}, "use_unsloth", True),
    ({"lora_target": None}, "lora_target", None),
    ({"lora_rank": None}, "lora_rank", None),
    ({"resize_vocab": True, "quantization_bit": 4}, "resize_vocab", True),
    ({"adapter_name_or_path": "saves/lora"}, "adapter_name_or_path", "saves/lora"),
    (
        {"adapter_name_or_path": "saves/lora", "create_new_adapter": True, "quantization_bit": 4},
        "adapter_name_or_path",
        "saves/lora",
    ),
    ({"use_llama_pro": True, "freeze_trainable_layers": 3}, "freeze_trainable_layers", 3),
    ({"use_llama_pro": True, "freeze_trainable_layers": 0}, "freeze_trainable_layers", 0),
]


@pytest.mark.parametrize(("bad", "name", "value"), BAD_SETTINGS)
def test_refusals_name_the_setting_and_its_value(
    bad: dict[str, Any], name: str, value: Any
) -> None:
    settings = {"do_train": True, **bad}
    with pytest.raises(ValueError) as refusal:
        llamafactory.lora_config(settings, model("llama"))
    assert str(refusal.value).startswith(name) and repr(value) in str(refusal.value)


@pytest.mark.parametrize(
    "name", ["extras-oft-qwen2_5vl_oft_sft.yaml", "extras-llama_pro-llama3_freeze_sft.yaml"]
)
def test_examples_that_train_otherwise_are_refused(name: str) -> None:
    with pytest.raises(
        ValueError, match=re.escape(f"finetuning_type {fixture(name)['finetuning_type']!r}")
    ):
        llamafactory.lora_config(fixture(name), model("llama"))


def test_an_inference_example_is_refused() -> None:
    with pytest.raises(ValueError, match="do_train False"):
        llamafactory.lora_config(fixture("inference-qwen3_lora_sft.yaml"), model("qwen3"))


def test_llama_pro_needs_a_layer_count() -> None:
    settings = {"do_train": True, "use_llama_pro": True}
    with pytest.raises(ValueError, match="num_hidden_layers"):
        llamafactory.lora_config(settings, model("qwen3_vl"))  # a composite config has none


def test_the_composite_table_is_complete_for_its_models() -> None:
    # Every model type of the tiny composite models is in the table (and no text model is).
    for kind in sorted(MODELS):
        composite = llamafactory._COMPOSITE.get(model(kind).config.model_type)
        assert (composite is not None) == (kind in COMPOSITE), kind


# --- what PEFT wraps, against modmatch's preview, everywhere PEFT is -------------------------


def previewed_and_wrapped(kwargs: dict[str, Any], kind: str) -> tuple[Any, Any]:
    """modmatch's preview (or its Refused) and what get_peft_model wraps (or its ValueError)."""
    peft = oracle("peft")
    module = build(kind)
    names = [name for name, _ in module.named_modules()]
    try:
        shown: Any = set(preview(matcher(kwargs), names, set(), module).wrapped)
    except Refused as refused:
        shown = refused
    try:
        adapted: Any = wrapped(peft.get_peft_model(module, peft.LoraConfig(**kwargs)))
    except ValueError as error:
        adapted = error
    return shown, adapted


def assert_same(shown: Any, adapted: Any, context: Any) -> str:
    """Both refuse or both select the same modules; which of the two."""
    if isinstance(adapted, Exception) or isinstance(shown, Exception):
        assert isinstance(shown, Refused) and isinstance(adapted, ValueError), (
            context,
            shown,
            adapted,
        )
        return "both refuse"
    assert shown == adapted, context
    return "the same modules"


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("name", LORA_CONFIGS)
def test_what_peft_wraps_is_the_preview(name: str, kind: str) -> None:
    kwargs = llamafactory.lora_config(fixture(name), model(kind))
    shown, adapted = previewed_and_wrapped(kwargs, kind)
    assert_same(shown, adapted, (name, kind))


@given(
    kind=st.sampled_from(sorted(MODELS)),
    entries=st.lists(NAMES, min_size=1, max_size=3),
    frozen=st.tuples(st.booleans(), st.booleans(), st.booleans()),
)
def test_what_peft_wraps_for_named_targets_is_the_preview(
    kind: str, entries: list[str], frozen: tuple[bool, bool, bool]
) -> None:
    settings = {
        "do_train": True,
        "lora_target": ",".join(entries),
        "freeze_vision_tower": frozen[0],
        "freeze_multi_modal_projector": frozen[1],
        "freeze_language_model": frozen[2],
    }
    kwargs = llamafactory.lora_config(settings, model(kind))
    shown, adapted = previewed_and_wrapped(kwargs, kind)
    event(assert_same(shown, adapted, (settings, kind)))


# --- against LLaMA-Factory itself, where it imports -------------------------------------------


@pytest.fixture(scope="module")
def factory() -> Any:
    """LLaMA-Factory's init_adapter, returning the config it passes to get_peft_model (None if
    it passes none), on settings parsed by its own HfArgumentParser and _verify_model_args.
    Loading a saved adapter (adapter_name_or_path) is stood in for: nothing is on disk."""
    with pytest.MonkeyPatch.context() as patch:
        # LLaMA-Factory 0.9.5 pins transformers <= 5.6.0, and checks on import unless told not to.
        patch.setenv("DISABLE_VERSION_CHECK", "1")
        hparams = front_end("llamafactory.hparams")
        adapter = front_end("llamafactory.model.adapter")
        parser = front_end("llamafactory.hparams.parser")
        transformers = oracle("transformers")
        passed: list[Any] = []
        patch.setattr(
            adapter, "get_peft_model", lambda model, config: passed.append(config) or model
        )
        patch.setattr(adapter, "PeftModel", _SavedAdapter)

        def config_for(settings: dict[str, Any], module: Any) -> Any:
            arguments = transformers.HfArgumentParser(
                [hparams.ModelArguments, hparams.DataArguments, hparams.FinetuningArguments]
            )
            model_args, data_args, finetuning_args = arguments.parse_dict(
                {"model_name_or_path": "tiny", **settings}, allow_extra_keys=True
            )
            parser._verify_model_args(model_args, data_args, finetuning_args)
            passed.clear()
            trainable = bool(settings.get("do_train"))
            adapter.init_adapter(module.config, module, model_args, finetuning_args, trainable)
            return passed[0] if passed else None

        yield config_for


class _SavedAdapter:
    """PeftModel.from_pretrained for a saved adapter that is not there: the model unchanged."""

    @staticmethod
    def from_pretrained(model: Any, *args: Any, **kwargs: Any) -> Any:
        model.merge_and_unload = lambda: model
        return model


def same_fields(ours: Any, theirs: Any) -> None:
    for field in LORA_FIELDS:
        mine, its = getattr(ours, field), getattr(theirs, field)
        if isinstance(its, set):  # resize_vocab's modules_to_save, a set; here a sorted list
            mine = set(mine)
        assert mine == its, field


def test_the_composite_table_is_llamafactorys(factory: Any) -> None:
    theirs = sys.modules["llamafactory.model.model_utils.visual"].COMPOSITE_MODELS
    assert sorted(theirs) == sorted(llamafactory._COMPOSITE)
    for model_type, entry in theirs.items():
        ours = llamafactory._COMPOSITE[model_type]
        assert (
            list(ours.projector),
            list(ours.vision),
            list(ours.language),
            list(ours.conflict),
        ) == (
            entry.projector_keys,
            entry.vision_model_keys,
            entry.language_model_keys,
            entry.lora_conflict_keys,
        ), model_type


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("name", CONFIGS)
def test_fixture_configs_are_llamafactorys(name: str, kind: str, factory: Any) -> None:
    peft = oracle("peft")
    settings = fixture(name)
    module = build(kind)  # init_adapter changes which parameters train
    try:
        theirs = factory(settings, module)
    except ValueError:  # its refusal (the llama_pro example's 8 layers do not divide 2 or 4)
        theirs = None
    if not isinstance(theirs, peft.LoraConfig):
        with pytest.raises(ValueError):
            llamafactory.lora_config(settings, model(kind))
        return
    same_fields(peft.LoraConfig(**llamafactory.lora_config(settings, model(kind))), theirs)


@given(
    kind=st.sampled_from(sorted(MODELS)),
    target=st.sampled_from(["all", "all,q_proj", "q_proj, v_proj", "proj", "mlp,fc1", "0"]),
    frozen=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    llama_pro=st.sampled_from([None, None, None, 1, 2, 3]),
    extra=st.sampled_from([None, "embed_tokens", "lm_head,norm"]),
    resize=st.booleans(),
    rank=st.sampled_from([4, 8]),
    alpha=st.sampled_from([None, 0, 32]),
    kind_of_tuning=st.sampled_from(["lora"] * 6 + ["oft", "freeze"]),
    do_train=st.sampled_from([True] * 7 + [False]),
)
def test_any_config_is_llamafactorys(
    factory: Any,
    kind: str,
    target: str,
    frozen: tuple[bool, bool, bool],
    llama_pro: int | None,
    extra: str | None,
    resize: bool,
    rank: int,
    alpha: int | None,
    kind_of_tuning: str,
    do_train: bool,
) -> None:
    """Random settings: LLaMA-Factory refuses, or builds no LoraConfig, exactly where modmatch
    refuses, and otherwise builds the same one."""
    peft = oracle("peft")
    settings: dict[str, Any] = {
        "do_train": do_train,
        "finetuning_type": kind_of_tuning,
        "lora_target": target,
        "freeze_vision_tower": frozen[0],
        "freeze_multi_modal_projector": frozen[1],
        "freeze_language_model": frozen[2],
        "additional_target": extra,
        "resize_vocab": resize,
        "lora_rank": rank,
        "lora_alpha": alpha,
    }
    if llama_pro is not None:
        settings |= {"use_llama_pro": True, "freeze_trainable_layers": llama_pro}
    try:
        theirs = factory(settings, build(kind))
    except ValueError:
        theirs = None
    try:
        kwargs = llamafactory.lora_config(settings, model(kind))
    except ValueError:
        assert not isinstance(theirs, peft.LoraConfig), settings
        event("both refuse")
        return
    assert isinstance(theirs, peft.LoraConfig), settings
    same_fields(peft.LoraConfig(**kwargs), theirs)
    event("the same LoraConfig")
