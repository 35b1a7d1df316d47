"""Test oracle: does vLLM 0.33.0 apply a saved PEFT LoRA adapter as trained?

vLLM's own LoRA loading code runs on CPU, in the environment `.ci/serving` builds: the engine
config comes from `EngineArgs` as `vllm serve --enable-lora` makes it, the model is built from
the local config.json alone on the meta device (no weights, no tokenizer, nothing downloaded),
vLLM's LoRA manager wraps its layers, and the adapter goes in through the worker's entry point
(`add_lora`: read, validate, pack, activate). What reached the layers is read off their
`set_lora` calls; none of vLLM's rules are restated here.

Import this module before anything imports vLLM: the environment below is read at that import.
"""

import os
from typing import Any

# CPU platform; vLLM's log records go to the host's logging (pytest captures them), not stdout;
# a local model directory, so no Hub lookups (each one waits on the network here).
os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def vllm_serves(adapter_dir: str, model_dir: str, max_lora_rank: int = 16) -> dict[str, Any]:
    """Load the PEFT adapter in `adapter_dir` onto the model whose config.json is in `model_dir`.

    `max_lora_rank` is vLLM's `--max-lora-rank` (one of 1, 8, 16, 32, 64, ...). Returns:

    - loads: False where vLLM raises, refusing LoRA on the model or the adapter.
    - error: vLLM's exception, `Type: message` on one line, else None.
    - applied: the vLLM modules (e.g. `model.layers.0.self_attn.qkv_proj`) whose LoRA layer
      received the adapter's weights through `set_lora`; classification heads that received
      the adapter's full weights (modules_to_save) are listed too.
    - lora_layers: every vLLM module wrapped with a LoRA layer; those not in `applied` were
      reset (serve the base weights).
    - read: the adapter's LoRA modules as vLLM read them from adapter_model.safetensors (the
      key less `base_model.model.` and `.lora_A.weight`; after the model's `hf_to_vllm_mapper`,
      where it has one): e.g. `model.layers.0.self_attn.q_proj`, and for PEFT's
      `target_parameters` on fused experts `model.layers.0.mlp.experts.base_layer` (gate_up_proj)
      and `model.layers.0.mlp.experts` (down_proj).
    - unused: those of `read` that no LoRA layer took: trained, but silently not served.

    An adapter is served as trained when it loads and `unused` is empty.
    """
    import torch
    from vllm.config import set_current_vllm_config
    from vllm.distributed.parallel_state import (
        destroy_model_parallel,
        init_distributed_environment,
        initialize_model_parallel,
    )
    from vllm.engine.arg_utils import EngineArgs
    from vllm.lora.lora_model import LoRAModel
    from vllm.lora.request import LoRARequest
    from vllm.model_executor.model_loader.utils import (
        initialize_model,
        process_weights_after_loading,
    )
    from vllm.utils.network_utils import get_distributed_init_method, get_loopback_ip, get_open_port
    from vllm.v1.worker.lora_model_runner_mixin import LoRAModelRunnerMixin

    made: list[LoRAModel] = []

    class TracedLoRAModel(LoRAModel):
        """vLLM's LoRAModel, noting what it read and which names the LoRA manager took."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.read = set(self.loras)
            self.taken: set[str] = set()
            made.append(self)

        def get_lora(self, module_name: str) -> Any:
            lora = super().get_lora(module_name)
            if lora is not None:
                self.taken.add(module_name)
            return lora

    applied: set[str] = set()

    def traced(method: Any, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            applied.add(name)
            return method(*args, **kwargs)

        return call

    lora_layers: dict[str, Any] = {}
    try:
        config = EngineArgs(
            model=model_dir,
            enable_lora=True,
            max_lora_rank=max_lora_rank,
            max_loras=1,
            skip_tokenizer_init=True,
            load_format="dummy",
            enforce_eager=True,
        ).create_engine_config()
        with set_current_vllm_config(config):
            # One CPU process (gloo, world size 1); the model-parallel groups follow the model
            # (the expert-parallel group exists only for MoE configs), so they are made anew.
            if not torch.distributed.is_initialized():
                init_method = get_distributed_init_method(get_loopback_ip(), get_open_port())
                init_distributed_environment(1, 0, init_method, 0, "gloo")
            destroy_model_parallel()
            initialize_model_parallel()
            with torch.device("meta"):
                model = initialize_model(config)
            # Puts the layers in their runtime form; the fused-MoE LoRA layer refuses otherwise.
            process_weights_after_loading(model, config.model_config, torch.device("meta"))
            runner = LoRAModelRunnerMixin()
            runner.load_lora_model(model, config, torch.device("cpu"))
            lora_manager = runner.lora_manager
            lora_manager._lora_model_cls = TracedLoRAModel
            lora_layers = lora_manager._adapter_manager.modules
            for name, layer in lora_layers.items():
                layer.set_lora = traced(layer.set_lora, name)
                if hasattr(layer, "set_module_to_save"):
                    layer.set_module_to_save = traced(layer.set_module_to_save, name)
            runner.add_lora(LoRARequest("adapter", 1, os.path.abspath(adapter_dir)))
    except Exception as e:
        loads, error = False, " ".join(f"{type(e).__name__}: {e}".split())
    else:
        loads, error = True, None
    read = set().union(*(lora.read for lora in made))
    taken = set().union(*(lora.taken for lora in made))
    return {
        "loads": loads,
        "error": error,
        "applied": sorted(applied),
        "lora_layers": sorted(lora_layers),
        "read": sorted(read),
        "unused": sorted(read - taken),
    }
