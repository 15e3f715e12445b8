"""The desk's test bench: the reference mint on loopback behind a fault-injecting proxy, the node stand-in on a
unix socket reached through ClnNode, a small wallet that holds real ehash of a settled epoch, and a desk factory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from coincurve import PrivateKey
from support.fakenode import FakeNode

from hashpool_cln.cashu import crypto
from hashpool_cln.cashu.amounts import split_amount
from hashpool_cln.cashu.models import BlindedMessage, BlindSignature, Proof, Token
from hashpool_cln.cashu.tokens import parse_token, serialize_v4
from hashpool_cln.desk.config import DeskConfig
from hashpool_cln.desk.desk import Desk
from hashpool_cln.lightning.clnrpc import ClnNode
from hashpool_cln.mintclient import MintClient
from hashpool_cln.refmint.app import create_app
from hashpool_cln.refmint.config import MintConfig, load_auth
from hashpool_cln.refmint.shares import random_share_hash

RATE_MSAT = 1_000  # every unit of the settled test epoch is worth 1 sat
BANK_EXPONENT = 24  # the bank holds 2^24 units of the settled epoch


# --- the mint behind a proxy that can misbehave ---------------------------------------------------------------


@dataclass
class Fault:
    kind: str  # drop_before | drop_after | slow | status500 | garbage_after | bad_dleq | bad_keys | expired_keyset
    seconds: float = 0.0


class FaultyProxy:
    """Forwards every request to the mint, except where a fault is queued for a path prefix.

    ``drop_before``: the connection closes, the mint never sees the request; ``drop_after``: the mint handles
    it, the answer is lost; ``slow``: the request reaches the mint after ``seconds``; ``status500``: an HTTP 500
    Cashu error without forwarding; ``garbage_after``: forwarded, answered with non-JSON; ``bad_dleq``: the
    signatures' DLEQ proofs are altered; ``bad_keys``: one public key is replaced; ``expired_keyset``: the
    keyset list claims every keyset expired.
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
        if fault and fault.kind in ("bad_dleq", "bad_keys", "expired_keyset"):
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
    return json.dumps(doc).encode()


# --- a small wallet of real ehash -----------------------------------------------------------------------------


@dataclass
class EhashMint:
    """The running mint, its proxy, and a bank of proofs of a settled epoch to cut test tokens from."""

    direct_url: str
    url: str  # the proxy: what the desk and tokens use
    proxy: FaultyProxy
    pool: str
    unit: str
    open_unit: str
    pool_auth: str
    desk_key: str
    client: MintClient  # direct, for assertions
    bank: list[Proof] = field(default_factory=list)

    async def _post(self, path: str, body: dict, auth: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {auth}"} if auth else {}
        async with aiohttp.ClientSession() as s, s.post(self.direct_url + path, json=body, headers=headers) as r:
            doc = await r.json()
            if r.status != 200:
                raise AssertionError(f"{path}: {r.status} {doc}")
            return doc

    async def issue(self, leading_zeros: int) -> list[Proof]:
        """Mint one share of ``2^leading_zeros`` units in the open epoch."""
        quote = await self._post("/v1/mint/quote/mining_share",
                                 {"header_hash": random_share_hash(leading_zeros).hex()}, self.pool_auth)
        keyset = await self._active_keyset(quote["unit"])
        return await self._signed(split_amount(quote["amount"]), keyset,
                                  lambda outs: self._post("/v1/mint/mining_share",
                                                          {"quote": quote["quote"],
                                                           "outputs": [o.to_dict() for o in outs]}))

    async def _active_keyset(self, unit: str) -> str:
        return next(k.id for k in await self.client.keysets() if k.unit == unit and k.active)

    async def _signed(self, amounts: list[int], keyset: str, call: Callable,
                      chosen: list[str] | None = None) -> list[Proof]:
        secrets_, rs, outputs = [], [], []
        for i, amount in enumerate(amounts):
            secret = chosen[i] if chosen and i < len(chosen) else secrets.token_hex(32)
            B_, r = crypto.blind(secret.encode())
            secrets_.append(secret)
            rs.append(r)
            outputs.append(BlindedMessage(amount, keyset, B_.format().hex()))
        answer = await call(outputs)
        sigs = [BlindSignature.from_dict(s) for s in answer["signatures"]] if isinstance(answer, dict) else answer
        return await self.client.unblind_signatures(outputs, secrets_, rs, sigs)

    async def proofs(self, amounts: list[int], secret_for=None) -> list[Proof]:
        """Fresh proofs of the settled epoch with exactly ``amounts``, cut from the bank by a swap."""
        need = sum(amounts)
        self.bank.sort(key=lambda p: p.amount)
        take, total = [], 0
        for p in reversed(self.bank):
            if total >= need:
                break
            take.append(p)
            total += p.amount
        assert total >= need, "the test bank ran dry"
        for p in take:
            self.bank.remove(p)
        keyset = take[0].id
        change = split_amount(total - need)
        out_amounts = list(amounts) + change
        n = len(amounts)
        chosen = [secret_for(a) for a in amounts] if secret_for else None
        got = await self._signed(out_amounts, keyset, lambda outs: self.client.swap(take, outs), chosen)
        self.bank += got[n:]
        return got[:n]

    async def token(self, amount: int | None = None, *, amounts: list[int] | None = None, mint: str | None = None,
                    secret_for=None) -> str:
        proofs = await self.proofs(amounts or split_amount(amount or 0), secret_for)
        return serialize_v4(Token(mint=mint or self.url, unit=self.unit, proofs=tuple(proofs)))

    async def states(self, proofs_or_token: Any) -> list[str]:
        proofs = parse_token(proofs_or_token).proofs if isinstance(proofs_or_token, str) else proofs_or_token
        return [s.state for s in await self.client.checkstate([crypto.proof_y(p.secret) for p in proofs])]


async def _start_mint(tmp_path: Path, **overrides: Any) -> tuple[web.AppRunner, str, MintConfig]:
    pool_key = secrets.token_hex(32)
    config = MintConfig(**{**dict(data_dir=tmp_path / "mint", port=0, pool_key=pool_key, min_difficulty=0,
                                  final_confirmations=1, issue_grace=0, melt_quote_ttl=600), **overrides})
    app = create_app(config)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}", config


@pytest.fixture
async def ehash(tmp_path) -> AsyncIterator[EhashMint]:
    async with running_ehash(tmp_path) as env:
        yield env


@contextlib.asynccontextmanager
async def running_ehash(tmp_path: Path, **mint_overrides: Any) -> AsyncIterator[EhashMint]:
    """The mint with a settled epoch (1 sat a unit) and a bank of 2^24 units, behind the faulty proxy."""
    runner, direct, config = await _start_mint(tmp_path, **mint_overrides)
    proxy = FaultyProxy(direct)
    proxy_runner, proxy_url = await proxy.start()
    auth = load_auth(config.data_dir)
    client = MintClient(direct, desk_key=auth["desk"], timeout=10)
    info = await client.info()
    pool, open_unit = info["ehash"]["pool"], info["ehash"]["open_unit"]
    env = EhashMint(direct_url=direct, url=proxy_url, proxy=proxy, pool=pool, unit=open_unit, open_unit=open_unit,
                    pool_auth=auth["pool"], desk_key=auth["desk"], client=client)
    env.bank = await env.issue(BANK_EXPONENT)
    issued = 1 << BANK_EXPONENT
    await env._post("/v1/admin/reward", {"height": 101, "block_hash": secrets.token_hex(32),
                                         "reward_msat": issued * RATE_MSAT, "confirmations": 1}, env.pool_auth)
    env.open_unit = (await client.info())["ehash"]["open_unit"]
    epochs = {e.unit: e for e in await client.epochs()}
    assert epochs[env.unit].state == "settled", epochs[env.unit]
    yield env
    await client.close()
    await proxy.close()
    await proxy_runner.cleanup()
    await runner.cleanup()


# --- the node and the desk ------------------------------------------------------------------------------------


@pytest.fixture
async def node(tmp_path) -> AsyncIterator[FakeNode]:
    fake = FakeNode(tmp_path / "lightning-rpc")
    await fake.start()
    yield fake
    await fake.stop()


class DeskFactory:
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


@pytest.fixture
async def make_desk(tmp_path, ehash, node) -> AsyncIterator[DeskFactory]:
    factory = DeskFactory(tmp_path, ehash, node)
    yield factory
    await factory.close_all()


@pytest.fixture
async def desk(make_desk) -> Desk:
    return await make_desk()
