"""Serving a saved adapter: what its files hold (:mod:`.adapter`), and whether an inference
server applies it as trained (:mod:`.vllm`)."""
