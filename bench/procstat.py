"""Processor time of a live process, to the nanosecond: the benchmarks that measure other processes share it."""

from __future__ import annotations

import os


def thread_seconds(pid: int | str) -> float:
    """CPU seconds so far of every live thread of ``pid`` (schedstat; ``stat``'s ticks are 10 ms).

    OSError when the process is gone; a thread that ends while it is read counts nothing.
    """
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that just ended
    return total / 1e9
