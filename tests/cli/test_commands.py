"""The subcommands (`match`, `preview`, `serve`) against the single-command form, and the
defects a new user found: each test fails without its fix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modmatch.cli import main
from oracles import oracle

FIXTURES = Path(__file__).parent.parent / "fixtures" / "adapter_configs"
AXOLOTL = Path(__file__).parent.parent / "frontends" / "fixtures" / "axolotl"
LLAMAFACTORY = Path(__file__).parent.parent / "frontends" / "fixtures" / "llamafactory"


def _run(capsys: Any, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _llama(folder: Path, **settings: Any) -> Path:
    """A tiny Llama config.json in ``folder``."""
    transformers = oracle("transformers")
    sizes = {
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "vocab_size": 64,
    }
    transformers.LlamaConfig(**sizes, **settings).save_pretrained(str(folder))
    return folder / "config.json"


def test_match_and_the_old_form_select_alike(capsys: Any) -> None:
    for rules, targets in (("seed", ["*.experts.*.gate_proj", "q_a_proj"]), ("peft", ["q_a_proj"])):
        flags = [arg for target in targets for arg in ("-t", target)]
        code, new, _ = _run(capsys, "match", "--rules", rules, *flags, "--json")
        old_code, old, err = _run(capsys, "--rules", rules, *flags, "--json")
        assert code == old_code == 0
        assert json.loads(new)["selected_names"] == json.loads(old)["selected_names"] != []
        assert err.count("\n") == 1 and "deprecated" in err


@pytest.mark.parametrize("file", sorted(FIXTURES.glob("*.json"))[:6], ids=lambda f: f.name)
def test_preview_and_the_old_form_select_alike(file: Path, capsys: Any) -> None:
    # The built-in shape, as the old form defaulted to without --hf-config.
    code, new, _ = _run(capsys, "preview", str(file), "--model", "llama-3.1-405b", "--json")
    old_code, old, _ = _run(
        capsys, "--peft-config", str(file), "--model", "llama-3.1-405b", "--json"
    )
    assert code == old_code
    if code == 0:
        assert json.loads(new)["selected_names"] == json.loads(old)["selected_names"]
    else:
        assert json.loads(new)["error"] == json.loads(old)["error"]


def test_match_defaults_to_peft_whose_all_linear_leaves_out_lm_head(
    capsys: Any, tmp_path: Path
) -> None:
    config = _llama(tmp_path)
    code, out, _ = _run(capsys, "match", "--all-linear", "--model", str(config), "--json")
    document = json.loads(out)
    assert code == 0 and document["rules"] == "peft"
    assert "lm_head" not in document["selected_names"]
    assert "model.layers.1.mlp.down_proj" in document["selected_names"]


def test_preview_detects_the_kind_and_names_a_wrong_one(capsys: Any, tmp_path: Path) -> None:
    axolotl = AXOLOTL / "llama-3-lora-1b.yml"
    code, _, err = _run(capsys, "preview", str(axolotl), "--as", "llamafactory", "--model", "x")
    assert code == 2 and "is a Axolotl config, not a LLaMA-Factory config" in err
    factory = LLAMAFACTORY / "train_lora-qwen3_lora_sft.yaml"
    code, _, err = _run(capsys, "preview", str(factory), "--as", "axolotl", "--model", "x")
    assert code == 2 and "is a LLaMA-Factory config, not a Axolotl config" in err
    code, _, err = _run(capsys, "preview", str(FIXTURES / "phi-1_5.json"), "--as", "axolotl")
    assert code == 2 and "is a PEFT adapter config, not a Axolotl config" in err


def test_preview_of_a_front_end_config_on_its_model(capsys: Any, tmp_path: Path) -> None:
    config = _llama(tmp_path)
    file = AXOLOTL / "llama-3-lora-1b.yml"
    code, out, err = _run(capsys, "preview", str(file), "--model", str(config), "--json")
    document = json.loads(out)
    assert code == 0, err
    assert document["built_by"] == "Axolotl 0.18.0"
    # Axolotl not installed beside it: the release Axolotl pins, said so.
    if document["peft_version"] == "0.19.1":
        assert any("release Axolotl 0.18.0 pins" in note for note in document["notes"])
    old_code, old, _ = _run(
        capsys, "--axolotl-config", str(file), "--hf-config", str(config), "--json"
    )
    assert old_code == 0 and json.loads(old)["selected_names"] == document["selected_names"]


def test_the_model_is_the_configs_own_base_model_where_cached(
    capsys: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    cache = tmp_path / "hub"
    snapshot = cache / "models--someone--tiny-llama" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    _llama(snapshot)
    (cache / "models--someone--tiny-llama" / "refs").mkdir()
    (cache / "models--someone--tiny-llama" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    adapter = tmp_path / "adapter_config.json"
    adapter.write_text(
        json.dumps(
            {
                "peft_type": "LORA",
                "target_modules": ["q_proj"],
                "base_model_name_or_path": "someone/tiny-llama",
            }
        )
    )
    code, out, err = _run(capsys, "preview", str(adapter), "--json")
    assert code == 0, err
    assert json.loads(out)["model"] == "someone/tiny-llama"
    assert json.loads(out)["selected"] == 2
    # The same id, given as --model to match.
    code, out, _ = _run(capsys, "match", "-t", "q_proj", "--model", "someone/tiny-llama", "--json")
    assert code == 0 and json.loads(out)["selected"] == 2
    # Not cached: said, nothing downloaded.
    adapter.write_text(
        json.dumps(
            {
                "peft_type": "LORA",
                "target_modules": ["q_proj"],
                "base_model_name_or_path": "someone/absent",
            }
        )
    )
    code, _, err = _run(capsys, "preview", str(adapter))
    assert code == 2 and "trains someone/absent, which is neither a local folder" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--peft-config", "a.json", "--axolotl-config", "b.yml"], "not allowed with argument"),
        (["--llamafactory-config", "a.yml", "--axolotl-config", "b.yml"], "not allowed with"),
        (["-t", "q_proj", "--emit", "peft-regex", "--json"], "not allowed with argument"),
        (["match", "-t", "q_proj", "--emit", "peft-regex", "--json"], "not allowed with"),
        (["match", "--model", "deepseek-v3", "--names", "n.txt"], "not allowed with"),
    ],
)
def test_conflicting_inputs_exit_2(args: list[str], message: str, capsys: Any) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ["preview", "no/such/adapter_config.json"],
        ["preview", "no/such/axolotl.yml"],
        ["match", "-t", "q_proj", "--model", "no/such/config.json"],
        ["serve", "no/such/adapter", "--engine", "vllm", "--model", "no/such/model"],
        ["--hf-config", "no/such/folder", "-t", "q_proj"],
        ["--axolotl-config", "no/such.yml", "--hf-config", "no/such/folder"],
    ],
)
def test_a_missing_path_is_named_before_anything_heavy_is_imported(args: list[str]) -> None:
    code = (
        "import sys; from modmatch.cli import main; code = main(sys.argv[1:]); "
        "heavy = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]; "
        "print(code, heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "2 []", result.stderr
    assert "no/such" in result.stderr.splitlines()[-1]
    assert result.stderr.splitlines()[-1].startswith("modmatch: error: ")


def test_ctrl_c_is_one_line_and_exit_130(capsys: Any, monkeypatch: Any) -> None:
    import modmatch.cli

    def interrupted(*args: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(modmatch.cli, "run", interrupted)
    assert main(["match", "-t", "q_proj"]) == 130
    assert capsys.readouterr().err == "modmatch: interrupted\n"


def test_the_timing_line_gives_the_total_and_its_phases(capsys: Any) -> None:
    code, out, _ = _run(
        capsys, "match", "--rules", "seed", "-t", "*.q_a_proj", "--model", "kimi-k2"
    )
    line = out.splitlines()[-1]
    assert code == 0 and line.startswith("selected 61 of 116,363 modules in ")
    for phase in ("reading the model", "matching", "counts and advice"):
        assert phase in line


def test_many_patterns_are_folded(capsys: Any) -> None:
    names = [
        f"model.layers.{i}.self_attn.{p}_proj" for i in range(28) for p in ("q", "k", "v", "o")
    ]
    flags = [arg for name in names for arg in ("-t", name)]
    code, out, _ = _run(capsys, "match", "--rules", "seed", *flags, "--model", "llama-3.1-405b")
    lines = out[out.index("target patterns:") :].splitlines()
    assert code == 0
    assert "  model.layers.{0..27}.self_attn.q_proj          1 names each  x28" in lines
    assert len([line for line in lines if "names" in line]) == 4


def test_a_long_lora_config_is_shown_whole(capsys: Any, tmp_path: Path) -> None:
    config = _llama(tmp_path)
    settings = tmp_path / "axolotl.yml"
    settings.write_text(
        "base_model: x\nadapter: lora\nlora_r: 8\nlora_alpha: 16\nlora_target_linear: true\n"
        "lora_modules_to_save: [embed_tokens, lm_head]\n" + "".join(f"# {i}\n" for i in range(3))
    )
    code, out, err = _run(capsys, "preview", str(settings), "--model", str(config))
    line = next(line for line in out.splitlines() if line.startswith("Axolotl 0.18.0 builds"))
    assert code == 0, err
    assert "characters)" not in line and line.endswith(")")
    assert "modules_to_save=['embed_tokens', 'lm_head']" in line


def test_explain_of_a_module_the_model_lacks(capsys: Any) -> None:
    code, out, _ = _run(
        capsys, "match", "-t", "q_proj", "--model", "llama-3.1-405b", "--explain", "not.a.q_proj"
    )
    assert code == 0 and "not.a.q_proj: not in the model" in out
    assert "not.a.q_proj: selected" not in out


def test_emit_refuses_what_only_target_parameters_carries(capsys: Any, tmp_path: Path) -> None:
    transformers = oracle("transformers")
    if int(transformers.__version__.split(".")[0]) < 5:
        pytest.skip("transformers 4 keeps one module per expert: nothing moves to parameters")
    transformers.Qwen3MoeConfig(
        hidden_size=16,
        intermediate_size=32,
        moe_intermediate_size=8,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        num_experts=4,
        num_experts_per_tok=2,
        vocab_size=64,
    ).save_pretrained(str(tmp_path))
    flags = ["-t", "q_proj", "-t", "gate_proj", "-t", "up_proj", "-t", "down_proj"]
    code, out, _ = _run(capsys, "match", *flags, "--model", str(tmp_path), "--json")
    assert code == 0 and json.loads(out)["selected_parameters"]  # PEFT moved the experts there
    code, out, err = _run(capsys, "match", *flags, "--model", str(tmp_path), "--emit", "peft-regex")
    assert code == 2 and out == ""
    assert "gate_up_proj" in err and "target_parameters" in err


def test_unadapted_experts_are_noted(capsys: Any) -> None:
    code, out, _ = _run(
        capsys,
        "match",
        "--rules",
        "seed",
        "-t",
        "*.gate_proj",
        "--model",
        "deepseek-v3-transformers5",
    )
    assert code == 0
    assert "note: MLP projections are adapted, the experts are not" in out
    code, out, _ = _run(
        capsys,
        "match",
        "--rules",
        "seed",
        "-t",
        "*.q_a_proj",
        "--model",
        "deepseek-v3-transformers5",
    )
    assert "the experts are not" not in out  # attention alone: no MLP meant


def test_nothing_matched_under_peft_suggests(capsys: Any) -> None:
    code, out, err = _run(capsys, "match", "-t", "q_prj", "--model", "llama-3.1-405b", "--json")
    assert code == 2
    assert "for 'q_prj' try 'q_proj'" in err
    assert json.loads(out)["suggestions"]["q_prj"] == ["q_proj"]


def test_a_prefix_the_model_moved_is_suggested_for_entries_and_regexes(
    capsys: Any, tmp_path: Path
) -> None:
    transformers = oracle("transformers")
    if int(transformers.__version__.split(".")[0]) < 5:
        pytest.skip("transformers 4 names Gemma 3's text layers language_model.model.layers")
    text = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2}
    text |= {"num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8, "vocab_size": 64}
    vision = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1}
    vision |= {"num_attention_heads": 2, "image_size": 28, "patch_size": 14}
    transformers.Gemma3Config(
        text_config=text, vision_config=vision, mm_tokens_per_image=4
    ).save_pretrained(str(tmp_path))
    old = "language_model.model.layers.0.self_attn.q_proj"  # transformers 4's name
    code, out, _ = _run(capsys, "match", "-t", old, "--model", str(tmp_path), "--json")
    assert code == 2
    assert json.loads(out)["suggestions"][old] == ["model.language_model.layers.0.self_attn.q_proj"]
    regex = r"language_model\.model\.layers\.\d+\.self_attn\.(q|v)_proj"
    code, out, _ = _run(
        capsys, "match", "--target-regex", regex, "--model", str(tmp_path), "--json"
    )
    suggested = json.loads(out)["suggestions"][regex]
    assert code == 2 and suggested and suggested[0].startswith(r"model\.language_model\.layers")


def test_a_front_end_is_one_module_and_one_registry_line(
    capsys: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """A made-up front-end, registered as the real ones are, is detected and previewed."""
    import types

    import modmatch.frontends as frontends

    toy = types.ModuleType("modmatch.frontends.toy")
    toy.NAME, toy.TITLE, toy.PEFT_PIN, toy.PARAMETER_DROPOUT = "toy", "Toy 1.0", "0.20.0", None
    toy.RULES, toy.CONFIG_CLASS, toy.KEYS = "peft", "LoraConfig", frozenset({"toy_targets"})
    toy.build_model = lambda settings, config: None
    toy.notes = lambda settings, model: []
    toy.read = lambda path: {"toy_targets": ["q_proj"], "toy_model": "x"}
    toy.base_model = lambda settings: settings["toy_model"]
    toy.lora_config = lambda settings, model: {"target_modules": settings["toy_targets"]}
    monkeypatch.setitem(sys.modules, "modmatch.frontends.toy", toy)
    monkeypatch.setattr(frontends, "_REGISTERED", (*frontends._REGISTERED, "toy"))
    frontends.front_ends.cache_clear()
    try:
        config = tmp_path / "toy.yaml"
        config.write_text("toy_targets: [q_proj]\ntoy_model: x\n")
        code, out, err = _run(
            capsys, "preview", str(config), "--model", str(_llama(tmp_path)), "--json"
        )
        document = json.loads(out)
        assert code == 0, err
        assert (document["built_by"], document["peft_version"]) == ("Toy 1.0", "0.20.0")
        assert document["selected_names"] == [f"model.layers.{i}.self_attn.q_proj" for i in (0, 1)]
    finally:
        frontends.front_ends.cache_clear()


@pytest.mark.parametrize("name", ["yaml-deepspeed-sft.json", "train-lora_sft.sh"])
def test_as_a_front_end_reads_what_detection_cannot_place(name: str, capsys: Any) -> None:
    """ms-swift's JSON and shell scripts: `--as swift` reads them; without it the JSON is taken
    for a PEFT adapter config, and the script is not a YAML config."""
    file = Path(__file__).parents[1] / "frontends" / "fixtures" / "swift" / name
    llama = Path(__file__).parents[2] / "docs" / "examples" / "llama-tiny"
    code, out, err = _run(capsys, "preview", str(file), "--as", "swift", "--model", str(llama))
    assert code == 0, err
    assert "ms-swift 4.6.0 builds: LoraConfig(" in out
    code, out, _ = _run(capsys, "preview", str(file), "--model", str(llama))
    assert "ms-swift" not in out and (code == 2) == name.endswith(".sh")
    code, _, err = _run(capsys, "preview", str(FIXTURES / "phi-1_5.json"), "--as", "swift")
    assert code == 2 and "is a PEFT adapter config, not a ms-swift config" in err
