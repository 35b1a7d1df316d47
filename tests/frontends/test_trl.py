"""TRL 1.16.0's LoRA config from a `trl sft --config` YAML (modmatch.frontends.trl) on tiny
transformers models on the meta device: against TRL's own parser, get_peft_config and
create_model_from_path where TRL imports, against its rules everywhere, and what PEFT then wraps
against `modmatch preview`'s answer."""

from __future__ import annotations

import contextlib
import io
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from modmatch.cli import main
from modmatch.frontends import trl
from modmatch.inputs.configs import read_config
from oracles import LORA_FIELDS, front_end, oracle, wrapped

FIXTURES = Path(__file__).parent / "fixtures"
CONFIGS = sorted(path.name for path in (FIXTURES / "trl").glob("*.yaml"))
# The example configs that build a LoRA config; the others train the whole model.
LORA_CONFIGS = [name for name in CONFIGS if name != "trl-cli_configs-example_config.yaml"]
# What TRL's parser needs beside the file (the training output, and no GPU).
TRL_ARGS = ["--output_dir", "unused", "--use_cpu", "true"]

_TEXT = {"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2, "vocab_size": 64}
_LLAMA = {"model_type": "llama", **_TEXT, "num_hidden_layers": 2, "num_key_value_heads": 1}
# Each tiny model: its config's settings and the class its architectures names.
MODELS: dict[str, tuple[dict[str, Any], str]] = {
    "llama": (_LLAMA, "LlamaForCausalLM"),
    "llama-seq-cls": ({**_LLAMA, "num_labels": 1}, "LlamaForSequenceClassification"),
    "qwen2": ({**_LLAMA, "model_type": "qwen2"}, "Qwen2ForCausalLM"),
    "qwen3_moe": (
        {
            **_LLAMA,
            "model_type": "qwen3_moe",
            "head_dim": 8,
            "moe_intermediate_size": 8,
            "num_experts": 4,
            "num_experts_per_tok": 2,
        },
        "Qwen3MoeForCausalLM",
    ),
    "llava": (
        {
            "model_type": "llava",
            "text_config": _LLAMA,
            "vision_config": {
                "model_type": "clip_vision_model",
                "hidden_size": 16,
                "intermediate_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "image_size": 28,
                "patch_size": 14,
                "projection_dim": 16,
            },
        },
        "LlavaForConditionalGeneration",
    ),
}


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A folder holding each tiny model's config.json, architectures and all."""
    transformers = oracle("transformers")
    found = {}
    for kind, (settings, architecture) in MODELS.items():
        config = transformers.AutoConfig.for_model(**settings)
        config.architectures = [architecture]
        found[kind] = tmp_path_factory.mktemp(kind)
        config.save_pretrained(found[kind])
    return found


def build(folder: Path) -> Any:
    """A fresh model of the class the folder's config names, on the meta device."""
    transformers = oracle("transformers")
    import torch

    config = transformers.AutoConfig.from_pretrained(folder)
    with torch.device("meta"):
        return getattr(transformers, config.architectures[0])(config)


def fixture(name: str) -> dict[str, Any]:
    return trl.read(FIXTURES / "trl" / name)


def previewed(
    config: Path, model: Path, capsys: pytest.CaptureFixture[str], *flags: str
) -> dict[str, Any]:
    """`modmatch preview CONFIG --model MODEL --json`'s document (an error's, on a refusal)."""
    code = main(["preview", str(config), "--model", str(model), "--json", *flags])
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert (code == 2) == ("error" in document), document
    return document


def compare(document: dict[str, Any], peft: Any, folder: Path, config: Any) -> str:
    """The preview's answer against real get_peft_model's with ``config``: the same modules
    wrapped, or both refuse. Says which."""
    if "error" in document:
        with pytest.raises((AttributeError, TypeError, ValueError)):  # PEFT fails or refuses
            peft.get_peft_model(build(folder), config)
        return "refused"
    adapted = peft.get_peft_model(build(folder), config)
    assert set(document["selected_names"]) == wrapped(adapted)
    return "wrapped"


# --- reading and detection -------------------------------------------------------------------


@pytest.mark.parametrize("name", CONFIGS)
def test_fixtures_are_detected_as_trl_configs(name: str) -> None:
    config = read_config(str(FIXTURES / "trl" / name))
    assert config.kind == "trl"
    assert trl.base_model(config.settings) == config.settings["model_name_or_path"]


@pytest.mark.parametrize(
    "path",
    sorted((FIXTURES / "axolotl").glob("*.y*ml"))
    + sorted((FIXTURES / "llamafactory").glob("*.yaml")),
)
def test_the_other_front_ends_fixtures_stay_theirs(path: Path) -> None:
    assert read_config(str(path)).kind == path.parent.name


def test_env_is_set_aside_and_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("env:\n  CUDA_VISIBLE_DEVICES: 0\nuse_peft: true\n")
    assert trl.read(path) == {"use_peft": True}
    path.write_text("env: [CUDA_VISIBLE_DEVICES]\nuse_peft: true\n")
    with pytest.raises(ValueError, match=re.escape("env ['CUDA_VISIBLE_DEVICES']")):
        trl.read(path)


@pytest.mark.parametrize("text", ["- use_peft: true\n", "", "use_peft\n"])
def test_a_file_that_is_not_a_mapping_is_refused_by_name(text: str, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        trl.read(path)


# --- the rules, everywhere -------------------------------------------------------------------

NAMES = st.sampled_from(["q_proj", "v_proj", "all-linear", "ALL-LINEAR", "lm_head", ".*\\.q_proj"])


@given(entries=st.lists(NAMES, max_size=4), to_save=st.none() | st.lists(NAMES, max_size=2))
def test_a_one_entry_target_list_becomes_its_entry(
    entries: list[str], to_save: list[str] | None
) -> None:
    settings = {"use_peft": True, "lora_target_modules": entries, "lora_modules_to_save": to_save}
    built = trl.lora_config(settings, None)
    assert built["target_modules"] == (entries[0] if len(entries) == 1 else entries)
    assert built["modules_to_save"] == to_save  # never collapsed
    assert built["target_modules"] is not entries  # a copy: PEFT may extend it


@given(
    use_peft=st.sampled_from([True, 0, 1, None, "yes", "TRUE", "t", "Y", "1"]),
    r=st.integers(1, 64),
    dropout=st.sampled_from([0, 0.1, "0.05", "5e-2", "1E-1"]),
)
def test_values_written_as_str_are_converted_as_argparse_does(
    use_peft: Any, r: int, dropout: Any
) -> None:
    settings = {"use_peft": use_peft, "lora_r": str(r), "lora_alpha": r, "lora_dropout": dropout}
    built = trl.lora_config(settings, None)
    assert (built["r"], built["lora_alpha"]) == (r, r)
    assert built["lora_dropout"] == float(dropout)
    assert built["target_modules"] is None  # PEFT's defaults for the model type


def test_defaults_are_model_configs() -> None:
    assert trl.lora_config({"use_peft": True}, None) == {
        "task_type": "CAUSAL_LM",
        "r": 16,
        "target_modules": None,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
        "bias": "none",
        "use_rslora": False,
        "use_dora": False,
        "modules_to_save": None,
    }


BAD_SETTINGS: list[tuple[dict[str, Any], str, Any]] = [
    ({"use_peft": False}, "use_peft", False),
    ({"use_peft": "no"}, "use_peft", False),
    ({"use_peft": "maybe"}, "use_peft", "maybe"),
    ({"lora_r": "8.0"}, "lora_r", "8.0"),
    ({"lora_dropout": "some"}, "lora_dropout", "some"),
    ({"use_dora": "sure"}, "use_dora", "sure"),
    ({"load_in_8bit": True, "load_in_4bit": "yes"}, "load_in_8bit", True),
    ({"lora_target_modules": 3}, "lora_target_modules", 3),
    (
        {"lora_target_modules": ["q_proj", ["v_proj"]]},
        "lora_target_modules",
        ["q_proj", ["v_proj"]],
    ),
    ({"lora_target_modules": {"q_proj": 1}}, "lora_target_modules", {"q_proj": 1}),
    ({"lora_target_parameters": [1]}, "lora_target_parameters", [1]),
    ({"lora_modules_to_save": "lm_head"}, "lora_modules_to_save", "lm_head"),
    ({"lora_modules_to_save": {"lm_head": 1}}, "lora_modules_to_save", {"lm_head": 1}),
]


@pytest.mark.parametrize(("bad", "name", "value"), BAD_SETTINGS)
def test_refusals_name_the_setting_and_its_value(
    bad: dict[str, Any], name: str, value: Any
) -> None:
    with pytest.raises(ValueError) as refusal:
        trl.lora_config({"use_peft": True, **bad}, None)
    assert str(refusal.value).startswith(name) and repr(value) in str(refusal.value)


def test_without_use_peft_the_lora_settings_adapt_nothing() -> None:
    with pytest.raises(ValueError, match=r"^use_peft not set \(False\).*trains the whole model"):
        trl.lora_config(fixture("trl-cli_configs-example_config.yaml"), None)


@pytest.mark.parametrize(
    ("written", "said"),
    [
        (["q_proj"], "the regex '.*\\\\.q_proj'"),
        (["self_attn.q_proj"], "the regex '.*\\\\.self_attn\\\\.q_proj'"),
        ([".*q_proj"], "write the regex yourself"),
    ],
)
def test_a_one_entry_list_is_noted_with_what_to_write(written: list[str], said: str) -> None:
    (note,) = trl.notes({"use_peft": True, "lora_target_modules": written}, None)
    assert note.startswith(f"lora_target_modules {written!r}") and note.endswith(said)


@pytest.mark.parametrize(
    "settings",
    [
        {"lora_target_modules": ["all-linear"]},
        {"lora_target_modules": ["All-Linear"]},
        {"lora_target_modules": ["q_proj", "v_proj"]},
        {"lora_target_modules": "q_proj"},
        {"use_peft": "yes"},
        {"chat_template_path": "templates/chatml.jinja"},
    ],
)
def test_what_works_as_written_is_not_noted(settings: dict[str, Any]) -> None:
    assert trl.notes(settings, None) == []


def test_a_use_peft_that_is_not_false_and_a_cloned_chat_template_are_noted() -> None:
    found = trl.notes({"use_peft": 0, "chat_template_path": "Qwen/Qwen3-0.6B"}, None)
    assert [note.split(":")[0] for note in found] == [
        "use_peft 0",
        "chat_template_path 'Qwen/Qwen3-0.6B'",
    ]


# --- what PEFT wraps, against the preview, everywhere PEFT is --------------------------------


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("name", LORA_CONFIGS)
def test_what_peft_wraps_is_the_preview(
    name: str, kind: str, model_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    peft = oracle("peft")
    path = FIXTURES / "trl" / name
    document = previewed(path, model_dirs[kind], capsys)
    try:
        kwargs = trl.lora_config(trl.read(path), build(model_dirs[kind]))
    except ValueError:  # the preview refuses too, and PEFT with TRL's kwargs
        kwargs = trl.lora_config(trl.read(path), None)
        assert "error" in document
    print(name, kind, compare(document, peft, model_dirs[kind], peft.LoraConfig(**kwargs)))


def test_a_one_entry_list_matches_nothing_and_peft_refuses_as_the_preview_says(
    model_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    document = previewed(FIXTURES / "trl" / "edge-one-entry.yaml", model_dirs["llama"], capsys)
    assert "target_modules 'q_proj' matches no module" in document["error"]
    assert document["suggestions"] == {"q_proj": [".*\\.q_proj"]}


def test_all_linear_with_trls_default_dropout_is_refused_on_fused_experts(
    model_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # PEFT's rewriting for transformers 5 adds the experts' parameters to target_parameters,
    # where a dropout is refused; TRL, unlike Axolotl, passes its default 0.05 on. From 0.20 on:
    # 0.19.1's rewriting turns the str "all-linear" into its characters, which match nothing.
    path = FIXTURES / "trl" / "edge-all-linear-default-dropout.yaml"
    document = previewed(path, model_dirs["qwen3_moe"], capsys, "--peft-version", "0.21.2")
    assert "lora.ParamWrapper does not work with lora_dropout != 0" in document["error"]
    assert "error" not in previewed(path, model_dirs["llama"], capsys)


def test_the_model_built_is_the_class_architectures_names(model_dirs: dict[str, Path]) -> None:
    transformers = oracle("transformers")
    import torch

    for kind, (_, architecture) in MODELS.items():
        config = transformers.AutoConfig.from_pretrained(model_dirs[kind])
        with torch.device("meta"):
            assert type(trl.build_model({}, config)).__name__ == architecture
        config.architectures = None
        assert trl.build_model({}, config) is None  # TRL fails; transformers' default stands in


# --- against TRL itself, where it imports -----------------------------------------------------


def trl_config(path: Path) -> Any:
    """What TRL builds from the file: its sft script's parser (as `trl sft --config` runs it,
    keys no argument knows passed on), then get_peft_config. None where it builds no config."""
    make_parser = front_end("trl.scripts.sft").make_parser
    get_peft_config = front_end("trl.trainer.utils").get_peft_config
    parsed = make_parser().parse_args_and_config(
        ["--config", str(path), *TRL_ARGS], fail_with_unknown_args=False
    )
    return get_peft_config(parsed[2])


def same_fields(ours: Any, theirs: Any) -> None:
    for field in (*LORA_FIELDS, "use_rslora"):
        assert getattr(ours, field) == getattr(theirs, field), field


@pytest.mark.parametrize("name", CONFIGS)
def test_fixture_configs_are_trls(name: str) -> None:
    peft = oracle("peft")
    theirs = trl_config(FIXTURES / "trl" / name)
    if theirs is None:
        with pytest.raises(ValueError, match=r"^use_peft"):
            trl.lora_config(fixture(name), None)
        return
    same_fields(peft.LoraConfig(**trl.lora_config(fixture(name), None)), theirs)


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("name", LORA_CONFIGS)
def test_what_peft_wraps_with_trls_config_is_the_preview(
    name: str, kind: str, model_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    peft = oracle("peft")
    path = FIXTURES / "trl" / name
    theirs = trl_config(path)
    document = previewed(path, model_dirs[kind], capsys)
    print(name, kind, compare(document, peft, model_dirs[kind], theirs))


@pytest.mark.parametrize("kind", ["llama", "llama-seq-cls", "llava"])
def test_the_model_built_is_trls(kind: str, tmp_path: Path) -> None:
    """create_model_from_path on a saved tiny model (real weights) against build_model on the
    meta device: the same class, the same module names."""
    create_model_from_path = front_end("trl.trainer.utils").create_model_from_path
    transformers = oracle("transformers")
    import torch

    settings, architecture = MODELS[kind]
    config = transformers.AutoConfig.for_model(**settings)
    config.architectures = [architecture]
    getattr(transformers, architecture)(config).save_pretrained(tmp_path)
    theirs = create_model_from_path(str(tmp_path))
    with torch.device("meta"):
        ours = trl.build_model({}, transformers.AutoConfig.from_pretrained(tmp_path))
    assert type(ours) is type(theirs)
    assert [name for name, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]


TARGETS = st.sampled_from(["q_proj", "v_proj", "all-linear", "lm_head", "mlp.experts"])
# Each setting: mostly values TRL takes, some it refuses or passes on to PEFT unread.
SETTINGS = st.fixed_dictionaries(
    {"use_peft": st.sampled_from([True, True, True, "yes", "t", 1, 0, None, False, "no", ""])},
    optional={
        "lora_r": st.sampled_from([8, 8, 16, "8", "x", "8.0", 8.5, None]),
        "lora_alpha": st.sampled_from([16, 16, "16", "1e1"]),
        "lora_dropout": st.sampled_from([0, 0.1, 0.1, "5e-2", "1", "none", None]),
        "lora_target_modules": st.none()
        | st.lists(TARGETS, max_size=3)
        | TARGETS
        | st.sampled_from([[["q_proj", "v_proj"]], ["q_proj", ["v_proj"]], 3]),
        "lora_target_parameters": st.none()
        | st.lists(st.sampled_from(["mlp.experts.gate_up_proj", "down_proj"]), max_size=2)
        | st.just("mlp.experts.down_proj"),
        "lora_modules_to_save": st.none()
        | st.lists(st.sampled_from(["lm_head", "embed_tokens"]), max_size=2)
        | st.just("lm_head"),
        "lora_task_type": st.sampled_from(["CAUSAL_LM", "CAUSAL_LM", "SEQ_CLS", "causal", None]),
        "use_rslora": st.sampled_from([True, False, False, "yes", "x"]),
        "use_dora": st.sampled_from([True, False, False, "no"]),
        "load_in_8bit": st.sampled_from([False, False, True, "true"]),
        "load_in_4bit": st.sampled_from([True, False, False]),
    },
)
# Our refusals of what TRL passes on and PEFT cannot read as names.
_NOT_NAMES = ("lora_target_modules", "lora_target_parameters", "lora_modules_to_save")


@given(settings=SETTINGS)
def test_any_config_is_trls(settings: dict[str, Any]) -> None:
    """Random settings: where TRL's parser or ModelConfig refuses them, so does modmatch; where
    it builds no config, modmatch says use_peft; otherwise the same LoraConfig, or modmatch
    refuses a value PEFT cannot read as names, or PEFT refuses building both."""
    peft = oracle("peft")
    yaml = oracle("yaml")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        path.write_text(yaml.safe_dump(settings))
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # argparse's usage message
                theirs = trl_config(path)
        except SystemExit:  # argparse's refusal of a value
            theirs = "parser"
        except (TypeError, ValueError):  # ModelConfig's refusal, or PEFT's building theirs
            theirs = "refused"
        read = trl.read(path)
    try:
        kwargs = trl.lora_config(read, None)
    except ValueError as error:
        said = str(error).split()[0]
        if theirs is None:
            assert said == "use_peft", error
        elif isinstance(theirs, peft.LoraConfig):
            assert said in _NOT_NAMES, error
        event(f"both refuse ({said})")
        return
    try:
        ours = peft.LoraConfig(**kwargs)
    except (TypeError, ValueError):
        assert theirs == "refused", settings
        event("PEFT refuses both")
        return
    assert isinstance(theirs, peft.LoraConfig), settings
    same_fields(ours, theirs)
    event("the same LoraConfig")


def test_the_one_entry_quirk_is_said_with_peft_s_refusal(capsys: Any) -> None:
    """TRL hands PEFT a one-entry list as a str: the command says why nothing matched."""
    oracle("transformers")
    fixture = Path(__file__).parent / "fixtures" / "trl" / "edge-one-entry.yaml"
    llama = Path(__file__).parents[2] / "docs" / "examples" / "llama-tiny"
    code = main(["preview", str(fixture), "--model", str(llama)])
    err = capsys.readouterr().err
    assert code == 2 and "matches no module" in err
    assert "TRL's ModelConfig passes a one-entry list" in err and err.count("\n") == 1
