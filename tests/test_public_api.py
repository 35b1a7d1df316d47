"""The public surface: exact names, typed, and no torch import on `import modmatch`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import modmatch


def test_all_is_sorted_and_exact() -> None:
    assert modmatch.__all__ == sorted(modmatch.__all__)
    assert set(modmatch.__all__) == {
        "Explanation",
        "FallbackWarning",
        "ModuleMatcher",
        "PatternError",
        "PatternSet",
        "Rule",
        "reference",
        "wildcard_match",
    }
    for name in modmatch.__all__:
        assert getattr(modmatch, name) is not None


def test_typed() -> None:
    assert (Path(modmatch.__file__).parent / "py.typed").exists()


def test_import_does_not_import_torch() -> None:
    code = "import sys, modmatch; modmatch.PatternSet(['*.q_proj']).match('a.q_proj'); print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


FRAMEWORK_MODULES = {
    "modmatch.automodel": {"ModuleMatcher", "wildcard_match"},
    "modmatch.megatron_bridge": {"ModuleMatcher", "wildcard_match"},
    "modmatch.peft": {
        "Excluded",
        "PeftMatcher",
        "check_target_module_exists",
        "default_targets",
        "exact_target_modules",
        "installed_is",
        "installed_version",
        "rules_version",
    },
    "modmatch.preview.peft": {"NothingMatched", "Preview", "Refused", "preview", "rewritten"},
    "modmatch.serving.adapter": {"Held", "SavedAdapter", "read", "split"},
    "modmatch.serving.settings": {"Settings"},
    "modmatch.serving.installed": {"model_folder", "runner"},
    "modmatch.serving.shapes": {
        "Sizes",
        "mismatched",
        "resizing",
        "served_sizes",
        "trained_sizes",
    },
    "modmatch.serving.sglang": {"FLAGS", "MAX_LORA_RANKS", "NAME", "TITLE", "check", "installed"},
    "modmatch.serving.verdict": {"Verdict", "ignored_settings", "loaded"},
    "modmatch.serving.vllm": {
        "FLAGS",
        "MAX_LORA_RANKS",
        "NAME",
        "TITLE",
        "Verdict",
        "check",
        "installed",
    },
}


def test_framework_modules_surface() -> None:
    import importlib

    for name, expected in FRAMEWORK_MODULES.items():
        module = importlib.import_module(name)
        assert module.__all__ == sorted(module.__all__) and set(module.__all__) == expected, name


def test_framework_modules_import_neither_torch_nor_the_frameworks() -> None:
    imports = "; ".join(f"import {name}" for name in FRAMEWORK_MODULES)
    code = (
        f"import sys; {imports}; "
        "print(sorted(m for m in ('torch', 'peft', 'nemo_automodel', 'megatron', 'transformers', 'vllm') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# The layers, lowest first: a module may import from its own layer's package or below, never above.
LAYERS = [
    {"errors", "fold", "reference"},
    {"engine"},
    {"matcher", "automodel", "megatron_bridge", "peft"},
    {"frontends"},
    {"serving"},
    {"inputs"},
    {"preview"},
    {"cli"},
    {"__init__", "__main__"},
]


def _layer(part: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def _imported_parts(path: Path, package: list[str]) -> set[str]:
    """The top-level parts of modmatch that `path` imports, relative imports resolved."""
    import ast

    parts = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)] + (node.module or "").split(".")
            base = [segment for segment in base if segment]
            if base:
                parts.add(base[0])
            else:  # `from .. import x`: a module of the root, or a name its __init__ defines
                known = set().union(*LAYERS)
                parts.update(a.name if a.name in known else "__init__" for a in node.names)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = (
                [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            )
            parts.update(n.split(".")[1] for n in names if n and n.startswith("modmatch."))
    return parts


def test_no_import_runs_upward() -> None:
    root = Path(modmatch.__file__).parent
    for path in root.rglob("*.py"):
        relative = path.relative_to(root).with_suffix("").parts
        package = list(relative[:-1])
        own = relative[0]
        for part in _imported_parts(path, package):
            assert _layer(part) <= _layer(own), f"{'/'.join(relative)} imports {part} from above"


# The other modules the README documents, at the paths it gives (see its changelog for moves).
DOCUMENTED = {
    "modmatch.engine.syntax": {"AUTOMODEL", "MODULES_TO_SAVE", "REGEX", "SEED"},
    "modmatch.fold": {"fold", "parse", "unfold"},
    "modmatch.preview.report": {"report", "Report", "UnmatchedPatternError"},
    "modmatch.preview.peft": {"preview", "Refused"},
    "modmatch.preview": {"Failed", "Request", "Result", "run"},
    "modmatch.frontends": {"FrontEnd", "front_ends"},
    "modmatch.serving": {"Engine", "Settings", "Verdict", "engines"},
}
MOVED_AWAY = [
    "modmatch.syntax",
    "modmatch.peftpreview",
    "modmatch.report",
    "modmatch.preview.cli",
    "modmatch.preview.shapes",
]


def test_documented_paths() -> None:
    import importlib

    for name, expected in DOCUMENTED.items():
        assert expected <= set(importlib.import_module(name).__all__), name
    for name in MOVED_AWAY:
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(name)
