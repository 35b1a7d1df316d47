"""Compiled patterns for Automodel's matcher, a plain mutable dataclass.

Its users may change ``target_modules`` after construction, by assignment or in place, so the compiled form is checked against the list at each call and
rebuilt when it differs. The check is one identity test and, for a mutable list, one C-level
comparison that short-circuits on identical elements.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["Recompiling"]

T = TypeVar("T")

_IMMUTABLE = (str, tuple, frozenset, type(None))
_UNSET = object()


class Recompiling(Generic[T]):
    """``build(value)`` for the latest ``value`` seen; rebuilt when the value is replaced or
    changed in place."""

    __slots__ = ("_build", "_built", "_copy", "_immutable", "_seen")

    def __init__(self, build: Callable[[Any], T]) -> None:
        self._build = build
        self._seen: Any = _UNSET
        self._copy: Any = _UNSET
        self._immutable = False
        self._built: T | None = None

    def get(self, value: Any) -> T:
        """What ``build(value)`` returns, built again only if ``value`` changed since."""
        # Asked on every match: whether the value is immutable was decided when it was built.
        if value is self._seen and (self._immutable or value == self._copy):
            return self._built  # type: ignore[return-value]
        # Built first: a value that fails to build leaves the previous state untouched.
        built = self._build(value)
        self._seen, self._copy, self._built = value, copy.copy(value), built
        self._immutable = isinstance(value, _IMMUTABLE)
        return built

    def __reduce__(self) -> tuple[Any, ...]:
        # Compiled engines do not pickle; the copy compiles again on first use.
        return (Recompiling, (self._build,))

    def __deepcopy__(self, memo: dict[int, Any]) -> Recompiling[T]:
        return Recompiling(self._build)
