"""Exceptions modmatch raises."""

from __future__ import annotations

import re

__all__ = ["PatternError"]


class PatternError(ValueError, re.error):
    """A pattern the seed's ``re`` would reject, named with its index and the parser's reason.

    It is also an ``re.error``, so code written for the seed's exception keeps working.
    """

    def __init__(self, pattern: object, index: int, reason: str) -> None:
        self.pattern = pattern
        self.index = index
        self.reason = reason
        # Bypass re.error.__init__, whose (msg, pattern, pos) signature is about regex text.
        ValueError.__init__(self, f"invalid pattern {pattern!r} at index {index}: {reason}")
        self.msg = reason
        self.pos = None
        self.lineno = None
        self.colno = None

    def __reduce__(self) -> tuple[type[PatternError], tuple[object, int, str]]:
        return (type(self), (self.pattern, self.index, self.reason))
