"""The ``modmatch`` command: inputs, each framework asked the way it asks, advice, counts, output.

The only package that prints. :mod:`.peft` previews what ``get_peft_model`` wraps;
:mod:`.report` counts what each pattern selects; :mod:`.cli` is the entry point.
"""
