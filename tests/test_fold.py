"""Folding is exact: unfolding gives back the names, and a folded line reads back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from modmatch.fold import fold, parse, unfold
from modmatch.shapes import SHAPES
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
