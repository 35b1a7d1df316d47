"""The command's advice: suggestions that are patterns worth trying, counts of selections that
are not Linear, patterns broader than written, fused experts, and names files as written."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from modmatch import ModuleMatcher, reference
from modmatch.cli import main
from modmatch.inputs.shapes import SHAPES
from modmatch.peft import PeftMatcher
from modmatch.preview.advice import _ROLES, Advice, Suggestion, suggest, suggestions
from oracles import oracle

# Typos and near misses a user makes on each built-in shape (transformers 4.x naming).
TYPOS = {
    "deepseek-v3": [
        "*.layer.1.*",
        "*.self_attention.*",
        "self_attn.q_a_proj",
        "model.layers.0.mlp.experts.*",
        "*.mlp.exprts.*.up_proj",
        "q_a_prj",
        "model.layer.5.self_attn.*",
        "mlp|kv_b_proj",
    ],
    "qwen3-235b-a22b": ["*.self_atn.q_proj", "model.layers.7.mlp.experts.12.gate_prj", "k_projj"],
    "mixtral-8x22b": ["*.block_sparse_mo.experts.*.w1", "model.layers.3.self_attn.q_prj"],
    "llama-3.1-405b": ["model.layers.2.mlp.gate", "gateproj", "*.layers.2.self_atn.*"],
}
CASES = [(shape, typo) for shape, typos in TYPOS.items() for typo in typos]


def _json(capsys: Any, *args: str) -> dict[str, Any]:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _numbers(pattern: str) -> list[str]:
    return re.findall(r"(?<![A-Za-z_])[0-9]+(?![A-Za-z_])", pattern)


@pytest.mark.parametrize(("shape", "typo"), CASES)
def test_suggestions_select_linear_modules_and_keep_the_numbers(
    shape: str, typo: str, capsys: Any
) -> None:
    document = _json(capsys, "--model", shape, "-t", typo)
    offered = document["suggestions"][typo]
    assert offered, typo
    linear = dict(SHAPES[shape].modules())
    for suggestion in offered:
        tried = _json(capsys, "--model", shape, "-t", suggestion)
        assert tried["selected"] > 0 and tried["selected_not_linear"] == 0, suggestion
        assert "broader_than_written" not in tried, suggestion  # means what it says
        assert all(linear[name] for name in tried["selected_names"])
        assert _numbers(typo) == _numbers(suggestion), (typo, suggestion)
        assert tried["selected"] < len(linear) / 2, suggestion  # not "everything"


def test_a_layer_number_stays_that_layer(capsys: Any) -> None:
    [suggestion, *_] = _json(capsys, "-t", "*.layer.1.*")["suggestions"]["*.layer.1.*"]
    selected = _json(capsys, "-t", suggestion)["selected_names"]
    assert {name.split(".")[2] for name in selected} == {"1"}


def test_selected_not_linear_is_counted(capsys: Any) -> None:
    pattern = "*.mlp.experts.*"
    document = _json(capsys, "-t", pattern, "--model", "qwen3-235b-a22b")
    matcher = reference.ModuleMatcher(target_modules=[pattern])
    by_hand = 0
    for name, is_linear in SHAPES["qwen3-235b-a22b"].modules():
        prefix, _, short = name.rpartition(".")
        if not is_linear and matcher.match(None, short, prefix):
            by_hand += 1
    assert by_hand > 0 and document["selected_not_linear"] == by_hand
    text = subprocess.run(
        [sys.executable, "-m", "modmatch", "-t", pattern, "--model", "qwen3-235b-a22b"],
        capture_output=True,
        text=True,
    ).stdout
    assert f"note: {by_hand:,} of them not nn.Linear" in text


def test_patterns_broader_than_written_are_flagged(capsys: Any) -> None:
    patterns = ["*.expert.*", "*q_a_proj|kv_b_proj", "*.q_a_proj", "q_a_proj|kv_b_proj"]
    document = _json(capsys, *(arg for pattern in patterns for arg in ("-t", pattern)))
    flagged = document["broader_than_written"]
    assert set(flagged) == {"*.expert.*", "*q_a_proj|kv_b_proj"}
    assert flagged["*.expert.*"]["literal"] == 0
    assert flagged["*.expert.*"]["selected"] == document["patterns"][0]["matched"]
    assert "'|'" in flagged["*q_a_proj|kv_b_proj"]["why"]
    # Unmatched, "|" as "or": each side on its own.
    assert document["suggestions"]["q_a_proj|kv_b_proj"] == ["q_a_proj", "kv_b_proj"]


@pytest.mark.parametrize("model", ["deepseek-v3", "qwen3-235b"])
def test_fused_experts_are_explained(model: str, tmp_path: Path, capsys: Any) -> None:
    oracle("transformers")
    from test_peft_preview import MODELS

    (tmp_path / "config.json").write_text(json.dumps(MODELS[model]))
    pattern = "*.mlp.experts.*.gate_proj"
    document = _json(capsys, "--hf-config", str(tmp_path), "-t", pattern)
    note = document["fused_experts"][pattern]
    assert "gate_up_proj" in note and "target_parameters" in note
    assert document["suggestions"][pattern] == []  # close patterns select other MLPs
    assert "fused_experts" not in _json(capsys, "--model", "deepseek-v3", "-t", "*.expert.*.x")
    built_in = _json(
        capsys,
        "--model",
        f"{model}-transformers5".replace("qwen3-235b", "qwen3-235b-a22b"),
        "-t",
        pattern,
    )
    assert built_in["fused_experts"] == document["fused_experts"]
    explained = _json(
        capsys,
        "--hf-config",
        str(tmp_path),
        "-t",
        "q_proj",
        "--explain",
        "model.layers.3.mlp.experts.0.gate_proj",
    )["explanations"][0]
    assert explained["fused_into"] == "model.layers.3.mlp.experts"


def test_names_files_with_bom_crlf_and_blank_lines(tmp_path: Path) -> None:
    data = "\ufeffmodel.a.q_proj\tLinear\r\n\r\n  \r\nmodel.a.act\tSiLU\r\nmodel.a.k_proj\tLinear8bitLt\r\n"
    names = tmp_path / "names.txt"
    names.write_bytes(data.encode("utf-8"))
    for source, stdin in ((str(names), None), ("-", data.encode("utf-8"))):
        result = subprocess.run(
            [sys.executable, "-m", "modmatch", "--names", source, "--all-linear", "--json"],
            input=stdin,
            capture_output=True,
        )
        document = json.loads(result.stdout)
        assert document["modules"] == 3, source
        assert document["selected_names"] == ["model.a.q_proj", "model.a.k_proj"], source
    untyped = tmp_path / "untyped.txt"
    untyped.write_text("model.a.q_proj\nmodel.a.act\n")
    result = subprocess.run(
        [sys.executable, "-m", "modmatch", "--names", str(untyped), "--all-linear"],
        capture_output=True,
        text=True,
    )
    assert "gives no class names, so no module counts as nn.Linear" in result.stdout


def test_version_and_help() -> None:
    import modmatch

    def run(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "modmatch", *args], capture_output=True, text=True, check=True
        ).stdout

    assert run("--version").strip() == f"modmatch {modmatch.__version__}"
    text = run("--help")
    for needed in ("exit codes", "examples", "preview", "serve", "match"):
        assert needed in text, needed
    text = run("match", "--help")
    for needed in ("anchored", "Megatron-Core names", "any character", "dotted suffix"):
        assert needed in text, needed


# Rule sets as the command takes them; PEFT refuses a list that selects nothing, so it is given
# the output layer besides.
RULES = {
    "seed": [],
    "seed-full-name": ["--call", "full-name"],
    "automodel": ["--rules", "automodel"],
    "megatron-bridge": ["--rules", "megatron-bridge"],
    "peft": ["--rules", "peft", "-t", "lm_head"],
}


@functools.cache
def _tiny(model_type: str) -> tuple[tuple[str, bool], ...]:
    """A two-layer transformers model's module names, built on the meta device, and which are
    Linear layers to LoRA (nn.Linear and its subclasses, GPT-2's Conv1D)."""
    transformers = oracle("transformers")
    import torch
    from transformers.pytorch_utils import Conv1D

    config = transformers.AutoConfig.for_model(model_type, num_hidden_layers=2)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    linear = (torch.nn.Linear, Conv1D)
    return tuple((name, isinstance(module, linear)) for name, module in model.named_modules())


def _names_file(model_type: str, tmp_path: Path) -> str:
    path = tmp_path / f"{model_type}.txt"
    lines = (f"{name}\t{'Linear' if linear else 'Module'}\n" for name, linear in _tiny(model_type))
    path.write_text("".join(lines))
    return str(path)


# A pattern in another model's naming, and the modules (by their last two segments) its
# leading suggestions should select, one role name each.
ROLE_CASES = [
    ("llama", "output_proj", ["self_attn.o_proj"]),
    ("phi", "out_proj", ["self_attn.dense"]),
    ("llama", "Wqkv", ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]),
    ("llama", "model.layers.1.self_attn.output_proj", ["self_attn.o_proj"]),
    ("llama", "c_proj", ["self_attn.o_proj", "mlp.down_proj"]),  # GPT-2's c_proj is both
    ("llama", "mlp.c_proj", ["mlp.down_proj"]),
    ("gpt2", "out_proj", ["attn.c_proj"]),
    ("gpt2", "down_proj", ["mlp.c_proj"]),
    ("gpt2", "q_proj", ["attn.c_attn"]),
    ("phi", "gate_up_proj", ["mlp.fc1"]),
    ("gpt_neox", "o_proj", ["attention.dense"]),
    ("mpt", "k_proj", ["attn.Wqkv"]),
    ("falcon", "fc2", ["mlp.dense_4h_to_h"]),
]


@pytest.mark.parametrize("rules", RULES)
@pytest.mark.parametrize(("model", "pattern", "expected"), ROLE_CASES)
def test_suggestions_name_the_same_role(
    model: str, pattern: str, expected: list[str], rules: str, tmp_path: Path, capsys: Any
) -> None:
    names = _names_file(model, tmp_path)
    offered = _json(capsys, "--names", names, *RULES[rules], "-t", pattern)["suggestions"][pattern]
    assert len(offered) >= len(expected), offered
    for suggestion, role in zip(offered, expected, strict=False):
        selected = _json(capsys, "--names", names, *RULES[rules], "-t", suggestion)
        chosen = set(selected["selected_names"]) - {"lm_head"}
        wanted = {
            name
            for name, _ in _tiny(model)
            if name.endswith("." + role) and all(f".{n}." in name for n in _numbers(pattern))
        }
        assert chosen == wanted, (suggestion, role)
        assert _numbers(suggestion) == _numbers(pattern), suggestion


ROLE_NAMES = sorted({name for _, groups in _ROLES for group in groups for name in group})


@pytest.mark.parametrize("rules", RULES)
@pytest.mark.parametrize("model", ["llama", "phi", "gpt2", "gpt_neox", "mpt", "falcon"])
def test_every_suggestion_selects_linear_modules(
    model: str, rules: str, tmp_path: Path, capsys: Any
) -> None:
    names = _names_file(model, tmp_path)
    shapes = ["{}", "*.{}", "*.attn.{}", "*.mlp.{}", "model.layers.1.self_attn.{}"]
    patterns = [shape.format(name) for name in ROLE_NAMES for shape in shapes]
    args = [arg for pattern in patterns for arg in ("-t", pattern)]
    offered = _json(capsys, "--names", names, *RULES[rules], *args)["suggestions"]
    every = sorted({suggestion for found in offered.values() for suggestion in found})
    assert every  # the model's own names are unmatched patterns' suggestions
    for pattern, found in offered.items():
        assert all(_numbers(pattern) == _numbers(suggestion) for suggestion in found), pattern
    tried = _json(capsys, "--names", names, *RULES[rules], *(a for s in every for a in ("-t", s)))
    assert tried["unmatched_patterns"] == []
    assert tried["selected_not_linear"] == 0
    assert "broader_than_written" not in tried  # `*.attn.dense` would select `self_attn.dense`


# Suggestions under each rule set, called as the command calls them: Advice over the names, a
# selector reading a pattern as the rules read the one advised on.


def _gemma3() -> list[tuple[str, bool]]:
    """Gemma 3's module names under transformers 5 (Gemma3ForConditionalGeneration, the vision
    tower without a pooling head, as google/gemma-3-4b-it), two text layers and one vision
    layer, with which are Linear. Written out: under transformers 4 the names differ."""
    vision, text = "model.vision_tower", "model.language_model"
    names = [
        ("model", False),
        (vision, False),
        *(
            (f"{vision}.embeddings{part}", False)
            for part in ("", ".patch_embedding", ".position_embedding")
        ),
        (f"{vision}.encoder", False),
        (f"{vision}.encoder.layers", False),
    ]
    layer = f"{vision}.encoder.layers.0"
    names += [(layer, False), (f"{layer}.layer_norm1", False), (f"{layer}.self_attn", False)]
    names += [(f"{layer}.self_attn.{p}", True) for p in ("k_proj", "v_proj", "q_proj", "out_proj")]
    names += [(f"{layer}.layer_norm2", False), (f"{layer}.mlp", False)]
    names += [(f"{layer}.mlp.activation_fn", False), (f"{layer}.mlp.fc1", True)]
    names += [(f"{layer}.mlp.fc2", True), (f"{vision}.post_layernorm", False)]
    projector = "model.multi_modal_projector"
    names += [(projector, False), (f"{projector}.mm_soft_emb_norm", False)]
    names += [(f"{projector}.avg_pool", False)]
    names += [(text, False), (f"{text}.embed_tokens", False), (f"{text}.layers", False)]
    for index in range(2):
        layer = f"{text}.layers.{index}"
        names += [(layer, False), (f"{layer}.self_attn", False)]
        names += [
            (f"{layer}.self_attn.{p}", True) for p in ("q_proj", "k_proj", "v_proj", "o_proj")
        ]
        names += [(f"{layer}.self_attn.{p}", False) for p in ("q_norm", "k_norm")]
        names += [(f"{layer}.mlp", False)]
        names += [(f"{layer}.mlp.{p}", True) for p in ("gate_proj", "up_proj", "down_proj")]
        names += [(f"{layer}.mlp.act_fn", False)]
        norms = ("input", "post_attention", "pre_feedforward", "post_feedforward")
        names += [(f"{layer}.{norm}_layernorm", False) for norm in norms]
    return [*names, (f"{text}.norm", False), (f"{text}.rotary_emb", False), ("lm_head", True)]


def test_gemma3_names_are_transformers_5s() -> None:
    transformers = oracle("transformers")
    if int(transformers.__version__.split(".")[0]) < 5:
        pytest.skip("Gemma 3's names are transformers 5's")
    import torch

    config = transformers.Gemma3Config(
        text_config={"num_hidden_layers": 2},
        vision_config={"num_hidden_layers": 1, "vision_use_head": False},
    )
    with torch.device("meta"):
        model = transformers.Gemma3ForConditionalGeneration(config)
    built = [(name, type(module) is torch.nn.Linear) for name, module in model.named_modules()]
    assert built[1:] == _gemma3()


def _peft(regex: bool) -> Callable[[str], Callable[[str], bool]]:
    """PEFT's rules for one pattern: a list entry, or (``regex``) the one regex
    target_modules."""

    def selects(pattern: str) -> Callable[[str], bool]:
        matcher = PeftMatcher(target_modules=pattern if regex else [pattern])
        return lambda name: bool(matcher.match(name))

    return selects


def _seed(pattern: str) -> Callable[[str], bool]:
    """The seed's rules for one pattern, called with the split name."""
    matcher = ModuleMatcher(target_modules=[pattern])
    return lambda name: bool(matcher.match(None, *reversed(name.rpartition(".")[::2])))


def _advice(modules: Iterable[tuple[str, bool]], selects: Any) -> Advice:
    modules = [(name, linear) for name, linear in modules if name]  # PEFT skips the root
    return Advice([name for name, _ in modules], {n for n, linear in modules if linear}, selects)


def _real_peft(target_modules: str | list[str], modules: list[tuple[str, bool]]) -> list[str]:
    """The names real PEFT adapts for ``target_modules``."""
    oracle("peft")
    from peft import LoraConfig
    from peft.tuners.tuners_utils import check_target_module_exists

    config = LoraConfig(target_modules=target_modules)
    return [name for name, _ in modules if name and check_target_module_exists(config, name)]


def test_a_peft_entry_gets_the_entries_of_its_role() -> None:
    phi = list(_tiny("phi"))  # transformers' Phi (phi-1.5): q_proj, k_proj, v_proj, dense
    offered = suggestions("Wqkv", _advice(phi, _peft(False)), full_name=True, dot_is_any=False)
    assert offered == ["q_proj", "k_proj", "v_proj"]
    for entry in offered:
        adapted = _real_peft([entry], phi)
        assert adapted == [f"model.layers.{i}.self_attn.{entry}" for i in range(2)]


def test_a_wildcard_in_a_peft_entry_gets_the_suffix_after_it() -> None:
    phi = list(_tiny("phi"))
    advice = _advice(phi, _peft(False))
    offered = suggestions("model.layers.*.mlp.fc1", advice, full_name=True, dot_is_any=False)
    assert offered == ["mlp.fc1"]
    assert _real_peft(offered, phi) == [f"model.layers.{i}.mlp.fc1" for i in range(2)]
    # Not where the suffix selects more than the pattern reads as: fc1 of every layer.
    assert suggestions("model.layers.1.*.fc1", advice, full_name=True, dot_is_any=False) == []


# Gemma 3 under transformers 5, targeted as under transformers 4 or as a text-only Gemma 3:
# the pattern, its layout, how it is read, and the suggestion, which keeps all but the prefix.
MOVED = [
    (
        "language_model.model.layers.0.self_attn.q_proj",
        "transformers 4",
        "peft",
        "model.language_model.layers.0.self_attn.q_proj",
    ),
    (
        "language_model.model.layers.*.self_attn.(q|v)_proj",
        "transformers 4",
        "peft-regex",
        "model.language_model.layers.*.self_attn.(q|v)_proj",
    ),
    (
        r"language_model\.model\.layers\.\d+\.mlp\.(gate|up)_proj",
        "transformers 4",
        "peft-regex",
        r"model\.language_model\.layers\.\d+\.mlp\.(gate|up)_proj",
    ),
    (
        "language_model.model.layers.1.self_attn.o_proj|vision_tower.vision_model.encoder.layers.0.mlp.fc1",
        "transformers 4",
        "peft-regex",
        "model.language_model.layers.1.self_attn.o_proj|model.vision_tower.encoder.layers.0.mlp.fc1",
    ),
    (
        "language_model.model.layers.1.self_attn.k_proj",
        "transformers 4",
        "seed",
        "model.language_model.layers.1.self_attn.k_proj",
    ),
    (
        "model.layers.*.mlp.down_proj",
        "text",
        "peft-regex",
        "model.language_model.layers.*.mlp.down_proj",
    ),
    (
        "model.layers.*.self_attn.o_proj",
        "text",
        "seed",
        "model.language_model.layers.*.self_attn.o_proj",
    ),
    ("model.layers.1.mlp.up_proj", "text", "peft", "model.language_model.layers.1.mlp.up_proj"),
]
# Each layout's names for transformers 5's (None: not in that layout).
LAYOUTS: dict[str, Callable[[str], str | None]] = {
    "transformers 4": lambda name: re.sub(
        r"^model\.(language_model|vision_tower|multi_modal_projector)",
        lambda found: {
            "language_model": "language_model.model",
            "vision_tower": "vision_tower.vision_model",
        }.get(found[1], found[1]),
        name,
    ),
    "text": lambda name: (
        name.replace("language_model.", "", 1)
        if name.startswith("model.language_model.") or name == "lm_head"
        else None
    ),
}
READ: dict[str, tuple[Any, bool, bool]] = {
    "peft": (_peft(False), True, False),
    "peft-regex": (_peft(True), True, True),
    "seed": (_seed, False, False),
}


@pytest.mark.parametrize(("pattern", "layout", "rules", "expected"), MOVED)
def test_a_moved_prefix_is_put_back(pattern: str, layout: str, rules: str, expected: str) -> None:
    selects, full_name, regex = READ[rules]
    advice = _advice(_gemma3(), selects)
    assert not advice.selected(pattern)
    found = suggest(pattern, advice, full_name=full_name, dot_is_any=rules == "seed", regex=regex)
    assert [suggested.pattern for suggested in found] == [expected]
    assert found[0].why is not None and "model.language_model" in found[0].why
    # The suggestion selects on this model what the pattern selects on the layout it was
    # written for.
    renamed = {old: name for name, _ in _gemma3() if (old := LAYOUTS[layout](name)) is not None}
    written_for = _advice([(old, True) for old in renamed], selects)
    intended = {renamed[old] for old in written_for.selected(pattern)}
    assert intended and set(advice.selected(expected)) == intended
    if rules.startswith("peft"):
        assert _real_peft(expected if regex else [expected], _gemma3()) == advice.selected(expected)


def test_an_adapters_prefix_is_taken_off() -> None:
    pattern = "base_model.model.model.layers.0.mlp.fc2"  # as in an adapter's tensor names
    phi = list(_tiny("phi"))
    for selects, full_name, regex in READ.values():
        found = suggest(
            pattern, _advice(phi, selects), full_name=full_name, dot_is_any=False, regex=regex
        )
        assert found == [
            Suggestion(
                "model.layers.0.mlp.fc2",
                "this model's names have 'model' where the pattern has 'base_model.model.model'",
            )
        ]


# Patterns with nothing close on Gemma 3: no suggestion under any rules (a prefix moved to a
# norm, which is not Linear; a word no module has; a regex after a role's names, which one
# regex would have to join).
NOTHING_CLOSE = [
    ("language_model.model.norm", ["peft", "peft-regex", "seed"]),
    ("lora_magnitude_vector", ["peft", "peft-regex", "seed"]),
    (".*\\.Wqkv", ["peft-regex"]),
]


@pytest.mark.parametrize(("pattern", "rules"), NOTHING_CLOSE)
def test_nothing_close_is_no_suggestion(pattern: str, rules: list[str]) -> None:
    for read in rules:
        selects, full_name, regex = READ[read]
        advice = _advice(_gemma3(), selects)
        found = suggest(
            pattern, advice, full_name=full_name, dot_is_any=read == "seed", regex=regex
        )
        assert found == [], read


# On DeepSeek-V3 (75,000 modules) with transformers 5's prefix: patterns, read as a PEFT regex
# or list entry, with what they get. Each gets many candidates (respellings, shorter forms, the
# moved prefix, the role's names), most of which select nothing.
SCANNED = [
    (
        True,
        "language_model.model.layers.*.self_attn.kv_b_proj",
        ["model.language_model.layers.*.self_attn.kv_b_proj"],
    ),
    (True, "model.layers.3.self_atn.kv_b_prj", []),
    (True, "kv_b_prj", [r".*\.kv_b_proj"]),
    (False, "model.layers.3.self_atn.kv_b_prj", ["layers.3.self_attn.kv_b_proj"]),
    (False, "mlp.c_proj", ["mlp.down_proj", "o_proj"]),
    (False, "Wqkv", []),
]


@pytest.mark.parametrize(("regex", "pattern", "expected"), SCANNED)
def test_suggestions_pass_over_the_names_once_each(
    regex: bool, pattern: str, expected: list[str]
) -> None:
    """Candidates that select nothing are ruled out by the index of segments: a pattern costs
    one pass over the names per suggestion (to know what it selects), not one per candidate."""
    modules = [
        (name.replace("model.", "model.language_model.", 1), linear)
        for name, linear in SHAPES["deepseek-v3"].modules()
        if name.startswith("model.")
    ]
    asked = 0

    def counted(pattern: str) -> Callable[[str], bool]:
        match = _peft(regex)(pattern)

        def answer(name: str) -> bool:
            nonlocal asked
            asked += 1
            return match(name)

        return answer

    advice = _advice(modules, counted)
    found = suggestions(pattern, advice, full_name=True, dot_is_any=False, regex=regex)
    assert found == expected
    assert asked <= (len(found) + 0.5) * len(modules), asked / len(modules)
