"""ms-swift 4.6.0's LoRA config from a `swift sft` config file or command line
(modmatch.frontends.swift) on tiny transformers models on the meta device: against ms-swift's
own reading (parse_yaml_args, parse_args into SftArguments) and tuner preparation
(TunerMixin.prepare_model, which calls get_target_modules and real get_peft_model) where it
imports, against its rules everywhere, and what PEFT then wraps against `modmatch preview`."""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from modmatch.cli import main
from modmatch.frontends import swift
from modmatch.inputs.configs import read_config
from oracles import front_end, oracle, wrapped

FIXTURES = Path(__file__).parent / "fixtures"
CONFIGS = sorted(p.name for p in (FIXTURES / "swift").iterdir() if p.suffix != ".md")
YAML_CONFIGS = [name for name in CONFIGS if name.endswith(".yaml")]
# ms-swift takes edge-abbreviated.yaml's lora_r for lora_rank; modmatch asks for the full name.
AGREED = [name for name in CONFIGS if name != "edge-abbreviated.yaml"]

_TEXT = {"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2, "vocab_size": 64}
_LLAMA = {"model_type": "llama", **_TEXT, "num_hidden_layers": 2, "num_key_value_heads": 1}
_SMALL = {"num_hidden_layers": 2, "num_key_value_heads": 1, "head_dim": 8}
_VISION = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 28,
    "patch_size": 14,
}
# Each tiny model, in a folder named as the model id's last segment (ms-swift reads the name),
# with the class its architectures names.
MODELS: dict[str, tuple[dict[str, Any], str]] = {
    "Llama-3.2-1B-Instruct": (_LLAMA, "LlamaForCausalLM"),
    "Qwen2.5-7B-Instruct": ({**_LLAMA, "model_type": "qwen2"}, "Qwen2ForCausalLM"),
    "Qwen3-30B-A3B-Instruct-2507": (
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
    "Qwen2.5-VL-7B-Instruct": (
        {
            "model_type": "qwen2_5_vl",
            "text_config": {
                **_TEXT,
                **_SMALL,
                "rope_scaling": {"rope_type": "default", "mrope_section": [1, 1, 2]},
            },
            "vision_config": {
                "depth": 2,
                "hidden_size": 16,
                "intermediate_size": 32,
                "num_heads": 2,
                "out_hidden_size": 16,
                "fullatt_block_indexes": [1],
            },
        },
        "Qwen2_5_VLForConditionalGeneration",
    ),
    "llava-1.5-7b-hf": (
        {
            "model_type": "llava",
            "text_config": _LLAMA,
            "vision_config": {"model_type": "clip_vision_model", **_VISION, "projection_dim": 16},
        },
        "LlavaForConditionalGeneration",
    ),
    "gemma-3-4b-it": (
        {
            "model_type": "gemma3",
            "text_config": {**_TEXT, **_SMALL, "model_type": "gemma3_text"},
            "vision_config": {"model_type": "siglip_vision_model", **_VISION},
            "mm_tokens_per_image": 4,
        },
        "Gemma3ForConditionalGeneration",
    ),
}
MULTIMODAL = ("Qwen2.5-VL-7B-Instruct", "llava-1.5-7b-hf", "gemma-3-4b-it")


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A folder holding each tiny model's config.json, architectures and all."""
    transformers = oracle("transformers")
    base = tmp_path_factory.mktemp("models")
    found = {}
    for name, (settings, architecture) in MODELS.items():
        config = transformers.AutoConfig.for_model(**settings)
        config.architectures = [architecture]
        found[name] = base / name
        config.save_pretrained(found[name])
    return found


def build(kind: str) -> Any:
    """A fresh tiny model of that kind, of the class its architectures names, on the meta
    device."""
    transformers = oracle("transformers")
    import torch

    settings, architecture = MODELS[kind]
    config = transformers.AutoConfig.for_model(**settings)
    config.architectures = [architecture]
    with torch.device("meta"):
        return getattr(transformers, architecture)(config)


@functools.cache
def model(kind: str) -> Any:
    """A tiny model of that kind, shared: only for reading."""
    return build(kind)


def fixture(name: str) -> dict[str, Any]:
    return swift.read(FIXTURES / "swift" / name)


def previewed(
    config: Path, folder: Path, capsys: pytest.CaptureFixture[str], *options: str
) -> dict[str, Any]:
    """`modmatch preview CONFIG --model MODEL --json`'s document (an error's, on a refusal)."""
    code = main(["preview", str(config), "--model", str(folder), "--json", *options])
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert (code == 2) == ("error" in document), document
    return document


# --- reading and detection -------------------------------------------------------------------


@pytest.mark.parametrize("name", AGREED)
def test_fixtures_read_as_settings(name: str) -> None:
    settings = fixture(name)
    assert settings["model"].count("/") == 1
    assert "ENV" not in settings


@pytest.mark.parametrize("name", [name for name in YAML_CONFIGS if name in AGREED])
def test_yaml_fixtures_are_detected_as_swift_configs(name: str) -> None:
    assert read_config(str(FIXTURES / "swift" / name)).kind == "swift"


@pytest.mark.parametrize(
    "path",
    [
        *sorted((FIXTURES / "axolotl").glob("*.y*ml")),
        *sorted((FIXTURES / "llamafactory").glob("*")),
    ],
    ids=lambda path: path.name,
)
def test_the_other_front_ends_fixtures_stay_theirs(path: Path) -> None:
    if path.suffix in (".yml", ".yaml"):
        assert read_config(str(path)).kind == path.parent.name


def test_the_json_and_shell_forms_read_as_the_yaml_ones() -> None:
    json_form, yaml_form = fixture("yaml-deepspeed-sft.json"), fixture("yaml-deepspeed-sft.yaml")
    assert json_form.pop("learning_rate") == "0.0001"  # a JSON float, str()-ed
    assert yaml_form.pop("learning_rate") == "1e-4"  # a str to yaml.safe_load
    assert json_form == yaml_form
    lora_sft = fixture("train-lora_sft.sh")
    assert lora_sft["target_modules"] == ["all-linear"] and lora_sft["lora_rank"] == 8
    assert lora_sft["dataset"] == [
        "AI-ModelScope/alpaca-gpt4-data-zh#500",
        "AI-ModelScope/alpaca-gpt4-data-en#500",
        "swift/self-cognition#500",
    ]
    assert fixture("train-multimodal-ocr.yaml")["freeze_vit"] is True


def test_values_are_typed_as_the_parser_types_them(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    text = (
        "ENV: {A: '1'}\nmodel: m\ntarget_modules: q_proj\nfreeze_vit: 'no'\nfreeze_llm: 1\n"
        "lora_rank: '4'\nlora_alpha: 8\nlora_dropout: 1e-1\ntarget_regex: null\n"
        "modules_to_save: [embed_tokens, 7]\nlora-bias: all\n"
    )
    path.write_text(text + "no_freeze_aligner: true\n")
    with pytest.raises(ValueError, match="--no_freeze_aligner takes no value"):
        swift.read(path)
    path.write_text(text)
    assert swift.read(path) == {
        "model": "m",
        "target_modules": ["q_proj"],  # a scalar is a one-value list
        "freeze_vit": False,
        "freeze_llm": True,
        "lora_rank": 4,
        "lora_alpha": 8.0,
        "lora_dropout": 0.1,
        "target_regex": "None",  # str(None): a regex
        "modules_to_save": ["embed_tokens", "7"],
        "lora_bias": "all",  # the dashed spelling of the flag
    }


def test_a_command_line_is_read_from_its_flags(tmp_path: Path) -> None:
    path = tmp_path / "train.sh"
    path.write_text(
        "# a comment\nCUDA_VISIBLE_DEVICES=0 \\\n/usr/bin/swift sft \\\n  --model m \\\n"
        "  --freeze_vit \\\n  --target_modules q_proj v_proj --lora_rank=4 --lora_rank 6\n"
        "swift infer --model other\n"
    )
    assert swift.read(path) == {
        "model": "m",
        "freeze_vit": True,  # a flag without its value
        "target_modules": ["q_proj", "v_proj"],
        "lora_rank": 6,  # the last one wins
    }
    path.write_text("--model m --no_freeze_vit\n")
    assert swift.read(path) == {"model": "m", "freeze_vit": False}
    path.write_text("swift sft config.yaml --lora_rank 4\n")
    with pytest.raises(ValueError, match=re.escape("reads config.yaml")):
        swift.read(path)
    path.write_text("echo nothing\n")
    with pytest.raises(ValueError, match="swift sft"):
        swift.read(path)


BAD_FILES = [
    ("lora_r: 16\n", "lora_r: the start of --lora_rank:"),
    ("freeze: true\n", "freeze: the start of --freeze-aligner, --freeze-llm"),
    ("target_modules: []\n", "--target_modules: ms-swift's parser expects at least one"),
    ("freeze_vit: maybe\n", "--freeze_vit 'maybe': ms-swift's parser expects true/false"),
    ("lora_rank: 8.0\n", "--lora_rank '8.0': ms-swift's parser expects int"),
    ("lora_rank: [8, 16]\n", "--lora_rank: ms-swift's parser expects one value"),
    ("task_type: causal\n", "--task_type 'causal': ms-swift's parser takes one of"),
    ("- model: m\n", "an ms-swift config is a mapping, not list"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_what_the_parser_refuses_is_refused(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(message)):
        swift.read(path)


def test_notes_say_what_the_reader_may_not_expect() -> None:
    assert swift.notes(fixture("yaml-deepspeed-sft.yaml"), None) == []
    (null,) = swift.notes(fixture("edge-null-regex.yaml"), None)
    assert null.startswith("target_regex 'None': a YAML null")
    (unused,) = swift.notes(fixture("edge-target_regex.yaml"), None)
    assert unused == "target_modules ['all-linear']: not used, target_regex replaces it"


# --- the rules, everywhere -------------------------------------------------------------------


def linear_names(module: Any) -> set[str]:
    """Full names of the modules whose class name says linear, but the output layer."""
    return {
        name
        for name, child in module.named_modules()
        if "linear" in type(child).__name__.lower() and "lm_head" not in name
    }


@pytest.mark.parametrize("kind", [kind for kind in MODELS if kind not in MULTIMODAL])
def test_all_linear_on_a_text_model_is_every_linear_name_but_lm_head(kind: str) -> None:
    kwargs = swift.lora_config(fixture("yaml-deepspeed-sft.yaml"), model(kind))
    expected = {name.rpartition(".")[2] for name in linear_names(model(kind))}
    assert set(kwargs["target_modules"]) == expected
    assert kwargs == {
        "target_modules": kwargs["target_modules"],
        "exclude_modules": None,
        "target_parameters": None,
        "layers_to_transform": None,
        "layers_pattern": None,
        "modules_to_save": [],
        "lora_dropout": 0.05,
        "task_type": "CAUSAL_LM",
        "r": 8,
        "lora_alpha": 32.0,
        "bias": "none",
        "use_dora": False,
    }


PARTS = {
    "language": ("model.language_model.",),
    "vision": ("model.visual.", "model.vision_tower."),
    "aligner": ("model.visual.merger.", "model.multi_modal_projector."),
}


@pytest.mark.parametrize("kind", MULTIMODAL)
@pytest.mark.parametrize(
    ("frozen", "parts"),
    [
        ((False, True, True), ("language",)),
        ((False, False, True), ("language", "vision")),
        ((True, True, False), ("aligner",)),
        ((False, False, False), ("language", "vision", "aligner")),
    ],
)
def test_all_linear_on_a_multimodal_model_is_a_regex_over_the_unfrozen_parts(
    kind: str, frozen: tuple[bool, bool, bool], parts: tuple[str, ...]
) -> None:
    settings = dict(zip(("freeze_llm", "freeze_vit", "freeze_aligner"), frozen, strict=True))
    regex = swift.lora_config(settings, model(kind))["target_modules"]
    chosen = {name for name in linear_names(model(kind)) if re.fullmatch(regex, name)}
    expected = {
        name
        for name in linear_names(model(kind))
        if any(name.startswith(PARTS[part]) for part in parts)
        and ("aligner" in parts or not name.startswith(PARTS["aligner"]))
    }
    assert chosen == expected
    assert chosen or kind == "gemma-3-4b-it"  # Gemma 3's projector holds no Linear


REFUSALS: list[tuple[dict[str, Any], str, str]] = [
    ({"freeze_llm": True}, "Qwen2.5-VL-7B-Instruct", "freeze_llm, freeze_vit and freeze_aligner"),
    ({"tuner_type": "adalora"}, "Llama-3.2-1B-Instruct", "tuner_type 'adalora'"),
    ({"tuner_type": "lora_llm"}, "Llama-3.2-1B-Instruct", "tuner_type 'lora_llm'"),
    ({"tuner_backend": "unsloth"}, "Llama-3.2-1B-Instruct", "tuner_backend 'unsloth'"),
    ({"use_swift_lora": True}, "Llama-3.2-1B-Instruct", "use_swift_lora"),
    ({"adapters": ["out/c"]}, "Llama-3.2-1B-Instruct", "adapters ['out/c']"),
    ({"resume_from_checkpoint": "out/c"}, "Llama-3.2-1B-Instruct", "resume_from_checkpoint"),
    ({"init_weights": "lora-ga"}, "Llama-3.2-1B-Instruct", "init_weights 'lora-ga'"),
    ({"task_type": "seq_cls"}, "Llama-3.2-1B-Instruct", "task_type 'seq_cls'"),
    ({"model_type": "internvl_chat"}, "Llama-3.2-1B-Instruct", "model_type 'internvl_chat'"),
]


@pytest.mark.parametrize(("settings", "kind", "message"), REFUSALS)
def test_refusals_name_the_setting(settings: dict[str, Any], kind: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        swift.lora_config(settings, model(kind))


def test_freeze_llm_on_a_text_model_changes_nothing() -> None:
    kind = "Llama-3.2-1B-Instruct"
    frozen = swift.lora_config({"freeze_llm": True}, model(kind))
    assert frozen == swift.lora_config({}, model(kind))


def test_types_that_differ_for_lora_need_model_type() -> None:
    transformers = oracle("transformers")
    import torch

    config = transformers.AutoConfig.for_model(**{**_LLAMA, "model_type": "glm", "pad_token_id": 0})
    config.architectures = ["GlmForCausalLM"]  # glm_edge (text) and glm_edge_v (vision)
    with torch.device("meta"):
        module = transformers.GlmForCausalLM(config)
    with pytest.raises(ValueError, match="give model_type"):
        swift.lora_config({}, module)
    assert isinstance(swift.lora_config({"model_type": "glm_edge"}, module)["target_modules"], list)


def test_all_embedding_and_all_norm_are_expanded() -> None:
    kwargs = swift.lora_config(fixture("edge-embeddings.yaml"), model("Llama-3.2-1B-Instruct"))
    assert "embed_tokens" in kwargs["target_modules"]
    assert sorted(kwargs["modules_to_save"]) == [
        "embed_tokens",
        "input_layernorm",
        "norm",
        "post_attention_layernorm",
    ]


NAMES = st.sampled_from(
    ["all-linear", "all-embedding", "q_proj", "proj", "fc1", "lm_head", "mlp", "embed_tokens"]
)


@given(
    kind=st.sampled_from(sorted(MODELS)),
    targets=st.lists(NAMES.filter(lambda n: not n.startswith("all-")), min_size=1, max_size=3),
    frozen=st.tuples(st.booleans(), st.booleans(), st.booleans()),
)
def test_named_targets_reach_peft_as_written(
    kind: str, targets: list[str], frozen: tuple[bool, bool, bool]
) -> None:
    settings = dict(zip(("freeze_llm", "freeze_vit", "freeze_aligner"), frozen, strict=True))
    built = swift.lora_config({**settings, "target_modules": targets}, model(kind))
    assert built["target_modules"] == targets


# --- what PEFT wraps, against modmatch's preview ---------------------------------------------


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("name", YAML_CONFIGS)
def test_what_peft_wraps_is_the_preview(
    name: str, kind: str, model_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    peft = oracle("peft")
    path = FIXTURES / "swift" / name
    # The installed PEFT's rules: the environments of other front-ends have other releases.
    document = previewed(path, model_dirs[kind], capsys, "--peft-version", peft.__version__)
    try:
        kwargs = swift.lora_config(swift.read(path), model(kind))
        adapted: Any = wrapped(peft.get_peft_model(build(kind), peft.LoraConfig(**kwargs)))
    except ValueError as error:
        assert "error" in document, error
        return
    assert set(document.get("selected_names", ())) == adapted, document.get("error")


def test_the_expert_projections_with_the_default_dropout_are_refused_on_fused_experts(
    model_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = FIXTURES / "swift" / "edge-experts.yaml"
    document = previewed(path, model_dirs["Qwen3-30B-A3B-Instruct-2507"], capsys)
    assert "dropout" in document["error"]
    assert "error" not in previewed(path, model_dirs["Llama-3.2-1B-Instruct"], capsys)


# --- against ms-swift itself, where it imports -------------------------------------------------

# What SftArguments needs beside the file on a CPU machine with no DeepSpeed, and no new folder.
SWIFT_ARGS = ["--deepspeed", "", "--bf16", "false", "--fp16", "false", "--add_version", "false"]


@pytest.fixture(scope="module")
def ms_swift(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """ms-swift's reading of a config (its parse_yaml_args, or the words of a command line as
    the shell splits them) into SftArguments, with the model named by ``folder``; then its
    TunerMixin.prepare_model on a meta-device model carrying its model_meta: the LoraConfig it
    built (or its exception) and the modules real get_peft_model wrapped (or its exception)."""
    with pytest.MonkeyPatch.context() as patch:
        cli = front_end("swift.cli.main")
        arguments = front_end("swift.arguments")
        utils = front_end("swift.utils")
        tuner = front_end("swift.pipelines.train.tuner")
        tuners = front_end("swift.tuners")
        output = tmp_path_factory.mktemp("swift-output")
        built: list[Any] = []
        prepare = tuners.Swift.prepare_model

        def recorded(module: Any, config: Any, **kwargs: Any) -> Any:
            built.append(copy.deepcopy(config))  # PEFT's rewriting for transformers 5 changes it
            return prepare(module, config, **kwargs)

        patch.setattr(tuners.Swift, "prepare_model", staticmethod(recorded))
        patch.setenv("SWIFT_CONFIG_FILE", "")

        def run(path: Path, folder: Path) -> tuple[Any, Any]:
            argv = [str(path)]
            if path.suffix in (".yaml", ".json"):
                cli.parse_yaml_args(argv)
            else:
                argv = command_words(path)
            argv += ["--model", str(folder), "--output_dir", str(output), *SWIFT_ARGS]
            built.clear()
            try:
                args, rest = utils.parse_args(arguments.SftArguments, argv)
                assert not rest, rest
                module = build(folder.name)
                module.model_meta, module.model_info = args.model_meta, args.model_info
                loader = args.model_meta.loader(args.model_info, args.model_meta, model_kwargs={})
                loader._compat_transformers5(module)
                adapted: Any = wrapped(tuner.TunerMixin.prepare_model(args, module))
            except (AssertionError, ValueError) as error:
                adapted = error
            return (built[0] if built else adapted), adapted

        yield run


def command_words(path: Path) -> list[str]:
    """The words after `swift sft` in a shell file, as the shell splits them."""
    text = re.sub(r"\\\n", " ", path.read_text())
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if "sft" in words:
            return words[words.index("sft") + 1 :]
    raise AssertionError(path)


def same_config(ours: dict[str, Any], theirs: Any, module: Any) -> None:
    """Our LoraConfig fields against the config ms-swift built; a regex by what it matches."""
    names = [name for name, _ in module.named_modules()]
    for field in ("target_modules", "modules_to_save"):
        mine, its = ours[field], getattr(theirs, field)
        if isinstance(mine, str):
            assert isinstance(its, str), (field, its)
            mine, its = ({n for n in names if re.fullmatch(r, n)} for r in (mine, its))
        assert sorted(set(mine or ())) == sorted(set(its or ())), field  # PEFT keeps a set
    for field in ("target_parameters", "lora_dropout", "r", "lora_alpha", "bias", "use_dora"):
        assert ours[field] == getattr(theirs, field), field
    assert ours["task_type"] == theirs.task_type


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("name", AGREED)
def test_fixture_configs_are_swifts(
    name: str, kind: str, ms_swift: Any, model_dirs: dict[str, Path]
) -> None:
    path = FIXTURES / "swift" / name
    theirs, _ = ms_swift(path, model_dirs[kind])
    try:
        ours = swift.lora_config(swift.read(path), model(kind))
    except ValueError:
        assert isinstance(theirs, Exception), theirs
        return
    assert not isinstance(theirs, Exception), theirs
    same_config(ours, theirs, model(kind))


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("name", [name for name in YAML_CONFIGS if name in AGREED])
def test_what_swift_wraps_is_the_preview(
    name: str,
    kind: str,
    ms_swift: Any,
    model_dirs: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = FIXTURES / "swift" / name
    _, adapted = ms_swift(path, model_dirs[kind])
    document = previewed(path, model_dirs[kind], capsys)
    if isinstance(adapted, Exception):
        assert "error" in document, adapted
        return
    selected = set(document.get("selected_names", ()))
    # ms-swift's patch of PEFT leaves nn.MultiheadAttention's output layer unwrapped (not
    # restated: the preview shows PEFT's answer).
    classes = {name: type(child).__name__ for name, child in model(kind).named_modules()}
    left = {
        name for name in selected - adapted if classes[name] == "NonDynamicallyQuantizableLinear"
    }
    assert selected - left == adapted, document.get("error")


def test_lora_r_is_taken_for_lora_rank(ms_swift: Any, model_dirs: dict[str, Path]) -> None:
    path = FIXTURES / "swift" / "edge-abbreviated.yaml"
    theirs, _ = ms_swift(path, model_dirs["Qwen2.5-7B-Instruct"])
    assert theirs.r == 16
    with pytest.raises(ValueError, match="lora_r: the start of --lora_rank:"):
        swift.read(path)


@given(
    kind=st.sampled_from(sorted(MODELS)),
    targets=st.lists(NAMES, min_size=1, max_size=3),
    regex=st.sampled_from([None, None, r".*\.(q_proj|fc1)", r"model\.language_model.*proj"]),
    to_save=st.lists(st.sampled_from(["all-embedding", "all-norm", "lm_head"]), max_size=2),
    frozen=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    task=st.sampled_from([None, None, "embedding", "reranker", "generative_reranker"]),
)
def test_any_config_is_swifts(
    ms_swift: Any,
    model_dirs: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
    kind: str,
    targets: list[str],
    regex: str | None,
    to_save: list[str],
    frozen: tuple[bool, bool, bool],
    task: str | None,
) -> None:
    """Random settings: ms-swift refuses exactly where modmatch refuses, and otherwise builds
    the same LoraConfig."""
    settings: dict[str, Any] = {
        "model": "m",
        "dataset": "d",
        "target_modules": targets,
        "freeze_llm": frozen[0],
        "freeze_vit": frozen[1],
        "freeze_aligner": frozen[2],
    }
    settings |= {"target_regex": regex} if regex else {}
    settings |= {"modules_to_save": to_save} if to_save else {}
    settings |= {"task_type": task} if task else {}
    path = tmp_path_factory.mktemp("any") / "config.json"
    path.write_text(json.dumps(settings))
    theirs, _ = ms_swift(path, model_dirs[kind])
    try:
        ours = swift.lora_config(swift.read(path), model(kind))
    except ValueError:
        assert isinstance(theirs, Exception), theirs
        event("both refuse")
        return
    assert not isinstance(theirs, Exception), theirs
    same_config(ours, theirs, model(kind))
    event("the same LoraConfig")


def test_the_registry_is_swifts() -> None:
    """Every model type ms-swift registers for an architecture transformers has is in the
    table, with its architecture, its parts and its task; and nothing else is."""
    meta = front_end("swift.model.model_meta")
    front_end("swift.model")
    modeling = oracle("transformers.models.auto.modeling_auto")
    known = {
        architecture
        for name in dir(modeling)
        if name.endswith("_MAPPING_NAMES")
        for value in getattr(modeling, name).values()
        for architecture in (value if isinstance(value, (list, tuple)) else [value])
    }
    theirs = {}
    for architecture, types in meta._get_arch_mapping().items():
        if architecture not in known:
            continue
        for model_type in types:
            found = meta.MODEL_MAPPING[model_type]
            keys = found.model_arch
            parts = None
            if found.is_multimodal:
                parts = (tuple(keys.language_model), tuple(keys.vision_tower), tuple(keys.aligner))
            theirs[model_type] = (architecture, parts, found.is_reward, found.task_type)
    ours = {
        model_type: (
            architecture,
            (parts.language, parts.vision, parts.aligner) if parts else None,
            model_type in swift._REWARD_TYPES,
            swift._TYPE_TASKS.get(model_type),
        )
        for architecture, types, parts in swift._REGISTRY
        for model_type in types
    }
    assert ours == theirs


def test_no_other_flag_starts_a_flag_read_here() -> None:
    """A key that starts a flag read here (and is none) is taken for it, or is ambiguous: no
    flag of SftArguments that is not read here starts one, so none is refused wrongly."""
    arguments = front_end("swift.arguments")
    ours = swift._options()
    for field in dataclasses.fields(arguments.SftArguments):
        if field.name in swift._FIELDS:
            continue
        for option in (f"--{field.name}", f"--{field.name.replace('_', '-')}"):
            assert not [o for o in ours if o.startswith(option)], option


def test_the_defaults_are_swifts() -> None:
    arguments = front_end("swift.arguments")
    fields = {field.name: field for field in dataclasses.fields(arguments.SftArguments)}
    for name, default in swift._DEFAULTS.items():
        field = fields[name]
        theirs = field.default_factory() if field.default is dataclasses.MISSING else field.default
        assert theirs == default, name
