"""A preview, computed once: :mod:`.compute` takes a :class:`~.compute.Request` to one
immutable :class:`~.result.Result`. Beneath it, :mod:`.rules` asks each framework about a
model's modules the way it asks, :mod:`.peft` previews what ``get_peft_model`` wraps,
:mod:`.report` counts what each pattern selects, :mod:`.findings` and :mod:`.advice` add the
suggestions and notes, and :mod:`.serve` audits a saved adapter for a serving engine.
"""

from .compute import Request, run
from .result import Explanation, Failed, Result, Served
from .rules import Options

__all__ = ["Explanation", "Failed", "Options", "Request", "Result", "Served", "run"]
