"""ModuleMatcher keeps every rule of the seed, and wildcard_match its results."""

from __future__ import annotations

import copy
import pickle

import pytest
from torch import nn

from modmatch import ModuleMatcher, PatternError, reference, wildcard_match

LINEAR = nn.Linear(1, 1)
RELU = nn.ReLU()


class MyLinear(nn.Linear):
    pass


def test_defaults_are_the_seeds() -> None:
    matcher = ModuleMatcher()
    assert matcher.target_modules == ["linear_qkv", "linear_proj", "linear_fc1", "linear_fc2"]
    assert matcher.exclude_modules == []
    assert matcher.match_all_linear is False
    assert matcher.is_causal_lm is False


def test_str_becomes_one_element_list() -> None:
    matcher = ModuleMatcher(target_modules="q_proj", exclude_modules="x")
    assert matcher.target_modules == ["q_proj"]
    assert matcher.exclude_modules == ["x"]


def test_validation_message_is_the_seeds() -> None:
    with pytest.raises(
        ValueError,
        match="Expected match_all_linear to be true or target_modules/exclude_modules to be non-empty",
    ):
        ModuleMatcher(target_modules=[], exclude_modules=[])
    # The seed checks `match_all_linear is False`: 0 passes, as does a tuple of targets with it.
    ModuleMatcher(target_modules=[], match_all_linear=0)
    with pytest.raises(ValueError):
        ModuleMatcher(target_modules=("q_proj",))


def test_target_by_short_name_or_full_name_pattern() -> None:
    matcher = ModuleMatcher(target_modules=["q_proj", "*.layers.0.*.linear_qkv"])
    assert matcher.match(RELU, "q_proj", "model.layers.3.self_attn") is True
    assert matcher.match(RELU, "linear_qkv", "decoder.layers.0.self_attention") is True
    assert matcher.match(RELU, "linear_qkv", "decoder.layers.1.self_attention") is None
    # A pattern is matched against the full name only: a short-name regex match is not enough.
    assert ModuleMatcher(target_modules=["q_pro."]).match(RELU, "q_proj", "model") is None


def test_no_target_matched_returns_none_not_false() -> None:
    assert ModuleMatcher().match(LINEAR, "o_proj", "model") is None


def test_causal_lm_skips_any_name_containing_lm_head() -> None:
    matcher = ModuleMatcher(target_modules=["*"], match_all_linear=True, is_causal_lm=True)
    assert matcher.match(LINEAR, "lm_head") is False
    assert matcher.match(LINEAR, "proj", "my_lm_head_block") is False
    assert matcher.match(LINEAR, "proj", "model") is True
    with pytest.raises(TypeError):  # the seed's `"lm_head" in None`
        matcher.match(LINEAR)


def test_all_linear_takes_linear_and_subclasses_then_falls_through() -> None:
    matcher = ModuleMatcher(match_all_linear=True)
    assert matcher.match(LINEAR, "anything") is True
    assert matcher.match(MyLinear(1, 1), "anything") is True
    # Not Linear: the default Megatron targets still apply.
    assert matcher.match(RELU, "linear_fc1", "decoder.layers.0.mlp") is True
    assert matcher.match(RELU, "act", "decoder.layers.0.mlp") is None


def test_exclude_branch() -> None:
    matcher = ModuleMatcher(target_modules=[], exclude_modules=["o_proj", "*.experts.*"])
    assert matcher.match(LINEAR, "q_proj", "model.layers.0.self_attn") is True
    assert matcher.match(LINEAR, "o_proj", "model.layers.0.self_attn") is False
    assert matcher.match(LINEAR, "gate_proj", "model.layers.0.mlp.experts.3") is False
    assert matcher.match(RELU, "q_proj", "model") is False
    assert matcher.match(LINEAR) is True  # no name: no exclude pattern matches None


def test_targets_with_excludes_assert_like_the_seed() -> None:
    matcher = ModuleMatcher(
        target_modules=["q_proj"], exclude_modules=["o_proj"], match_all_linear=True
    )
    assert matcher.match(LINEAR, "o_proj") is True  # all-linear decides first
    with pytest.raises(AssertionError, match="`exclude_modules` must be empty"):
        matcher.match(RELU, "o_proj")


def test_prefix_joins_only_when_truthy() -> None:
    matcher = ModuleMatcher(target_modules=["a.b"])
    assert matcher.match(RELU, "b", "a") is True
    assert matcher.match(RELU, "a.b", "") is True
    assert matcher.match(RELU, "a.b", None) is True


def test_invalid_pattern_fails_at_construction_naming_it() -> None:
    with pytest.raises(PatternError, match=r"'\*\.q_proj\(' at index 1"):
        ModuleMatcher(target_modules=["ok", "*.q_proj("])
    with pytest.raises(TypeError, match="index 0"):
        ModuleMatcher(target_modules=[3])
    with pytest.raises(TypeError, match="target_modules"):
        ModuleMatcher(target_modules={"q_proj"})


def test_immutable_hashable_picklable() -> None:
    matcher = ModuleMatcher(target_modules=["q_proj", "*.mlp.*"])
    with pytest.raises(AttributeError):
        matcher.target_modules = ["x"]  # type: ignore[misc]
    with pytest.raises(TypeError, match="read-only"):
        matcher.target_modules.append("x")
    assert matcher.target_modules == ["q_proj", "*.mlp.*"]
    patterns = ["q_proj"]
    owner = ModuleMatcher(target_modules=patterns)
    patterns.append("o_proj")  # the caller's list stays theirs
    assert owner.match(RELU, "o_proj", "m") is None
    for clone in (pickle.loads(pickle.dumps(matcher)), copy.deepcopy(matcher), copy.copy(matcher)):
        assert clone == matcher and hash(clone) == hash(matcher)
        assert clone.match(RELU, "up_proj", "model.layers.0.mlp") is True
    assert matcher != ModuleMatcher(target_modules=["q_proj"])
    assert "q_proj" in repr(matcher)


def test_wildcard_match_is_the_seeds() -> None:
    assert (
        wildcard_match("*.layers.0.*.linear_qkv", "decoder.layers.0.self_attention.linear_qkv")
        is True
    )
    assert (
        wildcard_match("*.layers.0.*.linear_qkv", "decoder.layers.1.self_attention.linear_qkv")
        is False
    )
    assert wildcard_match("*", None) is None
    assert reference.wildcard_match("*", None) is None
    with pytest.raises(PatternError):
        wildcard_match("(", "x")
    with pytest.raises(TypeError):
        wildcard_match("x", b"x")  # type: ignore[arg-type]


def test_warm_answers_are_the_cold_ones_by_identity() -> None:
    matcher = ModuleMatcher(target_modules=["q_proj", "*.mlp.*"])
    linear = nn.Linear(1, 1, device="meta")
    calls = [("q_proj", "model.layers.0"), ("k_proj", "a"), ("up_proj", "x.mlp"), ("o", None)]
    cold = [matcher.match(linear, name, prefix) for name, prefix in calls]
    assert cold == [True, None, True, None]
    for (name, prefix), first in zip(calls, cold, strict=True):
        assert matcher.match(nn.ReLU(), name, prefix) is first  # the module cannot matter here
        assert matcher.match(linear, name, prefix) is reference.ModuleMatcher(
            target_modules=["q_proj", "*.mlp.*"]
        ).match(linear, name, prefix)


def test_select_asks_a_subclass_s_own_match() -> None:
    # select decides in one pass only for ModuleMatcher's own match; a subclass's is asked.
    class EveryModule(ModuleMatcher):
        def match(self, m: object, name: str | None = None, prefix: str | None = None) -> bool:
            return True

    model = nn.Sequential(nn.Linear(1, 1), nn.ReLU())
    assert [name for name, _ in EveryModule(target_modules=["x"]).select(model)] == ["", "0", "1"]
    assert ModuleMatcher(target_modules=["x"]).select(model) == []
