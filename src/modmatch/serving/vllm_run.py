"""The installed vLLM's own answer: its engine config as ``vllm serve --enable-lora`` makes it,
its model built on the meta device from the local config.json alone (no weights, no tokenizer,
nothing downloaded), its LoRA manager wrapping the layers, and the adapter added through the
worker's entry point (read, validate, pack, activate). What reached a LoRA layer is read off
the adapter's lookups; none of vLLM's rules are restated here, but one: a layer whose base the
attention backend holds (MLA's ``kv_b_proj``) is never run, and no code path shows it.

Importing this module imports vLLM (ImportError where it is not installed).
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
from collections.abc import Iterator
from typing import Any

from ..reference.vllm import ADAPTER_ID, Refused
from .adapter import SavedAdapter
from .settings import Settings

# Before vLLM is imported: the CPU platform, vLLM's log records left to the host's logging
# (vLLM's own handler writes them to stdout, which is the command's answer), and no Hub lookups
# (the model is a local folder).
os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ["VLLM_CONFIGURE_LOGGING"] = "0"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import vllm
from vllm.config import set_current_vllm_config
from vllm.distributed import parallel_state
from vllm.engine.arg_utils import EngineArgs
from vllm.lora.lora_model import LoRAModel
from vllm.lora.peft_helper import PEFTHelper
from vllm.lora.request import LoRARequest
from vllm.lora.utils import is_base_embedding_weights, parse_fine_tuned_lora_name
from vllm.model_executor.model_loader.utils import (
    get_model_architecture,
    initialize_model,
    process_weights_after_loading,
)
from vllm.model_executor.models import registry
from vllm.utils import network_utils
from vllm.v1.worker.lora_model_runner_mixin import LoRAModelRunnerMixin

__all__ = ["VERSION", "read_fields", "serve"]

VERSION: str = vllm.__version__

# vLLM inspects each architecture once in a fresh Python process, to keep CUDA from starting in
# its own: about 15 s a model type on two cores. On CPU the same inspection runs in this one.
registry._run_in_subprocess = lambda inspect: inspect()


def read_fields() -> frozenset[str]:
    """The adapter_config.json keys vLLM reads (its PEFTHelper's fields)."""
    return frozenset(PEFTHelper.__dataclass_fields__)


def serve(
    adapter: SavedAdapter, model: Any, model_path: str, settings: Settings, sizes: Any
) -> frozenset[str]:
    """The adapter's tensors whose weights vLLM applies; :class:`Refused` with vLLM's message
    where it refuses the model for LoRA or the adapter. ``model`` and ``sizes`` are unused:
    vLLM reads the config in the folder ``model_path`` itself and sizes its own buffers."""
    # vLLM prints some of its progress; stdout is the command's answer.
    with contextlib.redirect_stdout(sys.stderr):
        config = _engine_config(model_path, settings)
        with set_current_vllm_config(config), _class_mappings_kept(config):
            _parallel_groups()
            with torch.device("meta"):
                model = initialize_model(config)
            # The layers' runtime form; the fused-MoE LoRA layer refuses the adapter otherwise.
            process_weights_after_loading(model, config.model_config, torch.device("meta"))
            runner = LoRAModelRunnerMixin()
            try:
                # The LoRA buffers on the meta device too: a full MoE model's take gigabytes.
                runner.load_lora_model(model, config, torch.device("meta"))
            except ValueError as error:  # a model vLLM refuses LoRA on (a vocabulary too large)
                raise Refused(_message(error)) from error
            found: set[str] = set()
            manager = runner.lora_manager
            manager._lora_model_cls = _traced(found)
            try:
                runner.add_lora(LoRARequest("adapter", ADAPTER_ID, str(adapter.path.resolve())))
            except Exception as error:  # vLLM refuses by several exception types
                raise Refused(_message(error)) from error
            wrapped = manager._adapter_manager.modules
    mapper = getattr(model, "hf_to_vllm_mapper", None)
    mapper = mapper.get_rename_mapper() if mapper is not None else None
    bypassed = {name for name in wrapped if _held_by_attention(name, config)}
    applied = set(found) - bypassed
    return frozenset(
        tensor
        for tensor in adapter.shapes
        if not is_base_embedding_weights(tensor) and _parsed(tensor, mapper) in applied
    )


def _engine_config(model_path: str, settings: Settings) -> Any:
    # Where a flag is not given, vLLM's own default.
    given: dict[str, Any] = {}
    if settings.max_lora_rank is not None:
        given["max_lora_rank"] = settings.max_lora_rank
    if settings.target_modules is not None:
        given["lora_target_modules"] = list(settings.target_modules)
    try:
        return EngineArgs(
            model=model_path,
            enable_lora=True,
            **given,
            # On a CPU with AMX tiles vLLM would pick its AMX MLA backend, whose weight packing
            # needs a kernel only vLLM's CPU build has; which LoRA weights apply does not depend
            # on the backend, so the reference one is asked for (other models ignore it).
            attention_backend="CPU_MLA",
            max_loras=1,
            skip_tokenizer_init=True,
            load_format="dummy",
            enforce_eager=True,
        ).create_engine_config()
    except Exception as error:
        # LoRAConfig.verify_with_model_config refuses a model without LoRA support here.
        if "LoRA is not supported" in str(error):
            raise Refused(_message(error)) from error
        raise ValueError(f"vLLM {VERSION} cannot build {model_path}: {_message(error)}") from error


@contextlib.contextmanager
def _class_mappings_kept(config: Any) -> Iterator[None]:
    """Some models add to their class's packed_modules_mapping as they are built (Qwen3-MoE
    with mlp_only_layers, DeepSeek): each model built here starts from the classes' own."""
    model_class, _ = get_model_architecture(config.model_config)
    kept = {
        cls: copy.deepcopy(cls.__dict__["packed_modules_mapping"])
        for cls in model_class.__mro__
        if "packed_modules_mapping" in cls.__dict__
    }
    try:
        yield
    finally:
        for cls, mapping in kept.items():
            cls.packed_modules_mapping = mapping


def _parallel_groups() -> None:
    """One CPU process (gloo, world size 1), its model-parallel groups made anew for each model:
    the expert-parallel group exists only for MoE configs."""
    if not torch.distributed.is_initialized():
        address = network_utils.get_loopback_ip()
        method = network_utils.get_distributed_init_method(address, network_utils.get_open_port())
        parallel_state.init_distributed_environment(1, 0, method, 0, "gloo")
    parallel_state.destroy_model_parallel()
    parallel_state.initialize_model_parallel()


def _traced(found: set[str]) -> type:
    """vLLM's LoRAModel, noting in ``found`` each name the LoRA manager looked up and found
    (LoRA weights, or a classification head saved whole)."""

    class Traced(LoRAModel):  # type: ignore[misc]
        def get_lora(self, module_name: str) -> Any:
            return noted(module_name, super().get_lora(module_name))

        def get_module_to_save(self, module_name: str) -> Any:
            return noted(module_name, super().get_module_to_save(module_name))

    def noted(module_name: str, weights: Any) -> Any:
        if weights is not None:
            found.add(module_name)
        return weights

    return Traced


def _held_by_attention(name: str, config: Any) -> bool:
    """MLA's attention backend splits kv_b_proj's base weight for decode and calls the layer it
    captured before LoRA for prefill (vllm-project/vllm#48974): restated, no code path shows it."""
    return bool(config.model_config.use_mla) and name.endswith(".kv_b_proj")


def _parsed(tensor: str, mapper: Any) -> str | None:
    try:
        return str(parse_fine_tuned_lora_name(tensor, mapper)[0])
    except ValueError:
        return None


def _message(error: BaseException) -> str:
    """vLLM's message on one line: a refusal's (a ValueError; a config check's without
    pydantic's wrapping) as written, any other exception (vLLM failing on the adapter without
    a message of its own) with its type."""
    errors = getattr(error, "errors", None)
    if callable(errors):  # pydantic's ValidationError around a check of vLLM's
        text = " ".join(str(e.get("msg", "")).removeprefix("Value error, ") for e in errors())
    else:
        text = str(error)
    text = " ".join(text.split())
    if isinstance(error, ValueError) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
