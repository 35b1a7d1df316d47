"""Hugging Face PEFT 0.21.2's target rules on plain Python ``re``: the oracle for :mod:`modmatch.peft`.

Restated from the behaviour of ``peft.tuners.tuners_utils.check_target_module_exists``: a str is
a regex the whole key must match, a list entry is a literal the key equals or ends with after a
dot, and the layer filter reads the first numbered segment after the layers pattern.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["Excluded", "check_target_module_exists", "layer_index", "modules_to_save_regex"]


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


def layer_index(key: str, layers_pattern: Any) -> int | None:
    """The layer index PEFT reads from ``key``: the number after the layers pattern."""
    if layers_pattern is None or len(layers_pattern) == 0:
        found = re.match(r".*?\.[^.]*\.(?P<idx>\d+)\.", key)
    else:
        patterns = [layers_pattern] if isinstance(layers_pattern, str) else layers_pattern
        for pattern in patterns:
            found = re.match(rf"(?:^|.*?\.){pattern}\.(?P<idx>\d+)\.", key)
            if found is not None:
                break
    # A pattern with a top-level "|" can match without the index group taking part: no index.
    return None if found is None or found["idx"] is None else int(found["idx"])


def check_target_module_exists(config: Any, key: str) -> Any:
    """Truthy when PEFT adapts the module named ``key``; an :class:`Excluded` when ruled out."""
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
    index = layer_index(key, getattr(config, "layers_pattern", None))
    if index is None:
        return False
    return index == layers if isinstance(layers, int) else index in layers
