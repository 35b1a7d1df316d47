"""Hugging Face PEFT's target rules, releases 0.17 to 0.21, on plain Python ``re``: the oracle for
:mod:`modmatch.peft`.

Restated from ``peft.tuners.tuners_utils.check_target_module_exists`` of each release: a str is
a regex the whole key must match, a list entry is a literal the key equals or ends with after a
dot, and the layer filter reads a numbered segment of the key. Only the layer filter changed
across these releases (see :func:`layer_index`).
"""

from __future__ import annotations

import re
import sys
from typing import Any, NamedTuple

__all__ = [
    "LATEST",
    "RELEASES",
    "SAVED_PREFIX",
    "TASK_TYPES",
    "Excluded",
    "Task",
    "all_linear_names",
    "check_target_module_exists",
    "layer_index",
    "modules_to_save_regex",
    "release",
]


class Task(NamedTuple):
    """A PEFT task type: the transformers auto class its ``PeftModelFor*`` class stands for,
    and the heads ``get_peft_model`` adds to ``modules_to_save`` before matching (LoRA keeps
    off them)."""

    auto_class: str
    heads: tuple[str, ...]


# PEFT's TaskType values, in its enum's order (the same in 0.17 to 0.21).
TASK_TYPES: dict[str, Task] = {
    "SEQ_CLS": Task("AutoModelForSequenceClassification", ("classifier", "score")),
    "SEQ_2_SEQ_LM": Task("AutoModelForSeq2SeqLM", ()),
    "CAUSAL_LM": Task("AutoModelForCausalLM", ()),
    "TOKEN_CLS": Task("AutoModelForTokenClassification", ("classifier", "score")),
    "QUESTION_ANS": Task("AutoModelForQuestionAnswering", ("qa_outputs",)),
    "FEATURE_EXTRACTION": Task("AutoModel", ()),
}

# What save_pretrained puts before every module name in an adapter's tensor names.
SAVED_PREFIX = "base_model.model."
# The releases whose rules are restated here, by (major, minor): their patch releases share them.
RELEASES = ((0, 17), (0, 18), (0, 19), (0, 20), (0, 21))
LATEST = "0.21.2"


def release(version: str) -> tuple[int, int]:
    """The ``(major, minor)`` of a PEFT version string whose rules are known; ValueError
    naming it otherwise."""
    found = re.match(r"(\d+)\.(\d+)(?:[.+]|$)", version)
    minor = (int(found[1]), int(found[2])) if found else None
    if minor not in RELEASES:
        raise ValueError(
            f"PEFT version {version!r}: modmatch knows the rules of PEFT 0.17.x to 0.21.x"
        )
    return minor


class Excluded:
    """PEFT's marker for a key its excludes (or ``modules_to_save``) rule out: falsy."""

    def __bool__(self) -> bool:
        return False


def modules_to_save_regex(entry: str) -> str:
    """The regex PEFT runs with ``re.match`` to keep a ``modules_to_save`` entry unadapted."""
    return rf"(^|.*\.){entry}($|\..*)"


def in_list(entries: Any, key: str) -> bool:
    """PEFT's list rule: ``key`` is an entry, or ends with ``"." + entry``."""
    return key in entries or any(key.endswith(f".{entry}") for entry in entries)


def layer_index(key: str, layers_pattern: Any, peft: tuple[int, int] = RELEASES[-1]) -> int | None:
    """The layer index PEFT ``peft`` reads from ``key``: the number after the layers pattern
    (without one, after any segment), or None where there is none.

    - Up to 0.19 the regex starts with a greedy ``.*``: the last numbered segment is read, which
      in MoE names is the expert index (huggingface/peft#3016).
    - 0.20 makes it lazy: the first numbered segment.
    - 0.21 lets the layers pattern start the key, and reads the index from a named group; before,
      it is group 1, which is the pattern's own group where the pattern has one (then ``int``
      fails on it, or on None, as PEFT does).
    """
    lead = r".*?\." if peft >= (0, 20) else r".*\."
    index = r"(?P<idx>\d+)" if peft >= (0, 21) else r"(\d+)"
    if layers_pattern is None or len(layers_pattern) == 0:
        found = re.match(rf"{lead}[^.]*\.{index}\.", key)
    else:
        patterns = [layers_pattern] if isinstance(layers_pattern, str) else layers_pattern
        lead = r"(?:^|.*?\.)" if peft >= (0, 21) else lead
        for pattern in patterns:
            found = re.match(rf"{lead}{pattern}\.{index}\.", key)
            if found is not None:
                break
    if found is None:
        return None
    if peft < (0, 21):
        return int(found.group(1))
    # A pattern with a top-level "|" can match without the index group taking part: no index.
    return None if found["idx"] is None else int(found["idx"])


def check_target_module_exists(config: Any, key: str, peft: tuple[int, int] = RELEASES[-1]) -> Any:
    """Truthy when PEFT ``peft`` adapts the module named ``key``; an :class:`Excluded` when
    ruled out."""
    excludes = getattr(config, "exclude_modules", None)
    if excludes:
        if isinstance(excludes, str):
            if re.fullmatch(excludes, key):
                return Excluded()
        elif in_list(excludes, key):
            return Excluded()
    to_save = getattr(config, "modules_to_save", None)
    if to_save and any(re.match(modules_to_save_regex(m), key) for m in to_save):
        return Excluded()
    targets: Any = config.target_modules
    if targets is None and config.target_parameters is not None:
        return False
    if isinstance(targets, str):
        return re.fullmatch(targets, key)
    if key in targets:
        return True
    found = any(key.endswith(f".{target}") for target in targets)
    layers: Any = getattr(config, "layers_to_transform", None)
    filtering = layers is not None and (len(layers) != 0 if isinstance(layers, list) else True)
    if not (found and filtering):
        return found
    index = layer_index(key, getattr(config, "layers_pattern", None), peft)
    if index is None:
        return False
    return index == layers if isinstance(layers, int) else index in layers


_SEQ_CLS_HEADS = ("classifier", "score")


def all_linear_names(model: Any, task_type: Any) -> set[str]:
    """What PEFT puts in place of ``"all-linear"``: every Linear/Conv1D but the output layer."""
    from torch import nn

    modules = list(model.named_modules())
    linear: tuple[type, ...] = (nn.Linear,)
    pytorch_utils = sys.modules.get("transformers.pytorch_utils")
    if pytorch_utils is not None:  # a model holding transformers' Conv1D has imported it
        linear += (pytorch_utils.Conv1D,)
    names = {name for name, module in modules if isinstance(module, linear)}
    modeling = sys.modules.get("transformers.modeling_utils")
    if modeling is None or not isinstance(model, modeling.PreTrainedModel):
        return names  # PEFT trims only a transformers model
    output = model.get_output_embeddings()
    heads = [output] if output is not None else []
    if output is None and str(getattr(task_type, "value", task_type)) == "SEQ_CLS":
        heads = [getattr(model, h) for h in _SEQ_CLS_HEADS if getattr(model, h, None) is not None]
        heads = heads[:1]
    for head in heads:
        names.discard(next(name for name, module in modules if module is head))
    return names
