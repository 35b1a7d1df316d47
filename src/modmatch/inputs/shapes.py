"""Module names of real model shapes, generated in code.

Each shape yields ``(name, is_linear)`` in ``named_modules()`` order, root (``""``) included,
so demos and benchmarks need neither transformers nor a download. The plain names are the
transformers 4.x layout, one module per expert; the ``-transformers5`` ones are the layout of
transformers 5, which fuses each layer's experts into one module holding 3-D parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["SHAPES", "MegatronShape", "Shape"]

_Module = tuple[str, bool]


@dataclass(frozen=True)
class Shape:
    """A decoder-only model: attention and MLP module names per layer, experts from a layer on."""

    name: str
    layers: int
    attention: tuple[_Module, ...]
    dense_mlp: tuple[_Module, ...]
    moe_mlp: tuple[_Module, ...]  # modules of the MoE block itself, experts excluded
    experts_path: str
    expert: tuple[_Module, ...]
    experts: int
    first_moe_layer: int
    # transformers 5: the experts as one module (parameters gate_up_proj, down_proj).
    fused: bool = False
    # Modules of the MoE block named before its experts (Mixtral's router in transformers 5).
    moe_before: tuple[_Module, ...] = ()

    def modules(self) -> Iterator[_Module]:
        yield "", False
        yield "model", False
        yield "model.embed_tokens", False
        yield "model.layers", False
        for layer in range(self.layers):
            base = f"model.layers.{layer}"
            yield base, False
            for suffix, linear in self.attention:
                yield f"{base}.self_attn{suffix}", linear
            mlp = f"{base}.{self.experts_path.split('.')[0]}"
            if layer < self.first_moe_layer:
                for suffix, linear in self.dense_mlp:
                    yield f"{mlp}{suffix}", linear
            else:
                yield mlp, False
                for suffix, linear in self.moe_before:
                    yield f"{mlp}{suffix}", linear
                experts = f"{base}.{self.experts_path}"
                yield experts, False
                if self.fused:
                    yield f"{experts}.act_fn", False
                for index in range(0 if self.fused else self.experts):
                    yield f"{experts}.{index}", False
                    for suffix, linear in self.expert:
                        yield f"{experts}.{index}{suffix}", linear
                for suffix, linear in self.moe_mlp:
                    yield f"{mlp}{suffix}", linear
            yield f"{base}.input_layernorm", False
            yield f"{base}.post_attention_layernorm", False
        yield "model.norm", False
        yield "model.rotary_emb", False
        yield "lm_head", True


_SWIGLU = ((".gate_proj", True), (".up_proj", True), (".down_proj", True), (".act_fn", False))
_DEEPSEEK_ATTENTION = (
    ("", False),
    (".q_a_proj", True),
    (".q_a_layernorm", False),
    (".q_b_proj", True),
    (".kv_a_proj_with_mqa", True),
    (".kv_a_layernorm", False),
    (".kv_b_proj", True),
    (".o_proj", True),
)
_DEEPSEEK_MOE = (
    (".gate", False),
    (".shared_experts", False),
    *((".shared_experts" + suffix, linear) for suffix, linear in _SWIGLU),
)
_DENSE = (("", False), *_SWIGLU)


def _deepseek(name: str, experts: int, dense_layers: int, fused: bool = False) -> Shape:
    return Shape(
        name,
        61,
        _DEEPSEEK_ATTENTION,
        _DENSE,
        _DEEPSEEK_MOE,
        "mlp.experts",
        _SWIGLU,
        experts,
        dense_layers,
        fused,
    )


_QWEN_ATTENTION = (
    ("", False),
    (".q_proj", True),
    (".k_proj", True),
    (".v_proj", True),
    (".o_proj", True),
    (".q_norm", False),
    (".k_norm", False),
)
_MIXTRAL_ATTENTION = (
    ("", False),
    (".q_proj", True),
    (".k_proj", True),
    (".v_proj", True),
    (".o_proj", True),
)
_MIXTRAL_EXPERT = ((".w1", True), (".w2", True), (".w3", True), (".act_fn", False))


@dataclass(frozen=True)
class MegatronShape:
    """A Megatron-Core GPT: the naming the seed's default targets are written for.

    Its projections are Megatron's parallel linear layers, which are not ``nn.Linear``: so
    they are not Linear here either. Odd layers are MoE, with a router and local experts.
    """

    name: str
    layers: int
    experts: int

    def modules(self) -> Iterator[_Module]:
        yield from (("", False), ("embedding", False), ("embedding.word_embeddings", False))
        yield from (("decoder", False), ("decoder.layers", False))
        for layer in range(self.layers):
            base = f"decoder.layers.{layer}"
            yield base, False
            yield f"{base}.input_layernorm", False
            for suffix in ("", ".core_attention", ".linear_proj", ".linear_qkv"):
                yield f"{base}.self_attention{suffix}", False
            yield f"{base}.pre_mlp_layernorm", False
            yield f"{base}.mlp", False
            if layer % 2 == 0:
                yield f"{base}.mlp.linear_fc1", False
                yield f"{base}.mlp.linear_fc2", False
                continue
            yield f"{base}.mlp.router", False
            yield f"{base}.mlp.experts", False
            yield f"{base}.mlp.experts.local_experts", False
            for expert in range(self.experts):
                experts = f"{base}.mlp.experts.local_experts.{expert}"
                yield experts, False
                yield f"{experts}.linear_fc1", False
                yield f"{experts}.linear_fc2", False
        yield "decoder.final_layernorm", False
        yield "output_layer", False


SHAPES: dict[str, Shape | MegatronShape] = {
    shape.name: shape
    for shape in (
        _deepseek("deepseek-v3", experts=256, dense_layers=3),
        _deepseek("kimi-k2", experts=384, dense_layers=1),
        Shape(
            "qwen3-235b-a22b",
            94,
            _QWEN_ATTENTION,
            _DENSE,
            ((".gate", True),),
            "mlp.experts",
            _SWIGLU,
            128,
            0,
        ),
        Shape(
            "mixtral-8x22b",
            56,
            _MIXTRAL_ATTENTION,
            _DENSE,
            ((".gate", True),),
            "block_sparse_moe.experts",
            _MIXTRAL_EXPERT,
            8,
            0,
        ),
        Shape("llama-3.1-405b", 126, _MIXTRAL_ATTENTION, _DENSE, (), "mlp.experts", (), 0, 126),
        _deepseek("deepseek-v3-transformers5", experts=256, dense_layers=3, fused=True),
        Shape(
            "qwen3-235b-a22b-transformers5",
            94,
            _QWEN_ATTENTION,
            _DENSE,
            ((".gate", False),),  # a router module, no longer nn.Linear
            "mlp.experts",
            (),
            128,
            0,
            fused=True,
        ),
        Shape(
            "mixtral-8x22b-transformers5",
            56,
            _MIXTRAL_ATTENTION,
            _DENSE,
            (),
            "mlp.experts",
            (),
            8,
            0,
            fused=True,
            moe_before=((".gate", False),),
        ),
        MegatronShape("megatron-gpt", layers=24, experts=8),
    )
}
