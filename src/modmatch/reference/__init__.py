"""Readable references: each framework's rules restated on plain Python ``re``, slow and obvious.

Both the test oracles and runtime rules: every fast path of modmatch is tested against one of
these, and the product reads its tables (PEFT's task types, default targets and rewriting,
vLLM's rules and model layouts) from here too. The package itself is the seed's
rule set (:mod:`.seed`), the one ``modmatch.ModuleMatcher`` follows; the frameworks' rule sets
are its submodules :mod:`.automodel`, :mod:`.megatron_bridge` and :mod:`.peft`.
"""

from .seed import ModuleMatcher, seed_regex, wildcard_match

__all__ = ["ModuleMatcher", "seed_regex", "wildcard_match"]
