"""Progress on stderr while a model is read, where stderr is a terminal."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from ..inputs.models import Progress

__all__ = ["Terminal"]

_EVERY = 10_000


class Terminal(Progress):
    """Seconds spent on a step, modules counted on a walk; nothing where stderr is not a
    terminal."""

    @contextlib.contextmanager
    def ticking(self, label: str) -> Iterator[None]:
        if not sys.stderr.isatty():
            yield
            return
        done = threading.Event()
        start = time.perf_counter()

        def tick() -> None:
            while not done.wait(0.5):
                seconds = time.perf_counter() - start
                print(f"\r{label}: {seconds:.0f} s", end="", file=sys.stderr, flush=True)

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        try:
            yield
        finally:
            done.set()
            ticker.join()
            print(f"\r{label}: {time.perf_counter() - start:.1f} s", file=sys.stderr)

    def counting(self, items: Iterable[Any], label: str) -> Iterator[Any]:
        show = sys.stderr.isatty()
        count = 0
        for count, item in enumerate(items, 1):
            if show and count % _EVERY == 0:
                print(f"\r{label}: {count:,} modules", end="", file=sys.stderr, flush=True)
            yield item
        if show and count >= _EVERY:
            print(f"\r{label}: {count:,} modules", file=sys.stderr)
