# Stub: not vLLM. SGLang's RotaryEmbedding, off CUDA/HIP/CPU-engine, imports vllm._custom_ops when built; see _custom_ops.py.
