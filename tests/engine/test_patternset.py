"""PatternSet: its API, its checks, and that RE2 giving up never becomes a wrong "no match"."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from unittest import mock

import pytest

from modmatch import FallbackWarning, ModuleMatcher, PatternError, PatternSet, reference
from modmatch.engine import sets
from modmatch.engine.patternset import _Matcher, _no_set
from modmatch.engine.sets import SetEngine
from modmatch.engine.syntax import REGEX

NAMES = [
    "model.layers.0.self_attn.q_proj",
    "model.layers.10.mlp.experts.3.gate_proj",
    "model.layers.1.mlp.experts.17.down_proj",
    "lm_head",
    "model.layers.3.mlp.gate",
    "x\u00e9.q_proj\n",
]
PATTERNS = [
    "*.q_proj",
    "*.layers.1.*",
    "lm_head",
    "*.experts.[0-9].*",
    "(a)\\1|*.gate",
    "*\\d*.gate",
]


def expected(patterns: list[str], name: str) -> tuple[int, ...]:
    return tuple(i for i, p in enumerate(patterns) if reference.wildcard_match(p, name))


pytestmark = pytest.mark.filterwarnings("ignore::modmatch.FallbackWarning")


def test_api() -> None:
    matcher = PatternSet(PATTERNS)
    assert matcher.patterns == tuple(PATTERNS)
    for name in NAMES:
        assert matcher.matches(name) == expected(PATTERNS, name)
        assert matcher.match(name) is bool(expected(PATTERNS, name))
    assert matcher.filter(iter(NAMES)) == [n for n in NAMES if expected(PATTERNS, n)]
    assert matcher.matches("model.layers.1.mlp.experts.1.gate") == (1, 3, 4, 5)
    assert PatternSet([]).matches("x") == () and PatternSet([]).filter(NAMES) == []


def test_bad_arguments_are_named() -> None:
    with pytest.raises(TypeError, match="single str"):
        PatternSet("*.q_proj")
    with pytest.raises(TypeError, match="index 1 must be a str, got NoneType"):
        PatternSet(["a", None])  # type: ignore[list-item]
    with pytest.raises(PatternError) as info:
        PatternSet(["a", "b", "[x"])
    assert (info.value.pattern, info.value.index) == ("[x", 2)
    assert "unterminated character set" in str(info.value)
    with pytest.raises(ValueError, match="cache_size"):
        PatternSet(["a"], cache_size=-1)
    with pytest.raises(TypeError, match="cache_size"):
        PatternSet(["a"], cache_size=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name must be a str"):
        PatternSet(["a"]).match(b"a")  # type: ignore[arg-type]


def test_cache_is_bounded() -> None:
    # Three patterns: a list of one or two simple ones runs on re and keeps no cache at all.
    matcher = PatternSet(["*.q_proj", "*.k_proj", "*.v_proj"], cache_size=8)
    for i in range(100):
        matcher.match(f"model.layers.{i}.q_proj")
    assert 0 < len(matcher._any) <= 8
    assert matcher.match("model.layers.0.q_proj") is True  # evicted names are recomputed


def test_value_semantics_and_pickling() -> None:
    matcher = PatternSet(PATTERNS, cache_size=100)
    for clone in (pickle.loads(pickle.dumps(matcher)), copy.deepcopy(matcher)):
        assert clone == matcher and hash(clone) == hash(matcher)
        assert [clone.matches(n) for n in NAMES] == [matcher.matches(n) for n in NAMES]
    assert matcher != PatternSet(PATTERNS[:2], cache_size=100)
    assert repr(matcher) == f"PatternSet({PATTERNS!r}, cache_size=100)"


@pytest.mark.parametrize("filed", [False, True], ids=["one union", "filed by literal"])
@pytest.mark.parametrize("max_mem", [1, 1 << 12, 1 << 16])
def test_re2_out_of_memory_never_answers_no_match(max_mem: int, filed: bool) -> None:
    # With a tiny budget RE2 refuses whole sets and single patterns: the shards shrink and the
    # rest goes to `re`, and every answer stays the reference's.
    patterns = [f"*.layers.{i}.*.experts.{j}.*" for i in range(6) for j in range(8)] + PATTERNS
    with mock.patch.object(sets, "_ONE_UNION_MAX", 0 if filed else sets._ONE_UNION_MAX):
        matcher = _Matcher(patterns, max_mem=max_mem)
    assert matcher._filed is filed
    names = [*NAMES, "model.layers.3.mlp.experts.5.up_proj", "m.layers.5.x.experts.7.y"]
    for name in names:
        assert matcher.any(name) is bool(expected(patterns, name))
        assert matcher.matches(name) == expected(patterns, name)


def test_shards_when_one_set_does_not_fit() -> None:
    patterns = [f"*.layers.{i}.*.experts.{j}.*" for i in range(10) for j in range(10)]
    engine = SetEngine(
        [(i, p.replace(".", r"\.").replace("*", ".*")) for i, p in enumerate(patterns)], 1 << 18
    )
    assert len(engine._shards[0]) > 1 and engine.rejected(b"") == ()
    assert engine.match(b"a.layers.3.b.experts.4.c") == [34]


def test_leading_wildcards_search_and_a_newline_takes_anchored_sets() -> None:
    patterns = [f"*.layers.{i}.*.experts.{j}.*" for i in range(10) for j in range(10)]
    matcher = _Matcher([*patterns, "model.*"], max_mem=1 << 18)  # small sets: several shards
    engine = matcher._sets = SetEngine(
        [(i, t.source) for i, t in matcher._translations.items()], 1 << 18
    )
    assert engine._all is None
    names = [
        "model.layers.3.b.experts.4.c",
        "x\nq.layers.3.b.experts.4.c",
        "m.layers.3.b.experts.4.c\n",
    ]
    for name in names:
        assert matcher.matches(name) == expected([*patterns, "model.*"], name), name
    assert engine._all is not None  # built for the names with a newline


def test_the_binding_s_own_set_match_agrees_with_the_public_one() -> None:
    import re2

    from modmatch.engine.sets import set_matcher

    compiled = re2.Set.MatchSet()
    for source in ("", "[^\\n]*q_proj", "model[^\\n]*", "x"):
        compiled.Add(source)
    compiled.Compile()
    texts = [b"model.q_proj", b"model", b"q_proj", b"x", b"", b"\xff"]
    fast = set_matcher(compiled)
    assert fast is not compiled.Match  # the binding's own, where google-re2 has it
    assert [fast(t) or None for t in texts] == [compiled.Match(t) for t in texts]

    class Public:  # a binding without the private object: the public call
        Match = compiled.Match

    assert set_matcher(Public()) == compiled.Match  # type: ignore[arg-type]


def test_the_binding_s_own_search_agrees_with_finditer() -> None:
    import re2

    from modmatch.engine.sets import LineEngine, _spans

    compiled = re2.compile("(?:(?m:^)[^\\n]*q[^\\n]*(?m:$)\\n)+")
    text = b"q\nq.a\nx\n\nmodel.q_proj\n\xc3\xa9q\nx\n"
    spans = list(_spans(compiled, text))
    assert spans == [found.span() for found in compiled.finditer(text)]
    assert spans == [(0, 6), (9, 26)]  # two runs: lines 0-1, then lines 4-5

    class Public:  # a binding without the private object: the public finditer
        finditer = compiled.finditer

    assert list(_spans(Public(), text)) == spans  # type: ignore[arg-type]
    engine = LineEngine()
    engine.add(["[^\\n]*q[^\\n]*"], lambda sources: f"(?m:^){sources[0]}(?m:$)")
    assert engine.lines(text[:-1]) == [0, 1, 4, 5]


def test_re2_giving_up_at_match_time_falls_back() -> None:
    matcher = _Matcher(PATTERNS)
    matcher.matches("lm_head")  # builds the sets

    class GaveUp:
        def Match(
            self, text: bytes
        ) -> None:  # what re2.Set returns when its DFA runs out of memory
            return None

    sets = matcher._sets
    assert sets is not None
    shards = sets._shards[0]
    shards[0] = (GaveUp().Match, *shards[0][1:])
    assert sets.match(b"lm_head") is None
    union = matcher._exact
    union._parts = [(GaveUp().Match, source) for _, source in union._parts]
    for name in NAMES:
        assert matcher.matches(name) == expected(PATTERNS, name)
        assert matcher.any(name) is bool(expected(PATTERNS, name))
    # Patterns one set answers: match calls that set itself, and takes the general path when
    # it gives up, in PatternSet.match and in ModuleMatcher.match's own cold path.
    plain = ["*.q_proj", "*.layers.1.*", "lm_head"]
    patterns = PatternSet(plain)
    assert patterns._matcher.set_match is not _no_set
    patterns._matcher.set_match = GaveUp().Match
    targets = ModuleMatcher(target_modules=plain)
    object.__setattr__(targets, "_set_match", GaveUp().Match)
    for engine in (patterns._matcher._exact, targets._targets.full_name_matcher._exact):
        engine._parts = [(GaveUp().Match, source) for _, source in engine._parts]
    seed = reference.ModuleMatcher(target_modules=plain)
    for name in NAMES:
        assert patterns.match(name) is bool(expected(plain, name)), name
        prefix, _, short = name.rpartition(".")
        assert targets.match(None, short, prefix) is seed.match(None, short, prefix), name


@pytest.mark.parametrize(
    ("pattern", "name"),
    [
        # The seed's `re` takes 303 s on a 58-character name.
        ("*.*.*.*.*.*.*.*.*.zzz", "a." * 29),
        # About 2x per extra character before the newlines: some 10 minutes for this name.
        ("*{3,}", "model.layers.3.self_attn.o_proj\n\n"),
        # Python's Unicode classes, on a non-ASCII name.
        ("(?:*\\w)*\\d", "\u00e9" * 40 + "x"),
    ],
)
def test_backtracking_traps_stay_on_re2(pattern: str, name: str) -> None:
    matcher = _Matcher([pattern])
    assert matcher._fallbacks == ()
    assert matcher.matches(name) == ()
    assert matcher._compiled == {}  # no `re` pattern was ever compiled, so none could backtrack
    # The same shapes, short enough for the reference to answer.
    short = name[-12:]
    assert matcher.matches(short) == expected([pattern], short)
    code = f"import modmatch; assert modmatch.PatternSet([{pattern!r}]).match({name!r}) is False"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(a)\\1", "backreference"),
        ("a(?=b)", "lookaround"),
        ("a{1001}", "repeat count"),
        ("(?:a{100}){100}", "RE2 refused it"),
    ],
)
def test_fallback_patterns_warn_or_are_refused_when_strict(pattern: str, reason: str) -> None:
    with pytest.warns(FallbackWarning, match=reason) as record:
        PatternSet(["*.q_proj", pattern])
    warning = record[0].message
    assert len(record) == 1 and isinstance(warning, FallbackWarning)
    assert (warning.pattern, warning.index) == (pattern, 1)
    with pytest.raises(PatternError, match=reason) as info:
        PatternSet(["*.q_proj", pattern], strict=True)
    assert info.value.index == 1
    PatternSet(["*.q_proj", "[0-9]+"], strict=True)  # RE2 runs these


def test_filter_indices_takes_what_filter_takes() -> None:
    names = ["model.q_proj", "lm_head", "model.k_proj"]
    patterns = PatternSet(["*.q_proj", "lm_head"])
    assert patterns.filter_indices(iter(names)) == patterns.filter_indices(names) == [0, 1]
    assert patterns.filter(iter(names)) == ["model.q_proj", "lm_head"]
    with pytest.raises(TypeError, match="not a single str"):
        patterns.filter_indices("lm_head")


def test_a_simple_regex_too_large_for_re2_goes_to_re() -> None:
    # Simple framework regexes skip RE2's trial compile only while they are short.
    huge = "." * 1_000_000
    with pytest.warns(FallbackWarning):
        matcher = PatternSet([huge, "zzz", "abc"], syntax=REGEX)
    assert matcher.match("x" * 1_000_000) is True
    assert matcher.match("zzz") is True and matcher.match("zz") is False
