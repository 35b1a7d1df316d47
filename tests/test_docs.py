"""The README's and the docs site's examples: each `$ modmatch ...` line of a console block runs,
and prints what the block shows (the timings aside)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from modmatch.cli import main
from oracles import oracle

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_BLOCK = re.compile(r"```console\n(.*?)```", re.DOTALL)
# The one line that differs from run to run: how long each phase took.
_TIMING = re.compile(r"^(selected [\d,]+ of [\d,]+ modules? in ).*$", re.MULTILINE)


def _examples() -> list[Any]:
    found = []
    for page in PAGES:
        for block in _BLOCK.findall(page.read_text(encoding="utf-8")):
            command, _, shown = block.partition("\n")
            assert command.startswith("$ modmatch "), (page.name, command)
            name = f"{page.name}: {command[:70]}"
            found.append(pytest.param(command.removeprefix("$ modmatch "), shown, id=name))
    return found


def test_the_readme_shows_each_command() -> None:
    commands = {example.values[0].split()[0] for example in _examples()}
    assert {"preview", "serve", "match"} <= commands


@pytest.mark.parametrize(("command", "shown"), _examples())
def test_an_example_prints_what_it_shows(
    command: str, shown: str, capsys: Any, monkeypatch: Any
) -> None:
    oracle("transformers")
    monkeypatch.chdir(ROOT)
    main(shlex.split(command))
    out = capsys.readouterr().out
    assert _TIMING.sub(r"\1...", out) == _TIMING.sub(r"\1...", shown)


def test_the_readme_is_a_short_front_door() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8")) <= 15_000
