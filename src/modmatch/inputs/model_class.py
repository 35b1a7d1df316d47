"""The transformers class a Hugging Face config is built as: the one the trainer builds, so the
module names are those PEFT sees when it wraps the trainer's model."""

from __future__ import annotations

from typing import Any

from ..reference.peft import TASK_TYPES

__all__ = ["build", "model_classes"]

# The auto classes LLaMA-Factory's load_model tries, in turn, before a causal LM (image-text,
# AutoModelForVision2Seq in transformers 4, then audio-text); Axolotl's multimodal loader uses
# the first. Each maps a vision- or audio-language config to its ...ForConditionalGeneration.
_MULTIMODAL_CLASSES = (
    "AutoModelForImageTextToText",
    "AutoModelForVision2Seq",
    "AutoModelForSeq2SeqLM",
)


def model_classes(transformers: Any, config: Any, task_type: str | None) -> list[Any]:
    """The classes to build ``config`` (a transformers config, ``architectures`` and all) as,
    in turn.

    A task type that asks for a head other than a causal LM's (a classifier, the base model)
    puts its auto class first, as the user asked for it. Then come the classes
    ``architectures`` names that this transformers has. For a composite config (one holding
    sub-configs, as a vision-language model's ``text_config``) the trainers' multimodal auto
    classes follow, and only then a causal LM task type's class: AutoModelForCausalLM lacks
    most vision-language model types, or builds their text model alone. Last a causal LM,
    then the base model.
    """
    task = TASK_TYPES.get(task_type or "")
    asked = [getattr(transformers, task.auto_class)] if task is not None else []
    named = [
        found
        for name in config.architectures or ()
        if isinstance(found := getattr(transformers, str(name), None), type)
    ]
    composite = _composite(transformers, config)
    multimodal = [getattr(transformers, n) for n in _MULTIMODAL_CLASSES if hasattr(transformers, n)]
    first = [] if composite and task_type == "CAUSAL_LM" else asked
    ordered = [
        *first,
        *named,
        *(multimodal if composite else ()),
        *asked,
        transformers.AutoModelForCausalLM,
        transformers.AutoModel,
    ]
    return list(dict.fromkeys(ordered))


def _composite(transformers: Any, config: Any) -> bool:
    """Whether the config holds sub-configs (``text_config``, ``vision_config``, ...)."""
    return any(isinstance(value, transformers.PretrainedConfig) for value in vars(config).values())


def build(classes: list[Any], config: Any) -> Any:
    """The model of the first class that takes ``config``: an auto class with an entry for its
    type, or a model class whose ``config_class`` it is (a class ``architectures`` names may be
    for another config, and would build from this one anyway, wrongly). ValueError naming the
    classes tried and the model type where none takes it."""
    for kind in classes:
        if not hasattr(kind, "config_class"):  # an auto class
            try:
                return kind.from_config(config)
            except ValueError as error:
                if not str(error).startswith("Unrecognized configuration class"):
                    raise
        elif isinstance(config, kind.config_class or ()):
            return kind(config)
    tried = ", ".join(kind.__name__ for kind in classes)
    raise ValueError(f"none of {tried} builds model type {config.model_type!r}")
