"""The installed SGLang's own answer on a saved adapter: its server flags parsed by its own
parser and checks (``sglang serve --model-path MODEL --lora-paths adapter=ADAPTER ...``), the
model built by its own loader and model classes on CPU from the local config.json alone (dummy
weights, no tokenizer, nothing downloaded), in a gloo process group of world size 1, its
``LoRAManager`` made as its ``ModelRunner`` makes it (the adapter loaded from ``--lora-paths``,
its layers wrapped, its memory pool made), then the first request that uses the adapter: the
adapter's weights fetched into the pool's buffers, the batch's LoRA info prepared, and each
wrapped dense layer run once with it.

What reached a wrapped layer is traced, not restated: each tensor read from the adapter's
safetensors file is tagged with its saved name, the tags follow the data through SGLang's own
torch calls (its renaming, stacking and slicing of q/k/v and gate/up, its copies into the pool),
and a tensor counts as applied when its data was copied into a pool buffer that a wrapped layer
holds (``set_lora_info``).

What is not SGLang's own code here, exactly:

- the ``ServerArgs`` are published and the process groups made as SGLang's scheduler process
  does (``publish(role="scheduler")``, ``_init_parallel_groups`` with gloo), without its CPU
  thread binding, which would pin the calling process to cores;
- the model is loaded with ``--load-format dummy`` and the LoRA manager is given the default
  ``LoadConfig`` (a real server loads both with the same one; the dummy format cannot read the
  adapter's file);
- ``--lora-backend torch_native``: SGLang's default (``csgmv``) runs Triton GPU kernels; the
  manager, adapter, pool and layer code is the same for every backend;
- pinned host memory, which a CPU-only torch cannot allocate, is plain memory (a transfer
  optimisation only);
- the first request is a ``ForwardBatch`` of one extend request of 4 tokens, built here as the
  scheduler would, and the wrapped layers are run one by one on random inputs, not through the
  whole model (attention and the fused-MoE kernels need a GPU): the fused-MoE LoRA layers are
  fetched into the pool and their batch info prepared, but not run; nor is attention, so a
  weight the attention reads past its LoRA layer (MLA's absorbed ``kv_b_proj``) is not seen.

Known limits of ``--device cpu``: SGLang's DeepSeek attention builds its rotary embedding with
``get_rope_cpu``, which takes only a ``deepseek_yarn`` ``rope_scaling`` (real DeepSeek-V3
configs have one; a tiny config also needs their ``moe_layer_freq`` and ``topk_method``), and a
model that does not build raises ValueError here rather than giving a verdict.

Importing this module imports SGLang (ImportError where it is not installed).
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any

# Before SGLang is imported: no Hub lookups (the model and the adapter are local folders).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import sglang
import torch
from sglang.srt.configs.device_config import DeviceConfig
from sglang.srt.configs.load_config import LoadConfig
from sglang.srt.configs.model_config import ModelConfig
from sglang.srt.distributed import parallel_state
from sglang.srt.distributed.bootstrap import _init_parallel_groups, init_layer_runtime
from sglang.srt.lora.layers import BaseLayerWithLoRA, FusedMoEWithLoRA
from sglang.srt.lora.lora import LoRAAdapter
from sglang.srt.lora.lora_manager import LoRAManager
from sglang.srt.model_executor.forward_batch_info import ForwardBatch, ForwardMode
from sglang.srt.model_loader import get_model
from sglang.srt.runtime_context import SpawnRanks, get_lora, publish, reset_context
from sglang.srt.server_args import prepare_server_args
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree

from ..reference.sglang import ADAPTER_NAME, Outcome

__all__ = ["VERSION", "serve"]

VERSION: str = sglang.__version__
_TOKENS = 4
# The attribute a tensor's saved names ride on.
_TAG = "_modmatch_from"


def serve(
    adapter_path: str,
    model_path: str,
    max_lora_rank: int | None,
    target_modules: tuple[str, ...] | None,
    strict_loading: bool,
) -> Outcome:
    """SGLang's verdict on the adapter in ``adapter_path`` served on the model whose
    config.json is in ``model_path``, with the server flags ``--max-lora-rank`` (None: not
    given), ``--lora-target-modules`` (None: not given) and ``--lora-strict-loading``."""
    argv = [
        "--model-path", model_path,
        "--device", "cpu",
        "--load-format", "dummy",
        "--skip-tokenizer-init",
        "--lora-backend", "torch_native",
        "--lora-paths", f"{ADAPTER_NAME}={adapter_path}",
    ]  # fmt: skip
    if max_lora_rank is not None:
        argv += ["--max-lora-rank", str(max_lora_rank)]
    if target_modules is not None:
        argv += ["--lora-target-modules", *target_modules]
    if strict_loading:
        argv += ["--lora-strict-loading"]
    trace = _Provenance()
    # SGLang prints some of its progress; stdout is the command's answer.
    with contextlib.redirect_stdout(sys.stderr), _unpinned(), trace:
        try:
            args = _server_args(argv)
        except _Refused as refused:
            return Outcome(str(refused), None, frozenset())
        _process(args)
        model_config = ModelConfig.from_server_args(args)
        init_layer_runtime(model_config=model_config)
        try:
            model = get_model(
                model_config=model_config,
                load_config=LoadConfig(load_format="dummy"),
                device_config=DeviceConfig("cpu"),
            )
        except Exception as error:
            message = f"SGLang {VERSION} cannot build {model_path}: {_message(error)}"
            raise ValueError(message) from error
        try:
            manager = _manager(model, model_config, args)
        except Exception as error:  # SGLang refuses by several exception types
            return Outcome(_message(error), None, frozenset())
        try:
            _first_request(manager)
        except Exception as error:
            return Outcome(None, _message(error), frozenset())
        applied = trace.reaching(_held_buffers(manager))
    return Outcome(None, None, frozenset(applied))


class _Refused(Exception):
    """The server's flags refused (its argument parser or its checks)."""


def _server_args(argv: list[str]) -> Any:
    """SGLang's ServerArgs from ``sglang serve``'s own parser, resolved and checked as its
    engine does before it publishes them."""
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            args = prepare_server_args(argv)
    except SystemExit as error:  # argparse: the message is its last line on stderr
        lines = errors.getvalue().strip().splitlines() or [f"exit {error.code}"]
        raise _Refused(lines[-1].split("error: ", 1)[-1]) from None
    try:
        args.resolve_once()
        args.check_server_args()
    except Exception as error:
        raise _Refused(_message(error)) from error
    return args


def _process(args: Any) -> None:
    """The scheduler process's context: the ServerArgs published, and one gloo process (world
    size 1) with its model-parallel groups, made anew for each call."""
    parallel_state.destroy_model_parallel()
    parallel_state.destroy_distributed_environment()
    reset_context()
    publish(args, role="scheduler", ranks=SpawnRanks(world_rank=0, gpu_id=0))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _init_parallel_groups(
        backend="gloo",
        dist_init_method=f"tcp://127.0.0.1:{port}",
        server_args=args,
        gpu_id=0,
    )


def _manager(model: torch.nn.Module, model_config: Any, args: Any) -> LoRAManager:
    """As ModelRunner.init_lora_manager makes it."""
    lora = get_lora()
    return LoRAManager(
        base_model=model,
        base_hf_config=model_config.hf_config,
        max_loras_per_batch=lora.max_loras_per_batch,
        load_config=LoadConfig(),
        dtype=model_config.dtype,
        server_args=args,
        lora_backend=lora.lora_backend,
        max_lora_rank=lora.max_lora_rank,
        target_modules=lora.lora_target_modules,
        lora_paths=lora.lora_paths,
    )


def _first_request(manager: LoRAManager) -> None:
    """One extend request of a few tokens using the adapter: fetched into the pool and its
    batch prepared as ForwardBatch.init_new does, then each wrapped dense layer run once."""
    (uid,) = [ref.lora_id for ref in manager.lora_refs.values()]
    batch = ForwardBatch(
        forward_mode=ForwardMode.EXTEND,
        batch_size=1,
        input_ids=torch.arange(_TOKENS),
        req_pool_indices=torch.zeros(1, dtype=torch.int64),
        seq_lens=torch.tensor([_TOKENS]),
        out_cache_loc=torch.arange(_TOKENS),
        seq_lens_sum=_TOKENS,
        extend_num_tokens=_TOKENS,
        extend_seq_lens=torch.tensor([_TOKENS], dtype=torch.int32),
        extend_seq_lens_cpu=[_TOKENS],
        extend_prefix_lens=torch.zeros(1, dtype=torch.int32),
        extend_prefix_lens_cpu=[0],
        lora_ids=[uid],
    )
    manager.fetch_new_loras(set(batch.lora_ids))
    manager.prepare_lora_batch(batch)
    for layer in manager.lora_modules:
        for module in layer.values():
            _run(module)
    if manager.embed_tokens_module is not None:
        manager.embed_tokens_module(batch.input_ids)


def _run(module: torch.nn.Module) -> None:
    if isinstance(module, FusedMoEWithLoRA) or not isinstance(module, BaseLayerWithLoRA):
        return  # the fused-MoE kernels need a GPU (see the module's docstring)
    base = module.base_layer
    size = getattr(base, "input_size_per_partition", None) or base.input_size
    weight = next(base.parameters())
    module(torch.randn(_TOKENS, size, dtype=weight.dtype))


class _Provenance(TorchFunctionMode):
    """Each tensor read from the adapter's file tagged with its saved name; the tags follow the
    data through every torch call (not through the ``*_like`` factories, whose result holds
    none of it), and the buffers that data is copied into in place are noted."""

    _FRESH = frozenset(
        {torch.zeros_like, torch.ones_like, torch.empty_like, torch.full_like, torch.rand_like}
    )

    def __init__(self) -> None:
        super().__init__()
        self.copied: dict[int, tuple[torch.Tensor, set[str]]] = {}
        self._kept: Any = None

    def __enter__(self) -> _Provenance:
        original = LoRAAdapter._process_weight

        def tagged(adapter: Any, name: str, loaded_weight: torch.Tensor) -> Any:
            setattr(loaded_weight, _TAG, frozenset({name}))
            return original(adapter, name, loaded_weight)

        self._kept = original
        LoRAAdapter._process_weight = tagged
        super().__enter__()  # type: ignore[no-untyped-call]
        return self

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)  # type: ignore[no-untyped-call]
        LoRAAdapter._process_weight = self._kept

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if func in self._FRESH:
            return result
        sources: set[str] = set()
        for leaf in _pytree.tree_leaves((args, kwargs)):
            if isinstance(leaf, torch.Tensor):
                sources |= getattr(leaf, _TAG, frozenset())
        if not sources:
            return result
        name = getattr(func, "__name__", "")
        destination = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if destination is not None and name.endswith("_") and not name.endswith("__"):
            root = destination._base if destination._base is not None else destination
            self.copied.setdefault(id(root), (root, set()))[1].update(sources)
        for leaf in _pytree.tree_leaves(result):
            if isinstance(leaf, torch.Tensor):
                with contextlib.suppress(AttributeError, RuntimeError):
                    setattr(leaf, _TAG, frozenset(getattr(leaf, _TAG, frozenset()) | sources))
        return result

    def reaching(self, held: list[torch.Tensor]) -> set[str]:
        """The saved names whose data was copied into any of the ``held`` buffers."""
        found: set[str] = set()
        for tensor in held:
            root = tensor._base if tensor._base is not None else tensor
            entry = self.copied.get(id(root))
            if entry is not None and entry[0] is root:
                found |= entry[1]
        return found


def _held_buffers(manager: LoRAManager) -> list[torch.Tensor]:
    """The tensors each LoRA-wrapped layer holds (what ``set_lora_info`` gave it)."""
    modules = [m for layer in manager.lora_modules for m in layer.values()]
    modules += [m for m in (manager.embed_tokens_module, manager.lm_head_module) if m]
    held: list[torch.Tensor] = []
    for module in modules:
        for value in vars(module).values():
            held += [leaf for leaf in _pytree.tree_leaves(value) if torch.is_tensor(leaf)]
    return held


@contextlib.contextmanager
def _unpinned() -> Iterator[None]:
    """Pinned host memory as plain memory: a CPU-only torch has no pinned allocator."""

    class Unpinned(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            kwargs = dict(kwargs or {})
            if func is torch.Tensor.pin_memory:
                return args[0]
            if func is torch.Tensor.is_pinned:
                return False
            if kwargs.get("pin_memory"):
                kwargs["pin_memory"] = False
            return func(*args, **kwargs)

    with Unpinned():
        yield


def _message(error: BaseException) -> str:
    """SGLang's message on one line: a refusal's (a ValueError) as written, any other
    exception with its type."""
    text = " ".join(str(error).split())
    if isinstance(error, ValueError) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
