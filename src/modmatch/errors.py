"""Exceptions modmatch raises."""

from __future__ import annotations

import re

__all__ = ["FallbackWarning", "InputError", "PatternError"]


class PatternError(ValueError, re.error):
    """A pattern the seed's ``re`` would reject, named with its index and the parser's reason.

    ``pos`` (with ``lineno`` and ``colno``) is where in the pattern, as written, the parser
    stopped; None where it names no place. It is also an ``re.error``, so code written for the
    seed's exception keeps working.
    """

    def __init__(self, pattern: str, index: int, reason: str, pos: int | None = None) -> None:
        message = f"invalid pattern {pattern!r} at index {index}: {reason}"
        if pos is None:
            re.error.__init__(self, message)
        else:  # re.error adds " at position N" (and the line and column) to the message
            re.error.__init__(self, message, pattern, pos)
        self.msg = reason
        self.pattern: str = pattern
        self.index = index
        self.reason = reason

    def __reduce__(self) -> tuple[type[PatternError], tuple[str, int, str, int | None]]:
        return (type(self), (self.pattern, self.index, self.reason, self.pos))


class FallbackWarning(UserWarning):
    """A pattern only Python's ``re`` can run (a backreference, say): it may backtrack."""

    def __init__(self, pattern: str, index: int, reason: str) -> None:
        super().__init__(f"pattern {pattern!r} at index {index}: {reason}")
        self.pattern = pattern
        self.index = index
        self.reason = reason


class InputError(ValueError):
    """Input modmatch cannot take (a missing file, options that conflict); its message is the
    one line the command shows."""
