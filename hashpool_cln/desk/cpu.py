"""Work too heavy for the desk's one event loop: reading a large token, checking its proofs and hashing them.

Reading a token and finding each proof's Y (NUT-00 ``hash_to_curve``) costs tens of microseconds a proof, so a
token of thousands would hold every other call for a while. A token of up to ``INLINE_CHARS`` characters and
``INLINE_PROOFS`` proofs is handled on the loop (a process would cost more than the work). A larger one goes to a
worker process, which does not share the interpreter's lock, in one round trip: it reads the token, checks what
needs no word from the mint (spending conditions, duplicates), hashes the Ys, and sends back a ``Summary``, small
and cheap to unpickle. The proofs themselves cross only when a redemption will take them into custody.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from hashpool_cln.cashu import conditions, crypto
from hashpool_cln.cashu.errors import ConditionError, TokenError
from hashpool_cln.cashu.models import DLEQ, Proof, Token, build_dleqs, build_proofs
from hashpool_cln.cashu.tokens import parse_token

INLINE_PROOFS = 64
INLINE_CHARS = 32_768
Y_CHARS = 66  # a Y in hex: a compressed point
WORKER_NICENESS = 10

T = TypeVar("T")

# A token's proofs as plain tuples (amount, id, secret, C, e, s, r, witness): cheaper to pickle than objects.
FlatProofs = list[tuple]


@dataclass(frozen=True, slots=True)
class Summary:
    """What the checks and a quote need of a token, without its proofs.

    Keyset ids are as the token wrote them (short ids unresolved). ``amounts`` and ``refused`` describe the proofs
    up to the first whose spending condition is refused (all of them when none is): the checks on the loop report
    the first fault in proof order, an amount the keyset cannot sign before a condition at the same proof.
    """

    mint: str
    unit: str
    memo: str | None
    extra: dict
    count: int
    amount: int
    samples: tuple[Proof, ...]  # the first proof of each keyset id, in order of first use
    per_keyset: dict[str, int]  # proofs per keyset id
    amounts: dict[tuple[str, int], int]  # (keyset id, amount) → index of the first proof with both
    refused: tuple[int, str, str] | None  # the first proof whose condition is refused: index, message, reason
    duplicate: bool  # two proofs share a Y (the same secret)
    ys: str  # every proof's Y in hex, concatenated (empty when a condition was refused)

    @property
    def keyset_ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.samples)

    def token(self, proofs: tuple[Proof, ...]) -> Token:
        return Token(mint=self.mint, unit=self.unit, proofs=proofs, memo=self.memo, extra=self.extra)


def summarize(token: Token, own_pubkey: str) -> Summary:
    """A token's ``Summary``: its spending conditions checked against the desk's key, its Ys hashed."""
    samples: dict[str, Proof] = {}
    per_keyset: dict[str, int] = {}
    amounts: dict[tuple[str, int], int] = {}
    refused = None
    for i, proof in enumerate(token.proofs):
        samples.setdefault(proof.id, proof)
        per_keyset[proof.id] = per_keyset.get(proof.id, 0) + 1
        if refused is not None:
            continue
        amounts.setdefault((proof.id, proof.amount), i)
        try:
            conditions.require_spendable(proof, (own_pubkey,))
        except ConditionError as e:
            refused = (i, str(e), e.reason)
    ys = [] if refused else [crypto.proof_y(p.secret) for p in token.proofs]
    return Summary(mint=token.mint, unit=token.unit, memo=token.memo, extra=token.extra, count=len(token.proofs),
                   amount=token.amount, samples=tuple(samples.values()), per_keyset=per_keyset, amounts=amounts,
                   refused=refused, duplicate=len(set(ys)) != len(ys), ys="".join(ys))


def read_token(text: str, own_pubkey: str, with_proofs: bool
         ) -> tuple[Summary | None, FlatProofs | None, tuple[str, str] | None]:
    """The worker's step: ``(summary, proofs if with_proofs, None)``, or the TokenError's message and reason."""
    try:
        token = parse_token(text)
    except TokenError as e:
        return None, None, (str(e), e.reason)
    summary = summarize(token, own_pubkey)
    if not with_proofs:
        return summary, None, None
    return summary, [(p.amount, p.id, p.secret, p.C, *((p.dleq.e, p.dleq.s, p.dleq.r) if p.dleq else (None,) * 3),
                      p.witness) for p in token.proofs], None


def unflatten(flat: FlatProofs, ids: Mapping[str, str]) -> tuple[Proof, ...]:
    """Proofs from their tuples (fields the parser checked), each keyset id replaced by ``ids[id]`` (short ids
    resolved), built in bulk as the parser builds them."""
    if not flat:
        return ()
    amount, kid, secret, c, e, s, r, witness = zip(*flat)
    signed = [i for i, e_ in enumerate(e) if e_ is not None]
    dleqs: list[DLEQ | None] = [None] * len(flat)
    for i, dleq in zip(signed, build_dleqs([e[i] for i in signed], [s[i] for i in signed], [r[i] for i in signed])):
        dleqs[i] = dleq
    return tuple(build_proofs(amount, [ids[k] for k in kid], secret, c, dleqs, witness))


def detach(parent: int) -> None:
    """Run first in the worker: step below the plugin's priority (on a busy host the loop, which answers every
    other call, gets the processor first), let go of the plugin's stdin, stdout and stderr (lightningd must see
    them close when the plugin ends, and nothing but the plugin may write to them), and end when the plugin does,
    even when it was killed and could not say so."""
    os.nice(WORKER_NICENESS)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


@dataclass(frozen=True, slots=True)
class Proofs:
    """A token's proofs, built only when a redemption needs them: kept as parsed (a small token) or as the
    worker's tuples (a large one, built off the loop)."""

    parsed: tuple[Proof, ...] | None = None
    flat: FlatProofs | None = None

    async def build(self, ids: Mapping[str, str]) -> tuple[Proof, ...]:
        """The proofs, each keyset id replaced by ``ids[id]`` (short ids resolved)."""
        if self.flat is not None:
            return await asyncio.to_thread(unflatten, self.flat, ids)
        assert self.parsed is not None
        return tuple(p if ids[p.id] == p.id else replace(p, id=ids[p.id]) for p in self.parsed)


class Worker:
    """One worker process, started on first use (``spawn``: the plugin's threads are not forked with it)."""

    def __init__(self) -> None:
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    async def read(self, text: str, own_pubkey: str, with_proofs: bool = False) -> tuple[Summary, Proofs | None]:
        """``text`` parsed and summarized (TokenError when it is no token), with its proofs if ``with_proofs``:
        here for a small token, in the worker for a large one."""
        if len(text) <= INLINE_CHARS:
            token = parse_token(text)
            if len(token.proofs) <= INLINE_PROOFS:
                return summarize(token, own_pubkey), Proofs(parsed=token.proofs)
        summary, flat, error = await self.run(read_token, text, own_pubkey, with_proofs)
        if error is not None:
            raise TokenError(error[0], reason=error[1])
        assert summary is not None
        return summary, (Proofs(flat=flat) if flat is not None else None)

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` in the worker process (a module-level function, picklable arguments)."""
        return await asyncio.wrap_future(self.submit(func, *args))

    def submit(self, func: Callable[..., T], *args: Any) -> concurrent.futures.Future:
        """``func(*args)`` in the worker process, from any thread; the future fails with BrokenExecutor when the
        worker died (killed, out of memory), and the next call gets a new one."""
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                                initializer=detach, initargs=(os.getpid(),))
        pool = self._pool
        try:
            future = pool.submit(func, *args)
        except concurrent.futures.BrokenExecutor:
            self._pool = None
            raise
        future.add_done_callback(lambda f: self._forget(pool, f))
        return future

    def _forget(self, pool: concurrent.futures.ProcessPoolExecutor, future: concurrent.futures.Future) -> None:
        if not future.cancelled() and isinstance(future.exception(), concurrent.futures.BrokenExecutor) \
                and self._pool is pool:
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
