"""An engine's own code where it is installed: its runner module, found only for the release
whose internals the runner knows, and the model folder the engine reads a config from."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import shutil
import sys
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from types import ModuleType

__all__ = ["model_folder", "runner"]


def runner(package: str, title: str, restated: str, module: str) -> ModuleType | None:
    """The runner ``module`` for the installed ``package``, or None where it is not installed.
    A release other than ``restated``'s minor one, or one that does not import, is said on
    stderr (the built-in rules then answer). Importing the runner imports the engine."""
    if importlib.util.find_spec(package) is None:
        return None
    series = restated.rpartition(".")[0] + "."
    try:
        release: str | None = metadata.version(package)
    except metadata.PackageNotFoundError:  # a source tree or a stand-in: no metadata to read
        release = None
    if release is not None and not release.startswith(series):
        _not_used(title, restated, f"{title} {release} is installed")
        return None
    try:
        found = importlib.import_module(module)
    except Exception as error:  # an import can fail by any exception type
        if release is not None:  # else a stand-in of that name, not a release (CI's stubs)
            _not_used(title, restated, f"{title} is installed but does not import ({error})")
        return None
    if not str(found.VERSION).startswith(series):
        _not_used(title, restated, f"{title} {found.VERSION} is found")
        return None
    return found


def _not_used(title: str, restated: str, reason: str) -> None:
    print(
        f"modmatch: warning: {reason}; modmatch runs the loading code of "
        f"{restated.rpartition('.')[0]} only: the built-in rules of {title} {restated} answer",
        file=sys.stderr,
    )


@contextlib.contextmanager
def model_folder(model_path: str) -> Iterator[str]:
    """The folder an engine reads the model's config.json from: the one given, the one
    holding a config.json given, or a temporary one holding a config file of another name as
    that."""
    path = Path(model_path)
    if not path.is_file():
        yield model_path
    elif path.name == "config.json":
        yield str(path.parent)
    else:
        with tempfile.TemporaryDirectory() as folder:
            shutil.copy(path, Path(folder) / "config.json")
            yield folder
