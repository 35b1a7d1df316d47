"""Training front-ends' YAML configs read as the LoRA configs they build (Axolotl, LLaMA-Factory)."""
