"""Work too heavy for the desk's one event loop: reading a large token and hashing its secrets to curve points.

Reading a token and finding each proof's Y (NUT-00 ``hash_to_curve``) costs tens of microseconds a proof, so a
token of thousands would hold every other call for a while. Tokens of up to ``INLINE_PROOFS`` proofs (or
``INLINE_CHARS`` characters) are handled on the loop (a thread or a process would cost more than the work);
larger ones are read and hashed in a worker
process, which does not share the interpreter's lock, and cross between the two as plain tuples (cheaper to
pickle than objects), so the loop keeps serving other calls meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from hashpool_cln.cashu import crypto
from hashpool_cln.cashu.errors import TokenError
from hashpool_cln.cashu.models import DLEQ, Proof, Token
from hashpool_cln.cashu.tokens import parse_token

INLINE_PROOFS = 64
INLINE_CHARS = 32_768  # a token text above this is read in a thread

T = TypeVar("T")

# A parsed token as plain data: (mint, unit, memo, extra, proofs as (amount, id, secret, C, e, s, r, witness)),
# or a parse error as (message, reason).
Flat = tuple[str, str, Any, dict, list[tuple]]


def parse_flat(text: str) -> tuple[Flat | None, tuple[str, str] | None]:
    """``parse_token`` for the worker: the token flattened, or the TokenError's message and reason."""
    try:
        token = parse_token(text)
    except TokenError as e:
        return None, (str(e), e.reason)
    proofs = [(p.amount, p.id, p.secret, p.C, *((p.dleq.e, p.dleq.s, p.dleq.r) if p.dleq else (None,) * 3),
               p.witness) for p in token.proofs]
    return (token.mint, token.unit, token.memo, token.extra, proofs), None


def unflatten(flat: Flat) -> Token:
    mint, unit, memo, extra, proofs = flat
    return Token(mint=mint, unit=unit, memo=memo, extra=extra, proofs=tuple(
        Proof(amount=a, id=kid, secret=secret, C=c, dleq=None if e is None else DLEQ(e=e, s=s, r=r), witness=w)
        for a, kid, secret, c, e, s, r, w in proofs))


def detach(parent: int) -> None:
    """Run first in the worker: let go of the plugin's stdin, stdout and stderr (lightningd must see them close
    when the plugin ends, and nothing but the plugin may write to them), and end when the plugin does, even when
    it was killed and could not say so."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def proof_ys(secrets: Sequence[str]) -> list[str]:
    """Every proof's Y, in order."""
    return [crypto.proof_y(secret) for secret in secrets]


class Worker:
    """One worker process, started on first use (``spawn``: the plugin's threads are not forked with it)."""

    def __init__(self) -> None:
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    async def parse(self, text: str) -> Token:
        """``parse_token(text)``: here for a short text, in the worker for a long one."""
        if len(text) <= INLINE_CHARS:
            return parse_token(text)
        flat, error = await self._run(parse_flat, text)
        if error is not None:
            raise TokenError(error[0], reason=error[1])
        assert flat is not None
        return await asyncio.to_thread(unflatten, flat)

    async def ys(self, secrets: Sequence[str]) -> list[str]:
        """``proof_ys(secrets)``: here for a few, in the worker for many."""
        if len(secrets) <= INLINE_PROOFS:
            return proof_ys(secrets)
        return await self._run(proof_ys, list(secrets))

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                                initializer=detach, initargs=(os.getpid(),))
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, func, *args)
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
