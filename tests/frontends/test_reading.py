"""Both front-ends' readers: a file that is not a YAML mapping, and no PyYAML."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from modmatch.frontends import axolotl, llamafactory


@pytest.mark.parametrize("front_end", [axolotl, llamafactory])
def test_a_file_that_is_not_a_mapping_is_refused_by_name(
    front_end: ModuleType, tmp_path: Path
) -> None:
    for text in ("- lora_r: 8\n", "", "lora\n"):
        path = tmp_path / "config.yaml"
        path.write_text(text)
        with pytest.raises(ValueError, match=re.escape(str(path))):
            front_end.read(path)


@pytest.mark.parametrize("front_end", [axolotl, llamafactory])
def test_without_pyyaml_the_hint_names_the_extra(
    front_end: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml fails
    with pytest.raises(ImportError, match=re.escape("pip install 'modmatch[frontends]'")):
        front_end.read(tmp_path / "config.yaml")
