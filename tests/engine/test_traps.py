"""Each measured trap of the seed's regex semantics, answered as the seed answers it."""

from __future__ import annotations

import sys

import pytest

from modmatch import PatternSet, reference, wildcard_match
from strategies import compiles

NEW_IN_311 = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="atomic groups and possessive repeats are new in Python 3.11"
)
pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::modmatch.FallbackWarning"),
]

TRAPS = [
    # `|` escapes the anchors: ^lm_head|(.*).q_proj$
    ("lm_head|*.q_proj", "lm_head.extra", True),
    ("lm_head|*.q_proj", "x.q_proj.extra", False),
    # `*\` becomes ^(.*)\$: a literal `$` and no end anchor.
    ("*\\", "a$bc", True),
    ("*\\", "abc", False),
    # Python's $ also matches before one final newline; RE2's does not.
    ("*.q_proj", "model.q_proj\n", True),
    ("*.q_proj", "model.q_proj\n\n", False),
    ("*.q_proj\\Z", "model.q_proj\n", False),
    # {,2} is a repeat in Python, literal text in RE2.
    ("a{,2}", "aa", True),
    ("a{,2}", "a{,2}", False),
    # [[:alpha:]] is a set of `[:alph` followed by `]` in Python, a POSIX class in RE2.
    ("[[:alpha:]]", "a]", True),
    ("[[:alpha:]]", "b", False),
    # Python's \d \w \s and case folding are Unicode; RE2's are ASCII.
    ("\\d", "\u0663", True),
    ("\\w", "\u00e9", True),
    ("\\s", "\x1c", True),
    ("(?i:k)", "\u212a", True),
    ("(?i:s)", "\u017f", True),
    # Python's \B never matches an empty string; RE2's does.
    ("\\B", "", False),
    # `.` is live regex: layers.1 also selects layers.10.
    ("*.layers.1.*", "model.layers.10.mlp", True),
    # `*` is replaced inside brackets too: [*] is the set of `(`, `.`, `*`, `)`.
    ("a[*]", "a.", True),
    ("a[*]", "ab", False),
    # Constructs RE2 lacks: backreference, lookaround, atomic group, possessive repeat.
    ("(a)\\1", "aa", True),
    ("a(?=b)b", "ab", True),
    ("a(?!b)", "ab", False),
    pytest.param("(?>a+)a", "aaa", False, marks=NEW_IN_311),
    pytest.param("a++a", "aaa", False, marks=NEW_IN_311),
    # Repeat counts above RE2's 1000.
    ("a{1001}", "a" * 1001, True),
    ("(?:a{100}){100}", "a" * 10_000, True),
    # A lone surrogate cannot be encoded for RE2.
    ("*", "x\ud800", True),
    ("\\ud800", "\ud800", True),
    ("[\\ud800-\\udfff]", "\udc00", True),
]


@pytest.mark.parametrize(("pattern", "name", "expected"), TRAPS)
def test_trap(pattern: str, name: str, expected: bool) -> None:
    assert reference.wildcard_match(pattern, name) is expected
    assert wildcard_match(pattern, name) is expected
    assert PatternSet(["never", pattern]).matches(name) == ((1,) if expected else ())


def test_all_traps_in_one_set() -> None:
    cases = [case.values if hasattr(case, "values") else case for case in TRAPS]
    patterns = sorted({pattern for pattern, _, _ in cases if compiles(pattern)})
    matcher = PatternSet(patterns)
    for _, name, _ in cases:
        expected = tuple(i for i, p in enumerate(patterns) if reference.wildcard_match(p, name))
        assert matcher.matches(name) == expected
