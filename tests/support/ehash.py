"""Redeemable ehash for tests and benchmarks: the reference mint (``support.refmint``) with a settled epoch at
1 sat a unit and a bank of 2^24 units to cut tokens from, reached through a proxy that can misbehave; and a
factory of desks wired to it and to the node stand-in.

    async with running_ehash(tmp_path) as ehash:          # the ``ehash`` fixture of tests/conftest.py
        token = await ehash.token(500)                     # a cashuB token of the settled epoch
        ehash.proxy.fault("/v1/swap", "drop_after")        # the next swap's answer is lost
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from coincurve import PrivateKey

from hashpool_cln.cashu import crypto
from hashpool_cln.cashu.amounts import split_amount
from hashpool_cln.cashu.models import Proof
from hashpool_cln.cashu.tokens import make_token, parse_token
from hashpool_cln.desk.config import DeskConfig
from hashpool_cln.desk.desk import Desk
from hashpool_cln.lightning.clnrpc import ClnNode
from hashpool_cln.mintclient import MintClient
from support.fakenode import FakeNode
from support.refmint import MintHandle, mint_config, start_mint

RATE_MSAT = 1_000  # every unit of the settled epoch is worth 1 sat
BANK_EXPONENT = 24  # the bank holds 2^24 units of the settled epoch
REWARD_HEIGHT = 101


# --- the mint behind a proxy that can misbehave ---------------------------------------------------------------


@dataclass
class Fault:
    kind: str  # see FaultyProxy
    seconds: float = 0.0


class FaultyProxy:
    """Forwards every request to the mint, except where a fault is queued for a path prefix.

    ``drop_before``: the connection closes, the mint never sees the request; ``drop_after``: the mint handles
    it, the answer is lost; ``slow``: the request reaches the mint after ``seconds``; ``status500``: an HTTP 500
    Cashu error without forwarding; ``garbage_after``: forwarded, answered with non-JSON; ``bad_dleq``: the
    signatures' DLEQ proofs are altered; ``bad_keys``: one public key is replaced; ``expired_keyset``: the
    keyset list claims every keyset expired; ``old_epochs``: the epoch list lacks ``net_reward_msat``, as from
    a mint that does not publish it.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.faults: dict[str, list[Fault]] = {}
        self.seen: Counter[str] = Counter()
        self.down = False
        self._session: aiohttp.ClientSession | None = None

    def fault(self, prefix: str, kind: str, times: int = 1, seconds: float = 0.0) -> None:
        self.faults.setdefault(prefix, []).extend(Fault(kind, seconds) for _ in range(times))

    def _take(self, path: str) -> Fault | None:
        for prefix, queue in self.faults.items():
            if path.startswith(prefix) and queue:
                return queue.pop(0)
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        body = await request.read()
        fault = self._take(path)
        if self.down or (fault and fault.kind == "drop_before"):
            assert request.transport is not None
            request.transport.close()
            raise ConnectionResetError("dropped")
        if fault and fault.kind == "status500":
            return web.json_response({"detail": "internal error", "code": 0}, status=500)
        if fault and fault.kind == "slow":
            await asyncio.sleep(fault.seconds)
        self.seen[path] += 1
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        async with self._session.request(request.method, self.upstream + path, data=body, headers=headers) as r:
            status, payload = r.status, await r.read()
        if fault and fault.kind == "drop_after":
            assert request.transport is not None
            request.transport.close()
            raise ConnectionResetError("dropped")
        if fault and fault.kind == "garbage_after":
            return web.Response(status=200, text="<html>oops</html>")
        if fault and fault.kind in ("bad_dleq", "bad_keys", "expired_keyset", "old_epochs"):
            payload = _tamper(fault.kind, json.loads(payload))
        return web.Response(status=status, body=payload, content_type="application/json")

    async def start(self) -> tuple[web.AppRunner, str]:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        return runner, f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _tamper(kind: str, doc: Any) -> bytes:
    if kind == "bad_dleq":
        for sig in doc.get("signatures", []):
            if sig.get("dleq"):
                e = int(sig["dleq"]["e"], 16)
                sig["dleq"]["e"] = f"{(e + 1) % (1 << 256):064x}"
    elif kind == "bad_keys":
        for ks in doc.get("keysets", []):
            amount = next(iter(ks["keys"]))
            ks["keys"][amount] = PrivateKey().public_key.format().hex()
    elif kind == "expired_keyset":
        for ks in doc.get("keysets", []):
            ks["final_expiry"] = 1_000
    elif kind == "old_epochs":
        for epoch in doc.get("epochs", []):
            epoch.pop("net_reward_msat", None)
    return json.dumps(doc).encode()


# --- a small wallet of real ehash -----------------------------------------------------------------------------


@dataclass
class EhashMint:
    """The running mint (``mint``, direct), its proxy, and a bank of proofs of a settled epoch."""

    mint: MintHandle
    url: str  # the proxy: what desks and tokens use
    proxy: FaultyProxy
    pool: str
    unit: str  # the settled epoch
    open_unit: str
    client: MintClient  # direct, for assertions
    bank: list[Proof] = field(default_factory=list)

    @property
    def direct_url(self) -> str:
        return self.mint.url

    @property
    def desk_key(self) -> str:
        return self.mint.desk_key

    async def issue(self, leading_zeros: int) -> list[Proof]:
        """Mint one share of ``2^leading_zeros`` units in the open epoch."""
        return await self.mint.issue(leading_zeros)

    async def proofs(self, amounts: list[int], secret_for=None) -> list[Proof]:
        """Fresh proofs of the settled epoch with exactly ``amounts``, cut from the bank by a swap
        (``secret_for(amount)`` chooses their secrets, e.g. NUT-10 conditions)."""
        need = sum(amounts)
        self.bank.sort(key=lambda p: p.amount)
        take, total = [], 0
        for p in reversed(self.bank):
            if total >= need:
                break
            take.append(p)
            total += p.amount
        if total < need:
            raise RuntimeError("the test bank ran dry")
        for p in take:
            self.bank.remove(p)
        chosen = [secret_for(a) for a in amounts] if secret_for else []
        got = await self.mint.swap(take, list(amounts) + split_amount(total - need), chosen)
        self.bank += got[len(amounts):]
        return got[:len(amounts)]

    async def token(self, amount: int | None = None, *, amounts: list[int] | None = None, mint: str | None = None,
                    secret_for=None) -> str:
        proofs = await self.proofs(amounts or split_amount(amount or 0), secret_for)
        return make_token(mint or self.url, self.unit, proofs)

    async def states(self, proofs_or_token: Any) -> list[str]:
        proofs = parse_token(proofs_or_token).proofs if isinstance(proofs_or_token, str) else proofs_or_token
        return [s.state for s in await self.client.checkstate([crypto.proof_y(p.secret) for p in proofs])]


@contextlib.asynccontextmanager
async def running_ehash(tmp_path: Path, **mint_overrides: Any) -> AsyncIterator[EhashMint]:
    """The mint (``support.refmint.mint_config`` plus ``mint_overrides``) with a settled epoch at 1 sat a unit
    and a bank of 2^24 units, behind the faulty proxy."""
    started = await start_mint(mint_config(tmp_path / "mint", **mint_overrides))
    mint = started.handle
    proxy = FaultyProxy(mint.url)
    proxy_runner, proxy_url = await proxy.start()
    client = MintClient(mint.url, desk_key=mint.desk_key, timeout=10)
    try:
        info = (await mint.ok("GET", "/v1/info"))["ehash"]
        bank = await mint.issue(BANK_EXPONENT)
        epochs = await mint.reward((1 << BANK_EXPONENT) * RATE_MSAT, height=REWARD_HEIGHT, confirmations=1)
        settled, opened = epochs[0], epochs[-1]
        if settled["unit"] != info["open_unit"] or settled["state"] != "settled":
            raise RuntimeError(f"the bank's epoch did not settle: {settled}")
        yield EhashMint(mint=mint, url=proxy_url, proxy=proxy, pool=info["pool"], unit=settled["unit"],
                        open_unit=opened["unit"], client=client, bank=bank)
    finally:
        await client.close()
        await proxy.close()
        await proxy_runner.cleanup()
        await started.stop()


# --- desks ----------------------------------------------------------------------------------------------------


class DeskFactory:
    """Desks on one ledger and seed in ``tmp_path``, buying ``ehash`` through its proxy, paying through
    ``node``; ``config(**overrides)`` is the DeskConfig they get."""

    def __init__(self, tmp_path: Path, ehash: EhashMint, node: FakeNode) -> None:
        self.tmp_path, self.ehash, self.node = tmp_path, ehash, node
        self.opened: list[tuple[Desk, MintClient]] = []

    def config(self, **overrides: Any) -> DeskConfig:
        base = dict(mint_url=self.ehash.url, db_path=str(self.tmp_path / "desk.sqlite3"),
                    seed_path=str(self.tmp_path / "desk.seed"), pools=[self.ehash.pool], max_msat=10_000_000,
                    maxfee_ppm=10_000, maxfee_msat=20_000, min_invoice_life=60, retry_for=5, payment_grace=0)
        return DeskConfig(**{**base, **overrides})

    async def __call__(self, *, crash_hook=None, clock=None, start: bool = True, mint_timeout: float = 2.0,
                       **overrides: Any) -> Desk:
        mint = MintClient(self.ehash.url, desk_key=self.ehash.desk_key, timeout=mint_timeout)
        kw: dict[str, Any] = {"crash_hook": crash_hook}
        if clock is not None:
            kw["clock"] = clock
        desk = Desk(self.config(**overrides), ClnNode(self.node.rpc_path, timeout=5, pay_grace=5), mint, **kw)
        self.opened.append((desk, mint))
        if start:
            await desk.start()
        return desk

    async def close_all(self) -> None:
        for desk, mint in self.opened:
            with contextlib.suppress(Exception):
                await desk.close()
            await mint.close()
