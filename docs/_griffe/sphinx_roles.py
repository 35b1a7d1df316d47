"""A griffe extension for the docs build: Sphinx roles in docstrings shown as inline code.

modmatch's docstrings name objects the reST way (``:class:`PatternSet```, ``:mod:`.syntax```).
Markdown has no such roles, so each becomes plain inline code: ``~`` keeps the last dotted
part, as in Sphinx.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(
    r":(?:py:)?(?:mod|class|func|meth|attr|data|exc|obj|const|ref|term):`(~?)([^`<]+?)(?:\s*<[^>]*>)?`"
)


def _plain(match: re.Match[str]) -> str:
    target = match.group(2).strip()
    if match.group(1):
        target = target.rpartition(".")[2]
    return f"`{target}`"


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(_plain, obj.docstring.value)

    on_object = on_instance
