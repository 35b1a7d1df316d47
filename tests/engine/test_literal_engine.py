"""Patterns filed by the literal each requires (the engine for large mixed lists) answer exactly.

Large lists choose this engine by themselves; here it is forced on small generated lists too
(``_ONE_UNION_MAX`` at 0), so Hypothesis reaches every path, including RE2's search for the
literals giving up.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
import re2
from hypothesis import example, given
from hypothesis import strategies as st

from modmatch import PatternSet
from modmatch.engine import sets
from modmatch.engine.syntax import AUTOMODEL, REGEX, SEED, Syntax
from modmatch.engine.translate import parse, translate, translate_simple
from modmatch.inputs.shapes import SHAPES
from strategies import AUTOMODEL_PATTERNS, NAMES, PATTERNS, PEFT_REGEXES, compiles, near_names

pytestmark = [
    pytest.mark.filterwarnings("ignore::modmatch.FallbackWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def expected(syntax: Syntax, pattern: str, name: str) -> bool:
    """The framework's own reading: its regex, run with re.match or re.fullmatch."""
    run = re.fullmatch if syntax.fullmatch else re.match
    return run(syntax.regex(pattern), name) is not None


@contextmanager
def filed_by_literal() -> Iterator[None]:
    with mock.patch.object(sets, "_ONE_UNION_MAX", 0):
        yield


def valid(syntax: Syntax, pattern: str) -> bool:
    try:
        re.compile(syntax.regex(pattern))
    except (re.error, OverflowError, RecursionError):
        return False
    return compiles(pattern) if syntax is SEED else True


SYNTAX_PATTERNS = st.one_of(
    st.tuples(st.just(SEED), st.lists(st.one_of(PATTERNS, AUTOMODEL_PATTERNS), max_size=8)),
    st.tuples(st.just(AUTOMODEL), st.lists(AUTOMODEL_PATTERNS, max_size=8)),
    st.tuples(st.just(REGEX), st.lists(PEFT_REGEXES, max_size=8)),
)


def assert_answers(
    matcher: PatternSet, syntax: Syntax, patterns: list[str], names: list[str]
) -> None:
    """``match``, ``matches`` and ``filter`` answer as the framework, name by name."""
    for name in names:
        want = tuple(i for i, p in enumerate(patterns) if expected(syntax, p, name))
        assert matcher.match(name) is bool(want), name
        assert matcher.matches(name) == want, name
    assert matcher.filter(names) == [
        n for n in names if any(expected(syntax, p, n) for p in patterns)
    ]


def names_for(patterns: list[str]) -> st.SearchStrategy[list[str]]:
    """Arbitrary names, and names made from the patterns themselves, so that many match."""
    return st.lists(st.one_of(NAMES, *(near_names(p) for p in patterns)), max_size=6)


@given(SYNTAX_PATTERNS, st.data(), st.randoms(use_true_random=False))
def test_filed_by_literal_answers_as_the_framework(
    syntax_patterns: tuple[Syntax, list[str]], data: st.DataObject, rnd: Any
) -> None:
    syntax, patterns = syntax_patterns
    patterns = [p for p in patterns if valid(syntax, p)]
    rnd.shuffle(patterns)  # nothing may depend on the order of the literals or their unions
    names = data.draw(names_for(patterns))
    with filed_by_literal():
        matcher = PatternSet(patterns, syntax=syntax)
    assert_answers(matcher, syntax, patterns, names)


def test_large_mixed_lists_are_filed_by_literal() -> None:
    names = [name for name, _ in SHAPES["deepseek-v3"].modules()]
    rnd = random.Random(17)
    shapes = [
        "*.layers.{i}.*.{s}",
        "*.experts.{e}.*_proj",
        "model.layers.{i}.mlp.experts.{e}.*",
        "*.{s}",
        "*{s}*",
        "model.layers.{i}.mlp.*.{e}.*",
    ]
    segments = sorted({name.rpartition(".")[2] for name in names} - {""})
    patterns = sorted(
        {
            rnd.choice(shapes).format(
                i=rnd.randrange(61), e=rnd.randrange(256), s=rnd.choice(segments)
            )
            for _ in range(600)
        }
        | set(rnd.sample(names, 100))
    )
    matcher = PatternSet(patterns)
    assert isinstance(matcher._matcher._exact, sets.LiteralEngine)
    compiled = [re.compile(SEED.regex(p)) for p in patterns]
    sample = names[::37]
    want = [n for n in sample if any(c.match(n) for c in compiled)]
    assert matcher.filter(sample) == want
    assert [n for n in sample if matcher.match(n)] == want


@contextmanager
def literal_search_giving_up() -> Iterator[None]:
    """Every literal search built meanwhile answers as RE2 does when its DFA runs out of memory:
    no match at all, not even the sentinel."""
    init = sets.ByLiteral.__init__

    def giving_up(self: sets.ByLiteral[Any], *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self._search = lambda text: []

    with filed_by_literal(), mock.patch.object(sets.ByLiteral, "__init__", giving_up):
        yield


@given(SYNTAX_PATTERNS, st.data())
def test_literal_search_giving_up_is_never_a_wrong_answer(
    syntax_patterns: tuple[Syntax, list[str]], data: st.DataObject
) -> None:
    syntax, patterns = syntax_patterns
    patterns = [p for p in patterns if valid(syntax, p)]
    names = data.draw(names_for(patterns))
    with literal_search_giving_up():
        assert_answers(PatternSet(patterns, syntax=syntax), syntax, patterns, names)


CASES = [
    (SEED, ["*.q_proj", "*.layers.1.*", "model.*"]),
    (AUTOMODEL, ["*.q_proj", "*.layers.1.*", "model.*", "[ab]lm_head"]),
    # Not simple: their literals come from Python's parse.
    (REGEX, [r"(?:x|y)\.q_proj", r"[a-z]+\.layers\.1\..*", "(model|x)_head"]),
]
CASE_NAMES = ["model.layers.1.q_proj", "x.q_proj", "a.layers.1.b", "alm_head", "model_head", "a.b"]


@pytest.mark.parametrize(("syntax", "patterns"), CASES)
def test_each_literal_finds_its_patterns(syntax: Syntax, patterns: list[str]) -> None:
    with filed_by_literal():
        matcher = PatternSet(patterns, syntax=syntax)
    assert isinstance(matcher._matcher._exact, sets.LiteralEngine)
    assert_answers(matcher, syntax, patterns, CASE_NAMES)
    assert isinstance(matcher._matcher._sets, sets.LiteralSets)


@pytest.mark.parametrize(("syntax", "patterns"), CASES)
def test_literal_search_giving_up_on_known_cases(syntax: Syntax, patterns: list[str]) -> None:
    with literal_search_giving_up():
        assert_answers(PatternSet(patterns, syntax=syntax), syntax, patterns, CASE_NAMES)


SIMPLE_TOKENS = st.sampled_from(
    ["a", "q", "_", "1", "0", ".", "\\.", ".*", "(.*)", "(\\..*)?", "mlp", "layers", "proj"]
)
SIMPLE_REGEXES = st.builds(
    lambda head, body, tail: head + "".join(body) + tail,
    st.sampled_from(["", "^"]),
    st.lists(SIMPLE_TOKENS, max_size=8),
    st.sampled_from(["", "$"]),
)
ENCODABLE_NAMES = st.one_of(
    NAMES, st.lists(SIMPLE_TOKENS.map(lambda t: t.strip("()?*\\")), max_size=8).map("".join)
).filter(lambda n: n.encode(errors="ignore").decode() == n)


@given(SIMPLE_REGEXES, st.booleans(), ENCODABLE_NAMES)
@example("^(.*).layers.1(\\..*)?$", False, "model.layers.1\n")
@example(".*\\.q_proj", True, "a.q_proj")
def test_simple_translation_reads_as_python(regex: str, fullmatch: bool, name: str) -> None:
    translation = translate_simple(regex, fullmatch=fullmatch)
    if fullmatch and regex.endswith("$"):
        assert translation is None
        return
    assert translation is not None
    python = (re.fullmatch if fullmatch else re.match)(regex, name) is not None
    assert (re2.match(translation.source, name) is not None) is python
    # The parser's translation, the one it replaces, says the same (both run from the start).
    parsed = translate(parse(regex), fullmatch=fullmatch).source
    assert (re2.match(parsed, name) is not None) is python
    if python:
        assert translation.literal in name


@pytest.mark.parametrize(
    "regex", ["a*", ".*?", "a+", "[ab]", "a|b", "(a)", "\\d", "^^a", "a$$", "\\$"]
)
def test_simple_translation_declines_other_regexes(regex: str) -> None:
    assert translate_simple(regex) is None
