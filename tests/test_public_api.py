"""The public surface: exact names, typed, and no torch import on `import modmatch`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
        "exact_target_modules",
    },
    "modmatch.peftpreview": {"Preview", "Refused", "preview"},
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
        "print(sorted(m for m in ('torch', 'peft', 'nemo_automodel', 'megatron', 'transformers') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
