"""Rent or buy (modmatch.engine.plans), driven with chosen timings: what buys, what a busy
machine must not decide, and a trial lost then tried again without a second build."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from modmatch.engine import plans
from modmatch.engine.plans import RentOrBuy, sampled, typical

US = 1e-6


class Plans(RentOrBuy[str]):
    """A rent answering "rent" and an engine answering "engine"; ``built`` counts the builds."""

    def __init__(self, price: float, engine: bool = True) -> None:
        self.built = 0
        self._can_build = engine
        super().__init__(price, lambda charge: lambda: "rent")

    def _buy(self) -> Callable[[], str] | None:
        self.built += 1
        return (lambda: "engine") if self._can_build else None


def renting(p: Plans) -> bool:
    return p.answer is p._rent


def trying(p: Plans) -> bool:
    return not renting(p) and not p.bought


def charge(p: Plans, seconds: float, samples: int) -> None:
    for _ in range(samples):
        p._charge(seconds)


def test_a_rent_quicker_than_an_engine_call_is_never_bought() -> None:
    p = Plans(price=1e-3)
    charge(p, 0.3 * US, 100_000)  # 800,000 calls, 0.24 s of rent: hundreds of times the price
    assert renting(p) and p.built == 0
    assert p.answer() == "rent"


def test_one_descheduled_sample_does_not_buy() -> None:
    p = Plans(price=1e-3)
    charge(p, 0.3 * US, 40)
    charge(p, 0.05, 1)  # 50 ms: the machine ran something else
    charge(p, 0.3 * US, 40)
    assert renting(p) and p.built == 0


def test_a_slow_rent_buys_once_it_has_cost_the_price() -> None:
    p = Plans(price=2e-3)
    charge(p, 20 * US, 12)  # 96 calls, 1.92 ms
    assert renting(p)
    charge(p, 20 * US, 1)  # 2.08 ms
    assert trying(p) and p.built == 1
    assert p.answer() == "engine"
    for _ in range(plans._TRIAL):
        p._judge(2 * US)
    assert p.bought and p.answer() == "engine"


def test_stalls_in_the_trial_do_not_end_it() -> None:
    p = Plans(price=2e-3)
    charge(p, 20 * US, 13)
    for call in range(plans._TRIAL):
        p._judge(0.02 if call in (3, 200, 201) else 2 * US)
    assert p.bought


@pytest.mark.parametrize("engine_call", [30 * US, 6 * US])
def test_an_engine_slower_than_the_rent_is_dropped_then_tried_again(engine_call: float) -> None:
    """Much slower: stopped early. A little slower: stopped at the end. Either way the rent
    answers until it has cost as much again, and the engine is tried again, not built again."""
    p = Plans(price=1e-3)
    charge(p, 5 * US, 25)  # 200 calls, 1 ms
    assert trying(p)
    calls = 0
    while trying(p):
        p._judge(engine_call)
        calls += 1
    assert renting(p) and calls <= plans._TRIAL
    if engine_call > plans._STALL * 5 * US:
        assert calls < plans._TRIAL  # stopped once it had lost the price
    paid = p._paid
    charge(p, 5 * US, int(paid / (8 * 5 * US)) - 1)
    assert renting(p)  # not before the rent has cost as much again
    charge(p, 5 * US, 2)
    assert trying(p) and p.built == 1


def test_no_engine_for_the_list_rents_for_good() -> None:
    p = Plans(price=2e-3, engine=False)
    charge(p, 20 * US, 13)
    assert renting(p) and p.built == 1 and p._price == math.inf
    charge(p, 20 * US, 1000)
    assert p.built == 1


def test_sampled_times_one_call_in_sample() -> None:
    charged: list[float] = []
    rent = sampled(lambda x: x * 2, charged.append)
    assert [rent(i) for i in range(4 * plans.SAMPLE)] == [i * 2 for i in range(4 * plans.SAMPLE)]
    assert len(charged) == 4 and all(seconds >= 0 for seconds in charged)


def test_typical_leaves_out_the_slowest_eighth() -> None:
    assert typical([1.0] * 28 + [1000.0] * 4) == 1.0
    assert typical([1.0, 3.0]) == 2.0  # too few to leave any out
