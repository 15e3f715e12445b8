"""Kept stream connections: the node's unix socket (``lightning.jsonrpc``) and the mint's HTTP (``http``).

Opening a connection costs both ends more than a small call does, so a connection whose exchange ended cleanly
is kept for the next one. The rules that make that safe are the same for both protocols and live here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Connections:
    """Idle connections to one peer, each given back after an exchange that ended with its answer and nothing else.

    An exchange takes one to itself (or opens one) and gives it back only when it is clean, so no connection
    ever carries two exchanges at once or a late answer to one that gave up. The peer closing one is seen before
    it is taken again (``at_eof``); one idle longer than ``idle_seconds`` is closed rather than taken (a peer
    drops idle connections on a timer of its own, and a request sent as it does so is lost); a connection of
    another event loop is never reused.
    """

    def __init__(self, opener: Callable[[], Awaitable[Stream]], keep: int = 4,
                 idle_seconds: float | None = None) -> None:
        self._open = opener
        self.keep = keep
        self.idle_seconds = idle_seconds
        self._idle: list[tuple[asyncio.AbstractEventLoop, float, asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def take(self) -> tuple[Stream, bool]:
        """A connection, and whether it was kept from an earlier exchange (rather than opened now)."""
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        while self._idle:
            owner, since, reader, writer = self._idle.pop()
            fresh = self.idle_seconds is None or now - since < self.idle_seconds
            if owner is loop and fresh and not reader.at_eof() and not writer.is_closing():
                return (reader, writer), True
            _close(owner, writer)
        return await self._open(), False

    def give_back(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._idle) >= self.keep or reader.at_eof() or writer.is_closing():
            writer.close()
            return
        self._idle.append((asyncio.get_running_loop(), time.monotonic(), reader, writer))

    def close(self) -> None:
        while self._idle:
            owner, _, _, writer = self._idle.pop()
            _close(owner, writer)


def _close(owner: asyncio.AbstractEventLoop, writer: asyncio.StreamWriter) -> None:
    if not owner.is_closed():  # a closed loop has closed its transports already
        writer.close()
