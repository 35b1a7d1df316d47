"""NeMo Automodel 0.7.0 recipes (modmatch.frontends.automodel_recipe): the reading, the
PeftConfig and the model class against Automodel's own functions where nemo-automodel imports,
and what its apply_lora_to_linear_modules adapts on tiny models built on the meta device
(Llama, Qwen2, Qwen3-MoE, DeepSeek-V3, GPT-OSS) against `modmatch preview`'s selection."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from modmatch.cli import main
from modmatch.frontends import automodel_recipe
from modmatch.inputs.configs import read_config
from oracles import front_end, oracle

FIXTURES = Path(__file__).parent / "fixtures"
HERE = FIXTURES / "automodel_recipe"
RECIPES = sorted(path.name for path in HERE.glob("*.yaml"))
# The recipes Automodel refuses, with the exception its own code raises (on a MoE model for
# the refusals that need a matched experts module) and a word of modmatch's message.
REFUSED = {
    "edge-both-lists.yaml": (ValueError, "mutually exclusive"),
    "edge-unknown-field.yaml": (TypeError, "PeftConfig has no such field"),
    "edge-dora-everything.yaml": (NotImplementedError, "DoRA"),
    "edge-rank-scaling.yaml": (ValueError, "moe_rank_scaling"),
    "edge-weight-format.yaml": (ValueError, "expert_weight_format"),
    "edge-dropout-position.yaml": (AssertionError, "dropout_position"),
}
# Refused before any model: no LoRA at all, or LoRA with QAT (train_ft.build_model).
NO_LORA = ("edge-no-peft.yaml", "edge-qat.yaml")
ADAPTING = [name for name in RECIPES if name not in REFUSED and name not in NO_LORA]
# The refusals that need a matched experts module: none on a dense model.
EXPERTS_ONLY = ("edge-dora-everything.yaml", "edge-rank-scaling.yaml", "edge-weight-format.yaml")

_TEXT = {"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2, "vocab_size": 64}
_SMALL = {**_TEXT, "num_hidden_layers": 2, "num_key_value_heads": 1, "head_dim": 8}
_MOE = {"moe_intermediate_size": 8, "num_experts_per_tok": 2}
_MLA = {"q_lora_rank": 8, "kv_lora_rank": 8, "qk_rope_head_dim": 4, "qk_nope_head_dim": 4}
MODELS: dict[str, tuple[dict[str, Any], str]] = {
    "llama": ({"model_type": "llama", **_SMALL}, "LlamaForCausalLM"),
    "qwen2": ({"model_type": "qwen2", **_SMALL}, "Qwen2ForCausalLM"),
    "qwen3_moe": (
        {"model_type": "qwen3_moe", **_SMALL, **_MOE, "num_experts": 4},
        "Qwen3MoeForCausalLM",
    ),
    "deepseek_v3": (
        {
            "model_type": "deepseek_v3",
            **_SMALL,
            **_MOE,
            **_MLA,
            "v_head_dim": 4,
            "n_routed_experts": 4,
            "n_shared_experts": 1,
            "first_k_dense_replace": 1,
            "n_group": 1,
            "topk_group": 1,
        },
        "DeepseekV3ForCausalLM",
    ),
    "gpt_oss": ({"model_type": "gpt_oss", **_SMALL, "num_local_experts": 4}, "GptOssForCausalLM"),
}
MOE = ("qwen3_moe", "deepseek_v3", "gpt_oss")


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


def recipe(name: str) -> dict[str, Any]:
    return automodel_recipe.read(HERE / name)


def previewed(name: str, folder: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """`modmatch preview RECIPE --model MODEL --json`'s document (an error's, on a refusal)."""
    capsys.readouterr()  # what came before (Automodel prints a failed instantiation)
    code = main(["preview", str(HERE / name), "--model", str(folder), "--json"])
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert (code == 2) == ("error" in document), document
    return document


# --- Automodel's own code, where it imports ----------------------------------------------------


def sections(name: str, tmp_path: Path, keep: tuple[str, ...]) -> Any:
    """``load_yaml_config`` on the recipe's ``keep`` sections, the model's ``_target_`` left out
    (resolving it imports the training stack; test_the_model_entry_point_is_nemos checks it)."""
    loader = front_end("nemo_automodel.components.config.loader")
    raw = yaml.safe_load((HERE / name).read_text(encoding="utf-8"))
    kept = {key: value for key, value in raw.items() if key in keep}
    if isinstance(kept.get("model"), dict):
        kept["model"] = {k: v for k, v in kept["model"].items() if k != "_target_"}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(kept), encoding="utf-8")
    return loader.load_yaml_config(path)


@contextlib.contextmanager
def cuda_device_zero() -> Iterator[None]:
    """Automodel's MoE classes ask CUDA for the current device while being built."""
    with mock.patch("torch.cuda.current_device", return_value=0), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def automodels_model(cfg: Any, folder: Path) -> Any:
    """The model Automodel builds for the recipe, on the meta device: transformers' class with
    force_hf or a quantization config (``__init_model``), else its own where it has one."""
    transformers = oracle("transformers")
    model_init = front_end("nemo_automodel._transformers.model_init")

    config = transformers.AutoConfig.from_pretrained(folder)
    hf = model_init.get_is_hf_model(config, cfg.model.get("force_hf", False))
    return built(config, hf or cfg.get("quantization", None) is not None)


def built(config: Any, hf: bool) -> Any:
    """``config`` built on the meta device as transformers' class, or as Automodel's own."""
    transformers = oracle("transformers")
    model_init = front_end("nemo_automodel._transformers.model_init")
    import torch

    with torch.device("meta"), cuda_device_zero():
        if hf:
            return transformers.AutoModelForCausalLM.from_config(config)
        return model_init._resolve_custom_model_cls_for_config(config)(config)


def adapted_by(model: Any, peft_config: Any) -> set[str]:
    """The modules ``apply_lora_to_linear_modules`` patches on ``model``."""
    lora = front_end("nemo_automodel.components._peft.lora")
    experts = front_end("nemo_automodel.components._peft.lora_experts")
    import torch

    with torch.device("meta"), cuda_device_zero():
        count = lora.apply_lora_to_linear_modules(model, peft_config, skip_freeze=True)
    adapted = {
        name
        for name, module in model.named_modules()
        if isinstance(module, (lora.LinearLoRA, experts.GroupedExpertsLoRA))
    }
    assert count == len(adapted)
    return adapted


def automodel_adapts(name: str, folder: Path, tmp_path: Path) -> set[str]:
    """What Automodel adapts for the recipe: its PeftConfig on the model it builds."""
    cfg = sections(name, tmp_path, ("model", "peft", "quantization"))
    model = automodels_model(cfg, folder)
    return adapted_by(model, cfg.peft.instantiate())


# --- reading and detection ---------------------------------------------------------------------


@pytest.mark.parametrize("name", RECIPES)
def test_recipes_are_detected_as_automodels(name: str) -> None:
    assert read_config(str(HERE / name)).kind == "automodel"


@pytest.mark.parametrize(
    "path",
    sorted((FIXTURES / "axolotl").glob("*.y*ml"))
    + sorted((FIXTURES / "llamafactory").glob("*.yaml")),
)
def test_the_other_front_ends_configs_are_still_theirs(path: Path) -> None:
    assert read_config(str(path)).kind == path.parent.name


def _without_targets(value: Any) -> Any:
    """``value`` without the ``_target_`` and ``*_fn`` keys Automodel imports."""
    if isinstance(value, dict):
        return {
            k: _without_targets(v)
            for k, v in value.items()
            if not (isinstance(k, str) and (k == "_target_" or k.endswith("_fn")))
        }
    if isinstance(value, list):
        return [_without_targets(item) for item in value]
    return value


@pytest.mark.parametrize("name", RECIPES)
def test_reading_is_load_yaml_configs(name: str, tmp_path: Path) -> None:
    loader = front_end("nemo_automodel.components.config.loader")
    raw = _without_targets(yaml.safe_load((HERE / name).read_text(encoding="utf-8")))
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert _without_targets(recipe(name)) == loader.load_yaml_config(path).to_dict()


LITERALS = st.one_of(
    st.sampled_from(["none", "None", "NONE", "true", "True", "yes", "false", "False", "0", "1e-4"]),
    st.sampled_from(["['*_proj']", "('a', 1)", "{'a': 1}", "*_proj", "[*_proj]", "1_000", "0x1f"]),
    st.integers().map(str),
    st.floats(allow_nan=False).map(repr),
    st.lists(st.sampled_from(["'q_proj'", "1", "None", "True"]), max_size=3).map(
        lambda items: f"[{', '.join(items)}]"
    ),
    st.text(max_size=12),
    st.text(alphabet="[]'\"0123456789.,e-", max_size=12),
    st.integers(min_value=995, max_value=1005).map(lambda n: "1" * n),
)


@given(value=LITERALS)
def test_a_scalar_is_translated_as_translate_value_does(value: str) -> None:
    loader = front_end("nemo_automodel.components.config.loader")
    ours, theirs = automodel_recipe._translated(value), loader.translate_value(value)
    assert (type(ours), repr(ours)) == (type(theirs), repr(theirs))


def test_a_scalar_under_a_key_that_is_not_a_str_is_refused(tmp_path: Path) -> None:
    loader = front_end("nemo_automodel.components.config.loader")
    path = tmp_path / "recipe.yaml"
    path.write_text("model:\n  1: x\n", encoding="utf-8")
    with pytest.raises(AttributeError):
        loader.load_yaml_config(path)
    with pytest.raises(ValueError, match="str keys"):
        automodel_recipe.read(path)


@pytest.mark.parametrize("text", ["- peft: 1\n", "", "recipe\n"])
def test_a_file_that_is_not_a_mapping_is_refused_by_name(text: str, tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        automodel_recipe.read(path)


def test_the_base_model_is_the_models_pretrained_path() -> None:
    bases = {name: automodel_recipe.base_model(recipe(name)) for name in RECIPES}
    assert bases["llama3_2-llama3_2_1b_squad_peft.yaml"] == "meta-llama/Llama-3.2-1B"
    # from_config: the config section's, or none where the recipe writes the config out.
    assert (
        bases["deepseek_v4-deepseek_v4_flash_hellaswag_lora.yaml"]
        == "deepseek-ai/DeepSeek-V4-Flash"
    )
    assert bases["qwen-qwen3_moe_2layer_proxy_lora.yaml"] is None
    for name, base in bases.items():
        written = recipe(name)["model"].get("pretrained_model_name_or_path")
        assert written is None or base == written


def test_the_model_entry_point_is_nemos() -> None:
    """The recipes' model targets resolve to NeMoAutoModelForCausalLM's, which build_model
    restates (needs the training stack's imports: torchao)."""
    loader = front_end("nemo_automodel.components.config.loader")
    auto_model = front_end("nemo_automodel._transformers.auto_model")
    entries = {
        auto_model.NeMoAutoModelForCausalLM.from_pretrained,
        auto_model.NeMoAutoModelForCausalLM.from_config,
    }
    for name in RECIPES:
        target = recipe(name)["model"]["_target_"]
        assert loader._resolve_target(target) in entries
        assert target.endswith(automodel_recipe._AUTO_MODEL)


# --- the PeftConfig ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*ADAPTING, *EXPERTS_ONLY])
def test_the_fields_are_the_peft_configs_instantiate_builds(name: str, tmp_path: Path) -> None:
    module_matcher = front_end("nemo_automodel.components._peft.module_matcher")
    theirs = sections(name, tmp_path, ("peft",)).peft.instantiate()
    assert automodel_recipe._peft_config(recipe(name)) == dataclasses.asdict(theirs)
    # The lists as apply_lora_to_linear_modules hands them to the matcher (None empty, a str a
    # list of one), but for the default the matcher fills in, which the rule set says itself.
    matcher = module_matcher.ModuleMatcher(
        theirs.target_modules, theirs.exclude_modules, theirs.match_all_linear
    )
    ours = automodel_recipe.lora_config(recipe(name), _meta("llama"))
    defaulted = not ours["target_modules"] and matcher.target_modules == ["*_proj"]
    assert ours["target_modules"] == ([] if defaulted else matcher.target_modules)
    assert ours["exclude_modules"] == matcher.exclude_modules


def _meta(kind: str) -> Any:
    """A tiny transformers model of that kind on the meta device (no Automodel needed)."""
    transformers = oracle("transformers")
    import torch

    settings, architecture = MODELS[kind]
    config = transformers.AutoConfig.for_model(**settings)
    config.architectures = [architecture]
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(config)


def test_a_str_that_spells_a_list_is_that_list() -> None:
    fields = automodel_recipe.lora_config(recipe("edge-string-list.yaml"), _meta("llama"))
    assert (fields["target_modules"], fields["dim"]) == (["*.q_proj", "*.o_proj"], 16)


def test_match_all_linear_zero_with_no_lists_is_every_linear_module() -> None:
    zero = automodel_recipe.lora_config(recipe("edge-all-linear-zero.yaml"), _meta("llama"))
    default = automodel_recipe.lora_config(recipe("edge-default-targets.yaml"), _meta("llama"))
    assert (zero["match_all_linear"], default["match_all_linear"]) == (True, False)


@pytest.mark.parametrize(
    ("name", "word"),
    [
        ("edge-no-peft.yaml", "no peft section"),
        ("edge-qat.yaml", "QAT"),
        ("edge-unknown-field.yaml", "peft r: PeftConfig has no such field"),
    ],
)
def test_refusals_without_a_model_name_the_setting(name: str, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        automodel_recipe.lora_config(recipe(name), _meta("llama"))


def test_a_model_not_built_by_nemos_auto_model_is_refused() -> None:
    settings = recipe("llama3_2-llama3_2_1b_squad_peft.yaml")
    settings["model"]["_target_"] = "nemo_automodel.components.models.gpt2.build_gpt2_model"
    with pytest.raises(ValueError, match="build_gpt2_model"):
        automodel_recipe.lora_config(settings, _meta("llama"))


def test_no_peft_section_means_no_lora_for_automodel(tmp_path: Path) -> None:
    assert sections("edge-no-peft.yaml", tmp_path, ("model", "peft")).get("peft", None) is None


# --- the model class -------------------------------------------------------------------------


def test_the_architectures_automodel_implements_are_its_registrys() -> None:
    registry = front_end("nemo_automodel._transformers.registry")
    assert set(registry.MODEL_ARCH_MAPPING) == automodel_recipe._OWN_ARCHITECTURES


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize(
    "name",
    [
        "llama3_2-llama3_2_1b_squad_peft.yaml",
        "nemotron-nemotron_nano_9b_squad_peft.yaml",
        "llama3_1-llama3_1_8b_squad_qlora.yaml",
    ],
)
def test_the_class_built_is_the_one_automodel_builds(
    name: str, kind: str, model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    transformers = oracle("transformers")
    import torch

    cfg = sections(name, tmp_path, ("model", "peft", "quantization"))
    theirs = automodels_model(cfg, model_dirs[kind])
    config = transformers.AutoConfig.from_pretrained(model_dirs[kind])
    with torch.device("meta"):
        ours = automodel_recipe.build_model(recipe(name), config)
    if type(theirs).__module__.startswith("transformers."):
        assert ours is None
    else:
        assert type(ours) is type(theirs)
        assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]


@pytest.fixture
def without_nemo_automodel(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """nemo-automodel's model loader not importable, as where it is not installed."""
    automodel_recipe._model_init.cache_clear()
    monkeypatch.setitem(sys.modules, "nemo_automodel._transformers.model_init", None)
    yield
    automodel_recipe._model_init.cache_clear()


@pytest.mark.usefixtures("without_nemo_automodel")
def test_without_nemo_automodel_transformers_class_is_built_and_said(
    model_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    document = previewed("qwen-qwen3_moe_30b_lora.yaml", model_dirs["qwen3_moe"], capsys)
    note = next(note for note in document["notes"] if "trains its own" in note)
    assert "Qwen3MoeForCausalLM" in note and "transformers' Qwen3MoeForCausalLM" in note
    assert "GroupedExperts" in note
    # transformers' class: its experts are no module Automodel's matcher is asked about.
    assert not [name for name in document["selected_names"] if name.endswith("experts")]


def test_experts_transformers_holds_fused_are_said_not_adapted(
    model_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    document = previewed("edge-force_hf-everything.yaml", model_dirs["qwen3_moe"], capsys)
    assert any(
        "model.layers.0.mlp.experts hold experts fused" in note for note in document["notes"]
    )
    assert "model.layers.0.mlp.experts" not in document["selected_names"]


def test_force_hf_and_quantization_are_said() -> None:
    assert "force_hf" in automodel_recipe.notes(recipe("edge-force_hf-everything.yaml"), None)[0]
    assert (
        "BitsAndBytes"
        in automodel_recipe.notes(recipe("llama3_1-llama3_1_8b_squad_qlora.yaml"), None)[0]
    )
    assert automodel_recipe.notes(recipe("qwen-qwen3_moe_30b_lora.yaml"), None) == []


# --- what Automodel adapts ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("name", ADAPTING)
def test_the_preview_selects_what_automodel_adapts(
    name: str,
    kind: str,
    model_dirs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    adapted = automodel_adapts(name, model_dirs[kind], tmp_path)
    document = previewed(name, model_dirs[kind], capsys)
    assert set(document["selected_names"]) == adapted
    assert len(document["selected_names"]) == len(adapted)


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_refusal_is_automodels(
    name: str,
    kind: str,
    model_dirs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Refused where Automodel raises (some refusals need an experts module), previewed as it
    adapts where it does not."""
    error, word = REFUSED[name]
    try:
        adapted = automodel_adapts(name, model_dirs[kind], tmp_path)
    except error:
        document = previewed(name, model_dirs[kind], capsys)
        assert word in document["error"]
        return
    assert set(previewed(name, model_dirs[kind], capsys)["selected_names"]) == adapted
    assert kind not in MOE and name in EXPERTS_ONLY


@pytest.mark.parametrize("kind", MOE)
def test_automodels_own_moe_class_adapts_its_experts_and_transformers_does_not(
    kind: str, model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    own = automodel_adapts("qwen-qwen3_moe_30b_lora.yaml", model_dirs[kind], tmp_path)
    hf = automodel_adapts("edge-force_hf-everything.yaml", model_dirs[kind], tmp_path)
    experts = {name for name in own if name.endswith(".mlp.experts")}
    assert experts and own - hf == experts


@given(
    targets=st.lists(
        st.sampled_from(
            [
                "*",
                "*_proj",
                "*.experts",
                "*.mlp.*",
                "*.layers.1.*",
                "lm_head",
                "*q_proj",
                "model.layers.0.mlp.experts",
                "*.mlp.shared_experts.*",
                "*.gate",
                "q_proj",
                "*.1.*",
            ]
        ),
        max_size=3,
    ),
    excluding=st.booleans(),
    kind=st.sampled_from(MOE),
)
def test_any_list_on_a_moe_model_selects_what_automodel_adapts(
    targets: list[str], excluding: bool, kind: str
) -> None:
    """Patterns of the recipes' kinds, as targets or as excludes, on Automodel's MoE classes:
    the rule set on the model build_model builds against apply_lora_to_linear_modules on the
    model Automodel's own class choice builds."""
    transformers = oracle("transformers")
    lora = front_end("nemo_automodel.components._peft.lora")
    import torch

    from modmatch.inputs.models import Model
    from modmatch.preview.rules import Options, rule_set

    settings, architecture = MODELS[kind]
    config = transformers.AutoConfig.for_model(**settings)
    config.architectures = [architecture]
    lists = {"exclude_modules" if excluding else "target_modules": targets}
    read = {
        "model": {"_target_": "nemo_automodel.NeMoAutoModelForCausalLM.from_pretrained"},
        "peft": {"_target_": automodel_recipe._PEFT_CONFIG, **lists},
    }
    with torch.device("meta"):
        ours = automodel_recipe.build_model(read, config)
    fields = automodel_recipe.lora_config(read, ours)
    options = Options(
        targets=fields["target_modules"] or None,
        excludes=fields["exclude_modules"] or None,
        all_linear=fields["match_all_linear"],
    )
    modules = [(name, isinstance(m, torch.nn.Linear)) for name, m in ours.named_modules()]
    selected = rule_set("automodel", options).selected(Model(modules, module=ours))
    assert set(selected) == adapted_by(built(config, hf=False), lora.PeftConfig(**lists))
