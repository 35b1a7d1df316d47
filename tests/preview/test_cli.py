"""`modmatch match` (the seed's rules unless a test names others) and `modmatch preview`, end to
end in a subprocess."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from torch import nn

import modmatch
from modmatch import reference
from modmatch.inputs.shapes import SHAPES
from oracles import oracle


def command(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modmatch", *args], input=stdin, capture_output=True, text=True
    )


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``modmatch match`` under the seed's rules, unless ``args`` name others (the last wins)."""
    return command("match", "--rules", "seed", *args, stdin=stdin)


def reference_selection(model: str, **options: object) -> list[str]:
    matcher = reference.ModuleMatcher(**options)  # type: ignore[arg-type]
    linear, other = nn.Linear(1, 1), nn.ReLU()
    selected = []
    for name, is_linear in SHAPES[model].modules():
        prefix, _, short = name.rpartition(".")
        if matcher.match(linear if is_linear else other, short, prefix):
            selected.append(name)
    return selected


def test_default_model_human_output() -> None:
    result = run("-t", "*.experts.*.gate_proj", "-t", "q_a_proj")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "deepseek-v3: 75,397 modules, 45,033 nn.Linear" in out
    assert "  model.layers.{3..60}.mlp.experts.{0..255}.gate_proj  x14,848" in out
    assert "  model.layers.{0..60}.self_attn.q_a_proj  x61" in out
    assert "selected 14,909 of 75,397 modules in " in out
    assert result.stderr == ""


def test_json_output_is_the_reference_selection() -> None:
    result = run("--model", "mixtral-8x22b", "-x", "*.w2", "-x", "nothing_here", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document.pop("timings")) == {
        "reading the model",
        "matching",
        "counts and advice",
        "total",
    }
    expected = reference_selection(
        "mixtral-8x22b", target_modules=[], exclude_modules=["*.w2", "nothing_here"]
    )
    assert document == {
        "schema_version": 2,
        "rules": "seed",
        "call": "split",
        "model": "mixtral-8x22b",
        "defaults": None,
        "modules": 2_863,
        "linear": 1_625,
        "selected": len(expected),
        "patterns": [
            {"pattern": "*.w2", "matched": 448},
            {"pattern": "nothing_here", "matched": 0},
        ],
        "unmatched_patterns": ["nothing_here"],
        "unmatched_excludes": ["nothing_here"],
        "selected_names": expected,
        "selected_not_linear": 0,  # excludes alone select Linear modules only
        "suggestions": {"nothing_here": []},
    }


def test_all_linear_and_causal_lm() -> None:
    result = run("--model", "llama-3.1-405b", "--all-linear", "--causal-lm", "--json")
    document = json.loads(result.stdout)
    expected = reference_selection(
        "llama-3.1-405b", target_modules=[], match_all_linear=True, is_causal_lm=True
    )
    assert document["selected_names"] == expected and "lm_head" not in expected


def test_names_file_and_stdin(tmp_path: Path) -> None:
    names = tmp_path / "names.txt"
    names.write_text("model.q_proj\tLinear\nmodel.act\tSiLU\nmodel.o_proj\tLinear8bitLt\n")
    result = run("--names", str(names), "--all-linear", "--json")
    assert json.loads(result.stdout)["selected_names"] == ["model.q_proj", "model.o_proj"]
    piped = run("--names", "-", "-t", "*.act", "--json", stdin=names.read_text())
    assert json.loads(piped.stdout)["selected_names"] == ["model.act"]


def test_strict_exits_1_on_an_unmatched_pattern() -> None:
    result = run("--model", "megatron-gpt", "-t", "linear_qkv", "-t", "linear_fc1x", "--strict")
    assert result.returncode == 1
    assert "unmatched pattern 'linear_fc1x'; try 'linear_fc1'" in result.stdout
    assert run("--model", "megatron-gpt", "-t", "linear_qkv", "--strict").returncode == 0


def test_explain() -> None:
    result = run(
        "--model",
        "megatron-gpt",
        "--explain",
        "decoder.layers.3.self_attention.linear_qkv",
        "--explain",
        "decoder.layers.3.mlp.router",
        "--explain",
        "not.a.module",
    )
    assert (
        "decoder.layers.3.self_attention.linear_qkv: selected, exact short name by 'linear_qkv'"
        in result.stdout
    )
    assert "decoder.layers.3.mlp.router: not selected, no target matched" in result.stdout
    assert "not.a.module: not in the model" in result.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    cases = {
        ("--names", str(tmp_path / "missing.txt")): "no such file",
        ("--names", str(empty)): "no module names in",
        ("-t", "*.q_proj("): "invalid target pattern '*.q_proj(' at index 0: missing ), "
        "unterminated subpattern at position 8",
        ("-x", "a", "-x", "*.q_("): "invalid exclude pattern '*.q_(' at index 1",
        ("-t", "q_proj", "-x", "o_proj"): "cannot be combined",
    }
    if importlib.util.find_spec("transformers"):
        untyped, unknown, bad = (tmp_path / name for name in ("untyped", "unknown", "bad"))
        untyped.write_text('{"hidden_size": 8}')
        unknown.write_text('{"model_type": "no-such-model"}')
        bad.write_text('{"model_type": "llama", "num_hidden_layers": "x"}')
        cases[("--model", str(empty))] = "empty.txt is not JSON"
        cases[("--model", str(tmp_path))] = "the folder holds no config.json"
        cases[("--model", str(untyped))] = "it has no model_type"
        cases[("--model", str(unknown))] = "has no model type 'no-such-model'"
        cases[("--model", str(bad))] = "cannot build a model from"
    else:
        cases[("--model", str(empty))] = "needs transformers"
    for args, message in cases.items():
        result = run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("modmatch: error: ") and message in result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert result.stdout == ""


def test_a_fallback_pattern_warns_in_one_line() -> None:
    result = run("-t", r"(a)\1", "-t", "q_a_proj")
    assert result.returncode == 0
    assert result.stderr == (
        "modmatch: warning: target pattern '(a)\\\\1' at index 0: only Python's re can run it "
        "(backreference), and re may backtrack\n"
    )


def test_a_reader_that_leaves_early_is_no_error() -> None:
    line = f"{sys.executable} -m modmatch match --model kimi-k2 --all-linear --json | head -c 10"
    result = subprocess.run(line, shell=True, capture_output=True, text=True)
    assert result.stdout == '{\n  "schem' and "Traceback" not in result.stderr


def test_each_rule_set_selects_as_its_matcher(tmp_path: Path) -> None:
    from modmatch import automodel, megatron_bridge
    from modmatch.peft import PeftMatcher

    modules = list(SHAPES["llama-3.1-405b"].modules())
    linear, other = nn.Linear(1, 1), nn.ReLU()
    targets = ["q_proj", "*.layers.1.*", "*.mlp.*_proj"]
    args = [arg for target in targets for arg in ("-t", target)]

    def split_call(matcher: Any, only_linear: bool = False) -> list[str]:
        chosen = []
        for name, is_linear in modules:
            prefix, _, short = name.rpartition(".")
            if (is_linear or not only_linear) and matcher.match(
                linear if is_linear else other, short, prefix
            ):
                chosen.append(name)
        return chosen

    auto = automodel.ModuleMatcher(target_modules=targets)
    expected = {
        "megatron-bridge": split_call(megatron_bridge.ModuleMatcher(target_modules=targets)),
        # Automodel asks only about Linear modules, passing the full name.
        "automodel": [
            name for name, is_linear in modules if is_linear and auto.match(linear, name)
        ],
        "peft": [name for name, _ in modules if name and PeftMatcher(targets).match(name)],
    }
    for rules, names in expected.items():
        result = run("--model", "llama-3.1-405b", "--rules", rules, *args, "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["selected_names"] == names, rules
    # The call can be overridden: Automodel's rules with the seed's split call.
    split = run(
        "--model", "llama-3.1-405b", "--rules", "automodel", "--call", "split", *args, "--json"
    )
    assert json.loads(split.stdout)["selected_names"] == split_call(auto, only_linear=True)
    # And the seed's and Megatron-Bridge's rules with the full-name call ("q_proj" then selects
    # nothing by its short name, "lm_head" as the whole name).
    full_targets = ["q_proj", "lm_head", "*.layers.1.*"]
    for rules, matcher in (
        ("seed", modmatch.ModuleMatcher(target_modules=full_targets)),
        ("megatron-bridge", megatron_bridge.ModuleMatcher(target_modules=full_targets)),
    ):
        full = run(
            "--model", "llama-3.1-405b", "--rules", rules, "--call", "full-name",
            *(arg for target in full_targets for arg in ("-t", target)), "--json",
        )  # fmt: skip
        root = "" if rules == "seed" else None  # Megatron-Bridge asks about the root unnamed
        expected_full = [
            name
            for name, is_linear in modules
            if matcher.match(linear if is_linear else other, name if name else root, None)
        ]
        assert json.loads(full.stdout)["selected_names"] == expected_full, rules


def test_a_bare_target_under_the_full_name_call_gets_the_pattern_that_works() -> None:
    result = run(
        "--model", "llama-3.1-405b", "--rules", "automodel", "-t", "q_proj", "-t", "lm_head"
    )
    assert result.returncode == 0, result.stderr
    assert "rules: automodel, called as match(module, full name)" in result.stdout
    assert "'*.q_proj' selects the modules named q_proj" in result.stdout
    assert "selected 1 module:\n  lm_head\n" in result.stdout  # a top-level name is its full name


def test_defaults_are_said() -> None:
    result = run("--model", "megatron-gpt", "--rules", "megatron-bridge", "--json")
    document = json.loads(result.stdout)
    assert document["defaults"] == (
        "Megatron-Bridge's default targets: linear_qkv linear_proj linear_fc1 linear_fc2 "
        "(Megatron-Core names; give -t for a Hugging Face model)"
    )
    assert document["selected"] > 0
    text = run().stdout  # the seed's defaults on the default (Hugging Face) model
    assert "no targets given: the seed's default targets: linear_qkv" in text
    assert "Megatron-Core names" in text


def test_peft_config_file_and_folder(tmp_path: Path) -> None:
    from modmatch.peft import PeftMatcher

    settings = {
        "target_modules": ["gate_proj", "q_a_proj"],
        "exclude_modules": ["model.layers.3.mlp.shared_experts.gate_proj"],
        "layers_to_transform": [3, 4],
        "layers_pattern": "layers",
        "peft_type": "LORA",
    }
    (tmp_path / "adapter_config.json").write_text(json.dumps(settings))
    matcher = PeftMatcher(
        settings["target_modules"],
        exclude_modules=settings["exclude_modules"],
        layers_to_transform=[3, 4],
        layers_pattern="layers",
    )
    expected = [name for name, _ in SHAPES["deepseek-v3"].modules() if name and matcher.match(name)]
    for path in (tmp_path, tmp_path / "adapter_config.json"):
        result = command("preview", str(path), "--model", "deepseek-v3", "--json")
        assert result.returncode == 0, result.stderr
        document = json.loads(result.stdout)
        assert (document["rules"], document["selected_names"]) == ("peft", expected)
    flags = run(
        "--rules", "peft", "-t", "gate_proj", "-t", "q_a_proj",
        "-x", "model.layers.3.mlp.shared_experts.gate_proj",
        "--layers-to-transform", "3", "--layers-to-transform", "4", "--layers-pattern", "layers",
        "--json",
    )  # fmt: skip
    assert json.loads(flags.stdout)["selected_names"] == expected


def test_rule_set_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text(
        '{"target_modules": ".*q_proj", "layers_to_transform": 1}'
    )
    cases = {
        ("--rules", "seed", "--layers-to-transform", "1"): "--layers-to-transform is a PEFT option",
        ("--rules", "peft", "--call", "split", "-t", "q_proj"): "PEFT always passes the full",
        ("--rules", "peft"): "target_modules is null: PEFT fills in its default targets",
        ("--rules", "peft", "--peft-version", "0.16.2", "-t", "q"): "'0.16.2': modmatch knows",
        ("--rules", "seed", "--peft-version", "0.19"): "--peft-version is a PEFT option",
        ("--rules", "automodel", "-t", "q_proj", "-x", "k_proj"): "mutually exclusive",
        ("--rules", "megatron-bridge", "--causal-lm"): "no is_causal_lm",
        ("--rules", "automodel", "-t", "*.q_proj("): "invalid pattern: missing )",
        ("preview", str(tmp_path), "--model", "kimi-k2"): "`layers_to_transform` cannot be used",
        ("preview", str(tmp_path / "missing")): "no such file or folder",
    }
    for args, message in cases.items():
        result = command(*args) if args[0] == "preview" else run(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert result.stderr.startswith("modmatch: error: ") and message in result.stderr, args
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_peft_all_linear_on_a_built_model_is_what_peft_wraps(tmp_path: Path) -> None:
    transformers = oracle("transformers")
    real = oracle("peft")
    import torch

    settings = {"model_type": "gpt2", "n_embd": 8, "n_layer": 2, "n_head": 2, "vocab_size": 32}
    (tmp_path / "config.json").write_text(json.dumps(settings))
    result = run(
        "--rules",
        "peft",
        "--all-linear",
        "--model",
        str(tmp_path / "config.json"),
        "--json",
        "--strict",
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["patterns"] == [] and document["unmatched_patterns"] == []
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(
            transformers.AutoConfig.for_model(**settings)
        )
    adapted = real.get_peft_model(model, real.LoraConfig(target_modules="all-linear"))
    wrapped = [
        name.removeprefix("base_model.model.")
        for name, module in adapted.named_modules()
        if hasattr(module, "lora_A")
    ]
    assert wrapped and document["selected_names"] == wrapped  # Conv1D layers included


def test_megatron_bridge_asks_as_its_walk() -> None:
    result = run("--model", "megatron-gpt", "--rules", "megatron-bridge", "-t", "*", "--json")
    names = json.loads(result.stdout)["selected_names"]
    assert "" not in names and len(names) == len(list(SHAPES["megatron-gpt"].modules())) - 1
    both = run("--rules", "megatron-bridge", "-t", "linear_qkv", "-x", "linear_proj")
    assert both.returncode == 2 and "cannot be combined" in both.stderr
    assert both.stderr.count("\n") == 1


def test_emit_peft_regex_selects_what_the_preview_selects() -> None:
    import re

    args = ("--model", "mixtral-8x22b", "-t", "*.layers.1.*", "-t", "w2")
    regex = run(*args, "--emit", "peft-regex")
    assert regex.returncode == 0, regex.stderr
    selected = json.loads(run(*args, "--json").stdout)["selected_names"]
    compiled = re.compile(regex.stdout.strip())
    names = [name for name, _ in SHAPES["mixtral-8x22b"].modules()]
    assert [name for name in names if compiled.fullmatch(name)] == selected
    assert run("-t", "nothing", "--emit", "peft-regex").returncode == 2
