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
