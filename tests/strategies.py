"""Names and patterns that reach the traps where Python's re and RE2 differ."""

from __future__ import annotations

import re
import warnings

from hypothesis import strategies as st

from modmatch import reference

LAYERS = st.integers(0, 12).map(str)
EXPERTS = st.integers(0, 20).map(str)

_HF = st.one_of(
    st.builds(
        "model.layers.{}.self_attn.{}".format,
        LAYERS,
        st.sampled_from(["q_proj", "k_proj", "v_proj", "o_proj", "kv_a_proj_with_mqa"]),
    ),
    st.builds(
        "model.layers.{}.mlp.experts.{}.{}".format,
        LAYERS,
        EXPERTS,
        st.sampled_from(["gate_proj", "up_proj", "down_proj", "act_fn"]),
    ),
    st.builds(
        "model.layers.{}.mlp.{}".format,
        LAYERS,
        st.sampled_from(["gate", "shared_experts.down_proj", "gate_proj"]),
    ),
    st.sampled_from(["lm_head", "model", "model.embed_tokens", "model.norm", ""]),
)
_MEGATRON = st.one_of(
    st.builds(
        "decoder.layers.{}.self_attention.{}".format,
        LAYERS,
        st.sampled_from(["linear_qkv", "linear_proj"]),
    ),
    st.builds(
        "decoder.layers.{}.mlp.{}".format, LAYERS, st.sampled_from(["linear_fc1", "linear_fc2"])
    ),
    st.builds(
        "decoder.layers.{}.mlp.experts.local_experts.{}.{}".format,
        LAYERS,
        EXPERTS,
        st.sampled_from(["linear_fc1", "linear_fc2"]),
    ),
    st.sampled_from(["output_layer", "embedding.word_embeddings"]),
)
# Characters on which the engines can disagree: newline, Unicode digits and letters that case
# folding links to ASCII (Kelvin sign, long s, dotted I), NUL, emoji and a lone surrogate.
ODD_CHARS = [
    "\n",
    "\u0663",
    "\u00e9",
    "\u212a",
    "\u017f",
    "\u0130",
    "\x00",
    "\U0001f600",
    "\ud800",
    " ",
    "\x0b",
    "\x1c",
    "K",
    "_",
]
_ODD = st.sampled_from(ODD_CHARS)


@st.composite
def _mutated(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    name = draw(base)
    for _ in range(draw(st.integers(0, 2))):
        where = draw(st.integers(0, len(name)))
        name = name[:where] + draw(_ODD) + name[where:]
    if draw(st.booleans()):
        name += draw(st.sampled_from(["\n", "\n\n", ""]))
    return name


_ARBITRARY_TEXT = st.text(
    st.one_of(st.sampled_from("abq_.0123\n"), _ODD, st.characters(exclude_categories=())),
    max_size=20,
)
NAMES = st.one_of(_HF, _MEGATRON, _mutated(_HF), _mutated(_MEGATRON), _ARBITRARY_TEXT)

_WORDS = [
    "model",
    "layers",
    "self_attn",
    "q_proj",
    "o_proj",
    "experts",
    "gate_proj",
    "mlp",
    "lm_head",
    "decoder",
    "linear_qkv",
    "linear_fc1",
    "proj",
    "3",
    "1",
    "17",
    "gate",
]
_ATOMS = [
    "*",
    ".",
    r"\.",
    "[0-3]",
    "[^.]",
    "[*]",
    "[a-z_]",
    r"\d",
    r"\w",
    r"\s",
    r"\D",
    r"\W",
    r"\S",
    r"[\d.]",
    r"[^\w]",
    "\u0663",
    "\u00e9",
    "\u212a",
    "\u017f",
    "\u0130",
    "k",
    "K",
    "s",
    "i",
    r"\n",
    "\n",
    r"\x00",
    r"\ud800",
    r"[\ud800-\udfff]",
    "$",
    "^",
    r"\A",
    r"\Z",
    r"\b",
    r"\B",
    "[[:alpha:]]",
    "\\$",
    "a{,2}",
    "q{0}",
    "",
]
_QUANTIFIERS = ["?", "??", "{1,2}", "{,2}", "{2}", "{0,1}?", "{3}"]


def _patterns() -> st.SearchStrategy[str]:
    atom = st.sampled_from(_WORDS + _ATOMS)

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.lists(inner, min_size=2, max_size=4).map("".join),
            st.tuples(inner, inner).map("|".join),
            inner.map("({})".format),
            st.tuples(st.sampled_from(["(?:", "(?i:", "(?s:", "(?m:", "(?a:", "(?-i:"]), inner).map(
                lambda t: t[0] + t[1] + ")"
            ),
            st.tuples(inner, st.sampled_from(_QUANTIFIERS)).map(lambda t: f"(?:{t[0]}){t[1]}"),
        )

    # Each `*` becomes `(.*)`; more than three of them makes the reference itself backtrack
    # for minutes on some names, which would only test our patience.
    return st.recursive(atom, extend, max_leaves=6).filter(lambda p: p.count("*") <= 3)


PATTERNS = _patterns()

# Token soup: mostly invalid regex, for the invalid-pattern property.
_SOUP_TOKENS = (
    _WORDS[:4]
    + _ATOMS
    + [
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "|",
        "+",
        "?",
        "\\",
        "(?P<x>",
        "(?P=x)",
        r"\1",
        "(?=a)",
        "(?!a)",
        "(?<=a)",
        "(?<=a*)",
        "(?>a)",
        "a*+",
        "a++",
        "(?(1)a|b)",
        "(?#c)",
        "(?x)",
        "(?i)",
        "(?L:",
        "(?au:",
        "a{1001}",
        "(?:a{100}){100}",
        "{99999999999}",
        "\\p",
        "\\z",
        "\\Z",
    ]
)


def tame(pattern: str) -> bool:
    """Whether the seed's `re` answers the pattern quickly: at most three stars, none repeated.

    `*+` becomes `(.*)+`, which backtracks exponentially in the reference (and in modmatch's
    `re` fallback, which a possessive `a++` beside it would force).
    """
    return pattern.count("*") <= 3 and re.search(r"[*)][+{]", pattern) is None


SOUP = st.lists(st.sampled_from(_SOUP_TOKENS), max_size=6).map("".join).filter(tame)


def compiles(pattern: str) -> bool:
    """Whether the seed's `re` accepts the pattern."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            re.compile(reference.seed_regex(pattern))
        except (re.error, OverflowError, RecursionError):
            return False
    return True


# Framework rule sets: names with the indices their traps turn on (leading zeros, a number that
# starts another, an expert index after the layer index, no index at all).
_INDEX = st.sampled_from(["0", "1", "3", "10", "01", "003", "12"])
_SEGMENT = st.one_of(
    st.sampled_from(
        ["model", "layers", "layer", "blocks", "mlp", "experts", "fc", "fc1", "a", "b", "q_proj"]
    ),
    _INDEX,
)
DOTTED = st.lists(_SEGMENT, min_size=1, max_size=7).map(".".join)
FRAMEWORK_NAMES = st.one_of(DOTTED, NAMES, _mutated(DOTTED))

# Automodel 0.7 reads `*` and `.*` by what precedes them: whole segments, numeric indices and
# name fragments, with regex characters between.
_AUTOMODEL_TOKEN = st.one_of(
    _SEGMENT,
    st.sampled_from(
        ["*", ".*", "*.", ".", "..", "*.*", r"\.", "[0-3]", r"\d+", "(", ")", "|", "$"]
    ),
)
_STARRED_SEGMENTS = st.lists(st.one_of(_SEGMENT, st.just("*")), min_size=1, max_size=5)
AUTOMODEL_PATTERNS = st.one_of(
    _STARRED_SEGMENTS.map(".".join).filter(tame),
    # A star glued to a fragment, a final `.*`: `*layers.1.*`, `*mlp.fc.*`.
    _STARRED_SEGMENTS.map(lambda parts: "*" + ".".join(parts) + ".*").filter(tame),
    st.lists(_AUTOMODEL_TOKEN, min_size=1, max_size=7).map("".join).filter(tame),
    PATTERNS,
)

# PEFT's regexes run under re.fullmatch, written as PEFT users write them.
_PEFT_REGEX_TOKEN = st.one_of(
    _SEGMENT,
    st.sampled_from(
        [".*", r"\.", ".", ".*?", r"\d+", "[0-3]", "(q|k)_proj", "(?:mlp|self_attn)", "$", "^", "|"]
    ),
)


def regex_compiles(pattern: str) -> bool:
    """Whether Python's `re` accepts the pattern as written."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            re.compile(pattern)
        except (re.error, OverflowError, RecursionError):
            return False
    return True


PEFT_REGEXES = st.one_of(
    st.lists(_PEFT_REGEX_TOKEN, min_size=1, max_size=7).map("".join),
    PATTERNS.map(lambda p: p.replace("*", ".*")),
).filter(lambda p: tame(p) and regex_compiles(p))
# List entries are literals: segments, dotted tails, full names, regex characters, "".
PEFT_ENTRIES = st.one_of(
    _SEGMENT, DOTTED, st.sampled_from(["", ".", "*", ".*q_proj", "mlp.fc", "layers.1", "a.b"])
)


@st.composite
def near_names(draw: st.DrawFn, pattern: str) -> str:
    """A name close to what ``pattern`` reads as: each star filled, a digit perhaps appended."""
    fills = st.sampled_from(["", "x", "0", ".", "model", "model.", ".mlp", "1.mlp", "a.b"])
    name = "".join(
        part + (draw(fills) if i < pattern.count("*") else "")
        for i, part in enumerate(pattern.split("*"))
    )
    if draw(st.booleans()):
        digits = [i for i, char in enumerate(name) if char.isdigit()]
        if digits:
            at = draw(st.sampled_from(digits)) + 1
            name = name[:at] + draw(st.sampled_from(["0", "1", ".x"])) + name[at:]
    return name


AUTOMODEL_PAIRS = AUTOMODEL_PATTERNS.flatmap(
    lambda p: st.tuples(st.just(p), st.one_of(near_names(p), FRAMEWORK_NAMES))
)
