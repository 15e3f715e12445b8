"""One command at a time per wallet: an advisory lock on ``<wallet dir>/.lock`` (flock).

Every request the wallet makes is written down before it goes out, and the next command finishes whatever is
left open. That is only right if no other process is in the middle of that very request: ``autopay --watch``
running as a service while a miner types ``hashpool-wallet balance`` must not take each other's unfinished
requests for crashed ones. Watching commands hold the lock for one round at a time.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from hashpool_cln.wallet.errors import Code, WalletError

LOCK_FILE = ".lock"
WAIT = 60.0  # seconds a command waits for another to finish before giving up


@asynccontextmanager
async def held(directory: Path, wait: float | None = None) -> AsyncIterator[None]:
    """Hold the wallet's lock for the block; WalletError BUSY after ``wait`` seconds of another holding it."""
    fd = os.open(directory / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        give_up = time.monotonic() + (WAIT if wait is None else wait)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= give_up:
                    raise WalletError(Code.BUSY, "another hashpool-wallet command is using this wallet (a "
                                      "service?); try again when it is done") from None
                await asyncio.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
