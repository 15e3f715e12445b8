"""Where a redemption's time goes: the desk's own work (crypto, ledger) versus waits on the mint and the node."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

CATEGORIES = ("crypto", "sqlite", "mint", "node")


class Timings:
    """Seconds spent per category, summed over every redemption since the last ``reset``.

    Concurrent redemptions overlap, so the sums measure work done, not wall-clock time.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(CATEGORIES, 0.0)

    @contextmanager
    def measure(self, category: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[category] += time.perf_counter() - start

    def reset(self) -> None:
        self.seconds = dict.fromkeys(CATEGORIES, 0.0)
