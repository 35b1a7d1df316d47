# Stub: imported for its names by transformers' image utilities or SGLang's multimodal code, never called on the LoRA path.
from torchvision._placeholder import __getattr__  # noqa: F401
