"""The model a preview runs on: found from what the user names (a built-in shape, a config.json,
a model folder, a Hub id in the local cache, a names file) without heavy imports, then read."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .model_class import build, model_classes
from .shapes import SHAPES, Shape

__all__ = [
    "DEFAULT_MODEL",
    "LINEAR_CLASSES",
    "Model",
    "Progress",
    "Source",
    "find",
    "load",
    "read_json",
]

DEFAULT_MODEL = "deepseek-v3"
# The parameters transformers 5 stacks a layer's experts into.
_FUSED = ("gate_up_proj", "down_proj")
# The class names counted as nn.Linear in a names file: torch's nn.Linear and its subclasses
# in torch and bitsandbytes. Megatron-Core's and Transformer Engine's parallel linear layers
# are not nn.Linear subclasses, so the seed's all-linear rule does not take them either.
LINEAR_CLASSES = frozenset(
    {
        "Linear",
        "NonDynamicallyQuantizableLinear",
        "Linear8bitLt",
        "Linear4bit",
        "LinearFP4",
        "LinearNF4",
    }
)
_NAMES_HINT = "list the module names with --names instead"


@dataclass(frozen=True)
class Model:
    """Module names in ``named_modules()`` order, which are Linear, and the output layer."""

    modules: list[tuple[str, bool]]
    # Where only names are known, the module PEFT's "all-linear" leaves out is taken to be this.
    output_embedding: str | None = "lm_head"
    # The model itself, where it was built from a config.
    module: Any = None
    # Whether the Linear flags are known: a names file without classes does not say.
    typed: bool = True
    # Modules holding a layer's experts fused as 3-D parameters (transformers 5), with the
    # names of those parameters.
    fused_experts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The Hugging Face model type, where the model was built from its config.
    model_type: str | None = None


@dataclass(frozen=True)
class Source:
    """Where the model comes from: a built-in ``shape``, a ``names`` file (or - for stdin), or
    a Hugging Face ``config`` file; ``label`` is how the output names it."""

    kind: str
    label: str
    path: str | None = None


class Progress:
    """How loading shows its progress: silently here; the command shows it on a terminal."""

    def ticking(self, label: str) -> AbstractContextManager[None]:
        """Around a step of unknown length."""
        return contextlib.nullcontext()

    def counting(self, items: Iterable[Any], label: str) -> Iterable[Any]:
        """Around a stream of modules."""
        return items


def find(model: str | None = None, names: str | None = None, flag: str = "--model") -> Source:
    """The model named by ``model`` (a built-in shape, a config.json, a folder holding one, or
    a Hub id in the local Hugging Face cache) or by ``names``; checks paths, imports nothing
    heavy, and downloads nothing; errors name ``flag``."""
    if names is not None:
        if model is not None:
            raise InputError("--model and --names both name the model: give one")
        if names != "-" and not Path(names).is_file():
            raise InputError(f"--names {names}: no such file")
        return Source("names", names, names)
    if model is None:
        return Source("shape", DEFAULT_MODEL)
    path = Path(model)
    if path.exists():
        config = path / "config.json" if path.is_dir() else path
        if not config.is_file():
            raise InputError(f"{flag} {model}: the folder holds no config.json")
        return Source("config", model, str(config))
    if model in SHAPES:
        return Source("shape", model)
    cached = _cached(model)
    if cached is not None:
        return Source("config", model, str(cached))
    raise InputError(
        f"{flag} {model}: no such file or folder, no such model in the Hugging Face cache "
        f"({_hub_cache()}: modmatch downloads nothing), and no such built-in shape "
        f"({', '.join(sorted(SHAPES))})"
    )


def _hub_cache() -> Path:
    """The Hugging Face hub cache folder, as huggingface_hub finds it."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME")
    if home:
        return Path(home) / "hub"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "huggingface" / "hub"


def _cached(repo_id: str) -> Path | None:
    """A Hub model's cached config.json: the snapshot ``refs/main`` names, else any snapshot."""
    if repo_id.count("/") > 1 or not repo_id.strip("/"):
        return None
    folder = _hub_cache() / ("models--" + repo_id.replace("/", "--"))
    ref = folder / "refs" / "main"
    if ref.is_file():
        config = folder / "snapshots" / ref.read_text().strip() / "config.json"
        if config.is_file():
            return config
    return next(iter(sorted(folder.glob("snapshots/*/config.json"))), None)


def load(
    source: Source,
    task_type: str | None = None,
    progress: Progress | None = None,
    builder: Callable[[Any], Any] | None = None,
) -> Model:
    """The model's modules: (name, is Linear) each, and its output layer. A config is built on
    the meta device by ``builder`` where it builds one (a front-end's own implementation), else
    as the class the trainer builds (see :mod:`.model_class`)."""
    progress = progress or Progress()
    if source.kind == "names":
        return _from_names(source.label, progress)
    if source.kind == "config":
        assert source.path is not None
        return _from_config(Path(source.path), task_type, progress, builder)
    shape = SHAPES[source.label]
    modules = list(progress.counting(shape.modules(), "building the model"))
    fused: dict[str, tuple[str, ...]] = {}
    if isinstance(shape, Shape) and shape.fused:
        fused = {name: _FUSED for name, _ in modules if name.endswith(f".{shape.experts_path}")}
    return Model(modules, fused_experts=fused)


def _from_names(path: str, progress: Progress) -> Model:
    read = list(progress.counting(_read_names(path), "reading names"))
    if not read:
        raise InputError(f"no module names in {path}")
    modules = [(name, bool(is_linear)) for name, is_linear in read]
    known = {name for name, _ in modules}
    # A file of parameter names shows fused experts by their stacked projections.
    fused = {
        holder: tuple(p for p in _FUSED if f"{holder}.{p}" in known)
        for name in known
        if name.endswith(".gate_up_proj")
        for holder in [name.rpartition(".")[0]]
    }
    typed = any(is_linear is not None for _, is_linear in read)
    return Model(modules, typed=typed, fused_experts=fused)


def _read_names(path: str) -> Iterator[tuple[str, bool | None]]:
    """``(name, is Linear)`` per non-blank line; is Linear is None where no class is given."""
    try:
        raw = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from error
    # One decoding for files and stdin; utf-8-sig drops the byte-order mark some editors write.
    stream = io.TextIOWrapper(raw, encoding="utf-8-sig", newline=None)
    try:
        with stream:
            for line in stream:
                name, tab, class_name = line.rstrip("\n").partition("\t")
                if not name.strip():
                    continue
                yield name, (class_name.strip() in LINEAR_CLASSES) if tab else None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read {path}: {error}") from error


def read_json(path: str | Path, in_folder: str) -> tuple[Path, Any]:
    """A JSON file, or the file named ``in_folder`` where ``path`` is a folder, with its path."""
    file = Path(path)
    if file.is_dir():
        file = file / in_folder
    try:
        return file, json.loads(file.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(f"cannot read {file}: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise InputError(
            f"cannot read {file}: not UTF-8 text (byte {error.object[error.start]:#04x} at "
            f"offset {error.start:,})"
        ) from error
    except ValueError as error:
        raise InputError(f"{file} is not JSON: {error}") from error


def _from_config(
    file: Path, task_type: str | None, progress: Progress, builder: Callable[[Any], Any] | None
) -> Model:
    try:
        import transformers
    except ImportError as error:
        raise InputError("a model config needs transformers: pip install 'modmatch[hf]'") from error
    import torch

    file, settings = read_json(file, "config.json")
    if not isinstance(settings, dict) or "model_type" not in settings:
        raise InputError(
            f"{file} is not a Hugging Face model config: it has no model_type "
            f"(a remote-code model?): {_NAMES_HINT}"
        )
    if settings["model_type"] not in transformers.CONFIG_MAPPING:
        raise InputError(
            f"{file}: transformers {transformers.__version__} has no model type "
            f"{settings['model_type']!r}: {_NAMES_HINT}"
        )
    try:
        # from_pretrained reads the file as transformers wrote it (it encodes infinities).
        config = transformers.AutoConfig.from_pretrained(str(file))
        classes = model_classes(transformers, config, task_type)
        with progress.ticking(f"building the model from {file}"), torch.device("meta"):
            model = (builder(config) if builder else None) or build(classes, config)
    except Exception as error:  # transformers reports a bad field by several exception types
        reason = " ".join(line.strip() for line in str(error).splitlines())
        raise InputError(
            f"cannot build a model from {file}: {_cut(reason)}; {_NAMES_HINT}"
        ) from error
    named = list(progress.counting(model.named_modules(), "walking the model"))
    output = model.get_output_embeddings()
    fused = {
        name: stacked
        for name, module in named
        if (stacked := tuple(p for p, v in module.named_parameters(recurse=False) if v.dim() == 3))
    }
    return Model(
        [(name, isinstance(module, torch.nn.Linear)) for name, module in named],
        next((name for name, module in named if module is output), None),
        model,
        fused_experts=fused,
        model_type=settings["model_type"],
    )


_SHOWN = 300


def _cut(text: str) -> str:
    """A long text (an error) cut to its start and end, with its length."""
    if len(text) <= _SHOWN:
        return text
    return f"{text[: _SHOWN * 2 // 3]} ... {text[-_SHOWN // 6 :]} ({len(text):,} characters)"
