"""The config a preview reads: a PEFT ``adapter_config.json`` (or its folder) or a front-end's
YAML, its kind detected from its content; ``--as`` forces a kind, and a file handed to the wrong
kind is named as what it is."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..frontends import FrontEnd, front_ends
from .models import read_json

__all__ = ["PEFT", "Config", "kinds", "read_config"]

PEFT = "peft"
_TITLES = {PEFT: "PEFT adapter config"}


def kinds() -> tuple[str, ...]:
    """The config kinds: PEFT's own, then each registered front-end's."""
    return (PEFT, *front_ends())


@dataclass(frozen=True)
class Config:
    """A config as its kind reads it: ``settings`` are the adapter config's fields, or the
    front-end's settings (its LoraConfig is built once the model is known)."""

    kind: str
    path: Path
    settings: Mapping[str, Any]

    @property
    def front_end(self) -> FrontEnd | None:
        return front_ends().get(self.kind)

    def base_model(self) -> str | None:
        """The model the config names: PEFT's ``base_model_name_or_path``, or the front-end's."""
        if self.front_end is not None:
            return self.front_end.base_model(self.settings)
        value = self.settings.get("base_model_name_or_path")
        return value if isinstance(value, str) and value else None


def _title(kind: str) -> str:
    found = front_ends().get(kind)
    if found is None:
        return _TITLES[kind]
    name = " ".join(word for word in found.TITLE.split() if not word[0].isdigit())
    return f"{name} config"


def read_config(path: str, kind: str | None = None) -> Config:
    """The config at ``path`` (a file, or a folder holding ``adapter_config.json``), of
    ``kind`` where given, else of the kind its content shows; InputError naming the path."""
    if kind is not None and kind not in kinds():
        raise InputError(f"--as {kind}: not a config kind ({', '.join(kinds())})")
    file = Path(path)
    if not file.exists():
        raise InputError(f"{path}: no such file or folder")
    found = _found(file, kind)
    if kind is not None and kind != found:
        raise InputError(f"{path} is a {_title(found)}, not a {_title(kind)}: drop --as {kind}")
    if found == PEFT:
        return _peft_config(path)
    front_end = front_ends()[found]
    try:
        settings = front_end.read(file)
    except ImportError as error:
        raise InputError(
            f"{_title(found)}s need PyYAML: pip install 'modmatch[frontends]'"
        ) from error
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from error
    except ValueError as error:
        raise InputError(" ".join(str(error).split())) from error
    return Config(found, file, settings)


def _found(file: Path, kind: str | None) -> str:
    """The config's kind as its content shows it. A front-end named by ``kind`` may read files
    detection cannot place (ms-swift's JSON or shell scripts): those are its to read."""
    if kind is None or kind == PEFT:
        return _detected(file) if _yaml_named(file) else PEFT
    if not _yaml_named(file):
        return PEFT if file.is_dir() or _holds_peft_type(file) else kind
    try:
        return _detected(file)
    except InputError:  # not a YAML mapping the detection can place
        return kind


def _holds_peft_type(file: Path) -> bool:
    """Whether a JSON file is a saved PEFT config (PEFT writes peft_type into each)."""
    try:
        settings = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True  # PEFT's reading names what is wrong with it
    return not isinstance(settings, dict) or "peft_type" in settings


def _yaml_named(file: Path) -> bool:
    """Whether the file is to be read as YAML: named so, or neither a folder nor JSON."""
    if file.is_dir() or file.suffix.lower() == ".json":
        return False
    if file.suffix.lower() in (".yml", ".yaml"):
        return True
    try:
        json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # not JSON (nor UTF-8): YAML or nothing
        return True
    return False


def _detected(file: Path) -> str:
    """The front-end whose settings a YAML file holds."""
    try:
        import yaml
    except ImportError as error:
        raise InputError(
            f"{file}: YAML configs need PyYAML: pip install 'modmatch[frontends]'"
        ) from error
    try:
        settings = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read {file}: {error}") from error
    except yaml.YAMLError as error:
        raise InputError(f"{file} is not valid YAML: {' '.join(str(error).split())}") from error
    if not isinstance(settings, dict):
        raise InputError(f"{file}: a config is a YAML mapping, not {type(settings).__name__}")
    scores = {name: len(end.KEYS & settings.keys()) for name, end in front_ends().items()}
    best = max(scores.values())
    found = [name for name, score in scores.items() if score == best]
    if best == 0 or len(found) > 1:
        keys = "; ".join(
            f"{name}: {', '.join(sorted(end.KEYS))}" for name, end in front_ends().items()
        )
        raise InputError(
            f"{file}: cannot tell which front-end's config this is ({keys}): give --as"
        )
    return found[0]


def _peft_config(path: str) -> Config:
    file, settings = read_json(path, "adapter_config.json")
    if not isinstance(settings, dict):
        raise InputError(f"{file} is not a PEFT config: expected a JSON object")
    kind = settings.get("peft_type", "LORA")
    if kind != "LORA":
        raise InputError(
            f"{file}: peft_type {kind!r}: modmatch previews LoRA configs (peft_type 'LORA') only"
        )
    return Config(PEFT, file, settings)
