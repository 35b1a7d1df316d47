"""Per-pattern counts, unmatched patterns and suggestions."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from modmatch import ModuleMatcher, reference
from modmatch.inputs.shapes import SHAPES
from modmatch.preview.report import UnmatchedPatternError, UnmatchedPatternWarning, report
from strategies import NAMES, PATTERNS

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::modmatch.FallbackWarning"),
    pytest.mark.filterwarnings("ignore::modmatch.preview.report.UnmatchedPatternWarning"),
]
MEGATRON = [name for name, _ in SHAPES["megatron-gpt"].modules()]


def test_typo_is_reported_with_a_suggestion() -> None:
    with pytest.warns(UnmatchedPatternWarning, match="'linear_fc1x' matched nothing.*linear_fc1"):
        result = report(["linear_qkv", "linear_fc1x"], MEGATRON)
    assert result.unmatched == ("linear_fc1x",)
    assert result.patterns[0].matched == 24
    assert "linear_fc1" in result.patterns[1].suggestions
    with pytest.raises(UnmatchedPatternError, match="linear_fc1x"):
        report(["linear_qkv", "linear_fc1x"], MEGATRON, strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report(["linear_qkv"], MEGATRON, strict=True)  # nothing unmatched: no warning


@given(st.lists(PATTERNS, min_size=1, max_size=5), st.lists(NAMES, max_size=8))
def test_counts_are_what_a_target_selects(patterns: list[str], names: list[str]) -> None:
    try:
        result = report(patterns, names)
    except Exception:
        return  # invalid patterns: PatternSet's own property covers them
    for count in result.patterns:
        assert count.matched == _selected_by(count.pattern, names)
        # The same decision as a one-pattern ModuleMatcher on a non-Linear module, for names
        # the seed's `prefix.name` join rebuilds (".x" splits into "" and "x", joined as "x").
        matcher = ModuleMatcher(target_modules=[count.pattern])
        for name in names:
            prefix, _, short = name.rpartition(".")
            if (f"{prefix}.{short}" if prefix else short) == name:
                decided = matcher.match(nn.ReLU(), short, prefix) is True
                assert decided is (
                    name.rpartition(".")[2] == count.pattern
                    or bool(reference.wildcard_match(count.pattern, name))
                )


@given(st.lists(NAMES, min_size=1, max_size=8), st.data())
def test_counts_of_the_names_own_segments(names: list[str], data: st.DataObject) -> None:
    # Patterns equal to the names' own segments or whole names (any characters): the one-pass
    # search for the names some pattern selects must find those the equality rule selects.
    own = [part for name in names for part in (name, name.rpartition(".")[2])]
    patterns = data.draw(st.lists(st.sampled_from(own), min_size=1, max_size=4))
    try:
        result = report(patterns, names)
    except Exception:
        return  # a segment that is not a valid pattern
    for count in result.patterns:
        assert count.matched == _selected_by(count.pattern, names)


def _selected_by(pattern: str, names: list[str]) -> int:
    """How many names the pattern selects as a target: by last segment, or matching it whole."""
    return sum(
        1
        for name in names
        if name.rpartition(".")[2] == pattern or reference.wildcard_match(pattern, name)
    )


def test_select_walks_named_modules_in_order() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU(), nn.Linear(2, 2)))
    matcher = ModuleMatcher(target_modules=[], match_all_linear=True)
    assert [name for name, _ in matcher.select(model)] == ["0", "1.1"]
    by_pattern = ModuleMatcher(target_modules=["1.*"])
    assert [name for name, _ in by_pattern.select(model)] == ["1.0", "1.1"]
