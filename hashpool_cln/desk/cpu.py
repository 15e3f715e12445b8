"""Work too heavy for the desk's one event loop: reading and verifying a large token.

Verifying a token's DLEQ proofs costs about 0.1 ms a proof, so a token of thousands would hold every other call
for most of a second. Tokens of up to ``INLINE_PROOFS`` proofs are checked on the loop (a thread or a process
would cost more than the work); larger ones are read in a thread and their proofs verified in a worker process,
so the loop keeps serving other calls meanwhile (the worker does not share the interpreter's lock).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from hashpool_cln.cashu import crypto
from hashpool_cln.cashu.errors import CryptoError

INLINE_PROOFS = 64
INLINE_CHARS = 32_768  # a token text above this is read in a thread

T = TypeVar("T")

# (secret, C, r, e, s, the keyset's public key for the amount), all hex but the secret
DleqItem = tuple[str, str, str, str, str, str]


def verify(items: Sequence[DleqItem]) -> tuple[int | None, list[str]]:
    """The index of the first proof whose DLEQ does not verify (None if all do), and every proof's Y."""
    ys: list[str] = []
    for i, (secret, c, r, e, s, key) in enumerate(items):
        try:
            ok = crypto.dleq_verify_proof(secret.encode(), crypto.point(c), crypto.scalar(r), bytes.fromhex(e),
                                          bytes.fromhex(s), crypto.point(key))
        except (CryptoError, ValueError):
            ok = False
        if not ok:
            return i, ys
        ys.append(crypto.proof_y(secret))
    return None, ys


class Worker:
    """One worker process, started on first use (``spawn``: the plugin's threads are not forked with it)."""

    def __init__(self) -> None:
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    async def verify(self, items: Sequence[DleqItem]) -> tuple[int | None, list[str]]:
        if len(items) <= INLINE_PROOFS:
            return verify(items)
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, verify, list(items))
        except concurrent.futures.BrokenExecutor:
            self._pool = None  # the worker died (killed, out of memory): the next large token gets a new one
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


async def off_loop(heavy: bool, func: Callable[..., T], *args: Any) -> T:
    """``func(*args)``: in a thread when ``heavy``, else right here."""
    if heavy:
        return await asyncio.to_thread(func, *args)
    return func(*args)
