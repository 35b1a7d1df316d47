# Stub: SGLang's RotaryEmbedding imports this kernel when a model is built off CUDA; the LoRA path never runs it.


def rotary_embedding(*args, **kwargs):
    raise RuntimeError("vllm._custom_ops.rotary_embedding is a stub here (.ci/sglang-stubs)")
