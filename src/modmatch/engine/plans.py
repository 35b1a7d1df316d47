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
plan's (lists RE2's DFA handles badly), the cheap plan takes over again, and the engine, kept,
is tried again only once the rent has cost as much again as everything before: a wrong purchase
costs its price once, and a trial that a busy machine spoiled is not a verdict for good. Both
plans give the same answers, so the choice is invisible.

Calls are judged robustly, never on a plain sum or a plain median: on a shared machine one call
in a few thousand is descheduled for milliseconds, as long as a whole walk of a small model,
and a sum would charge that to whichever plan happened to be answering; a median would miss
what a skewed rent costs (a name no pattern matches runs the whole loop). So a sampled call
pays at most a quarter of the price, a call is costed as the mean of the recent ones without
their slowest eighth (:func:`typical`), and a trial call is charged at most a few rented ones.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any, Generic, TypeVar

__all__ = [
    "SAMPLE",
    "Charge",
    "RentOrBuy",
    "Renting",
    "asked_first",
    "build_cost",
    "buy_at_once",
    "few_plain",
    "sampled",
    "typical",
]

R = TypeVar("R")

# What a rent is handed: the seconds one sampled call took.
Charge = Callable[[float], None]

# One rented call in this many is timed: two clock reads cost about 0.1 µs, as much as a quick
# rented call, so timing every one would slow the cheap plan itself down.
SAMPLE = 8
# A compiled drop-in's call on a name not seen before (measured: Automodel 1.8 µs, PEFT 2.5 µs
# cold). The engine is bought only when a rented call costs more: below it, no build pays off.
_ENGINE_CALL = 2e-6
# Rented calls before the rent is judged, and sampled ones kept to judge it on.
_MIN_CALLS = 64
_KEPT = 33
# One sampled call pays at most this share of the price (1 / _SHARES).
_SHARES = 4
# Calls the bought engine is timed on, every one, before it is kept (0: kept untried).
_TRIAL = 512
# A trial call is charged at most this many rented calls' time: a call the machine descheduled
# (milliseconds) must not end a trial that the engine is winning call by call.
_STALL = 4
# What building the engine is expected to cost: a fixed part and a part per pattern (measured on
# Automodel syntax, the slowest to translate: 4,096 patterns in 0.16 s).
_BUILD_FIXED = 2e-4
_BUILD_PER_PATTERN = 4e-5


# A short list of plain wildcard patterns (letters, digits, `_`, `.`, `*`) builds in about a
# millisecond at most (measured, distinct patterns: 2 in 50-90 µs, 18 literal names in 270 µs,
# 32 per-expert globs in 1.0 ms): within the first-call allowance (the framework's first call
# + 2 ms) and a few percent of any model's walk, while renting adds a frame to every call and
# a trial to the walk. Such a list is bought at once; a pattern listed again is built once.
_AT_ONCE = 32
# Plain characters: a pattern of these alone is a valid regex in each framework's syntax, and its
# regex (literals, `.`, `(.*)`, `(\..*)?` and the anchors) means the same as an alternative of a
# union.
_PLAIN = re.compile(r"[\w.*\-]*", re.ASCII)


# Up to this many distinct plain patterns, one ``re`` regex of them all, each an alternative,
# answers as quickly as the framework's loop does one pattern (no frames per pattern), and about
# as quickly as an engine call at most (Automodel and Megatron-Bridge alike) (measured: 1 pattern 0.3 µs, 8 patterns with a leading
# `*` each about 1.5 µs on a 60-character name).
_FEW = 8


def few_plain(patterns: Collection[Any]) -> bool:
    """Whether ``patterns`` are a few distinct str patterns of plain characters, which ``re``
    runs faster as alternatives of one regex than the engine can."""
    return (
        len(patterns) <= _FEW
        and all(type(pattern) is str for pattern in patterns)
        and all(_PLAIN.fullmatch(pattern) for pattern in patterns)
    )


# A plan is built from a copy of its list, and every call first checks the live list against it
# for a change in place: a C compare, 0.8 ns an entry. The framework's loop asks one pattern in
# about 0.3 µs (Automodel, its regexes cached; Megatron-Bridge a little more), so on a list of
# thousands of entries the check alone could cost more than the framework's whole call for a
# name its first patterns claim. A long list's first entries, one per this many, are therefore
# asked first as the framework asks them: a name they claim costs what it costs the framework,
# and any other has already cost the framework at least as much as the check.
_EARLY_PER = 384


def asked_first(entries: int) -> int:
    """How many leading entries of a list of ``entries`` are asked as the framework asks them,
    on the live list, before the list is checked for a change in place."""
    return entries // _EARLY_PER


def buy_at_once(patterns: Sequence[Any]) -> bool:
    """Whether building the engine for ``patterns`` costs less than renting would."""
    if not all(type(pattern) is str for pattern in patterns):
        return False
    distinct: set[str] = set(patterns)
    return len(distinct) <= _AT_ONCE and all(_PLAIN.fullmatch(p) for p in distinct)


def build_cost(patterns: int) -> float:
    """Seconds building an engine of ``patterns`` patterns is expected to take."""
    return _BUILD_FIXED + _BUILD_PER_PATTERN * patterns


def typical(seconds: list[float]) -> float:
    """The mean of ``seconds`` without its slowest eighth: what a call costs, on a machine that
    now and then deschedules one for milliseconds. Not the median: a rent's calls are skewed (a
    name no pattern matches runs the whole loop), and their total is what the price is paid in."""
    ordered = sorted(seconds)
    kept = ordered[: len(ordered) - len(ordered) // 8] or ordered
    return sum(kept) / len(kept)


def sampled(ask: Callable[..., R], charge: Charge) -> Callable[..., R]:
    """``ask``, with every :data:`SAMPLE`-th call timed and its seconds handed to ``charge``.

    The count is a countdown in the closure's cell: no attribute, no modulo, a few bytecodes on
    the calls that are not timed. A rent that cannot afford even the frame this adds writes the
    same countdown inline (``modmatch.automodel``)."""
    every = SAMPLE
    left = every
    clock = time.perf_counter

    def rent(*args: Any) -> R:
        nonlocal left
        left -= 1
        if left:
            return ask(*args)
        left = every
        start = clock()
        answer = ask(*args)
        charge(clock() - start)
        return answer

    return rent


class RentOrBuy(Generic[R]):
    """Two plans answering the same questions: the rent, and an engine bought when it pays.

    Callers ask ``answer(*args)``, the current plan. ``rent(charge)`` makes the rent: a callable
    answering as the framework does, which hands the seconds of every :data:`SAMPLE`-th call to
    ``charge`` (:func:`sampled` makes one of any function). A subclass writes ``_buy``, which
    builds the engine's answer, or None where no engine can answer exactly.
    """

    __slots__ = (
        "_behind",
        "_engine",
        "_loss",
        "_paid",
        "_price",
        "_rent",
        "_rent_call",
        "_sample",
        "_samples",
        "_trial",
        "_trying_now",
        "answer",
        "calls",
    )

    def __init__(self, price: float, rent: Callable[[Charge], Callable[..., R]]) -> None:
        self._price = price
        self._sample = SAMPLE  # as the rent made now counts
        self.calls = 0  # rented calls, counted a sample at a time
        self._paid = 0.0  # estimated seconds of rented calls
        self._samples: list[float] = []
        self._engine: Callable[..., R] | None = None
        self._loss = 0.0  # what a trial may lose against the rent before it stops
        self._rent_call = 0.0  # seconds per rented call, when the trial began
        self._behind = 0.0  # what the trial has lost against the rent so far
        self._trial: list[float] = []  # seconds of each trial call
        self._trying_now = False
        self._rent: Callable[..., R] = rent(self._charge)
        self.answer: Callable[..., R] = self._rent

    def _buy(self) -> Callable[..., R] | None:
        raise NotImplementedError

    @property
    def bought(self) -> bool:
        """Whether the engine answers now."""
        return self._engine is not None and self.answer is self._engine

    def _charge(self, seconds: float) -> None:
        """One sampled rented call took ``seconds``: buy once the rent has cost the price, where
        a rented call costs more than an engine's."""
        sample = self._sample
        self.calls += sample
        # No one sample pays more than a share of the price: a call the machine descheduled
        # (milliseconds) does not buy alone.
        self._paid += min(sample * seconds, self._price / _SHARES)
        samples = self._samples
        samples.append(seconds)
        if len(samples) > _KEPT:
            del samples[0]
        if self._paid < self._price:
            return
        per_call = typical(samples)
        if per_call <= _ENGINE_CALL or self.calls < _MIN_CALLS:
            # The cheap plan is the faster one per call, or too few calls to tell: look again
            # once the rent has cost as much again (the names asked later may be slower).
            self._price = 2 * self._paid
            return
        built = 0.0
        if self._engine is None:
            start = time.perf_counter()
            engine = self._buy()
            built = time.perf_counter() - start
            if engine is None:
                self._price = math.inf  # nothing to buy: rent for good
                return
            self._engine = engine
        # The trial stops, and the rent answers again, once the engine has lost against the rent
        # what building it cost (a stalled call charged as a few rented ones), or at its end if
        # its typical call is slower.
        self._loss, self._rent_call = max(built, self._price), per_call
        self._behind, self._trial = 0.0, []
        if _TRIAL <= 0:  # no trial (tests): the engine answers from now on
            self.answer = self._engine
            return
        self._trying_now = True
        self.answer = self._trying

    def _trying(self, *args: Any) -> R:
        start = time.perf_counter()
        try:
            return self._engine(*args)  # type: ignore[misc]
        finally:
            self._judge(time.perf_counter() - start)

    def _judge(self, seconds: float) -> None:
        """One trial call took ``seconds``: keep the engine, or go back to the rent."""
        if not self._trying_now:
            return  # another thread's call ended the trial first
        trial, rent_call = self._trial, self._rent_call
        trial.append(seconds)
        self._behind += min(seconds, _STALL * rent_call) - rent_call
        if self._behind > self._loss:
            self._lost()
        elif len(trial) >= _TRIAL:
            if typical(trial) > rent_call:
                self._lost()
            else:
                self._trying_now = False
                self.answer = self._engine  # type: ignore[assignment]

    def _lost(self) -> None:
        """The engine lost its trial: the rent answers until it has cost as much again as all
        rent paid before, then the engine (kept: no second build) is tried again."""
        self._trying_now = False
        self._price = 2 * max(self._price, self._paid)
        self.answer = self._rent


class Renting(RentOrBuy[R]):
    """Rent-or-buy over a rent given as a function (a frame more per rented call)."""

    __slots__ = ("_build",)

    def __init__(
        self, rent: Callable[..., R], buy: Callable[[], Callable[..., R] | None], price: float
    ) -> None:
        self._build = buy
        super().__init__(price, lambda charge: sampled(rent, charge))

    def _buy(self) -> Callable[..., R] | None:
        return self._build()
