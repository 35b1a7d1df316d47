"""Rent or buy: the framework's own loop until the compiled engine has earned its build.

A drop-in has two plans for every question. The cheap one is what the framework itself does:
its loop over the patterns on Python's ``re`` (restated exactly by :mod:`modmatch.reference`),
nothing to build. The compiled one answers in one RE2 call per new name, but building it costs
tens of microseconds a pattern (4,096 Automodel patterns: about 0.16 s) and a Unicode class or
``(?i)`` costs milliseconds more. For a small list or a single regex the framework's loop is
the faster plan for a whole model walk; for a long list it is hundreds of times slower.

:class:`RentOrBuy` answers with the cheap plan, timing a sample of its calls, until the time
spent has reached what building the engine is expected to cost, and only then builds it
(skiing: rent until the rent paid equals the price, then buy). The total is then at most about
twice the better plan's. The engine is then tried: if its calls turn out slower than the cheap
plan's (lists RE2's DFA handles badly), the cheap plan takes over again for good, so a wrong
purchase costs its price once. Both plans give the same answers, so the choice is invisible.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["SAMPLE", "RentOrBuy", "Renting", "build_cost"]

R = TypeVar("R")

# One rented call in this many is timed: two clock reads cost about 0.1 µs, as much as a quick
# rented call, so timing every one would slow the cheap plan itself down.
SAMPLE = 8
# A compiled drop-in's call on a name not seen before (measured: Automodel 1.8 µs, PEFT 2.5 µs
# cold). The engine is bought only when a rented call costs more: below it, no build pays off.
_ENGINE_CALL = 2e-6
# Rented calls, and sampled ones kept, before the rent is judged.
_MIN_CALLS = 64
_KEPT = 33
# Calls the bought engine is timed on, every one, before it is kept for good.
_TRIAL = 512
# What building the engine is expected to cost: a fixed part and a part per pattern (measured on
# Automodel syntax, the slowest to translate: 4,096 patterns in 0.16 s).
_BUILD_FIXED = 2e-4
_BUILD_PER_PATTERN = 4e-5


def build_cost(patterns: int) -> float:
    """Seconds building an engine of ``patterns`` patterns is expected to take."""
    return _BUILD_FIXED + _BUILD_PER_PATTERN * patterns


class RentOrBuy(Generic[R]):
    """Two plans answering the same questions: the rent, and an engine bought when it pays.

    Callers ask ``answer(*args)``, the current plan. A subclass writes the rent as ``_renting``
    (its hot path: no frame between the caller and the framework's loop), counts its calls in
    ``calls`` and hands the seconds of every :data:`SAMPLE`-th call to :meth:`_charge`; ``_buy``
    builds the engine's answer, or None where no engine can answer exactly.
    """

    __slots__ = (
        "_engine",
        "_loss",
        "_price",
        "_rent_call",
        "_samples",
        "_spent",
        "_trial_calls",
        "answer",
        "calls",
    )

    def __init__(self, price: float) -> None:
        self._price = price
        self.calls = 0
        self._spent = 0.0  # estimated seconds of rented calls, then of the trial's calls
        self._loss = 0.0  # what the trial may lose against the rent before it stops
        self._rent_call = 0.0  # seconds per rented call, when the engine was bought
        self._trial_calls = 0
        self._samples: list[float] = []
        self._engine: Callable[..., R] | None = None
        self.answer: Callable[..., R] = self._renting

    def _renting(self, *args: Any) -> R:
        raise NotImplementedError

    def _buy(self) -> Callable[..., R] | None:
        raise NotImplementedError

    @property
    def bought(self) -> bool:
        """Whether the engine answers now."""
        return self._engine is not None and self.answer is self._engine

    def _charge(self, seconds: float) -> None:
        """One sampled rented call took ``seconds``: buy once the rent has cost the price, where
        a rented call costs more than an engine's."""
        self._spent += SAMPLE * seconds
        samples = self._samples
        samples.append(seconds)
        if len(samples) > _KEPT:
            del samples[0]
        if self._spent < self._price:
            return
        # Judged on the median sample, not the sum: one sample that a first compile, a garbage
        # collection or a busy machine made slow must not buy an engine worth less than its price.
        per_call = statistics.median(samples)
        spent = per_call * self.calls
        if spent < self._price or per_call <= _ENGINE_CALL or self.calls < _MIN_CALLS:
            # Not yet, or the cheap plan is the faster one per call: look again once the rent
            # has cost as much again (the names asked later may be slower).
            self._price = self._spent + max(self._price - spent, spent)
            return
        start = time.perf_counter()
        engine = self._buy()
        built = time.perf_counter() - start
        if engine is None:
            self._price = math.inf  # nothing to buy: rent for good
            return
        # The trial stops, and the rent is kept, once the engine has lost against the rent what
        # building it cost, or at its end if it is slower per call.
        self._engine, self._loss, self._rent_call = engine, max(built, self._price), per_call
        self._trial_calls, self._spent = 0, 0.0
        self.answer = self._trying

    def _trying(self, *args: Any) -> R:
        start = time.perf_counter()
        try:
            return self._engine(*args)  # type: ignore[misc]
        finally:
            self._spent += time.perf_counter() - start
            self._trial_calls += 1
            behind = self._spent - self._rent_call * self._trial_calls
            if behind > self._loss or (self._trial_calls >= _TRIAL and behind > 0):
                self._price = math.inf
                self.answer = self._renting
            elif self._trial_calls >= _TRIAL:
                self.answer = self._engine  # type: ignore[assignment]


class Renting(RentOrBuy[R]):
    """Rent-or-buy over a rent given as a function (a frame more per rented call)."""

    __slots__ = ("_build", "_rent")

    def __init__(
        self, rent: Callable[..., R], buy: Callable[[], Callable[..., R] | None], price: float
    ) -> None:
        super().__init__(price)
        self._rent = rent
        self._build = buy

    def _renting(self, *args: Any) -> R:
        calls = self.calls = self.calls + 1
        if calls % SAMPLE:
            return self._rent(*args)
        start = time.perf_counter()
        answer = self._rent(*args)
        self._charge(time.perf_counter() - start)
        return answer

    def _buy(self) -> Callable[..., R] | None:
        return self._build()
