"""Proofs, outputs and quotes that an in-flight request is working on ("pending" in NUT-07 terms).

A request reserves what it will spend or sign before its (slow) checks and releases it after its database
transaction. Another request that needs one of those waits up to ``wait`` seconds for it to be released and
then sees the outcome (spent, signed); if it is still held after that, it gets the "pending" error. The
database's UNIQUE constraints stay the final guard; reservations make the answers precise and save work.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

from hashpool_cln.refmint.errors import MintError

Key = tuple[str, str]  # (namespace, value), e.g. ("Y", <hex>), ("B_", <hex>), ("quote", <id>)


class Reservations:
    def __init__(self) -> None:
        self._held: dict[Key, asyncio.Event] = {}

    def is_held(self, key: Key) -> bool:
        return key in self._held

    @asynccontextmanager
    async def hold(self, keys: Iterable[Key], wait: float, busy: Callable[[Key], MintError]) -> AsyncIterator[None]:
        """Reserve ``keys`` for the duration of the block; ``busy(key)`` is raised if one stays held too long."""
        wanted = list(keys)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            blocker = next((k for k in wanted if k in self._held), None)
            if blocker is None:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise busy(blocker)
            try:
                await asyncio.wait_for(self._held[blocker].wait(), remaining)
            except asyncio.TimeoutError:
                raise busy(blocker) from None
        released = asyncio.Event()
        for key in wanted:
            self._held[key] = released
        try:
            yield
        finally:
            for key in wanted:
                if self._held.get(key) is released:
                    del self._held[key]
            released.set()
