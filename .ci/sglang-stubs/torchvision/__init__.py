# Stub: SGLang's multimodal code and transformers' image utilities import torchvision's names at module level; the LoRA path never uses them.
from ._placeholder import __getattr__  # noqa: F401

__version__ = "0.28.0"  # the release paired with torch 2.13: transformers parses it
