"""What the command makes of the PEFT configs people have: repeated entries, excludes that
exclude nothing, null targets, refusals under --json, files it cannot read, the PEFT release,
front-end flags. In process (`main`), on built-in shapes or tiny models on the meta device."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modmatch.cli import main
from modmatch.peft import rules_version
from oracles import oracle

_LLAMA = {
    "model_type": "llama",
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "num_hidden_layers": 2,
    "vocab_size": 64,
}


def _run(capsys: Any, *args: str) -> tuple[int, Any, str]:
    code = main([*args, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def _folder(tmp_path: Path, name: str, config: dict[str, Any]) -> str:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


def test_a_repeated_entry_is_one_entry(capsys: Any) -> None:
    targets = ["q_proj", "v_proj", "v_proj", "output_proj"]  # a real torchtune config
    args = [arg for target in targets for arg in ("-t", target)]
    code, document, _ = _run(capsys, "match", "--rules", "peft", *args, "--model", "llama-3.1-405b")
    assert code == 0
    counts = {count["pattern"]: count["matched"] for count in document["patterns"]}
    assert [count["pattern"] for count in document["patterns"]] == list(dict.fromkeys(targets))
    assert counts["v_proj"] == counts["q_proj"] > 0
    assert document["unmatched_patterns"] == ["output_proj"]
    # The attention output is named o_proj here: the role, not the spelling, decides.
    assert document["suggestions"]["output_proj"][0] == "o_proj"


@pytest.mark.parametrize(
    ("excludes", "unmatched"),
    [
        (["-x", "vision_tower", "-x", "layers.1.self_attn.q_proj"], ["vision_tower"]),
        (["--exclude-regex", "vision_tower.*"], ["vision_tower.*"]),  # fullmatched: nothing
        (["--exclude-regex", r".*\.layers\.1\..*"], []),
    ],
)
def test_an_exclude_that_excludes_nothing_is_reported(
    capsys: Any, excludes: list[str], unmatched: list[str]
) -> None:
    args = ["match", "--rules", "peft", "-t", "q_proj", *excludes, "--model", "llama-3.1-405b"]
    code, document, _ = _run(capsys, *args)
    assert code == 0 and document["unmatched_excludes"] == unmatched
    assert main([*args, "--strict"]) == (1 if unmatched else 0)
    out = capsys.readouterr().out
    assert ("it excludes no module" in out) == bool(unmatched)


def test_errors_under_json_are_a_document_naming_the_release(capsys: Any) -> None:
    code, document, err = _run(
        capsys, "match", "--rules", "peft", "-t", "nothing", "--model", "kimi-k2"
    )
    assert code == 2 and err.startswith("modmatch: error: PEFT refuses")
    assert document == {"schema_version": 2, "error": err.removeprefix("modmatch: error: ").strip(),
                        "peft_version": rules_version()}  # fmt: skip
    code, document, _ = _run(
        capsys, "match", "--rules", "peft", "-t", "q", "--peft-version", "0.16.2"
    )
    assert code == 2 and document["peft_version"] == "0.16.2"
    assert "0.17.x to 0.21.x" in document["error"]
    code, document, _ = _run(
        capsys, "match", "--rules", "seed", "-t", "*.q_proj(", "--model", "kimi-k2"
    )
    assert code == 2 and "peft_version" not in document  # not PEFT's rules


def test_files_the_command_cannot_take_are_named(tmp_path: Path, capsys: Any) -> None:
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"target_modules": ["caf\xe9"]}')
    ia3 = tmp_path / "ia3.json"
    ia3.write_text('{"peft_type": "IA3", "target_modules": ["k_proj"]}')
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "config.json").write_text('{"architectures": ["MyModel"], "auto_map": {}}')
    adapter = tmp_path / "adapter.json"
    adapter.write_text('{"peft_type": "LORA", "target_modules": ["q_proj"]}')
    cases = {
        ("preview", str(latin)): "not UTF-8 text (byte 0xe9",
        ("preview", str(ia3)): "peft_type 'IA3'",
        ("preview", str(adapter), "--model", str(remote)): "with --names instead",
        ("preview", str(adapter), "--as", "axolotl"): "not a Axolotl config",
    }
    for args, message in cases.items():
        assert main(list(args)) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (args, err)


def test_a_long_regex_is_shown_cut(capsys: Any) -> None:
    regex = "|".join(f".*layers\\.{i}\\.self_attn\\.q_proj" for i in range(2_000))
    assert (
        main(["match", "--rules", "peft", "--target-regex", regex, "--model", "llama-3.1-405b"])
        == 0
    )
    out = capsys.readouterr().out
    assert f"{len(regex) + 2:,} characters)" in out  # quoted for the shell
    assert max(map(len, out.splitlines())) < 500


def test_a_regex_only_re_runs_warns_under_peft_too(capsys: Any) -> None:
    args = [
        "match",
        "--rules",
        "peft",
        "--target-regex",
        r".*(?<!k)_proj",
        "--model",
        "llama-3.1-405b",
    ]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert err.startswith("modmatch: warning: target pattern") and err.count("\n") == 1


def test_the_peft_release_decides_layers_pattern_with_layer_0(tmp_path: Path, capsys: Any) -> None:
    adapter = tmp_path / "adapter_config.json"
    adapter.write_text(
        '{"target_modules": ["q_proj"], "layers_to_transform": 0, "layers_pattern": "layers"}'
    )
    args = ["preview", str(adapter), "--model", "llama-3.1-405b"]
    assert main([*args, "--peft-version", "0.20.0"]) == 2  # `not 0` up to 0.20
    assert "`layers_to_transform` must also be specified" in capsys.readouterr().err
    code, document, _ = _run(capsys, *args, "--peft-version", "0.21")
    assert code == 0 and document["selected_names"] == ["model.layers.0.self_attn.q_proj"]
    assert document["peft_version"] == "0.21"
    assert document["patterns"] == [{"pattern": "q_proj", "matched": 126}]
    assert any("before layers_to_transform" in note for note in document["notes"])


def test_null_targets_get_peft_s_defaults_for_the_model_type(tmp_path: Path, capsys: Any) -> None:
    oracle("transformers")
    adapter = tmp_path / "adapter_config.json"
    adapter.write_text('{"peft_type": "LORA", "target_modules": null}')
    llama = _folder(tmp_path, "llama", _LLAMA)
    code, document, _ = _run(capsys, "preview", str(adapter), "--model", llama)
    assert code == 0 and "'llama': q_proj v_proj" in document["defaults"]
    assert {name.rpartition(".")[2] for name in document["selected_names"]} == {"q_proj", "v_proj"}
    code, document, _ = _run(capsys, "preview", str(adapter), "--model", "kimi-k2")
    assert code == 2 and "only a model built from its config gives" in document["error"]


def test_the_model_is_built_as_the_task_type_s_class(tmp_path: Path, capsys: Any) -> None:
    oracle("transformers")
    adapter = tmp_path / "adapter_config.json"
    adapter.write_text('{"target_modules": "all-linear", "task_type": "SEQ_CLS"}')
    llama = _folder(tmp_path, "llama", {**_LLAMA, "architectures": ["LlamaForCausalLM"]})
    args = ["preview", str(adapter), "--model", llama, "--explain", "score"]
    code, document, _ = _run(capsys, *args)
    assert code == 0
    explained = document["explanations"][0]
    assert explained["in_model"] and not explained["matched"]  # PEFT keeps the head out
    assert explained["rule"] == "in modules_to_save"
    adapter.write_text('{"target_modules": "all-linear"}')
    code, document, _ = _run(capsys, *args[:4], "--explain", "lm_head")
    assert document["explanations"][0]["rule"] == "all-linear leaves out the output layer"


def test_front_end_files_that_are_not_yaml_are_one_line_errors(tmp_path: Path, capsys: Any) -> None:
    oracle("transformers")
    pytest.importorskip("yaml")
    llama = _folder(tmp_path, "llama", _LLAMA)
    broken = tmp_path / "broken.yml"
    broken.write_text("adapter: lora\nlora_target_modules: [q_proj\n")
    twice = tmp_path / "twice.yaml"  # LLaMA-Factory (OmegaConf) refuses a repeated key
    twice.write_text("do_train: true\nlora_target: q_proj\nlora_target: v_proj\n")
    for kind, path in (("axolotl", broken), ("llamafactory", twice)):
        code, document, err = _run(capsys, "preview", str(path), "--as", kind, "--model", llama)
        assert code == 2 and "is not valid YAML" in document["error"], err
        assert err.count("\n") == 1 and document["peft_version"] == rules_version()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"lora_dropout": 0.1}, "lora_dropout != 0 (it is 0.1)"),
        ({"use_dora": True}, "use_dora=True"),
        ({"lora_bias": True}, "lora_bias=True"),
        ({"use_dora": True, "fan_in_fan_out": True}, "fan_in_fan_out."),
    ],
)
def test_what_param_wrapper_refuses(
    tmp_path: Path, capsys: Any, setting: dict[str, Any], message: str
) -> None:
    oracle("transformers")
    llama = _folder(tmp_path, "llama", _LLAMA)
    adapter = tmp_path / "adapter_config.json"
    config = {"target_modules": ["q_proj"], "target_parameters": ["mlp.down_proj.weight"]}
    adapter.write_text(json.dumps({**config, **setting}))
    code, document, _ = _run(capsys, "preview", str(adapter), "--model", llama)
    assert code == 2 and f"lora.ParamWrapper does not work with {message}" in document["error"]
    adapter.write_text(json.dumps({"target_modules": ["q_proj"], **setting}))  # no parameter
    code, document, _ = _run(capsys, "preview", str(adapter), "--model", llama)
    assert code == 0, document


def test_lora_config_s_own_type_checks(tmp_path: Path, capsys: Any) -> None:
    cases = {
        '{"target_modules": ["q_proj"], "target_parameters": "o_proj.weight"}': "list of strings",
        '{"target_modules": ["q_proj"], "task_type": 5}': "Invalid task type: 5",
    }
    for text, message in cases.items():
        adapter = tmp_path / "adapter_config.json"
        adapter.write_text(text)
        code, document, _ = _run(capsys, "preview", str(adapter), "--model", "kimi-k2")
        assert code == 2 and message in document["error"], text
