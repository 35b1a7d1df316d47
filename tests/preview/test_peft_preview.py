"""The PEFT preview (`modmatch preview ADAPTER --model ...`, `modmatch match --rules peft`) against real PEFT
0.21.2 and transformers 5 on the meta device: what it says PEFT wraps is what get_peft_model
wraps, and where get_peft_model raises, the command exits 2."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from modmatch.cli import main
from modmatch.inputs.shapes import SHAPES
from modmatch.peft import rules_version
from modmatch.reference.peft import release
from oracles import oracle, wrapped

_TINY = {"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2, "vocab_size": 64}
# Full layer and expert counts, tiny hidden sizes.
MODELS: dict[str, dict[str, Any]] = {
    "deepseek-v3": {
        "model_type": "deepseek_v3",
        **_TINY,
        "num_key_value_heads": 2,
        "moe_intermediate_size": 8,
        "q_lora_rank": 8,
        "kv_lora_rank": 8,
        "qk_rope_head_dim": 4,
        "qk_nope_head_dim": 4,
        "v_head_dim": 4,
    },
    "qwen3-235b": {
        "model_type": "qwen3_moe",
        **_TINY,
        "num_key_value_heads": 1,
        "head_dim": 8,
        "moe_intermediate_size": 8,
        "num_hidden_layers": 94,
        "num_experts": 128,
    },
    "mixtral-8x22b": {
        "model_type": "mixtral",
        **_TINY,
        "num_key_value_heads": 1,
        "num_hidden_layers": 56,
        "num_local_experts": 8,
    },
    "llama-3.1-8b": {
        "model_type": "llama",
        **_TINY,
        "num_key_value_heads": 1,
        "num_hidden_layers": 32,
    },
}

CONFIGS: list[dict[str, Any]] = [
    {"target_modules": ["q_proj", "v_proj"]},  # DeepSeek-V3 has neither: refused
    {"target_modules": ["q_a_proj", "gate_proj", "up_proj"]},
    {"target_modules": ["self_attn.o_proj", "down_proj"]},  # dotted suffix, expert projection
    {"target_modules": ["gate_proj"]},  # MoE: gate without up, refused
    {"target_modules": ["w1", "w2", "w3"]},  # Mixtral's expert names in transformers 4
    {"target_modules": ["model.layers.0.self_attn.o_proj", "model.layers.3.self_attn.o_proj"]},
    {"target_modules": ["model.layers.3.mlp.experts.0.gate_proj", "model.layers.3.mlp.up_proj"]},
    {"target_modules": r".*\.layers\.[0-9]\.self_attn\.o_proj"},
    {"target_modules": r".*\.(o_proj|down_proj)", "exclude_modules": r".*\.layers\.1\..*"},
    {
        "target_modules": ["gate_proj", "up_proj", "o_proj"],
        "exclude_modules": ["model.layers.1.self_attn.o_proj", "shared_experts.up_proj"],
    },
    {"target_modules": ["o_proj"], "layers_to_transform": [1, 3], "layers_pattern": "layers"},
    {"target_modules": ["o_proj"], "exclude_modules": ["o_proj"]},  # all excluded: refused
    {"target_modules": "all-linear"},
    {"target_modules": [], "target_parameters": ["mlp.experts.down_proj"]},
    {"target_modules": ["self_attn.o_proj"], "target_parameters": ["o_proj.weight"]},  # refused
    {"target_modules": ["o_proj", "lm_head"], "modules_to_save": ["lm_head"]},
    {"target_modules": ["q_b_proj", "o_proj", "gate"]},  # the router's gate
    {"target_modules": ["mlp"]},  # a container: LoRA cannot wrap it
]


def _model_folder(tmp_path: Path, model: str) -> Path:
    folder = tmp_path / model
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(MODELS[model]))
    return folder


def _build(folder: Path) -> Any:
    transformers = oracle("transformers")
    import torch

    settings = json.loads((folder / "config.json").read_text())
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(
            transformers.AutoConfig.for_model(**settings)
        )


def _preview(capsys: Any, *args: str) -> tuple[int, Any, str]:
    code = main([*args, "--json"])
    out, err = capsys.readouterr()
    document = json.loads(out) if code == 0 else None
    if document is not None:
        document.pop("timings")  # the only key that differs from run to run
    return code, document, err


# get_peft_model on DeepSeek-V3, Qwen3-235B and Mixtral at their full layer and expert counts
# takes seconds each: slow (pytest -m slow); Llama stays in the default run.
@pytest.mark.parametrize(
    "model",
    [m if m == "llama-3.1-8b" else pytest.param(m, marks=pytest.mark.slow) for m in sorted(MODELS)],
)
def test_the_preview_is_what_get_peft_model_wraps(model: str, tmp_path: Path, capsys: Any) -> None:
    real = oracle("peft")
    folder = _model_folder(tmp_path, model)
    for number, config in enumerate(CONFIGS):
        adapter = tmp_path / f"adapter{number}"
        real.LoraConfig(**config).save_pretrained(str(adapter))
        code, document, err = _preview(capsys, "preview", str(adapter), "--model", str(folder))
        try:
            adapted = real.get_peft_model(_build(folder), real.LoraConfig(**config))
        except ValueError as error:
            assert code == 2, (config, error, document)
            assert err.startswith("modmatch: error: ") and err.count("\n") == 1, err
            continue
        assert code == 0, (config, err)
        assert set(document["selected_names"]) == wrapped(adapted), config
        assert len(document["selected_names"]) == len(set(document["selected_names"]))
        parameters = sorted(adapted.base_model.targeted_parameter_names)
        assert sorted(document.get("selected_parameters", [])) == parameters, config


def _literal(config: dict[str, Any], model: Any) -> set[str]:
    """What the entries select before PEFT rewrites them: PEFT's own test, key by key."""
    check = oracle("peft.tuners.tuners_utils").check_target_module_exists
    lora = oracle("peft").LoraConfig(**config)
    return {name for name, _ in model.named_modules() if name and check(lora, name)}


@pytest.mark.parametrize(
    ("model", "config", "widened", "dropped"),
    [
        (
            "deepseek-v3",
            {"target_modules": ["q_a_proj", "gate_proj", "up_proj"]},
            ["model.layers.{3..60}.mlp.experts"],
            [
                "model.layers.{0..2}.mlp.gate_proj",
                "model.layers.{0..2}.mlp.up_proj",
                "model.layers.{3..60}.mlp.shared_experts.gate_proj",
                "model.layers.{3..60}.mlp.shared_experts.up_proj",
            ],
        ),
        (
            "deepseek-v3",
            {"target_modules": r".*\.layers\.[0-9]\.self_attn\.q_b_proj"},
            ["model.layers.{10..60}.self_attn.q_b_proj"],
            [],
        ),
        (
            "qwen3-235b",
            {"target_modules": ["model.layers.3.mlp.experts.0.gate_proj", "up_proj"]},
            ["model.layers.{0..93}.mlp.experts"],
            [],
        ),
        ("llama-3.1-8b", {"target_modules": ["gate_proj", "up_proj"]}, None, None),
    ],
)
def test_peft_rewriting_is_shown(
    model: str,
    config: dict[str, Any],
    widened: list[str] | None,
    dropped: list[str] | None,
    tmp_path: Path,
    capsys: Any,
) -> None:
    """PEFT 0.21's rewriting (the installed PEFT's own, or restated where another release is
    installed), and, where 0.20 or later is installed, the same worked out from PEFT alone."""
    real = oracle("peft")
    folder = _model_folder(tmp_path, model)
    adapter = tmp_path / "adapter"
    adapter.write_text(json.dumps({"peft_type": "LORA", **config}))
    args = ["preview", str(adapter), "--model", str(folder), "--peft-version", "0.21.2"]
    code, document, err = _preview(capsys, *args)
    assert code == 0, err
    if widened is None:
        assert "rewritten_by_peft" not in document
        return
    assert document["rewritten_by_peft"] == {"widened": widened, "dropped": dropped}
    if release(rules_version()) < (0, 20):
        return  # this release rewrites otherwise: test_the_preview_is_what_get_peft_model_wraps
    # The same, worked out from PEFT alone: its literal test and what it wraps.
    literal = _literal(config, _build(folder))
    adapted = wrapped(real.get_peft_model(_build(folder), real.LoraConfig(**config)))
    assert sorted(adapted - literal) == sorted(_unfolded(widened))
    assert sorted(literal - adapted) == sorted(_unfolded(dropped))
    explain = [arg for name in _unfolded(dropped)[:1] for arg in ("--explain", name)]
    main([*args, *explain])
    text = capsys.readouterr().out
    assert ("adapts" in text) == bool(widened) and ("drops" in text) == bool(dropped)
    assert ("not selected, dropped by PEFT's rewriting" in text) == bool(dropped)


def _unfolded(lines: list[str]) -> list[str]:
    from modmatch.fold import parse, unfold

    return unfold(parse(line) for line in lines)


@pytest.mark.parametrize("model", ["deepseek-v3", "mixtral-8x22b"])
def test_without_the_release_installed_its_rewriting_is_restated(
    model: str, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The preview by the installed PEFT's own rewriting, and by the release's rules restated
    (as where another release, or no PEFT, is installed), say the same."""
    oracle("peft")
    folder = _model_folder(tmp_path, model)
    cases = [
        ("-t", "gate_proj", "-t", "up_proj", "-t", "q_a_proj", "-t", "w1", "-t", "w3"),
        (
            "-t",
            "gate_proj",
        ),
        ("--target-regex", r".*\.layers\.[0-9]\.self_attn\.o_proj"),
        ("--target-regex", r".*(w1|w2|w3|gate_proj|up_proj)"),
        ("--all-linear",),
        ("-t", "o_proj", "-t", "down_proj", "-t", "w2", "-x", "model.layers.1.mlp.experts"),
    ]
    answers = []
    for restated in (False, True):
        if restated:
            monkeypatch.setattr("modmatch.preview.peft.installed_is", lambda version: False)
        answers.append([_preview(capsys, "match", *case, "--model", str(folder)) for case in cases])
    for case, by_peft, by_rules in zip(cases, *answers, strict=True):
        assert by_peft[:2] == by_rules[:2], case
        assert by_peft[2].split("\n")[:1] == by_rules[2].split("\n")[:1], case


def test_refusals_name_peft_s_reason(tmp_path: Path, capsys: Any) -> None:
    oracle("peft")
    folder = _model_folder(tmp_path, "deepseek-v3")
    cases = {
        ("-t", "gate_proj"): "without also targeting up_proj",
        ("-t", "mlp"): "PEFT cannot wrap model.layers.0.mlp (DeepseekV3MLP) (and 60 more",
        ("-t", "nothing"): "target_modules ['nothing'] matches no module",
        ("-t", "o_proj", "-x", "o_proj"): "target_modules matches are excluded",
        ("-t", "o_proj", "--exclude-regex", ".*"): "every module is excluded",
    }
    for args, reason in cases.items():
        code, _, err = _preview(
            capsys, "match", *args, "--model", str(folder), "--peft-version", "0.21"
        )
        assert code == 2 and reason in err and err.count("\n") == 1, (args, err)


def _tree(shape: str) -> Any:
    """The built-in shape as an nn.Module tree on the meta device: Linear where it says so."""
    from torch import nn

    root = nn.Module()
    for name, is_linear in SHAPES[shape].modules():
        if not name:
            continue
        parent, _, leaf = name.rpartition(".")
        holder = root.get_submodule(parent) if parent else root
        module = nn.Linear(2, 2, bias=False, device="meta") if is_linear else nn.Module()
        holder.add_module(leaf, module)
    return root


@pytest.mark.slow  # get_peft_model on DeepSeek-V3's built-in shape, 5-10 s a config
@pytest.mark.parametrize(
    "config",
    [
        {"target_modules": ["model.layers.3.mlp.experts.7.gate_proj", "shared_experts.up_proj"]},
        {"target_modules": r".*\.layers\.1[0-2]\.mlp\.experts\.[0-9]\.down_proj"},
        {"target_modules": ["gate_proj"], "layers_to_transform": [5], "exclude_modules": ["mlp"]},
        {"target_modules": ["gate", "q_a_proj"]},  # the router is not Linear: refused
    ],
    ids=str,
)
def test_the_preview_on_built_in_shapes_is_what_get_peft_model_wraps(
    config: dict[str, Any], tmp_path: Path, capsys: Any
) -> None:
    real = oracle("peft")
    real.LoraConfig(**config).save_pretrained(str(tmp_path))
    code, document, err = _preview(capsys, "preview", str(tmp_path), "--model", "deepseek-v3")
    try:
        adapted = real.get_peft_model(_tree("deepseek-v3"), real.LoraConfig(**config))
    except ValueError:
        # PEFT refuses a module it cannot wrap; without module types the preview says so in a note.
        assert code == 0 and any("not Linear" in note for note in document["notes"])
        return
    assert code == 0, err
    assert set(document["selected_names"]) == wrapped(adapted)


def test_emit_warns_where_peft_rewrites_a_str(tmp_path: Path, capsys: Any) -> None:
    oracle("peft")
    folder = _model_folder(tmp_path, "deepseek-v3")
    assert (
        main(
            [
                "match",
                "--rules",
                "seed",
                "-t",
                "*.layers.1.self_attn.q_b_proj",
                "--model",
                str(folder),
                "--emit",
                "peft-regex",
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert out.strip() == r"model\.layers\.1\.self_attn\.q_b_proj"
    assert re.fullmatch(out.strip(), "model.layers.1.self_attn.q_b_proj")
    # The warning is the installed release's: 0.20 resolves a str to its last segments, 0.19 reads
    # it as a set of characters (the "1" matches layer 1, which LoRA cannot wrap), 0.18 does not
    # rewrite.
    peft = release(rules_version())
    if peft >= (0, 20):
        assert "adapt 60 modules this regex does not select" in err
    elif peft == (0, 19):
        assert "PEFT 0.19.1: PEFT cannot wrap model.layers.1 (DeepseekV3DecoderLayer)" in err
    else:
        assert err == ""
