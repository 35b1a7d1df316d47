"""A real client of the Automodel rules: nemo-automodel 0.7.0's apply_lora_to_linear_modules
patches exactly the modules `modmatch --rules automodel --hf-config ... --json` selects."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from oracles import oracle

# Each case runs the command in a subprocess beside nemo-automodel building the model: about
# five seconds a case. Run by `pytest -m slow` and CI, not by default.
pytestmark = pytest.mark.slow

LLAMA = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 8,
    "intermediate_size": 16,
    "num_hidden_layers": 12,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "vocab_size": 32,
}


def patched_by_automodel(config: dict[str, Any], peft: dict[str, Any]) -> list[str]:
    transformers = oracle("transformers")
    lora = oracle("nemo_automodel.components._peft.lora")
    import torch

    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(
            transformers.AutoConfig.for_model(**config)
        )
    lora.apply_lora_to_linear_modules(model, lora.PeftConfig(**peft))
    return [name for name, module in model.named_modules() if isinstance(module, lora.LinearLoRA)]


def selected_by_modmatch(config_path: Path, *args: str) -> list[str]:
    command = ["modmatch", "--rules", "automodel", "--hf-config", str(config_path), *args]
    result = subprocess.run(
        [sys.executable, "-m", *command, "--json"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["rules"], document["call"]) == ("automodel", "full-name")
    return document["selected_names"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("peft", "args"),
    [
        ({"target_modules": ["q_proj"]}, ["-t", "q_proj"]),  # bare: compared with the full name
        ({"target_modules": ["*.q_proj", "lm_head"]}, ["-t", "*.q_proj", "-t", "lm_head"]),
        ({"target_modules": ["*.layers.1.*"]}, ["-t", "*.layers.1.*"]),
        ({"target_modules": ["*_proj"]}, ["-t", "*_proj"]),
        ({"target_modules": [".*fc.*", "*mlp.up*"]}, ["-t", ".*fc.*", "-t", "*mlp.up*"]),
        ({"exclude_modules": ["*.o_proj", "lm_head"]}, ["-x", "*.o_proj", "-x", "lm_head"]),
        ({"match_all_linear": True}, ["--all-linear"]),
        ({}, []),  # Automodel's default targets
    ],
    ids=str,
)
def test_patched_modules_are_the_preview(
    tmp_path: Path, peft: dict[str, Any], args: list[str]
) -> None:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(LLAMA))
    expected = patched_by_automodel(LLAMA, peft)
    assert selected_by_modmatch(config_path, *args) == expected
