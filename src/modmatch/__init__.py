"""modmatch: decide fast and exactly which modules of a model match LoRA/PEFT target patterns.

Results equal NeMo Automodel's ``module_matcher`` (kept as :mod:`modmatch.reference`), while all
patterns are compiled once into one RE2 set and answers are cached per module name.
"""

from . import reference
from .engine.patternset import PatternSet
from .errors import FallbackWarning, PatternError
from .matcher import Explanation, ModuleMatcher, Rule, wildcard_match

__all__ = [
    "Explanation",
    "FallbackWarning",
    "ModuleMatcher",
    "PatternError",
    "PatternSet",
    "Rule",
    "reference",
    "wildcard_match",
]
__version__ = "0.1.0"
