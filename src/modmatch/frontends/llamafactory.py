"""LLaMA-Factory 0.9.5's LoRA config for a model, worked out from its YAML settings.

Restates LLaMA-Factory 0.9.5's ``_setup_lora_tuning`` (src/llamafactory/model/adapter.py, for
a new adapter while training), ``find_all_linear_modules`` and ``find_expanded_modules``
(model/model_utils/misc.py), ``patch_target_modules``, ``get_forbidden_modules`` and the
``COMPOSITE_MODELS`` table (model/model_utils/visual.py), ``FinetuningArguments``' defaults and
``__post_init__`` (hparams/finetuning_args.py), from hparams/parser.py ``read_args`` (the file
through ``OmegaConf.load``) and the checks of ``_verify_model_args`` that bear on it, and the
training workflows' ``load_model(..., training_args.do_train)`` (train/*/workflow.py): a new
adapter is built only when training.

Settings reach LLaMA-Factory's dataclasses as written (``HfArgumentParser.parse_dict`` converts
nothing), so they are used here as written too. Its refusal of keys no dataclass knows is not
restated.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import yaml_file

if TYPE_CHECKING:
    import torch

__all__ = [
    "CONFIG_CLASS",
    "KEYS",
    "NAME",
    "PARAMETER_DROPOUT",
    "PEFT_PIN",
    "RULES",
    "TITLE",
    "base_model",
    "build_model",
    "lora_config",
    "notes",
    "read",
]

NAME = "llamafactory"
TITLE = "LLaMA-Factory 0.9.5"
RULES = "peft"
CONFIG_CLASS = "LoraConfig"
PEFT_PIN: str | None = "0.18.1"
PARAMETER_DROPOUT: float | None = None
KEYS = frozenset({"cutoff_len", "finetuning_type", "lora_target", "stage", "template"})

# The settings read here and their defaults (FinetuningArguments, ModelArguments, do_train).
_DEFAULTS: dict[str, Any] = {
    "finetuning_type": "lora",
    "lora_target": "all",
    "lora_rank": 8,
    "lora_alpha": None,
    "lora_dropout": 0.0,
    "additional_target": None,
    "use_dora": False,
    "use_llama_pro": False,
    "freeze_trainable_layers": 2,
    "freeze_vision_tower": True,
    "freeze_multi_modal_projector": True,
    "freeze_language_model": False,
    "use_galore": False,
    "use_apollo": False,
    "use_badam": False,
    "create_new_adapter": False,
    "adapter_name_or_path": None,
    "quantization_bit": None,
    "resize_vocab": False,
    "use_unsloth": False,
    "do_train": False,
}
# find_all_linear_modules: output layers left out besides lm_head, by model type (substrings).
_OUTPUT_LAYERS = {"chatglm": "output_layer", "internlm2": "output"}


@dataclass(frozen=True)
class _Composite:
    """A vision-language model's parts, as substrings of module names (``CompositeModel``)."""

    projector: tuple[str, ...] = ("multi_modal_projector",)
    vision: tuple[str, ...] = ("vision_tower",)
    language: tuple[str, ...] = ("language_model", "lm_head")
    conflict: tuple[str, ...] = ()  # never LoRA targets


_QWEN2_VL = _Composite(
    ("visual.merger",), ("visual.patch_embed", "visual.blocks"), conflict=("patch_embed",)
)
_QWEN3_VL_VISION = ("visual.pos_embed", "visual.patch_embed", "visual.blocks")
_QWEN3_VL = _Composite(
    ("visual.merger",),
    (*_QWEN3_VL_VISION, "visual.deepstack_merger_list"),
    conflict=("patch_embed",),
)
_QWEN3_5 = _Composite(("model.visual.merger",), _QWEN3_VL_VISION, conflict=("patch_embed",))
_COMPOSITE: dict[str, _Composite] = {
    "dots_ocr": _Composite(
        ("vision_tower.merger",), ("vision_tower",), ("model", "lm_head"), ("merger",)
    ),
    "gemma3": _Composite(),
    "gemma3n": _Composite(
        vision=("vision_tower", "audio_tower"),
        conflict=("timm_model", "subsample_conv_projection"),
    ),
    "gemma4": _Composite(
        ("model.embed_vision", "model.embed_audio"),
        ("vision_tower", "audio_tower"),
        conflict=("per_layer_projection_norm",),
    ),
    "glm4v": _QWEN2_VL,
    "glm4v_moe": _QWEN2_VL,
    "glm_ocr": _QWEN2_VL,
    "internvl": _Composite(),
    "interns1": _Composite(),
    "Keye": _Composite(
        ("mlp_AR",),
        ("visual.vision_model.patch_embedding", "visual.vision_model.encoder"),
        ("model", "lm_head"),
        ("patch_embedding",),
    ),
    "kimi_vl": _Composite(),
    "llama4": _Composite(vision=("vision_model",)),
    "llava": _Composite(),
    "llava_next": _Composite(),
    "llava_next_video": _Composite(),
    "minicpmv": _Composite(("resampler",), ("vpm",), ("llm",)),
    "minicpmv4_6": _Composite(
        ("model.merger",), ("model.vision_tower",), ("model.language_model", "lm_head")
    ),
    "minicpmo": _Composite(
        ("resampler",),
        ("vpm", "apm", "audio_avg_pooler", "audio_projection_layer", "tts"),
        ("llm",),
        ("audio_projection_layer",),
    ),
    "mistral3": _Composite(("model.multi_modal_projector",)),
    "mllama": _Composite(vision=("vision_model",)),
    "paligemma": _Composite(),
    "qwen2_audio": _Composite(vision=("audio_tower",)),
    "qwen2_5_omni_thinker": _Composite(
        ("visual.merger", "audio_tower.proj"),
        ("visual.patch_embed", "visual.blocks", "audio_tower"),
        ("model", "lm_head"),
        ("patch_embed",),
    ),
    "qwen2_vl": _QWEN2_VL,
    "qwen2_5_vl": _QWEN2_VL,
    "qwen3_vl": _QWEN3_VL,
    "qwen3_vl_moe": _QWEN3_VL,
    "qwen3_omni_moe_thinker": _Composite(
        ("visual.merger", "audio_tower.proj"),
        (*_QWEN3_VL.vision, "audio_tower"),
        conflict=("patch_embed",),
    ),
    "qwen3_5": _QWEN3_5,
    "qwen3_5_moe": _QWEN3_5,
    "video_llava": _Composite(),
}


def base_model(settings: Mapping[str, Any]) -> str | None:
    """The model the config trains (``model_name_or_path``)."""
    value = settings.get("model_name_or_path")
    return value if isinstance(value, str) else None


def notes(settings: Mapping[str, Any], model: Any) -> list[str]:
    """Nothing to note."""
    return []


def build_model(settings: Mapping[str, Any], config: Any) -> None:
    """LLaMA-Factory trains transformers' own classes."""
    return None


def read(path: str | Path) -> dict[str, Any]:
    """The YAML file as LLaMA-Factory reads it (``OmegaConf.load``): ``yaml.safe_load`` but for
    OmegaConf's floats (``1e-4`` too), dates kept as strings and duplicate keys refused."""
    settings: dict[str, Any] = yaml_file.mapping(path, "a LLaMA-Factory config", _loader)
    return settings


def lora_config(settings: Mapping[str, Any], model: torch.nn.Module) -> dict[str, Any]:
    """The keyword arguments of the ``peft.LoraConfig`` LLaMA-Factory builds for ``model`` from
    ``settings`` (the fields that decide targeting); ValueError where it refuses them."""
    s = {**_DEFAULTS, **settings}  # a key written, even empty (None), replaces the default
    _refuse(s)
    targets = _split(s["lora_target"])
    if not isinstance(targets, list):
        raise ValueError(f"lora_target {s['lora_target']!r}: LLaMA-Factory takes module names")
    if len(targets) == 1 and targets[0] == "all":
        targets = _all_linear(model, s["freeze_vision_tower"])
    if s["use_llama_pro"]:
        targets = _expanded(model, targets, s["freeze_trainable_layers"])
    targets = _unfrozen(model, s, targets)
    to_save = _split(s["additional_target"])
    if s["resize_vocab"] and to_save is None:
        to_save = _embedding_names(model)
    rank = s["lora_rank"]
    if not s["lora_alpha"] and not isinstance(rank, int):
        raise ValueError(f"lora_rank {rank!r}: LLaMA-Factory doubles it for lora_alpha")
    return {
        "target_modules": targets,
        "exclude_modules": None,
        "target_parameters": None,
        "layers_to_transform": None,
        "layers_pattern": None,
        "modules_to_save": to_save,
        "lora_dropout": s["lora_dropout"],
        "task_type": "CAUSAL_LM",
        "r": rank,
        "lora_alpha": s["lora_alpha"] or rank * 2,
        "bias": "none",
        "use_dora": s["use_dora"],
    }


def _refuse(s: dict[str, Any]) -> None:
    """ValueError where LLaMA-Factory refuses the settings or builds no new LoRA config."""
    kind = s["finetuning_type"]
    if kind != "lora":
        raise ValueError(
            f"finetuning_type {kind!r}: LLaMA-Factory builds a peft.LoraConfig for "
            "finetuning_type lora only"
        )
    if not s["do_train"]:
        raise ValueError(
            f"do_train {s['do_train']!r}: LLaMA-Factory adds a LoRA adapter only when training"
        )
    for name in ("use_galore", "use_apollo", "use_badam"):
        if s[name]:
            raise ValueError(f"{name} {s[name]!r}: LLaMA-Factory refuses it with LoRA")
    if s["use_unsloth"]:
        raise ValueError(f"use_unsloth {s['use_unsloth']!r}: Unsloth builds the adapter its way")
    quantized = s["quantization_bit"] is not None
    if quantized and s["resize_vocab"]:
        raise ValueError(
            f"resize_vocab {s['resize_vocab']!r}: LLaMA-Factory cannot resize the embeddings of "
            f"a quantized model (quantization_bit {s['quantization_bit']!r})"
        )
    adapters = s["adapter_name_or_path"]
    if adapters is not None and (quantized or not s["create_new_adapter"]):
        raise ValueError(
            f"adapter_name_or_path {adapters!r}: LLaMA-Factory goes on training that adapter "
            "(unless create_new_adapter, on a model not quantized), whose adapter_config.json "
            "decides what is wrapped"
        )


def _all_linear(model: Any, freeze_vision_tower: Any) -> list[str]:
    """``find_all_linear_modules``: last name segments of the modules whose class name says
    Linear (not Embedding), outside the output layer, the projector and a frozen vision tower."""
    model_type = _model_type(model)
    forbidden = {"lm_head"}
    if model_type in _OUTPUT_LAYERS:
        forbidden.add(_OUTPUT_LAYERS[model_type])
    composite = _COMPOSITE.get(model_type)
    if composite is not None:
        forbidden.update(composite.projector)
        if freeze_vision_tower:
            forbidden.update(composite.vision)
    names = set()
    for name, module in model.named_modules():
        kind = type(module).__name__
        if "Linear" in kind and "Embedding" not in kind and not _within(name, forbidden):
            names.add(name.rpartition(".")[2])
    return sorted(names)


def _expanded(model: Any, targets: list[str], trainable: Any) -> list[str]:
    """``find_expanded_modules`` (``use_llama_pro``): the full names, containing a target, of the
    modules in the expanded blocks, every ``layers / freeze_trainable_layers``-th layer."""
    layers = getattr(model.config, "num_hidden_layers", None)
    if not layers:
        raise ValueError("use_llama_pro: LLaMA-Factory needs the model's num_hidden_layers")
    if not isinstance(trainable, int) or trainable == 0 or layers % trainable != 0:
        raise ValueError(
            f"freeze_trainable_layers {trainable!r}: LLaMA-Factory's use_llama_pro needs it to "
            f"divide the model's {layers} layers"
        )
    stride = layers // trainable
    marks = [f".{index}." for index in range(stride - 1, layers + stride - 1, stride)]
    return [
        name for name, _ in model.named_modules() if _within(name, targets) and _within(name, marks)
    ]


def _unfrozen(model: Any, s: dict[str, Any], targets: list[str]) -> list[str]:
    """``patch_target_modules``: on a composite model, the full names of the modules containing
    a target, but not a frozen part's key nor a LoRA conflict key; elsewhere ``targets``."""
    composite = _COMPOSITE.get(_model_type(model))
    if composite is None:
        return targets
    forbidden = set(composite.conflict)
    for frozen, keys in (
        ("freeze_vision_tower", composite.vision),
        ("freeze_multi_modal_projector", composite.projector),
        ("freeze_language_model", composite.language),
    ):
        if s[frozen]:
            forbidden.update(keys)
    return [
        name
        for name, _ in model.named_modules()
        if _within(name, targets) and not _within(name, forbidden)
    ]


def _embedding_names(model: Any) -> list[str]:
    """With ``resize_vocab``: the last name segments of the input and output embeddings."""
    wanted = [model.get_input_embeddings(), model.get_output_embeddings()]
    return sorted(
        {
            name.rpartition(".")[2]
            for name, module in model.named_modules()
            if any(module is embedding for embedding in wanted)
        }
    )


def _model_type(model: Any) -> str:
    model_type: str = getattr(getattr(model, "config", None), "model_type", None) or ""
    return model_type


def _within(name: str, keys: Any) -> bool:
    """Whether some key is a substring of ``name``, as LLaMA-Factory matches names."""
    return any(key in name for key in keys)


def _split(value: Any) -> Any:
    """``split_arg``: a str split on commas, each part stripped; anything else as it is."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",")]
    return list(value) if isinstance(value, list) else value  # a copy: PEFT may extend it


# OmegaConf's float rule, which also takes exponents without a dot (1e-4) and digit groups.
_FLOAT = re.compile(
    r"""^(?:
     [-+]?[0-9]+(?:_[0-9]+)*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9]+(?:_[0-9]+)*(?:[eE][-+]?[0-9]+)
    |\.[0-9]+(?:_[0-9]+)*(?:[eE][-+][0-9]+)?
    |[-+]?[0-9]+(?:_[0-9]+)*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_STR = "tag:yaml.org,2002:str"


@functools.cache
def _loader(yaml: Any) -> Any:
    """A SafeLoader reading YAML as OmegaConf's loader does, for the settings read here."""

    def construct_mapping(loader: Any, node: Any, deep: bool = False) -> Any:
        keys = set()
        for key, _ in node.value:
            if key.tag == _STR and key.value in keys:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key.value}",
                    key.start_mark,
                )
            keys.add(key.value)
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    loader: Any = type(
        "OmegaConfLikeLoader", (yaml.SafeLoader,), {"construct_mapping": construct_mapping}
    )
    loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
    loader.yaml_implicit_resolvers = {
        first: [(tag, rule) for tag, rule in rules if tag != _TIMESTAMP]
        for first, rules in loader.yaml_implicit_resolvers.items()
    }
    return loader
