"""Folding is exact: unfolding gives back the names, and a folded line reads back."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from modmatch.fold import fold, parse, to_regex, unfold
from modmatch.inputs.shapes import SHAPES
from strategies import NAMES


def test_kimi_k2_folds_to_few_lines() -> None:
    names = [name for name, _ in SHAPES["kimi-k2"].modules()]
    lines = fold(names)
    assert sorted(unfold(lines)) == sorted(names)
    assert sum(line.count for line in lines) == len(names)
    assert len(lines) < 50
    text = [str(line) for line in lines]
    assert "model.layers.{1..60}.mlp.experts.{0..383}.gate_proj" in text


def test_gaps_are_shown() -> None:
    names = [f"m.layers.{i}.q" for i in (0, 2, 4, 5, 6, 7, 8, 9)]
    assert [str(line) for line in fold(names)] == ["m.layers.{0,2,4..9}.q"]


_DIGITS = st.sampled_from(["0", "1", "2", "3", "10", "017", "00", "5"])
_SEGMENTS = st.one_of(
    _DIGITS, st.sampled_from(["a", "{", "}", "\\", "", "x y", "{1}", "1..2", "\n"])
)


@given(
    st.lists(
        st.one_of(NAMES, st.lists(_SEGMENTS, min_size=1, max_size=4).map(".".join)), max_size=40
    )
)
def test_unfold_gives_back_exactly_the_names(names: list[str]) -> None:
    lines = fold(names)
    assert sorted(unfold(lines)) == sorted(set(names))
    assert [parse(str(line)) for line in lines] == lines


_NAME_SETS = st.lists(
    st.one_of(NAMES, st.lists(_SEGMENTS, min_size=1, max_size=4).map(".".join)),
    min_size=1,
    max_size=40,
)


@given(_NAME_SETS, _NAME_SETS)
def test_to_regex_fullmatches_exactly_the_names(names: list[str], others: list[str]) -> None:
    compiled = re.compile(to_regex(fold(names)))
    wanted = set(names)
    # Near misses: each name with a number changed or padded, and unrelated names.
    near = [re.sub(r"[0-9]+", lambda m: str(int(m[0]) + 1), n) for n in names]
    near += ["0" + n for n in names] + [n + "0" for n in names] + others
    for name in [*names, *near]:
        assert bool(compiled.fullmatch(name)) == (name in wanted), name
