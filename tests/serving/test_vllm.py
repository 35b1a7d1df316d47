"""`modmatch serve ADAPTER --engine vllm`: the command answers as vLLM 0.33.0's own loading code does.

``vllm_verdicts.json`` is vLLM's answer on each case (``record.py``). Where vLLM is installed
(the environment .ci/serving builds), the command runs vLLM's own code and must give the
recorded answer, and so must the built-in rules, in every environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import adapters
import pytest
import verdicts

from modmatch.reference import vllm as reference
from modmatch.serving import vllm

Made = Callable[[str], tuple[Path, Path]]
VLLM = vllm.installed()
if VLLM is None and os.environ.get("MODMATCH_SERVING") == "vllm":
    # The environment .ci/serving builds: vLLM's own answer must run there, not be skipped.
    raise RuntimeError("MODMATCH_SERVING=vllm, and vLLM does not import")
needs_vllm = pytest.mark.skipif(VLLM is None, reason="vLLM is not installed: .ci/serving")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    root = tmp_path_factory.mktemp("serving")
    return lambda name: adapters.make(root, name)


@pytest.fixture
def built_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """The built-in rules answer, as where vLLM is not installed."""
    monkeypatch.setattr(vllm, "installed", lambda: None)


def _kept(answer: dict[str, Any]) -> dict[str, Any]:
    return {key: answer[key] for key in verdicts.KEPT}


def test_every_case_is_recorded_by_the_release_restated() -> None:
    assert sorted(verdicts.recorded()) == verdicts.cases("vllm")
    assert verdicts.recorded_by() == reference.VERSION


RULES = ["built-in", pytest.param("installed", marks=needs_vllm)]


@pytest.mark.parametrize("rules", RULES)
@pytest.mark.parametrize("name", verdicts.cases("vllm"))
def test_the_answer_is_vllms(
    name: str, rules: str, made: Made, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The built-in rules everywhere, and the installed vLLM's own code where it runs, give
    the answer vLLM 0.33.0's code gave on each case."""
    if rules == "built-in":
        monkeypatch.setattr(vllm, "installed", lambda: None)
    found = verdicts.serve(*made(name), *adapters.CASES[name].flags)
    assert found["rules"] == rules
    expected, answer = dict(verdicts.recorded()[name]), _kept(found)
    if rules == "built-in":
        # Where vLLM fails without a message of its own, the record keeps vLLM's exception and
        # the built-in rules give its type with what they found: the types are compared.
        expected["error"] = verdicts.failure(expected["error"])
        answer["error"] = verdicts.failure(answer["error"])
    assert answer == expected


@needs_vllm
def test_mla_kv_b_proj_reaches_its_lora_layer_and_is_restated_as_not_applied(
    made: Made, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vLLM sets kv_b_proj's LoRA; only the restated rule (the attention backend holds its base
    layer) says it never runs. Without that rule, the installed vLLM's answer applies it."""
    adapter, model = made("deepseek-v3-kv-b-proj")
    with_rule = verdicts.serve(adapter, model)
    assert VLLM is not None
    monkeypatch.setattr(VLLM, "_held_by_attention", lambda name, config: False)
    without = verdicts.serve(adapter, model)
    bypassed = set(without["applied"]) - set(with_rule["applied"])
    assert (
        bypassed
        == set(with_rule["not_applied"])
        == {f"model.layers.{i}.self_attn.kv_b_proj" for i in (0, 1)}
    )


@needs_vllm
@pytest.mark.parametrize("name", sorted(n for n in adapters.CASES if "deepseek" in n))
def test_on_a_cpu_with_amx_tiles_the_answer_is_vllms(
    name: str, made: Made, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the CPU has AMX tiles, vLLM picks an MLA backend whose weight packing only its
    CPU build has: the check asks for the reference backend, so the answer is the same. (The
    machines this runs on may have no AMX tiles: the CPU's answer is replaced.)"""
    monkeypatch.setattr("torch.cpu._is_amx_tile_supported", lambda: True)
    found = verdicts.serve(*made(name), *adapters.CASES[name].flags)
    assert found["rules"] == "installed"
    assert _kept(found) == verdicts.recorded()[name]


@needs_vllm
def test_vllm_loads_a_smaller_adapter_which_is_said_zero_padded(made: Made) -> None:
    """vLLM itself sets the LoRA of a module trained at a smaller size (its buffers are the
    served model's); the verdict says the module is not applied as trained, with both sizes."""
    adapter, model = made("served-on-larger-mlp")
    assert VLLM is not None
    from modmatch.serving import adapter as saved
    from modmatch.serving.settings import Settings

    reached = VLLM.serve(saved.read(adapter), None, str(model), Settings(), None)
    assert any(".mlp.down_proj." in tensor for tensor in reached)
    why = verdicts.serve(adapter, model)["why"]["model.layers.0.mlp.down_proj"]
    assert why["reason"] == "zero-padded: trained as 128→64, served as 256→64 (in→out)"


@pytest.mark.usefixtures("built_in")
def test_max_lora_rank_is_the_servers(made: Made) -> None:
    adapter, model = made("rank-32")
    assert not verdicts.serve(adapter, model)["loads"]
    assert verdicts.serve(adapter, model, "--max-lora-rank", "32")["loads"]


@pytest.mark.usefixtures("built_in")
def test_strict_fails_on_weights_never_applied(made: Made) -> None:
    adapter, model = made("wrong-prefix")
    answer = verdicts.serve(adapter, model, "--strict")
    assert answer["exit"] == 1 and answer["loads"] and not answer["applied"]
    assert verdicts.serve(*made("llama-qkvo"), "--strict")["exit"] == 0


@pytest.mark.usefixtures("built_in")
def test_the_audit_finds_an_adapter_saved_without_some_modules(made: Made, tmp_path: Path) -> None:
    """Training adapts the layers' experts; a conversion that drops them is caught."""
    source, model = made("mixtral-experts")
    adapter = tmp_path / "adapter"
    shutil.copytree(source, adapter)
    from safetensors.torch import load_file, save_file

    weights = adapter / "adapter_model.safetensors"
    save_file({k: v for k, v in load_file(weights).items() if ".experts." not in k}, weights)
    audit = verdicts.serve(adapter, model)["adapter"]
    assert audit["adapted_not_saved"] == [f"model.layers.{i}.mlp.experts" for i in (0, 1)]
    assert audit["lora_ranks"] == {f"model.layers.{i}.self_attn.q_proj": [8] for i in (0, 1)}


@pytest.mark.usefixtures("built_in")
def test_the_audit_gives_fused_experts_their_rank_per_expert(made: Made) -> None:
    audit = verdicts.serve(*made("qwen3-moe-target-parameters"))["adapter"]
    # PEFT saves one pair per parameter of rank r times the experts (4 here).
    assert audit["lora_ranks"]["model.layers.0.mlp.experts"] == [8, 8]
    assert audit["adapted_not_saved"] == []


@pytest.mark.usefixtures("built_in")
def test_the_text_answer(made: Made, capsys: pytest.CaptureFixture[str]) -> None:
    from modmatch.cli import main

    adapter, model = made("deepseek-v3-kv-b-proj")
    assert main(["serve", str(adapter), "--model", str(model), "--engine", "vllm"]) == 0
    text = capsys.readouterr().out
    assert "vLLM 0.33.0 (built-in rules" in text and ") loads the adapter;" in text
    assert "  model.layers.{0,1}.self_attn.kv_b_proj  x2\n" in text.split("never applies")[1]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--serve", "vllm", "--hf-config", "MODEL"], "give --peft-config ADAPTER_DIR"),
        (["--max-lora-rank", "32", "--peft-config", "ADAPTER"], "it needs --serve"),
        (["serve", "ADAPTER", "--engine", "vllm"], "ADAPTER: no such file or folder"),
        (
            ["serve", "ADAPTER", "--engine", "vllm", "--max-lora-rank", "24"],
            "--max-lora-rank 24: vLLM takes one of 1, 8, 16, 32,",
        ),
        (
            ["serve", "ADAPTER", "--engine", "vllm", "--lora-strict-loading"],
            "--lora-strict-loading: vLLM has no such flag",
        ),
    ],
)
def test_serving_flags_are_checked(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from modmatch.cli import main

    try:
        assert main(flags) == 2
    except SystemExit as exited:  # argparse's refusal of a value
        assert exited.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.usefixtures("built_in")
def test_an_adapter_without_safetensors_is_named(
    made: Made, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from modmatch.cli import main

    source, model = made("llama-qkvo")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    shutil.copy(source / "adapter_config.json", adapter)
    (adapter / "adapter_model.bin").write_bytes(b"\x80\x02")
    args = ["serve", str(adapter), "--model", str(model), "--engine", "vllm", "--json"]
    assert main(args) == 2
    out = capsys.readouterr().out
    assert "only adapter_model.safetensors is read" in json.loads(out)["error"]


@pytest.mark.usefixtures("built_in")
def test_modules_not_applied_say_why(made: Made) -> None:
    mixtral = verdicts.serve(*made("mixtral-experts"))["why"]
    assert mixtral == {
        f"model.layers.{i}.mlp.experts": {
            "reason": vllm.NO_SUCH_MODULE,
            "served_name": f"model.layers.{i}.block_sparse_moe.experts",
        }
        for i in (0, 1)
    }
    prefixed = verdicts.serve(*made("wrong-prefix"))["why"]
    assert prefixed["model.language_model.layers.1.self_attn.q_proj"]["served_name"] == (
        "model.layers.1.self_attn.q_proj"
    )
    layers = verdicts.serve(*made("layers-not-served"))["why"]
    assert {(w["reason"], w["served_name"]) for w in layers.values()} == {
        (vllm.NO_SUCH_MODULE, None)
    }
    assert verdicts.serve(*made("deepseek-v3-kv-b-proj"))["why"] == {
        f"model.layers.{i}.self_attn.kv_b_proj": {
            "reason": vllm.HELD_BY_ATTENTION,
            "served_name": None,
        }
        for i in (0, 1)
    }


def test_an_architecture_without_restated_facts_still_answers_where_vllm_runs(
    made: Made, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The installed vLLM answers for any architecture; the reasons, from the restated
    layouts, are then left out (here the layouts are made to know none)."""
    from modmatch.cli import main
    from modmatch.reference import vllm_models

    adapter, model = made("wrong-prefix")
    monkeypatch.setattr(vllm, "installed", lambda: _Runner())
    monkeypatch.setattr(vllm_models, "ARCHITECTURES", {})
    assert main(["serve", str(adapter), "--model", str(model), "--engine", "vllm"]) == 0
    text = capsys.readouterr().out
    assert "vLLM 0.33.0 (installed) loads the adapter and applies none of its modules" in text
    assert "model.language_model.layers.{0,1}.self_attn.q_proj  x2" in text


class _Runner:
    """A stand-in for the installed vLLM: loads the adapter and applies nothing."""

    VERSION = "0.33.0"

    @staticmethod
    def read_fields() -> frozenset[str]:
        return frozenset()

    @staticmethod
    def serve(*args: Any) -> frozenset[str]:
        return frozenset()


@needs_vllm
def test_stdout_is_the_json_answer_where_vllm_logs(made: Made) -> None:
    """vLLM's own logging writes to stdout; the command keeps it out of its answer."""
    adapter, model = made("llama-qkvo")
    env = {**os.environ, "VLLM_CONFIGURE_LOGGING": "1", "VLLM_LOGGING_LEVEL": "DEBUG"}
    args = ["serve", str(adapter), "--model", str(model), "--engine", "vllm", "--json"]
    result = subprocess.run(
        [sys.executable, "-m", "modmatch", *args], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["serve"]["rules"] == "installed"


@pytest.mark.usefixtures("built_in")
def test_the_audit_counts_experts_held_one_module_each(made: Made, tmp_path: Path) -> None:
    """An adapter trained on transformers 4 (one module per expert) holds the experts that
    PEFT's rewriting fuses on a transformers-5 model: nothing is missing."""
    source, model = made("mixtral-per-expert")
    adapter = tmp_path / "adapter"
    shutil.copytree(source, adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["target_modules"] = ["q_proj", "w1", "w2", "w3"]
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    audit = verdicts.serve(adapter, model)["adapter"]
    assert audit["adapted_not_saved"] == []
    (adapter / "adapter_model.safetensors").unlink()
    shutil.copy(made("mixtral-attention")[0] / "adapter_model.safetensors", adapter)
    held_attention_only = verdicts.serve(adapter, model)["adapter"]
    assert held_attention_only["adapted_not_saved"] == [
        f"model.layers.{i}.mlp.experts" for i in (0, 1)
    ]


@pytest.mark.parametrize("rules", RULES)
def test_a_config_file_serves_as_its_folder(
    rules: str, made: Made, monkeypatch: pytest.MonkeyPatch
) -> None:
    if rules == "built-in":
        monkeypatch.setattr(vllm, "installed", lambda: None)
    adapter, model = made("layers-not-served")
    from_file = verdicts.serve(adapter, model / "config.json")
    assert from_file["rules"] == rules
    assert _kept(from_file) == _kept(verdicts.serve(adapter, model))


@pytest.mark.parametrize(
    ("case", "hint"),
    [
        ("rank-32", "hint: serve with --max-lora-rank 32 (here too: --max-lora-rank 32)"),
        ("classifier-served-as-causal-lm", "names a classification class (this one names Llama"),
        ("dora", None),
    ],
)
def test_a_refusal_says_what_serves_the_adapter(
    made: Made, case: str, hint: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    from modmatch.cli import main

    adapter, model = made(case)
    assert main(["serve", str(adapter), "--model", str(model), "--engine", "vllm"]) == 2
    text = capsys.readouterr().out
    assert "refuses the adapter" in text
    hints = [line for line in text.splitlines() if line.startswith("hint: ")]
    assert hint in hints[0] if hint else not hints, hints


@pytest.mark.usefixtures("built_in")
def test_resized_modules_are_shown_apart_with_both_sizes(
    made: Made, capsys: pytest.CaptureFixture[str]
) -> None:
    from modmatch.cli import main

    adapter, model = made("served-on-larger-mlp")
    args = ["serve", str(adapter), "--model", str(model), "--engine", "vllm", "--strict"]
    assert main(args) == 1
    text = capsys.readouterr().out
    assert "it applies 4 modules:" in text and "never applies" not in text
    resized = text.split("with weights resized to the model's, not as trained")[1]
    assert "model.layers.{0,1}.mlp.down_proj" in resized
    assert "zero-padded: trained as 64→128, served as 64→256 (in→out)" in resized


@pytest.mark.usefixtures("built_in")
def test_modules_the_server_targets_leave_out_are_said_so(made: Made) -> None:
    """vllm-project/vllm#55193: --lora-target-modules wraps fewer layers, and the adapter's
    other modules are loaded and never applied."""
    answer = verdicts.serve(*made("server-targets-o-proj"), "--lora-target-modules", "o_proj")
    assert answer["applied"] == [f"model.layers.{i}.self_attn.o_proj" for i in (0, 1)]
    assert answer["why"]["model.layers.0.self_attn.q_proj"] == {
        "reason": vllm.LEFT_OUT,
        "served_name": None,
    }
