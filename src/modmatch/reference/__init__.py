"""Readable references: each framework's rules restated on plain Python ``re``, slow and obvious.

Every fast path of modmatch is tested against one of these. The package itself is the seed's
rule set (:mod:`.seed`), the one ``modmatch.ModuleMatcher`` follows; the frameworks' rule sets
are its submodules :mod:`.automodel`, :mod:`.megatron_bridge` and :mod:`.peft`.
"""

from .seed import ModuleMatcher, seed_regex, wildcard_match

__all__ = ["ModuleMatcher", "seed_regex", "wildcard_match"]
