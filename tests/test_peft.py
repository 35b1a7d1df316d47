"""modmatch.peft answers as PEFT 0.17 to 0.21: against its plain-re reference, release by release
(Hypothesis), and against the installed peft package (its own check_target_module_exists and
get_peft_model; CI runs these in environments with PEFT 0.21.2, 0.19.1 and 0.18.1)."""

from __future__ import annotations

import random
import re
import warnings
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from modmatch import peft
from modmatch.inputs.shapes import SHAPES
from modmatch.reference import peft as reference
from oracles import oracle
from strategies import DOTTED, FRAMEWORK_NAMES, PEFT_ENTRIES, PEFT_REGEXES

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

_LAYERS = st.one_of(
    st.none(),
    st.integers(0, 12),
    st.lists(st.integers(0, 12), max_size=3),
    st.just(()),
)
_LAYERS_PATTERN = st.one_of(
    st.none(),
    st.sampled_from(["", "layers", "layer", "blocks", "experts", "model.layers", "layers|blocks"]),
    st.lists(st.sampled_from(["layers", "blocks", "experts", "h"]), max_size=2),
)
_ENTRIES = st.lists(PEFT_ENTRIES, max_size=4)
CONFIGS = st.builds(
    SimpleNamespace,
    target_modules=st.one_of(PEFT_REGEXES, _ENTRIES, _ENTRIES.map(set), st.none()),
    exclude_modules=st.one_of(st.none(), PEFT_REGEXES, _ENTRIES, _ENTRIES.map(set)),
    modules_to_save=st.one_of(st.none(), st.lists(st.sampled_from(["lm_head", "mlp", "1"]))),
    layers_to_transform=_LAYERS,
    layers_pattern=_LAYERS_PATTERN,
    target_parameters=st.one_of(st.none(), st.just(["weight"])),
)
KEYS = st.one_of(DOTTED, FRAMEWORK_NAMES)
# One version string per release whose rules differ, written as users write them.
VERSIONS = st.sampled_from(["0.17.1", "0.18.1", "0.19", "0.20.0", "0.21.2"])
# The first index after the layers pattern decides, not a later one.
_TWO_INDICES = SimpleNamespace(
    target_modules=["fc"],
    exclude_modules=None,
    modules_to_save=None,
    layers_to_transform=[1],
    layers_pattern="layers",
    target_parameters=None,
)


def outcome(call: Any) -> tuple[str, Any]:
    try:
        return ("returned", call())
    except Exception as error:
        return ("raised", type(error))


def same_answer(ours: Any, theirs: Any) -> bool:
    """Truthy exactly together; excluded together; the same falsy value otherwise."""
    if bool(ours) != bool(theirs):
        return False
    # modmatch's marker, or PEFT's own where PEFT is loaded: told apart only by their class.
    markers = ("Excluded", "_ExcludedModule")
    excluded = type(theirs).__name__ in markers
    if (type(ours).__name__ in markers) != excluded:
        return False
    return bool(ours) or excluded or ours is theirs


@given(CONFIGS, st.lists(KEYS, max_size=6), VERSIONS)
@example(_TWO_INDICES, ["model.layers.1.mlp.layers.3.fc", "layers.3.layers.1.fc"], "0.19.1")
@example(
    SimpleNamespace(
        target_modules=["baz"],
        exclude_modules=None,
        modules_to_save=None,
        layers_to_transform=[1],
        layers_pattern=["bar"],
        target_parameters=None,
    ),
    ["bar.1.baz", "foo.bar.1.baz", "bar.01.baz", "bar.1.x.baz"],
    "0.20.0",
)
def test_check_target_module_exists(config: SimpleNamespace, keys: list[str], version: str) -> None:
    matcher = outcome(lambda: peft.PeftMatcher.from_config(config, version=version))
    release = reference.release(version)
    installed = reference.release(peft.rules_version())
    for key in keys:
        theirs = outcome(lambda key=key: reference.check_target_module_exists(config, key, release))
        if matcher[0] == "raised":
            assert theirs[0] == "raised"
            continue
        ours = outcome(lambda key=key: matcher[1].match(key))
        assert ours[0] == theirs[0], (key, ours, theirs)
        if ours[0] == "returned":
            assert same_answer(ours[1], theirs[1]), (key, ours, theirs)
        # The drop-in follows the installed PEFT's release.
        expected = outcome(
            lambda key=key: reference.check_target_module_exists(config, key, installed)
        )
        found = outcome(lambda key=key: peft.check_target_module_exists(config, key))
        assert found[0] == expected[0], (key, found, expected)
        if found[0] == "returned":
            assert same_answer(found[1], expected[1]), (key, found, expected)


@pytest.mark.parametrize(
    ("version", "key", "adapted"),
    [
        # Up to 0.19 the greedy regex reads the expert index (3) as the layer (huggingface/peft#3016).
        ("0.19.1", "model.layers.1.mlp.experts.3.down_proj", False),
        ("0.19.1", "model.layers.3.mlp.experts.1.down_proj", True),
        ("0.20.0", "model.layers.1.mlp.experts.3.down_proj", True),
        ("0.20.0", "model.layers.3.mlp.experts.1.down_proj", False),
    ],
)
def test_the_layer_index_of_each_release(version: str, key: str, adapted: bool) -> None:
    matcher = peft.PeftMatcher(["down_proj"], layers_to_transform=[1], version=version)
    assert bool(matcher.match(key)) is adapted
    config = SimpleNamespace(**matcher.settings)
    assert (
        bool(reference.check_target_module_exists(config, key, reference.release(version)))
        is adapted
    )


def test_unknown_versions_are_refused_by_name() -> None:
    for version in ("0.16.0", "1.0", "latest"):
        with pytest.raises(ValueError, match=re.escape(repr(version))):
            peft.PeftMatcher(["q_proj"], version=version)
    assert peft.PeftMatcher(["q_proj"], version="0.21.3.dev0").version == "0.21.3.dev0"


def test_the_rules_follow_the_installed_peft() -> None:
    # Every environment the tests run in has a release whose rules are known, or no PEFT.
    expected = peft.installed_version() or reference.LATEST
    assert peft.rules_version() == expected == peft.PeftMatcher(["q_proj"]).version
    assert peft.rules_version("0.18") == "0.18"


def test_a_replaced_field_is_seen() -> None:
    config = SimpleNamespace(target_modules=["q_proj"], target_parameters=None)
    assert peft.check_target_module_exists(config, "m.q_proj") is True
    config.target_modules = ["k_proj"]
    assert peft.check_target_module_exists(config, "m.q_proj") is False
    config.target_modules.append("q_proj")  # in place, with a new size
    assert peft.check_target_module_exists(config, "m.q_proj") is True
    config.target_modules = ["k_proj", "q_proj"]  # an equal list, then changed in place
    config.target_modules.remove("q_proj")
    config.target_modules.append("v_proj")
    assert peft.check_target_module_exists(config, "m.q_proj") is False


def test_the_drop_in_reads_a_regex_target_from_the_live_config() -> None:
    """A regex target alone is answered by the regex's matcher, read from the config at each
    call: a target replaced, or excludes added, answer as PEFT at once."""
    config = SimpleNamespace(
        target_modules=r".*\.q_proj",
        exclude_modules=None,
        modules_to_save=None,
        layers_to_transform=None,
        layers_pattern=None,
        target_parameters=None,
    )
    keys = ["m.q_proj", "m.q_projx", "m.k_proj", "m.k_proj.q_proj"]
    for change in (
        {},
        {"target_modules": r".*\.k_proj"},
        {"modules_to_save": ["k_proj"]},
        {"modules_to_save": None, "exclude_modules": {"m.k_proj"}},
    ):
        vars(config).update(change)
        for key in keys:
            found = peft.check_target_module_exists(config, key)
            expected = reference.check_target_module_exists(config, key)
            assert same_answer(found, expected), (change, key, found, expected)


@pytest.mark.parametrize("bad", ["a{4294967296}", "(" * 3000 + ")" * 3000, "[[a]"])
def test_a_later_modules_to_save_entry_is_compiled_only_when_reached(bad: str) -> None:
    """PEFT runs ``modules_to_save`` entries in order until one matches: an entry ``re`` cannot
    compile (OverflowError, RecursionError) or warns about fails only the keys that reach it."""
    config = SimpleNamespace(
        target_modules=["q_proj"],
        exclude_modules=r".*\.k_proj",  # a regex: PEFT's loop on re answers
        modules_to_save=["lm_head", bad],
        layers_to_transform=None,
        layers_pattern=None,
        target_parameters=None,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning raised where PEFT's re would raise it
        for key in ["model.lm_head", "model.x.q_proj"]:
            expected = outcome(lambda k=key: reference.check_target_module_exists(config, k))
            found = outcome(lambda k=key: peft.check_target_module_exists(config, k))
            assert found[0] == expected[0], (key, found, expected)
            if found[0] == "returned":
                assert same_answer(found[1], expected[1]), (key, found, expected)
            else:
                assert found[1] is expected[1], (key, found, expected)


def test_invalid_regex_fails_only_where_peft_reaches_it() -> None:
    matcher = peft.PeftMatcher(".*q_proj(", exclude_modules=["k_proj"])
    assert not matcher.match("m.k_proj")  # excluded before the target regex is read
    with pytest.raises(re.error) as theirs:
        re.fullmatch(".*q_proj(", "m.q_proj")
    with pytest.raises(re.error) as ours:
        matcher.match("m.q_proj")
    assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value))
    # An invalid layers pattern is read only for keys the list selects, past an exact name.
    layered = peft.PeftMatcher(["m.q_proj", "v_proj"], layers_to_transform=[1], layers_pattern="(")
    assert layered.match("m.q_proj") is True
    with pytest.raises(re.error):
        layered.match("m.v_proj")


# The real package, installed by the test extra.
def peft_utils() -> Any:
    return oracle("peft.tuners.tuners_utils")


@given(CONFIGS, st.lists(KEYS, max_size=6))
@example(_TWO_INDICES, ["model.layers.1.mlp.layers.3.fc", "layers.3.layers.1.fc"])
# "layers|blocks" splits PEFT's layer regex at its "|": "layers.model" matches with no index.
@example(
    SimpleNamespace(**{**vars(_TWO_INDICES), "target_modules": ["model"],
                       "layers_to_transform": (), "layers_pattern": "layers|blocks"}),
    ["layers.model"],
)  # fmt: skip
def test_check_target_module_exists_as_peft(config: SimpleNamespace, keys: list[str]) -> None:
    real = peft_utils().check_target_module_exists
    for key in keys:
        theirs = outcome(lambda key=key: real(config, key))
        ours = outcome(lambda key=key: peft.check_target_module_exists(config, key))
        if theirs[0] == "raised":
            assert ours[0] == "raised"
            continue
        assert ours[0] == "returned" and same_answer(ours[1], theirs[1]), (key, ours, theirs)


def _names(shape: str, count: int) -> list[str]:
    names = [name for name, _ in SHAPES[shape].modules() if name]
    return random.Random(shape).sample(names, count) + names[:300]


LORA_CONFIGS = [
    {"target_modules": ["q_proj", "gate_proj"]},
    {"target_modules": r".*\.layers\.[0-9]\.self_attn\.q_b_proj"},
    {"target_modules": ["gate_proj", "up_proj"], "layers_to_transform": [3, 4]},
    {"target_modules": ["gate_proj"], "layers_to_transform": 5, "layers_pattern": "layers"},
    {"target_modules": ["down_proj"], "layers_to_transform": [1, 7], "layers_pattern": ["experts"]},
    {"target_modules": ["q_a_proj", "model.layers.3.self_attn.q_a_proj"], "layers_to_transform": 0},
    {"target_modules": ["mlp"], "exclude_modules": ["model.layers.3.mlp"]},
    {"target_modules": ["q_proj"], "modules_to_save": ["self_attn"]},
    {"target_modules": r".*proj", "exclude_modules": r".*experts.*"},
    {"target_modules": ["experts.1.down_proj", "layers.1.mlp.gate_proj", ""]},
    {"target_modules": None, "target_parameters": ["gate_up_proj"]},
]


@pytest.mark.parametrize("shape", ["deepseek-v3", "qwen3-235b-a22b"])
@pytest.mark.parametrize("config", LORA_CONFIGS, ids=str)
def test_lora_configs_on_model_names_as_peft(shape: str, config: dict[str, Any]) -> None:
    lora = oracle("peft").LoraConfig(**config)
    real = peft_utils().check_target_module_exists
    matcher = peft.PeftMatcher.from_config(lora)
    for key in _names(shape, 2_000):
        assert same_answer(matcher.match(key), real(lora, key)), key


LLAMA_LINEAR = [
    f"model.layers.{layer}.{part}"
    for layer in range(3)
    for part in (
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.o_proj",
        "mlp.gate_proj",
        "mlp.up_proj",
        "mlp.down_proj",
    )
]


def _tiny_llama() -> Any:
    transformers = oracle("transformers")
    import torch

    config = transformers.LlamaConfig(
        hidden_size=8,
        intermediate_size=16,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=32,
    )
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(config)


@pytest.mark.parametrize(
    "config",
    [
        {"target_modules": ["q_proj", "v_proj"]},
        {"target_modules": "all-linear"},
        {"target_modules": "ALL-LINEAR", "exclude_modules": ["o_proj"]},
        {"target_modules": ["up_proj"], "layers_to_transform": [0, 2]},
        {"target_modules": r".*\.(0|2)\.mlp\..*_proj"},
        {"target_modules": [], "target_parameters": ["mlp.down_proj.weight"]},
        {"target_modules": ["k_proj"], "target_parameters": ["o_proj.weight"]},
        # 21 full names: PEFT shortens the list, so the layer filter applies to them after all.
        {"target_modules": LLAMA_LINEAR, "layers_to_transform": [0]},
        {"target_modules": [*LLAMA_LINEAR[:20], "lm_head"], "layers_to_transform": [2]},
    ],
    ids=str,
)
def test_select_is_what_get_peft_model_adapts(config: dict[str, Any]) -> None:
    real = oracle("peft")
    model = _tiny_llama()
    matcher = peft.PeftMatcher.from_config(real.LoraConfig(**config))
    expected_modules, expected_parameters = matcher.select(model), matcher.select_parameters(model)
    adapted = real.get_peft_model(model, real.LoraConfig(**config))
    prefix = "base_model.model."
    wrapped = [
        name.removeprefix(prefix)
        for name, module in adapted.named_modules()
        if hasattr(module, "lora_A") and not hasattr(module, "parameter_name")
    ]
    assert expected_modules == wrapped
    if config.get("target_parameters"):
        assert sorted(expected_parameters) == sorted(
            f"{name.removeprefix(prefix)}.{module.parameter_name}"
            for name, module in adapted.named_modules()
            if hasattr(module, "parameter_name") and hasattr(module, "lora_A")
        )


_SHAPE_NAMES = {
    shape: [name for name, _ in SHAPES[shape].modules() if name]
    for shape in ("mixtral-8x22b", "llama-3.1-405b", "megatron-gpt")
}


@st.composite
def selections(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    """A model's names and a subset of them: ranges of layers and experts, or arbitrary picks."""
    names = _SHAPE_NAMES[draw(st.sampled_from(sorted(_SHAPE_NAMES)))]
    if draw(st.booleans()):
        low, high = sorted(draw(st.lists(st.integers(0, 70), min_size=2, max_size=2)))
        suffix = draw(st.sampled_from(["gate_proj", "q_a_proj", "w1", "linear_fc1", "mlp", ""]))
        chosen = [
            name
            for name in names
            if name.endswith(suffix)
            and any(low <= int(part) <= high for part in name.split(".") if part.isdigit())
        ]
    else:
        indices = draw(st.lists(st.integers(0, len(names) - 1), max_size=40))
        chosen = [names[i] for i in indices]
    return names, chosen or names[:1]


@given(selections())
def test_exact_target_modules_selects_exactly(case: tuple[list[str], list[str]]) -> None:
    names, chosen = case
    compiled = re.compile(peft.exact_target_modules(chosen, names))
    wanted = set(chosen)
    assert [name for name in names if compiled.fullmatch(name)] == [
        name for name in names if name in wanted
    ]


def test_exact_target_modules_is_short_and_checked() -> None:
    names = _names_of("deepseek-v3")
    experts = [name for name in names if ".experts." in name and name.endswith(".gate_proj")]
    regex = peft.exact_target_modules(experts, names)
    assert len(regex) < 300 and ".*" not in regex
    with pytest.raises(ValueError, match="not module names"):
        peft.exact_target_modules(["model.layers.99.mlp"], names)
    with pytest.raises(ValueError, match="nothing selected"):
        peft.exact_target_modules([], names)


def _names_of(shape: str) -> list[str]:
    return [name for name, _ in SHAPES[shape].modules() if name]


@st.composite
def long_target_lists(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    """A model's names and 20 or more entries: full names and dotted suffixes of them."""
    names = _SHAPE_NAMES[draw(st.sampled_from(sorted(_SHAPE_NAMES)))]
    picks = draw(st.lists(st.integers(0, len(names) - 1), min_size=20, max_size=60))
    entries = []
    for index in picks:
        parts = names[index].split(".")
        entries.append(".".join(parts[draw(st.integers(0, len(parts) - 1)) :]))
    return names, entries


@given(long_target_lists())
def test_long_target_lists_are_shortened_as_peft_shortens_them(
    case: tuple[list[str], list[str]],
) -> None:
    minimal = oracle("peft.tuners.tuners_utils")._find_minimal_target_modules
    names, entries = case
    targets = set(entries)  # LoraConfig holds a set
    ours = peft.PeftMatcher(targets).as_applied(names, set()).target_modules
    if len(targets) < 20:
        assert ours is targets
        return
    # inject_adapter's own call: the modules no entry selects, then the shortest list.
    suffixes = tuple("." + target for target in targets)
    others = [name for name in names if name not in targets and not name.endswith(suffixes)]
    theirs = minimal(targets, others)
    assert set(ours) == set(theirs if len(theirs) < len(targets) else targets)


@given(
    st.lists(st.one_of(PEFT_ENTRIES, st.integers(0, 3)), max_size=8),
    st.lists(st.one_of(FRAMEWORK_NAMES, PEFT_ENTRIES), max_size=5),
)
def test_suffix_set_entries_selecting_a_key_are_pefts(entries: list[Any], keys: list[str]) -> None:
    from unittest import mock

    from modmatch.engine import suffixset

    few = suffixset.SuffixSet(entries)
    with mock.patch.object(suffixset, "_FEW", 0):  # as many entries hold: a lookup per dot
        many = suffixset.SuffixSet(entries)
    for key in keys:
        # PEFT's list rule, entry by entry (an int entry is formatted, never equal to a key).
        expected = tuple(e for e in entries if key == e or key.endswith(f".{e}"))
        for found in (few, many):
            assert found.matching(key) == expected
            assert found.match(key) == bool(expected)
            assert found.ends_with(key) == any(key.endswith(f".{e}") for e in entries)
