"""ms-swift 4.6.0's LoRA config for a model, worked out from the settings of ``swift sft``.

Restates, from the ms-swift 4.6.0 wheel:

- the reading of a config file: ``parse_yaml_args`` (swift/cli/main.py) turns a ``.yaml``/``.yml``
  or ``.json`` file into command-line flags (``ENV`` dropped, each value ``str()``-ed, a list as
  one flag with several values, a mapping as JSON), which ``parse_args`` (swift/utils/utils.py)
  hands to transformers' ``HfArgumentParser`` for ``SftArguments`` (swift/arguments/sft_args.py);
  a shell file holding a ``swift sft`` command line is read the same way from its flags;
- the settings' types and defaults: ``TunerArguments`` (swift/arguments/tuner_args.py, whose
  ``__post_init__`` lets ``target_regex`` replace ``target_modules``), ``BaseArguments``
  (arguments/base_args/base_args.py: ``tuner_type``, ``tuner_backend``, ``adapters``,
  ``use_swift_lora``) and ``ModelArguments`` (arguments/base_args/model_args.py: ``model``,
  ``model_type``, ``task_type``, ``num_labels``);
- which model type ms-swift takes the model for: ``get_model_info_meta`` and ``_get_model_info``
  (swift/model/model_meta.py), its registry of model types (swift/model/models/*.py) and their
  architectures' parts (``MultiModelKeys`` in swift/model/model_arch.py), for the architectures
  transformers has; ``HfConfigFactory.is_multimodal`` (swift/utils/hf_config.py) for the others;
- the LoraConfig: ``prepare_adapter``, ``get_target_modules``, ``_drop_mamba_incompatible_targets``
  and ``get_modules_to_save`` (swift/pipelines/train/tuner.py); ``find_layers``,
  ``find_all_linears``, ``find_embedding``, ``find_norm`` and ``get_multimodal_target_regex``
  (swift/utils/transformers_utils.py); ``deep_getattr`` (swift/utils/utils.py) with the
  attributes ``ModelLoader._compat_transformers5`` (swift/model/register.py) adds to
  multimodal models.

Not restated: ms-swift's matching of a model id's name against its registry (a model type is
found here from the architecture, or from ``model_type``; where the candidate types differ in
what decides targeting, ``model_type`` is asked for), its refusal of flags no dataclass knows,
and ``NonDynamicallyQuantizableLinear`` (``nn.MultiheadAttention``'s output layer), which its
patch of PEFT (swift/tuners/peft.py ``_create_and_replace_hook``) leaves unwrapped.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import yaml_file

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

NAME = "swift"
TITLE = "ms-swift 4.6.0"
RULES = "peft"
CONFIG_CLASS = "LoraConfig"
PEFT_PIN: str | None = "0.20.0"  # ms-swift 4.6.0 requires peft>=0.11,<0.21
PARAMETER_DROPOUT: float | None = None
KEYS = frozenset(
    {
        "freeze_aligner",
        "freeze_llm",
        "freeze_vit",
        "model_author",
        "split_dataset_ratio",
        "target_modules",
        "target_regex",
        "tuner_type",
    }
)

_TASKS = ("causal_lm", "seq_cls", "embedding", "reranker", "generative_reranker", "decision")
# The settings read here, as HfArgumentParser types them: a type, "list" (nargs "+") or choices.
_FIELDS: dict[str, Any] = {
    "model": str,
    "model_type": str,
    "task_type": _TASKS,
    "num_labels": int,
    "tuner_type": str,
    "tuner_backend": ("peft", "unsloth"),
    "use_swift_lora": bool,
    "adapters": "list",
    "resume_from_checkpoint": str,
    "target_modules": "list",
    "target_regex": str,
    "target_parameters": "list",
    "modules_to_save": "list",
    "freeze_llm": bool,
    "freeze_vit": bool,
    "freeze_aligner": bool,
    "lora_rank": int,
    "lora_alpha": float,
    "lora_dropout": float,
    "lora_bias": ("none", "all"),
    "use_rslora": bool,
    "use_dora": bool,
    "init_weights": str,
}
_DEFAULTS: dict[str, Any] = {
    "model": None,
    "model_type": None,
    "task_type": None,
    "num_labels": None,
    "tuner_type": "lora",
    "tuner_backend": "peft",
    "use_swift_lora": False,
    "adapters": [],
    "resume_from_checkpoint": None,
    "target_modules": ["all-linear"],
    "target_regex": None,
    "target_parameters": None,
    "modules_to_save": [],
    "freeze_llm": False,
    "freeze_vit": True,
    "freeze_aligner": True,
    "lora_rank": 8,
    "lora_alpha": 32.0,
    "lora_dropout": 0.05,
    "lora_bias": "none",
    "use_rslora": False,
    "use_dora": False,
    "init_weights": "true",
}
_TRUE = ("yes", "true", "t", "y", "1")  # transformers' string_to_bool, any case
_FALSE = ("no", "false", "f", "n", "0")
_NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")  # argparse takes these as values


@dataclass(frozen=True)
class _Parts:
    """A multimodal architecture's parts, as attribute paths (``MultiModelKeys``)."""

    language: tuple[str, ...]
    vision: tuple[str, ...]
    aligner: tuple[str, ...]


_LM = ("model.language_model", "lm_head")
_LLAVA = _Parts(_LM, ("model.vision_tower",), ("model.multi_modal_projector",))
_QWEN2_VL = _Parts(_LM, ("model.visual",), ("model.visual.merger",))
_QWEN3_VL = _Parts(
    _LM, ("model.visual",), ("model.visual.merger", "model.visual.deepstack_merger_list")
)
_GEMMA3N = _Parts(
    _LM, ("model.vision_tower", "model.audio_tower"), ("model.embed_vision", "model.embed_audio")
)
_MINICPMV4_6 = _Parts(("model.language_model",), ("model.vision_tower",), ("model.merger",))
_THINKER = ("thinker.model", "thinker.lm_head")

# ms-swift's model types registered for the architectures transformers has, by architecture,
# with the parts of the multimodal ones (None: a text model). Where one architecture has types
# that differ in their parts, it has one row per group of types.
_REGISTRY: tuple[tuple[str, tuple[str, ...], _Parts | None], ...] = (
    ("BloomForCausalLM", ("seggpt",), None),
    ("CohereForCausalLM", ("c4ai", "aya"), None),
    ("DbrxForCausalLM", ("dbrx",), None),
    ("DeepseekV2ForCausalLM", ("deepseek_v2",), None),
    ("DeepseekV32ForCausalLM", ("deepseek_v32",), None),
    ("DeepseekV3ForCausalLM", ("deepseek_v3",), None),
    ("DeepseekV4ForCausalLM", ("deepseek_v4",), None),
    (
        "DiffusionGemmaForBlockDiffusion",
        ("diffusion_gemma",),
        _Parts(
            ("model.encoder.language_model", "model.decoder", "lm_head"),
            ("model.encoder.vision_tower",),
            ("model.encoder.embed_vision",),
        ),
    ),
    ("Dots1ForCausalLM", ("dots1",), None),
    ("Emu3ForCausalLM", ("emu3_gen", "emu3_chat"), _Parts(("model",), (), ())),
    ("Ernie4_5_MoeForCausalLM", ("ernie4_5_moe",), None),
    (
        "Ernie4_5_VLMoeForConditionalGeneration",
        ("ernie_vl",),
        _Parts(("model", "lm_head"), ("vision_model",), ("model.resampler_model",)),
    ),
    (
        "Florence2ForConditionalGeneration",
        ("florence",),
        _Parts(("language_model",), ("vision_tower",), ()),
    ),
    ("GPT2LMHeadModel", ("polylm",), None),
    ("Gemma2ForCausalLM", ("gemma2",), None),
    ("Gemma2ForSequenceClassification", ("gemma_reward",), None),
    ("Gemma3ForCausalLM", ("gemma3_text",), None),
    ("Gemma3ForConditionalGeneration", ("gemma3_vision",), _LLAVA),
    ("Gemma3TextModel", ("gemma_emb",), None),
    ("Gemma3nForConditionalGeneration", ("gemma3n",), _GEMMA3N),
    ("Gemma4ForConditionalGeneration", ("gemma4",), _GEMMA3N),
    (
        "Gemma4UnifiedForConditionalGeneration",
        ("gemma4_unified",),
        _Parts(_LM, (), ("model.embed_vision", "model.embed_audio")),
    ),
    ("GemmaForCausalLM", ("gemma",), None),
    ("Glm4ForCausalLM", ("glm4",), None),
    ("Glm4MoeForCausalLM", ("glm4_moe",), None),
    ("Glm4MoeLiteForCausalLM", ("glm4_moe_lite",), None),
    ("Glm4vForConditionalGeneration", ("glm4v",), _QWEN2_VL),
    ("Glm4vMoeForConditionalGeneration", ("glm4v_moe",), _QWEN2_VL),
    ("Glm5NextForConditionalGeneration", ("glm5_next",), _QWEN2_VL),
    ("GlmForCausalLM", ("glm_edge",), None),
    ("GlmForCausalLM", ("glm_edge_v",), _Parts(("model.layers",), ("model.vision",), ())),
    ("GlmMoeDsaForCausalLM", ("glm_moe_dsa",), None),
    ("GlmOcrForConditionalGeneration", ("glm_ocr",), _QWEN2_VL),
    ("GotOcr2ForConditionalGeneration", ("got_ocr2_hf",), _LLAVA),
    ("GptOssForCausalLM", ("gpt_oss",), None),
    ("HYV3ForCausalLM", ("hy_v3",), None),
    ("HunYuanDenseV1ForCausalLM", ("hunyuan_v1_dense",), None),
    ("HunYuanMoEV1ForCausalLM", ("hunyuan",), None),
    (
        "HunYuanVLForConditionalGeneration",
        ("hunyuan_ocr",),
        _Parts(("model",), ("vit",), ("vit.perceive",)),
    ),
    (
        "Idefics3ForConditionalGeneration",
        ("idefics3",),
        _Parts(("model.text_model",), ("model.vision_model",), ("model.connector",)),
    ),
    ("InternVLForConditionalGeneration", ("internvl",), _LLAVA),
    (
        "Llama4ForConditionalGeneration",
        ("llama4",),
        _Parts(("language_model",), ("vision_model",), ("multi_modal_projector",)),
    ),
    ("LlamaForCausalLM", ("codefuse_codellama", "llama", "openbuddy_llama", "yi"), None),
    ("LlamaForSequenceClassification", ("llama3_2_reward",), None),
    ("LlavaForConditionalGeneration", ("llava_llama3_hf", "llava1_5_hf", "pixtral"), _LLAVA),
    (
        "LlavaNextForConditionalGeneration",
        (
            "llava_next_qwen_hf",
            "llama3_llava_next_hf",
            "llava1_6_vicuna_hf",
            "llava1_6_mistral_hf",
            "llava_llama3_1_hf",
            "llava1_6_yi_hf",
        ),
        _LLAVA,
    ),
    (
        "LlavaNextVideoForConditionalGeneration",
        ("llava_next_video_hf", "llava_next_video_yi_hf"),
        _LLAVA,
    ),
    ("LlavaOnevisionForConditionalGeneration", ("llava_onevision_hf",), _LLAVA),
    ("LongcatFlashForCausalLM", ("longchat",), None),
    ("MambaForCausalLM", ("mamba",), None),
    ("MiniCPM3ForCausalLM", ("minicpm3",), None),
    ("MiniCPMV4_6ForConditionalGeneration", ("minicpmv4_6",), _MINICPMV4_6),
    ("MiniCPMV4_7ForConditionalGeneration", ("minicpmv4_7",), _MINICPMV4_6),
    ("MiniMaxM2ForCausalLM", ("minimax_m2",), None),
    ("MiniMaxM3SparseForConditionalGeneration", ("minimax_m3_vl",), _LLAVA),
    ("Mistral3ForConditionalGeneration", ("mistral3", "mistral3_2506"), _LLAVA),
    (
        "MistralForCausalLM",
        (
            "mistral",
            "mistral_nemo",
            "mistral_2501",
            "zephyr",
            "wizardlm2",
            "devstral",
            "openbuddy_mistral",
        ),
        None,
    ),
    ("MixtralForCausalLM", ("mixtral", "wizardlm2_moe", "openbuddy_mixtral"), None),
    (
        "MllamaForConditionalGeneration",
        ("llama3_2_vision",),
        _Parts(_LM, ("model.vision_model",), ("model.multi_modal_projector",)),
    ),
    ("ModernBertForMaskedLM", ("modern_bert",), None),
    ("ModernBertForSequenceClassification", ("modern_bert_gte_reranker",), None),
    ("ModernBertModel", ("modern_bert_gte",), None),
    (
        "MuseGlimmerForConditionalGeneration",
        ("muse_glimmer",),
        _Parts(_LM, ("model.vision_tower",), ("model.vision_adapter", "model.vision_projection")),
    ),
    ("NemotronHForCausalLM", ("nemotron_h",), None),
    ("OlmoeForCausalLM", ("olmoe",), None),
    (
        "PaddleOCRVLForConditionalGeneration",
        ("paddle_ocr",),
        _Parts(("model", "lm_head"), ("visual",), ("mlp_AR",)),
    ),
    (
        "PaddleOCRVLForConditionalGeneration",
        ("paddleocr_vl",),
        _Parts(_LM, ("model.visual",), ("model.projector",)),
    ),
    ("PaliGemmaForConditionalGeneration", ("paligemma",), _LLAVA),
    ("Phi3ForCausalLM", ("phi3", "phi4"), None),
    ("PhiForCausalLM", ("phi2",), None),
    (
        "Qwen2AudioForConditionalGeneration",
        ("qwen2_audio", "xcomposer2_5_ol_audio"),
        _Parts(("language_model",), ("audio_tower",), ("multi_modal_projector",)),
    ),
    ("Qwen2ForCausalLM", ("qwen2", "qwen2_gte"), None),
    ("Qwen2MoeForCausalLM", ("qwen2_moe",), None),
    ("Qwen2VLForConditionalGeneration", ("qwen2_vl", "qwen2_gme"), _QWEN2_VL),
    (
        "Qwen2_5OmniForConditionalGeneration",
        ("qwen2_5_omni",),
        _Parts(
            _THINKER,
            ("thinker.audio_tower", "thinker.visual"),
            ("thinker.audio_tower.proj", "thinker.visual.merger"),
        ),
    ),
    ("Qwen2_5_VLForConditionalGeneration", ("qwen2_5_vl",), _QWEN2_VL),
    (
        "Qwen3ASRForConditionalGeneration",
        ("qwen3_asr",),
        _Parts(
            _THINKER,
            ("thinker.audio_tower",),
            ("thinker.audio_tower.proj1", "thinker.audio_tower.proj2"),
        ),
    ),
    ("Qwen3ForCausalLM", ("qwen3", "qwen3_emb", "qwen3_reranker"), None),
    ("Qwen3MoeForCausalLM", ("qwen3_moe",), None),
    ("Qwen3NextForCausalLM", ("qwen3_next",), None),
    (
        "Qwen3OmniMoeForConditionalGeneration",
        ("qwen3_omni_moe",),
        _Parts(
            _THINKER,
            ("thinker.audio_tower", "thinker.visual"),
            (
                "thinker.audio_tower.proj1",
                "thinker.audio_tower.proj2",
                "thinker.visual.merger",
                "thinker.visual.merger_list",
            ),
        ),
    ),
    (
        "Qwen3VLForConditionalGeneration",
        ("qwen3_vl", "qwen3_vl_emb", "qwen3_vl_reranker"),
        _QWEN3_VL,
    ),
    ("Qwen3VLMoeForConditionalGeneration", ("qwen3_vl_moe",), _QWEN3_VL),
    (
        "Qwen3_5ForConditionalGeneration",
        ("qwen3_5", "ovis_ocr2", "qwen3_5_emb", "wemm_embedding"),
        _QWEN2_VL,
    ),
    ("Qwen3_5MoeForConditionalGeneration", ("qwen3_5_moe",), _QWEN2_VL),
    ("Qwen4ExpForConditionalGeneration", ("qwen4_exp",), _QWEN2_VL),
    ("SeedOssForCausalLM", ("seed_oss",), None),
    ("XLMRobertaForSequenceClassification", ("bge_reranker",), None),
    ("YoutuForCausalLM", ("youtu_llm",), None),
)
# ModelMeta.is_reward (its task becomes seq_cls with one label) and ModelMeta.task_type.
_REWARD_TYPES = frozenset({"gemma_reward", "llama3_2_reward"})
_TYPE_TASKS = {"modern_bert_gte_reranker": "reranker", "bge_reranker": "reranker"}
_PARTS = {model_type: parts for _, types, parts in _REGISTRY for model_type in types}
_TYPES: dict[str, list[str]] = {}
for _architecture, _types, _ in _REGISTRY:
    _TYPES.setdefault(_architecture, []).extend(_types)

# HfConfigFactory.is_multimodal: a config holding one of these is multimodal.
_MULTIMODAL_CONFIG_KEYS = (
    "language_config",
    "llm_config",
    "text_config",
    "vit_config",
    "vision_config",
    "audio_config",
    "thinker_config",
)
# ModelLoader._compat_transformers5: these attributes of a multimodal model read model.model's.
_COMPAT_ATTRIBUTES = frozenset(
    {"language_model", "vision_tower", "multi_modal_projector", "visual", "vision_model"}
)
# find_all_linears: names holding these are never targets; classes holding these are no Linear.
_IGNORED_NAMES = ("lm_head", "score", "v_head", "classifier", "lora_A", "lora_B", "base_layer")
_NOT_LINEAR = ("glulinear", "gemma4clippablelinear")
# _drop_mamba_incompatible_targets: PEFT refuses LoRA on these modules of these model types.
_MAMBA_TYPES = frozenset({"falcon_h1", "mamba", "mamba2", "falcon_mamba", "nemotron_h"})
_MAMBA_REFUSED = frozenset({"out_proj", "conv1d"})
# prepare_adapter: the task types PEFT is given for ms-swift's own.
_PEFT_TASKS: dict[str, str | None] = {
    "EMBEDDING": None,
    "RERANKER": "SEQ_CLS",
    "GENERATIVE_RERANKER": "CAUSAL_LM",
    "DECISION": "CAUSAL_LM",
}


def base_model(settings: Mapping[str, Any]) -> str | None:
    """The model the config trains (``model``)."""
    value = settings.get("model")
    return value if isinstance(value, str) else None


def notes(settings: Mapping[str, Any], model: Any) -> list[str]:
    """What ms-swift does with these settings that their reader may not expect, in a line each."""
    found = []
    regex = settings.get("target_regex")
    if regex == "None":
        found.append(
            "target_regex 'None': a YAML null reaches ms-swift's parser as the text None, a regex "
            "that matches no module name"
        )
    if regex and "target_modules" in settings:
        found.append(
            f"target_modules {settings['target_modules']}: not used, target_regex replaces it"
        )
    return found


def build_model(settings: Mapping[str, Any], config: Any) -> Any | None:
    """A sequence-classification model where ms-swift builds one (task ``seq_cls`` or
    ``reranker``); None (transformers' class) otherwise."""
    s = {**_DEFAULTS, **settings}
    architectures = getattr(config, "architectures", None) or ["null"]
    task, labels = _task(s, _model_type(s, architectures[0]))
    if task not in ("seq_cls", "reranker"):
        return None
    config.num_labels = labels or config.num_labels
    transformers = importlib.import_module("transformers")
    return transformers.AutoModelForSequenceClassification.from_config(config)


def read(path: str | Path) -> dict[str, Any]:
    """The settings as ``swift sft`` reads the file: a YAML or JSON mapping, or a shell file
    holding a ``swift sft`` command line (or its flags alone)."""
    file = Path(path)
    text = file.read_text(encoding="utf-8")
    suffix = file.suffix.lower()
    if suffix in (".yaml", ".yml", ".json"):
        return _parsed(_config_flags(_mapping(file, text, suffix)))
    return _parsed(_command_flags(file, text))


def lora_config(settings: Mapping[str, Any], model: Any) -> dict[str, Any]:
    """The keyword arguments of the ``peft.LoraConfig`` ms-swift builds for ``model`` from
    ``settings`` (the fields that decide targeting); ValueError where it refuses them."""
    s = {**_DEFAULTS, **settings}
    _refuse(s)
    architectures = getattr(model.config, "architectures", None) or [type(model).__name__]
    model_type = _model_type(s, architectures[0], model.config)
    task, _ = _task(s, model_type)
    parts = _PARTS.get(model_type) if model_type is not None else None
    targets = s["target_regex"] or s["target_modules"]  # TunerArguments.__post_init__
    return {
        "target_modules": _targets(targets, s, model, parts),
        "exclude_modules": None,
        "target_parameters": s["target_parameters"],
        "layers_to_transform": None,
        "layers_pattern": None,
        "modules_to_save": _modules_to_save(s["modules_to_save"], model, task),
        "lora_dropout": s["lora_dropout"],
        "task_type": _PEFT_TASKS.get(task.upper(), task.upper()),
        "r": s["lora_rank"],
        "lora_alpha": s["lora_alpha"],
        "bias": s["lora_bias"],
        "use_dora": s["use_dora"],
    }


# --- reading ----------------------------------------------------------------------------------


def _mapping(file: Path, text: str, suffix: str) -> dict[str, Any]:
    """The file's top-level mapping: ``json.load`` or ``yaml.safe_load``, as parse_yaml_args."""
    if suffix == ".json":
        try:
            settings = json.loads(text)
        except ValueError as error:
            raise ValueError(f"{file} is not JSON: {error}") from error
    else:
        yaml = yaml_file.yaml()
        try:
            settings = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(f"{file} is not valid YAML: {error}") from error
    if not isinstance(settings, dict):
        kind = type(settings).__name__
        raise ValueError(f"{file}: an ms-swift config is a mapping, not {kind}")
    return settings


def _config_flags(settings: dict[str, Any]) -> list[str]:
    """``parse_yaml_args``: ``--key`` and the value's ``str()`` (one per list item; a mapping
    as JSON), ``ENV`` left out (it sets environment variables)."""
    flags = []
    for key, value in settings.items():
        if key == "ENV":
            continue
        flags.append(f"--{key}")
        if isinstance(value, list):
            flags += [str(item) for item in value]
        elif isinstance(value, dict):
            flags.append(json.dumps(value, ensure_ascii=False))
        else:
            flags.append(str(value))
    return flags


def _command_flags(file: Path, text: str) -> list[str]:
    """The flags of the first ``swift sft`` command in a shell file (lines joined where they
    end in a backslash, comments dropped), or the file's words where it holds flags alone."""
    logical = re.sub(r"\\\r?\n", " ", text).splitlines()
    for line in logical:
        try:
            words = shlex.split(line, comments=True)
        except ValueError as error:
            raise ValueError(
                f"{file}: cannot split {line.strip()!r} as the shell does: {error}"
            ) from error
        for index, word in enumerate(words[:-1]):
            if Path(word).name == "swift" and words[index + 1] == "sft":
                return _flags_only(file, words[index + 2 :])
    words = shlex.split(text, comments=True)
    if words and words[0].startswith("--"):
        return words
    raise ValueError(f"{file}: neither a YAML or JSON config nor a `swift sft` command line")


def _flags_only(file: Path, words: list[str]) -> list[str]:
    """The flags after ``swift sft``; a config file named first is read by ms-swift instead."""
    if words and words[0].lower().endswith((".yaml", ".yml", ".json")):
        raise ValueError(f"{file}: its command reads {words[0]}: preview that file")
    return words


def _options() -> dict[str, tuple[str, bool]]:
    """HfArgumentParser's option strings for the settings read here: ``--name`` and
    ``--dashed-name``, and ``--no_name`` for a boolean whose default is True (negated)."""
    options: dict[str, tuple[str, bool]] = {}
    for name in _FIELDS:
        options[f"--{name}"] = (name, False)
        options[f"--{name.replace('_', '-')}"] = (name, False)
        if _DEFAULTS[name] is True:
            options[f"--no_{name}"] = (name, True)
            options[f"--no-{name.replace('_', '-')}"] = (name, True)
    return options


def _parsed(flags: list[str]) -> dict[str, Any]:
    """The settings HfArgumentParser makes of the flags: the ones read here typed (the last of
    a repeated flag wins), the others as written; ValueError where the parser fails."""
    options = _options()
    settings: dict[str, Any] = {}
    for option, values in _grouped(flags):
        if option in options:
            name, negated = options[option]
            settings[name] = _value(option, name, negated, values)
            continue
        started = sorted(o for o in options if o.startswith(option))
        if started:
            raise ValueError(
                f"{option.removeprefix('--')}: the start of {', '.join(started[:4])}: ms-swift's "
                "parser takes an abbreviation for the one flag it starts, and refuses it where it "
                "starts several (argparse): write the name in full"
            )
        settings[option.removeprefix("--")] = values[0] if len(values) == 1 else values
    return settings


def _grouped(flags: list[str]) -> list[tuple[str, list[str]]]:
    """Each flag with the words after it up to the next flag (``--a=b`` as ``--a`` and ``b``)."""
    groups: list[tuple[str, list[str]]] = []
    for word in flags:
        if word.startswith("-") and not _NEGATIVE_NUMBER.match(word) and word != "-":
            option, equals, value = word.partition("=")
            groups.append((option, [value] if equals else []))
        elif groups:
            groups[-1][1].append(word)
        else:
            raise ValueError(f"{word!r}: ms-swift's parser takes no positional argument")
    return groups


def _value(option: str, name: str, negated: bool, values: list[str]) -> Any:
    """The typed value of one flag, as HfArgumentParser converts it."""
    kind = _FIELDS[name]
    if negated:
        if values:
            raise ValueError(
                f"{option} takes no value, and ms-swift refuses the left-over {values}"
            )
        return False
    if kind == "list":
        if not values:
            raise ValueError(f"{option}: ms-swift's parser expects at least one value")
        return list(values)
    if kind is bool and not values:
        return True
    if len(values) != 1:
        raise ValueError(f"{option}: ms-swift's parser expects one value, not {values}")
    value = values[0]
    if kind is bool:
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ValueError(f"{option} {value!r}: ms-swift's parser expects true/false (yes/no, 1/0)")
    if isinstance(kind, tuple):
        if value not in kind:
            raise ValueError(f"{option} {value!r}: ms-swift's parser takes one of {list(kind)}")
        return value
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{option} {value!r}: ms-swift's parser expects {kind.__name__}") from None


# --- the LoraConfig ---------------------------------------------------------------------------


def _refuse(s: dict[str, Any]) -> None:
    """ValueError where ms-swift builds no new peft.LoraConfig from the settings."""
    if s["tuner_type"] != "lora":
        raise ValueError(
            f"tuner_type {s['tuner_type']!r}: ms-swift builds a peft.LoraConfig by itself for "
            "tuner_type lora only"
        )
    if s["tuner_backend"] != "peft":
        raise ValueError(
            f"tuner_backend {s['tuner_backend']!r}: Unsloth builds the adapter its way"
        )
    if s["use_swift_lora"]:
        raise ValueError("use_swift_lora True: ms-swift then uses its own LoRA, not PEFT's")
    for name in ("adapters", "resume_from_checkpoint"):
        if s[name]:
            raise ValueError(
                f"{name} {s[name]!r}: ms-swift goes on training that saved adapter, whose "
                "adapter_config.json decides what is wrapped"
            )
    if s["init_weights"] == "lora-ga":
        raise ValueError("init_weights 'lora-ga': the LoRA-GA package builds the adapter its way")


def _model_type(s: dict[str, Any], architecture: str, config: Any = None) -> str | None:
    """``get_model_info_meta``: ``model_type`` where set, else the type registered for the
    architecture (None where none is: a text model ms-swift registers on the fly)."""
    if s["model_type"] is not None:
        if s["model_type"] not in _PARTS:
            raise ValueError(
                f"model_type {s['model_type']!r}: not a type ms-swift 4.6.0 registers for an "
                "architecture transformers has"
            )
        return str(s["model_type"])
    types = _TYPES.get(architecture, [])
    if not types:
        if config is not None and any(hasattr(config, key) for key in _MULTIMODAL_CONFIG_KEYS):
            raise ValueError(
                f"{architecture}: ms-swift registers no model type for this multimodal "
                "architecture, and refuses it without one"
            )
        return None
    facts = {(_PARTS[t], t in _REWARD_TYPES, _TYPE_TASKS.get(t)) for t in types}
    if len(facts) > 1:
        raise ValueError(
            f"{architecture}: ms-swift's types {types} differ for LoRA, and it tells them apart "
            "by the model id's name (its registry, not restated here): give model_type"
        )
    return types[0]


def _task(s: dict[str, Any], model_type: str | None) -> tuple[str, int | None]:
    """``get_model_info_meta``'s task type and number of labels."""
    task, labels = s["task_type"], s["num_labels"]
    if task is None:
        if model_type in _REWARD_TYPES:
            labels = 1
        task = "causal_lm" if labels is None else "seq_cls"
        task = _TYPE_TASKS.get(model_type or "", task)
    if task == "reranker" and labels is None:
        labels = 1
    if task == "seq_cls" and labels is None:
        raise ValueError("task_type 'seq_cls': ms-swift needs num_labels with it")
    return task, labels


def _targets(targets: Any, s: dict[str, Any], model: Any, parts: _Parts | None) -> Any:
    """``get_target_modules``: a str as it is; ``all-linear`` expanded (a regex over the
    unfrozen parts of a multimodal model), ``all-embedding`` too; Mamba's refused names out."""
    if isinstance(targets, str):
        return targets
    targets = list(targets)
    if "all-linear" in targets:
        if parts is not None:
            return _multimodal_regex(model, parts, s, "all-embedding" in targets)
        targets.remove("all-linear")
        targets += _linear_names(model)
    if "all-embedding" in targets:
        targets.remove("all-embedding")
        targets += _layer_names(model, _is_embedding)
    if getattr(model.config, "model_type", None) in _MAMBA_TYPES:
        targets = [name for name in targets if name not in _MAMBA_REFUSED]
    return targets


def _modules_to_save(entries: list[str], model: Any, task: str) -> list[str]:
    """``get_modules_to_save``: ``all-embedding`` and ``all-norm`` expanded; ``v_head`` added
    for ``seq_cls``."""
    to_save = list(entries)
    if "all-embedding" in entries:
        to_save.remove("all-embedding")
        to_save += _layer_names(model, _is_embedding)
    if "all-norm" in entries:
        to_save.remove("all-norm")
        to_save += _layer_names(model, _is_norm)
    if task == "seq_cls":
        to_save.append("v_head")
    return to_save


def _multimodal_regex(model: Any, parts: _Parts, s: dict[str, Any], embedding: bool) -> str:
    """``get_multimodal_target_regex``: per unfrozen part, the part's path followed by one of
    its Linear (and with ``all-embedding`` Embedding) names, aligners inside it left out."""
    keys = list(parts.language if not s["freeze_llm"] else ())
    keys += parts.vision if not s["freeze_vit"] else ()
    keys += parts.aligner if not s["freeze_aligner"] else ()
    if not keys:
        raise ValueError(
            "freeze_llm, freeze_vit and freeze_aligner: with all parts frozen ms-swift's "
            "all-linear has nothing to adapt (it fails an assertion)"
        )
    nn = importlib.import_module("torch.nn")
    inner = not s["freeze_vit"] or not s["freeze_llm"]
    alternatives = []
    for key in keys:
        part = _attribute(model, key)
        if not isinstance(part, nn.Module):
            continue
        lm_head = isinstance(part, nn.Linear) and key.endswith("lm_head")
        names = [] if lm_head else _linear_names(part, embedding)
        if not names:
            continue
        rejected = [a for a in parts.aligner if a.startswith(f"{key}.")] if inner else []
        prefix = (f"(?!({'|'.join(rejected)}))" if rejected else "") + re.escape(key)
        if "" in names:  # the part is itself a Linear
            alternatives.append(prefix)
        named = [name for name in names if name]
        if named:
            alternatives.append(rf"{prefix}(?=\.).*\.({'|'.join(named)})")
    return rf"^({'|'.join(alternatives)})$"


def _attribute(model: Any, path: str) -> Any:
    """``deep_getattr`` on a multimodal model: attributes along ``path``, None where one is
    missing; the first may be read from ``model.model`` (``_compat_transformers5``)."""
    first, _, rest = path.partition(".")
    inner = getattr(model, "model", None)
    if (
        first in _COMPAT_ATTRIBUTES
        and inner is not None
        and hasattr(inner, first)
        and not hasattr(type(model), first)
    ):
        found = getattr(inner, first)
    else:
        found = getattr(model, first, None)
    for name in rest.split(".") if rest else ():
        if found is None:
            break
        found = getattr(found, name, None)
    return found


def _linear_names(root: Any, embedding: bool = False) -> list[str]:
    """``find_all_linears``: the short names of the modules whose class name says linear (and
    with ``embedding`` the Embeddings), outside the output and classification heads."""
    nn = importlib.import_module("torch.nn")

    def wanted(name: str, module: Any) -> bool:
        kind = type(module).__name__.lower()
        linear = "linear" in kind and not any(other in kind for other in _NOT_LINEAR)
        chosen = (embedding and isinstance(module, nn.Embedding)) or linear
        return chosen and not any(ignored in name for ignored in _IGNORED_NAMES)

    return _layer_names(root, wanted)


def _is_embedding(name: str, module: Any) -> bool:
    return bool(isinstance(module, importlib.import_module("torch.nn").Embedding))


def _is_norm(name: str, module: Any) -> bool:
    layer_norm = importlib.import_module("torch.nn").LayerNorm
    return isinstance(module, layer_norm) or "rmsnorm" in type(module).__name__.lower()


def _layer_names(root: Any, wanted: Callable[[str, Any], bool]) -> list[str]:
    """``find_layers``: for each wanted module, its last name segment, lengthened by the
    segments before it while the name of some module not wanted (layer numbers as ``{}``)
    ends with it as text; sorted."""
    others = {
        numbered
        for name, module in root.named_modules()
        if not wanted(numbered := _numbered(name), module)
    }
    found = set()
    for name, module in root.named_modules():
        if not wanted(name, module):
            continue
        segments = name.split(".")
        short = segments.pop()
        while segments and any(other.endswith(_numbered(short)) for other in others):
            short = f"{segments.pop()}.{short}"
        found.add(short)
    return sorted(found)


def _numbered(name: str) -> str:
    return re.sub(r"\d+\.", "{}.", name)
