"""NeMo Automodel 0.7.0's LoRA from a recipe YAML: the ``PeftConfig`` its ``peft:`` section
builds, and the model its ``model:`` section builds, which Automodel adapts with its own matcher
(the ``automodel`` rule set), not through PEFT.

Restates, in nemo-automodel 0.7.0:

- the reading of the file: ``load_yaml_config`` (``yaml.safe_load``) and ``ConfigNode._wrap``
  with ``translate_value`` (components/config/loader.py): each scalar but a ``_target_`` or
  ``*_fn`` one is translated (``none``/``None``, ``true``/``True``, ``false``/``False``, then
  ``ast.literal_eval`` of strings up to 1,000 characters, else the string; a scalar under a
  key that is not a str fails there, and is refused here);
- ``ConfigNode.instantiate`` and ``_instantiate_value`` (same file): the section's ``_target_``
  is called with the other keys, each value translated once more;
- the recipe's use of it (recipes/llm/train_ft.py): ``TrainFinetuneRecipeForNextTokenPrediction
  .setup`` builds ``cfg.peft.instantiate()`` where the recipe has a ``peft`` section, and
  ``build_model`` refuses QAT with PEFT and hands a ``quantization`` section on as the
  BitsAndBytes config (which the model loader takes as its reason to build transformers' class);
- ``PeftConfig`` (components/_peft/lora.py), a dataclass: its fields and defaults, unknown keys
  refused;
- ``apply_lora_to_linear_modules`` (same file): ``ModuleMatcher(target_modules,
  exclude_modules, match_all_linear, is_causal_lm)`` (``is_causal_lm`` from
  ``architectures[0]``, which 0.7.0's ``match`` never reads) is asked about Linear and
  Transformer Engine Linear modules and about Automodel's grouped-experts MoE modules (whole,
  by module name), with the full name;
  a matched experts module refuses DoRA, a ``moe_rank_scaling`` rank below 1 and an unknown
  ``expert_weight_format`` (``patch_moe_module``); a matched Linear refuses a
  ``dropout_position`` other than pre or post (``LinearLoRA._init_adapter``).
  ``ModuleMatcher.__post_init__`` (components/_peft/module_matcher.py) takes a None list as
  empty and a str as a list of one; only ``False`` itself asks for its default ``*_proj``;
- the model class (_transformers/model_init.py): ``get_is_hf_model`` (``force_hf``),
  ``__init_model`` (a quantization config builds transformers' class) and
  ``_resolve_custom_model_cls_for_config`` over the registry (_transformers/registry.py
  ``MODEL_ARCH_MAPPING``, ``_is_config_compatible_with_custom_model``): Automodel's own
  implementation of the architecture ``architectures[0]`` names. It is built without the
  recipe's ``backend`` section, whose ``BackendConfig`` (components/models/common/utils.py)
  picks kernels (Transformer Engine's, DeepEP's), not module names: with the defaults, which on
  a machine without CUDA are torch's and SDPA's (FlexAttention for GPT-OSS).

Not restated: command-line overrides and ``${VAR}`` references (left as written), a model
section's config overrides (keys naming config fields), and which experts class a multi-GPU
run builds (with ``dispatcher: deepep`` and ``experts: te``, Transformer Engine's, which
Automodel refuses to adapt).
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import logging
import warnings
from collections.abc import Iterator, Mapping
from importlib.util import find_spec
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

NAME = "automodel"
TITLE = "NeMo Automodel 0.7.0 recipe"
RULES = "automodel"
CONFIG_CLASS = "PeftConfig"
PEFT_PIN: str | None = None
PARAMETER_DROPOUT: float | None = None
# Top-level sections every recipe of examples/llm_finetune holds (rng: most).
KEYS = frozenset(
    {
        "dataloader",
        "dist_env",
        "distributed",
        "loss_fn",
        "rng",
        "step_scheduler",
        "validation_dataloader",
    }
)

# PeftConfig's fields and their defaults.
_PEFT_FIELDS: dict[str, Any] = {
    "target_modules": [],
    "exclude_modules": [],
    "match_all_linear": False,
    "dim": 8,
    "alpha": 32,
    "use_dora": False,
    "dropout": 0.0,
    "dropout_position": "post",
    "lora_A_init": "xavier",
    "lora_dtype": None,
    "use_memory_efficient_lora": True,
    "use_triton": False,
    "moe_rank_scaling": False,
    "expert_weight_format": "unquantized",
}
# The fields shown beside the three the matcher reads.
_SHOWN = ("dim", "alpha", "dropout", "use_dora", "moe_rank_scaling")
_PEFT_CONFIG = "nemo_automodel.components._peft.lora.PeftConfig"
# The model entry points build_model treats as NeMo's auto model; others build their own model.
_AUTO_MODEL = ("NeMoAutoModelForCausalLM.from_pretrained", "NeMoAutoModelForCausalLM.from_config")
# translate_value's special strings.
_SYMBOLS: dict[str, Any] = {
    "none": None,
    "None": None,
    "true": True,
    "True": True,
    "false": False,
    "False": False,
}
# Automodel's grouped-experts MoE classes (components/moe), asked about by module name.
_EXPERTS = frozenset(
    {"GroupedExperts", "GroupedExpertsDeepEP", "GroupedExpertsTE", "GroupedExpertsMoK"}
)
# MODEL_ARCH_MAPPING: the architectures Automodel builds its own implementation of.
_OWN_ARCHITECTURES = frozenset(
    {
        "BagelForConditionalGeneration",
        "BagelForUnifiedMultimodal",
        "BaichuanForCausalLM",
        "BailingMoeV2ForCausalLM",
        "DeepseekV32ForCausalLM",
        "DeepseekV3ForCausalLM",
        "DeepseekV41ForCausalLM",
        "DeepseekV4ForCausalLM",
        "DiffusionGemmaForBlockDiffusion",
        "Ernie4_5_MoeForCausalLM",
        "Gemma4AssistantForCausalLM",
        "Gemma4ForConditionalGeneration",
        "Gemma4UnifiedForConditionalGeneration",
        "Glm4MoeForCausalLM",
        "Glm4MoeLiteForCausalLM",
        "Glm5NextForConditionalGeneration",
        "GlmMoeDsaForCausalLM",
        "GptOssForCausalLM",
        "HYV3ForCausalLM",
        "HunyuanImage3ForCausalMM",
        "HyMT2ForCausalLM",
        "InklingForConditionalGeneration",
        "KimiK25ForConditionalGeneration",
        "KimiK25VLForConditionalGeneration",
        "KimiK3ForCausalLM",
        "KimiK3ForConditionalGeneration",
        "KimiLinear48BForCausalLM",
        "KimiVLForConditionalGeneration",
        "LLaVAOneVision1_5_ForConditionalGeneration",
        "LagunaForCausalLM",
        "LlamaBidirectionalForSequenceClassification",
        "LlamaBidirectionalModel",
        "LlamaForCausalLM",
        "LlamaNemotronVLModel",
        "MiMoV25ForCausalLM",
        "MiMoV2FlashForCausalLM",
        "MiMoV2ForCausalLM",
        "MiniMaxM2ForCausalLM",
        "MiniMaxM3SparseForConditionalGeneration",
        "Ministral3BidirectionalModel",
        "Ministral3ForCausalLM",
        "Mistral3BidirectionalModel",
        "Mistral3FP8VLMForConditionalGeneration",
        "Mistral3ForConditionalGeneration",
        "Mistral3VLBidirectionalForSequenceClassification",
        "Mistral4ForCausalLM",
        "MuseGlimmerForConditionalGeneration",
        "NemotronHForCausalLM",
        "NemotronH_Nano_Omni_Reasoning_V3",
        "NemotronH_Omni_Reasoning_V3",
        "NemotronParseForConditionalGeneration",
        "Qwen2ForCausalLM",
        "Qwen2_5OmniForConditionalGeneration",
        "Qwen2_5OmniModel",
        "Qwen2_5OmniThinkerForConditionalGeneration",
        "Qwen3ForCausalLM",
        "Qwen3MoeForCausalLM",
        "Qwen3NextForCausalLM",
        "Qwen3OmniMoeForConditionalGeneration",
        "Qwen3RerankerForCausalReranking",
        "Qwen3VLForConditionalGeneration",
        "Qwen3VLMoeForConditionalGeneration",
        "Qwen3_5ForCausalLM",
        "Qwen3_5ForConditionalGeneration",
        "Qwen3_5MoeForCausalLM",
        "Qwen3_5MoeForConditionalGeneration",
        "Qwen3_8_FlashNextForConditionalGeneration",
        "Qwen4ExpForConditionalGeneration",
        "Step3p5ForCausalLM",
        "Step3p6ForConditionalGeneration",
        "Step3p7ForConditionalGeneration",
    }
)
_INSTALL = "pip install --no-deps nemo-automodel==0.7.0"


def read(path: str | Path) -> dict[str, Any]:
    """The recipe as ``load_yaml_config`` reads it: ``yaml.safe_load``, a mapping, each scalar
    translated (``_target_`` and ``*_fn`` values, which Automodel imports, kept as written)."""
    settings = yaml_file.mapping(path, "an Automodel recipe")
    translated: dict[str, Any] = _wrapped(settings)
    return translated


def base_model(settings: Mapping[str, Any]) -> str | None:
    """The model the recipe trains: the ``model`` section's ``pretrained_model_name_or_path``
    (for ``from_config``, its ``config`` section's)."""
    model = _section(settings, "model")
    value = model.get("pretrained_model_name_or_path")
    if value is None and isinstance(model.get("config"), dict):
        value = model["config"].get("pretrained_model_name_or_path")
    return value if isinstance(value, str) and value else None


def lora_config(settings: Mapping[str, Any], model: Any) -> dict[str, Any]:
    """The ``PeftConfig`` fields the recipe builds, with ``target_modules``, ``exclude_modules``
    and ``match_all_linear`` as ``apply_lora_to_linear_modules`` hands them to its matcher on
    ``model``; ValueError where Automodel refuses the recipe."""
    _refuse_model(settings)
    fields = _peft_config(settings)
    targets = _patterns(fields["target_modules"], "target_modules")
    excludes = _patterns(fields["exclude_modules"], "exclude_modules")
    all_linear = fields["match_all_linear"]
    # Only False asks for the default *_proj: another falsy value (0, null) with neither list
    # reaches the matcher's last rule, every Linear module.
    every_linear = bool(all_linear) or (all_linear is not False and not targets and not excludes)
    _refuse_application(fields, targets, excludes, every_linear, model)
    return {
        "target_modules": targets,
        "exclude_modules": excludes,
        "match_all_linear": every_linear,
        **{name: fields[name] for name in _SHOWN},
    }


def build_model(settings: Mapping[str, Any], config: Any) -> Any | None:
    """Automodel's own implementation of ``config``'s architecture, built on the current device
    with the kernels it picks without a ``backend`` section (on a machine without CUDA, torch's
    and SDPA's), where Automodel builds its own (neither ``force_hf`` nor a ``quantization``
    section) and nemo-automodel imports; None for transformers' class."""
    if not (_builds_own(settings) and _own_architecture(config)):
        return None
    model_init = _model_init()
    if model_init is None:
        return None  # notes() says what may differ
    own = model_init._resolve_custom_model_cls_for_config(config)
    if own is None:
        return None
    with _no_cuda_device(), _quietly():
        return own(config)


def notes(settings: Mapping[str, Any], model: Any) -> list[str]:
    """Where the recipe has Automodel build transformers' class, then which class the preview
    built (see :func:`_model_notes`)."""
    if _section(settings, "model").get("force_hf", False):
        found = ["force_hf: Automodel builds transformers' class, not its own implementation"]
    elif settings.get("quantization") is not None:
        found = [
            "quantization: Automodel loads the model with BitsAndBytes, through transformers' "
            "class (its 4-bit Linear layers keep the Linear modules' names)"
        ]
    else:
        found = []
    return found + _model_notes(settings, model)


def _model_notes(settings: Mapping[str, Any], model: Any) -> list[str]:
    """Which class the preview built: Automodel's own; or transformers', where Automodel builds
    its own but nemo-automodel does not import here, with what may then differ; and experts
    transformers' class holds fused, which Automodel does not adapt."""
    if model is None:
        return []
    kind = type(model)
    if kind.__module__.startswith("nemo_automodel."):
        return [
            f"the model is NeMo Automodel 0.7.0's own {kind.__name__} ({kind.__module__}), "
            "with the kernels it picks on this machine: a recipe's backend section picks others "
            "(Transformer Engine's, DeepEP's) under the same module names"
        ]
    found = []
    config: Any = getattr(model, "config", None)
    if _builds_own(settings) and _own_architecture(config) and _model_init() is None:
        missing = "is not installed" if find_spec("nemo_automodel") is None else "does not import"
        found.append(
            f"NeMo Automodel 0.7.0 trains its own implementation of {config.architectures[0]}, "
            f"but nemo-automodel {missing} here: this is transformers' {kind.__name__}. Its "
            "module names may differ from Automodel's, and its mixture-of-experts layers are "
            "not Automodel's GroupedExperts modules, which a target naming them (such as "
            f"'*.experts') adapts whole; {_INSTALL} builds Automodel's own"
        )
    fused = [name for name, module in model.named_modules() if _holds_fused(module)]
    if fused:
        found.append(
            f"{len(fused):,} modules such as {fused[0]} hold experts fused as 3-D parameters, "
            "which Automodel's LoRA does not adapt: it adapts Linear modules and its own "
            "GroupedExperts modules only"
        )
    return found


def _holds_fused(module: Any) -> bool:
    """Whether ``module`` holds 3-D parameters of its own (transformers 5's fused experts)."""
    return any(parameter.dim() == 3 for parameter in module.parameters(recurse=False))


def _refuse_model(settings: Mapping[str, Any]) -> None:
    """ValueError where the recipe's model is not built by NeMo's auto model, or QAT is on."""
    target = _section(settings, "model").get("_target_")
    if not _by_auto_model(target):
        raise ValueError(
            f"model _target_ {target!r}: modmatch reads recipes whose model "
            "NeMoAutoModelForCausalLM builds (from_pretrained, from_config)"
        )
    qat = _section(settings, "qat")
    if qat.get("enabled", False):
        raise ValueError(
            "qat: Automodel refuses QAT with PEFT ('QAT with PEFT is not currently supported')"
        )


def _by_auto_model(target: Any) -> bool:
    """Whether the model section's ``_target_`` is NeMoAutoModelForCausalLM's ``from_pretrained``
    or ``from_config`` (``build_model``'s ``is_nemo_auto_model``)."""
    return (
        isinstance(target, str)
        and target.startswith("nemo_automodel")
        and target.endswith(_AUTO_MODEL)
    )


def _peft_config(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg.peft.instantiate()``'s fields: the defaults, then the section's keys translated
    once more; ValueError where there is no such section or PeftConfig refuses a key."""
    section = settings.get("peft")
    if section is None:
        raise ValueError("no peft section: Automodel trains the whole model, without LoRA")
    if not isinstance(section, dict):
        raise ValueError(f"peft {section!r}: Automodel instantiates a section, not a value")
    target = section.get("_target_")
    if target is None:
        raise ValueError("peft: Automodel instantiates its _target_, and the section has none")
    if target != _PEFT_CONFIG:
        raise ValueError(f"peft _target_ {target!r}: modmatch reads {_PEFT_CONFIG} sections only")
    unknown = sorted(set(section) - {"_target_", *_PEFT_FIELDS})
    if unknown:
        raise ValueError(
            f"peft {unknown[0]}: PeftConfig has no such field (it takes {', '.join(_PEFT_FIELDS)})"
        )
    given = {name: _instantiated(value) for name, value in section.items() if name != "_target_"}
    return {**_PEFT_FIELDS, **given}


def _patterns(value: Any, name: str) -> list[Any]:
    """A target or exclude list as the matcher takes it: None empty, a str a list of one.
    Anything else is refused (Automodel's matcher fails on a number, and would read a mapping's
    keys as patterns)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return value
    raise ValueError(f"peft {name} {value!r}: Automodel's matcher takes a list of patterns or one")


def _refuse_application(
    fields: dict[str, Any],
    targets: list[Any],
    excludes: list[Any],
    every_linear: bool,
    model: Any,
) -> None:
    """What ``apply_lora_to_linear_modules`` refuses once it has matched: an experts module with
    DoRA, a ``moe_rank_scaling`` rank below 1 or an unknown ``expert_weight_format``; a Linear
    module with a ``dropout_position`` other than pre or post."""
    experts = [(name, module) for name, module in model.named_modules() if _is_experts(module)]
    position = fields["dropout_position"]
    if not experts and position in ("pre", "post"):
        return
    matcher = _matcher(targets, excludes, every_linear)
    for name, module in experts:
        if matcher.match(module, name):
            _refuse_experts(fields, name, module)
    if position not in ("pre", "post"):
        from torch import nn

        for name, module in model.named_modules():
            if isinstance(module, nn.Linear) and matcher.match(module, name):
                raise ValueError(
                    f"peft dropout_position {position!r}: Automodel's LoRA takes pre or post "
                    f"(it adapts {name})"
                )


def _refuse_experts(fields: dict[str, Any], name: str, module: Any) -> None:
    """``apply_lora_to_linear_modules`` and ``patch_moe_module`` on one matched experts module."""
    if fields["use_dora"]:
        raise ValueError(
            f"peft use_dora {fields['use_dora']!r}: Automodel refuses DoRA on MoE expert "
            f"modules, and the targets select {name}"
        )
    if fields["moe_rank_scaling"]:
        activated = module.config.n_activated_experts
        if fields["dim"] // activated < 1:
            raise ValueError(
                f"peft dim {fields['dim']!r}: with moe_rank_scaling Automodel divides it by the "
                f"{activated} experts activated per token of {name}, giving rank below 1"
            )
    formats = ("unquantized", "mxfp4")
    if fields["expert_weight_format"] not in formats:
        raise ValueError(
            f"peft expert_weight_format {fields['expert_weight_format']!r}: Automodel takes "
            f"{' or '.join(formats)} for the experts it adapts ({name})"
        )


def _matcher(targets: list[Any], excludes: list[Any], every_linear: bool) -> Any:
    """Automodel's matcher (modmatch's), its notices unlogged: the preview reports them.
    ValueError where Automodel's refuses the lists."""
    from .. import automodel

    quiet = logging.getLogger(automodel.__name__)
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return automodel.ModuleMatcher(targets, excludes, every_linear)
    finally:
        quiet.setLevel(level)


def _is_experts(module: Any) -> bool:
    """Whether Automodel asks its matcher about ``module`` as a grouped-experts MoE module."""
    return any(
        kind.__name__ in _EXPERTS and kind.__module__.startswith("nemo_automodel.components.moe")
        for kind in type(module).__mro__
    )


def _builds_own(settings: Mapping[str, Any]) -> bool:
    """Whether Automodel may build its own class: not with ``force_hf``, nor with a
    ``quantization`` section (the BitsAndBytes loader is transformers')."""
    model = _section(settings, "model")
    return not model.get("force_hf", False) and settings.get("quantization") is None


def _own_architecture(config: Any) -> bool:
    """``_resolve_custom_model_cls_for_config`` without nemo-automodel: whether Automodel has
    its own class for ``architectures[0]`` (the class may still decline a config)."""
    names = getattr(config, "architectures", None) or []
    if not names or names[0] not in _OWN_ARCHITECTURES:
        return False
    if names[0] == "NemotronHForCausalLM":  # the MoE or the hybrid dense variant only
        return getattr(config, "n_routed_experts", None) is not None or bool(
            getattr(config, "layers_block_type", None)
        )
    return True


@functools.cache
def _model_init() -> Any | None:
    """nemo-automodel's model loader (its class choice), where it imports."""
    try:
        return importlib.import_module("nemo_automodel._transformers.model_init")
    except Exception:  # not installed, or an install that fails to import: transformers' class
        return None


@contextlib.contextmanager
def _quietly() -> Iterator[None]:
    """Automodel's classes warn while being built (deprecations, transformers' notices on the
    config's fields): nothing the preview acts on."""
    transformers = logging.getLogger("transformers")
    level = transformers.level
    transformers.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        transformers.setLevel(level)


@contextlib.contextmanager
def _no_cuda_device() -> Iterator[None]:
    """Automodel's MoE models ask CUDA for the current device while being built (a buffer's
    device, unused on the meta device); without CUDA, device 0 is answered meanwhile."""
    import torch

    if torch.cuda.is_available():
        yield
        return
    asked = torch.cuda.current_device
    torch.cuda.current_device = lambda: 0
    try:
        yield
    finally:
        torch.cuda.current_device = asked


def _section(settings: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """A section of the recipe, empty where missing or not a mapping."""
    section = settings.get(name)
    return section if isinstance(section, dict) else {}


def _wrapped(value: Any, key: Any = "") -> Any:
    """``ConfigNode._wrap``: mappings and lists walked, ``_target_`` and ``*_fn`` strings kept,
    every other scalar translated; a scalar under a key that is not a str is refused (Automodel
    fails on it)."""
    if isinstance(value, dict):
        return {k: _wrapped(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_wrapped(item) for item in value]
    if not isinstance(key, str):
        raise ValueError(f"key {key!r}: Automodel's config reader takes str keys only")
    if key == "_target_" or key.endswith("_fn"):
        return value
    return _translated(value)


def _instantiated(value: Any) -> Any:
    """``_instantiate_value``: a list's items and a scalar translated again on the way to the
    section's target (a mapping is passed as read)."""
    if isinstance(value, list):
        return [_instantiated(item) for item in value]
    if isinstance(value, dict):
        return value
    return _translated(value)


def _translated(value: Any) -> Any:
    """``translate_value``: a string as the Python literal it spells, where it spells one."""
    if not isinstance(value, str):
        return value
    if value in _SYMBOLS:
        return _SYMBOLS[value]
    if len(value) > 1000:
        return value
    try:
        return ast.literal_eval(value)
    except Exception:  # any failure leaves the string, as Automodel does
        return value
