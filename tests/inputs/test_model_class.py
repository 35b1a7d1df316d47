"""The class a config is built as: the one LLaMA-Factory, Axolotl or a PEFT user builds, checked
against that class built directly from tiny configs on the meta device."""

from __future__ import annotations

import functools
import subprocess
import sys
from typing import Any

import pytest

from modmatch.inputs.model_class import build, model_classes

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

_TEXT = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "vocab_size": 128,
}
_QWEN_VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "embed_dim": 32,
    "depth": 1,
    "num_heads": 2,
    "out_hidden_size": 32,
}


def _llava(**fields: Any) -> Any:
    vision = {
        "model_type": "clip_vision_model",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 8,
    }
    text = {"model_type": "llama", **_TEXT}
    return transformers.LlavaConfig(text_config=text, vision_config=vision, **fields)


def _qwen_vl(model_type: str, **fields: Any) -> Any:
    text = {**_TEXT, "rope_scaling": {"rope_type": "default", "mrope_section": [2, 3, 3]}}
    kind = transformers.CONFIG_MAPPING[model_type]
    return kind(text_config=text, vision_config=_QWEN_VISION, **fields)


def _qwen3_5(**fields: Any) -> Any:
    text = {**_TEXT, "layer_types": ["full_attention"] * _TEXT["num_hidden_layers"]}
    return transformers.CONFIG_MAPPING["qwen3_5"](
        text_config=text, vision_config=_QWEN_VISION, **fields
    )


_COMPOSITE = {
    kind: make
    for kind, make in {
        "llava": _llava,
        "qwen2_vl": functools.partial(_qwen_vl, "qwen2_vl"),
        "qwen3_vl": functools.partial(_qwen_vl, "qwen3_vl"),
        "qwen3_5": _qwen3_5,
    }.items()
    if kind in transformers.CONFIG_MAPPING
}


def _names(model: Any) -> list[str]:
    return [name for name, _ in model.named_modules()]


def _built(config: Any, task_type: str | None) -> Any:
    return _built_from(model_classes(transformers, config, task_type), config)


def _built_from(classes: list[Any], config: Any) -> Any:
    with torch.device("meta"):
        return build(classes, config)


def _trainers(config: Any) -> Any:
    """The model LLaMA-Factory's load_model and Axolotl's multimodal loader build for an
    image-text config: AutoModelForImageTextToText's class for its type."""
    with torch.device("meta"):
        return transformers.AutoModelForImageTextToText.from_config(config)


@pytest.mark.parametrize("architectures", ["own", None, ["NoSuchModelForConditionalGeneration"]])
@pytest.mark.parametrize("task_type", [None, "CAUSAL_LM"])
@pytest.mark.parametrize("kind", sorted(_COMPOSITE))
def test_composite_is_built_as_the_trainer_builds_it(
    kind: str, task_type: str | None, architectures: Any
) -> None:
    """A causal LM task type (or none) on a vision-language config builds the trainers' class,
    whether architectures names it, is absent, or names a class transformers lacks."""
    trainers = _trainers(_COMPOSITE[kind]())
    if architectures == "own":
        architectures = [type(trainers).__name__]
    config = _COMPOSITE[kind](architectures=architectures)
    built = _built(config, task_type)
    assert type(built) is type(trainers)
    assert _names(built) == _names(trainers)


def test_composite_names_are_not_the_base_models() -> None:
    """The base model (what a config without architectures built before) names its language
    model ``language_model.``, where the trainers' class has ``model.language_model.``."""
    config = _llava()
    with torch.device("meta"):
        base = transformers.AutoModel.from_config(config)
    assert set(_names(_built(config, "CAUSAL_LM"))) != set(_names(base))


# PEFT 0.21.2 asks transformers 5 for a deprecated attribute while wrapping.
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_peft_wraps_the_names_previewed() -> None:
    """PEFT wrapping the trainers' LLaVA model with target_modules=["q_proj"] wraps modules the
    preview has by the same names, the language model's under ``model.language_model.``."""
    peft = pytest.importorskip("peft")
    config = _llava(architectures=["LlavaForConditionalGeneration"])
    with torch.device("meta"):
        wrapped = peft.get_peft_model(
            _trainers(config), peft.LoraConfig(target_modules=["q_proj"], task_type="CAUSAL_LM")
        )
    targeted = set(wrapped.base_model.targeted_module_names)
    previewed = _names(_built(config, "CAUSAL_LM"))
    assert targeted <= set(previewed)
    language = sorted(name for name in targeted if ".vision_tower." not in name)
    assert len(language) == _TEXT["num_hidden_layers"]
    assert all(name.startswith("model.language_model.layers.") for name in language)
    assert language == sorted(n for n in previewed if n.endswith("q_proj") and "vision" not in n)


@pytest.mark.parametrize(
    ("task_type", "architectures", "expected"),
    [
        (None, ["LlamaForCausalLM"], "LlamaForCausalLM"),
        (None, None, "LlamaForCausalLM"),
        (None, ["NoSuchModelForCausalLM"], "LlamaForCausalLM"),
        (None, ["LlamaForSequenceClassification"], "LlamaForSequenceClassification"),
        ("CAUSAL_LM", ["LlamaForSequenceClassification"], "LlamaForCausalLM"),
        ("SEQ_CLS", ["LlamaForCausalLM"], "LlamaForSequenceClassification"),
        ("TOKEN_CLS", ["LlamaForCausalLM"], "LlamaForTokenClassification"),
        ("FEATURE_EXTRACTION", ["LlamaForCausalLM"], "LlamaModel"),
    ],
)
def test_text_model_task_type_wins(
    task_type: str | None, architectures: list[str] | None, expected: str
) -> None:
    """On a text-only config the task type's class wins over architectures, which wins over a
    causal LM; a class this transformers lacks is passed over."""
    config = transformers.LlamaConfig(**_TEXT, architectures=architectures)
    built = _built(config, task_type)
    with torch.device("meta"):
        direct = getattr(transformers, expected)(config)
    assert type(built) is type(direct)
    assert _names(built) == _names(direct)


def test_composite_classifier_task_type_wins() -> None:
    """A classifier asked for on a vision-language config whose type has one is built: the
    language model's names as the generation class has them, and the classifier's head."""
    if "gemma3" not in transformers.CONFIG_MAPPING:
        pytest.skip("this transformers has no Gemma 3")
    text = {**_TEXT, "num_key_value_heads": 1}
    vision = {
        key: _TEXT[key] for key in ("hidden_size", "intermediate_size", "num_attention_heads")
    }
    config = transformers.Gemma3Config(
        text_config=text,
        vision_config={**vision, "num_hidden_layers": 1, "image_size": 32, "patch_size": 8},
        mm_tokens_per_image=4,
        architectures=["Gemma3ForConditionalGeneration"],
    )
    built = _built(config, "SEQ_CLS")
    with torch.device("meta"):
        direct = transformers.Gemma3ForSequenceClassification(config)
    assert _names(built) == _names(direct)
    assert set(_names(built)) - set(_names(_trainers(config))) == {"score"}


def test_architecture_of_another_config_is_passed_over() -> None:
    """A class whose config_class is not the config's would build from it anyway (and wrongly),
    so it does not count as taking it."""
    config = _llava(architectures=["LlavaNextForConditionalGeneration"])
    assert type(_built(config, None)) is transformers.LlavaForConditionalGeneration


def test_no_class_takes_the_config() -> None:
    """ValueError naming the classes tried and the model type."""
    classes = [transformers.AutoModelForCausalLM, transformers.LlamaForCausalLM]
    with pytest.raises(ValueError, match=r"AutoModelForCausalLM, LlamaForCausalLM .*'llava'"):
        build(classes, _llava())


class _Refusing:
    """An auto class whose from_config refuses every config with ``reason``."""

    reason = ""

    @classmethod
    def from_config(cls, config: Any) -> Any:
        raise ValueError(cls.reason)


def test_an_error_besides_the_type_is_not_passed_over() -> None:
    """An auto class that has the config's type but refuses a field re-raises, where one that
    lacks the type is passed over."""
    lacking = type("Lacking", (_Refusing,), {"reason": "Unrecognized configuration class X"})
    refusing = type("Refusing", (_Refusing,), {"reason": "hidden size is not a multiple"})
    config = transformers.LlamaConfig(**_TEXT)
    with pytest.raises(ValueError, match="not a multiple"):
        build([lacking, refusing, transformers.LlamaForCausalLM], config)
    built = _built_from([lacking, transformers.LlamaForCausalLM], config)
    assert type(built) is transformers.LlamaForCausalLM


def test_import_needs_neither_torch_nor_transformers() -> None:
    code = (
        "import sys, modmatch.inputs.model_class; "
        "print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"
