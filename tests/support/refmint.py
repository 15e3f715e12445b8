"""The reference mint for tests: in-process on loopback (``start_mint``) or as a ``hashpool-mint serve``
subprocess (``MintProcess``, for restart tests), and a small client that plays pool, miner and desk.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from coincurve import PrivateKey

from hashpool_cln.cashu import crypto
from hashpool_cln.cashu.amounts import split_amount
from hashpool_cln.cashu.lookup import sign_lookup
from hashpool_cln.cashu.models import BlindSignature, Proof
from hashpool_cln.cashu.nut20 import sign_quote
from hashpool_cln.mintclient import MintClient
from hashpool_cln.refmint.app import LEDGER, create_app
from hashpool_cln.refmint.config import MintConfig, load_auth
from hashpool_cln.refmint.ledger import Ledger
from hashpool_cln.refmint.miner import Blinded, blind_outputs
from hashpool_cln.refmint.shares import random_share_hash

_LISTENING = re.compile(r"listening on (http://\S+)")


@dataclass
class HttpAnswer:
    status: int
    body: Any

    @property
    def code(self) -> int | None:
        return self.body.get("code") if isinstance(self.body, dict) else None


@dataclass
class MintHandle:
    """A running reference mint and the keys to drive it; every helper speaks HTTP to ``url``."""

    url: str
    pool_key: str
    desk_key: str
    data_dir: Path
    session: aiohttp.ClientSession
    ledger: Ledger | None = None  # set for in-process mints
    heights: list[int] = field(default_factory=lambda: [0])

    # -- raw HTTP ------------------------------------------------------------------------------------------
    async def call(self, method: str, path: str, body: Any = None, *, role: str | None = None,
                   raw: bytes | None = None) -> HttpAnswer:
        headers = {}
        if role is not None:
            headers["Authorization"] = f"Bearer {self.pool_key if role == 'pool' else self.desk_key}"
        kwargs: dict[str, Any] = {"data": raw} if raw is not None else {"json": body}
        async with self.session.request(method, self.url + path, headers=headers, **kwargs) as resp:
            text = await resp.text()
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = text
            return HttpAnswer(resp.status, parsed)

    async def ok(self, method: str, path: str, body: Any = None, *, role: str | None = None) -> Any:
        answer = await self.call(method, path, body, role=role)
        assert answer.status == 200, answer
        return answer.body

    def client(self) -> MintClient:
        return MintClient(self.url, desk_key=self.desk_key)

    # -- pool and miner ------------------------------------------------------------------------------------
    async def share_quote(self, leading_zeros: int, pubkey: str | None = None) -> dict[str, Any]:
        """A mining-share quote for a random header hash with ``leading_zeros`` leading zero bits."""
        body: dict[str, Any] = {"header_hash": random_share_hash(leading_zeros).hex()}
        if pubkey is not None:
            body["pubkey"] = pubkey
        return await self.ok("POST", "/v1/mint/quote/mining_share", body, role="pool")

    async def ehash_quote(self, leading_zeros: int, key: PrivateKey, **extra: Any) -> dict[str, Any]:
        """A quote of method ``ehash`` as upstream's pool asks for it: CDK's custom body, the header hash in
        internal byte order, locked to ``key``."""
        body = {"header_hash": random_share_hash(leading_zeros)[::-1].hex(), "unit": "hash",
                "pubkey": key.public_key.format().hex(), **extra}
        return await self.ok("POST", "/v1/mint/quote/ehash", body, role="pool")

    async def lookup_body(self, keys: Sequence[PrivateKey], *, timestamp: int | None = None,
                          nonce: str | None = None, mint_pubkey: str | None = None) -> dict[str, Any]:
        """A signed lookup by key (draft NUT "Mint Quote Lookup by Public Key") for ``keys``."""
        if mint_pubkey is None:
            mint_pubkey = (await self.ok("GET", "/v1/info"))["pubkey"]
        timestamp = int(time.time()) if timestamp is None else timestamp
        nonce = os.urandom(16).hex() if nonce is None else nonce
        return {"pubkeys": [k.public_key.format().hex() for k in keys],
                "pubkey_signatures": [sign_lookup(k, mint_pubkey, nonce, timestamp) for k in keys],
                "timestamp": timestamp, "nonce": nonce}

    async def keyset_id(self, unit: str) -> str:
        keysets = (await self.ok("GET", "/v1/keysets"))["keysets"]
        return next(k["id"] for k in keysets if k["unit"] == unit)

    async def mint_quote(self, quote: dict[str, Any], lock_key: Any = None,
                         amounts: Sequence[int] | None = None) -> list[Proof]:
        """Mint a share quote into proofs (DLEQ-checked and unblinded by MintClient)."""
        kid = await self.keyset_id(quote["unit"])
        blinded = blind_outputs(kid, list(amounts) if amounts is not None else split_amount(quote["amount"]))
        body: dict[str, Any] = {"quote": quote["quote"], "outputs": [o.to_dict() for o in blinded.outputs]}
        if lock_key is not None:
            body["signature"] = sign_quote(lock_key, quote["quote"], blinded.outputs)
        answer = await self.ok("POST", "/v1/mint/mining_share", body)
        return await self.unblind(blinded, answer["signatures"])

    async def unblind(self, blinded: Blinded, signatures: Sequence[dict[str, Any]]) -> list[Proof]:
        sigs = [BlindSignature.from_dict(s) for s in signatures]
        async with self.client() as client:
            return await client.unblind_signatures(blinded.outputs, blinded.secrets, blinded.rs, sigs)

    async def issue(self, leading_zeros: int, count: int = 1) -> list[Proof]:
        """ehash of the open epoch: ``count`` shares worth ``2^(leading_zeros - min_difficulty)`` each."""
        proofs: list[Proof] = []
        for _ in range(count):
            proofs += await self.mint_quote(await self.share_quote(leading_zeros))
        return proofs

    async def reward(self, reward_msat: int, *, height: int | None = None, confirmations: int | None = None,
                     block_hash: str | None = None) -> list[dict[str, Any]]:
        """A block reward (final unless ``confirmations`` says otherwise); returns the epochs it touched,
        the newly opened epoch last."""
        if height is None:
            height = self.heights[-1] + 1
        self.heights.append(height)
        body: dict[str, Any] = {"height": height, "block_hash": block_hash or os.urandom(32).hex(),
                                "reward_msat": reward_msat}
        if confirmations is not None:
            body["confirmations"] = confirmations
        return (await self.ok("POST", "/v1/admin/reward", body, role="pool"))["epochs"]

    async def settled_epoch(self, reward_msat: int, leading_zeros: int, count: int = 1) -> tuple[str, list[Proof]]:
        """Issue ``count`` shares into the open epoch, then settle it with ``reward_msat``.

        Returns the settled epoch's unit and the proofs (worth ``reward_msat`` in total, less the pool fee).
        The mint must run with ``final_confirmations=1`` (the fixture's default) for the epoch to settle at once.
        """
        proofs = await self.issue(leading_zeros, count)
        epochs = await self.reward(reward_msat)
        settled = epochs[0]
        assert settled["state"] == "settled", settled
        return settled["unit"], proofs

    # -- swaps ---------------------------------------------------------------------------------------------
    async def swap(self, proofs: Sequence[Proof], amounts: Sequence[int] | None = None,
                   secrets: Sequence[str] = ()) -> list[Proof]:
        """Swap ``proofs`` into fresh proofs of the same keyset (amounts default to the total less fees; the
        first outputs get ``secrets``, the others random ones)."""
        kid = proofs[0].id
        if amounts is None:
            ppk = next(k["input_fee_ppk"] for k in (await self.ok("GET", "/v1/keysets"))["keysets"] if k["id"] == kid)
            amounts = split_amount(sum(p.amount for p in proofs) - (len(proofs) * ppk + 999) // 1000)
        blinded = blind_outputs(kid, amounts, secrets)
        answer = await self.ok("POST", "/v1/swap", {"inputs": [p.to_dict() for p in proofs],
                                                   "outputs": [o.to_dict() for o in blinded.outputs]})
        return await self.unblind(blinded, answer["signatures"])


def ys(proofs: Sequence[Proof]) -> list[str]:
    return [crypto.proof_y(p.secret) for p in proofs]


def mint_config(data_dir: Path, **overrides: Any) -> MintConfig:
    """Settings for tests: minimum difficulty 0 (a share with n leading zero bits is worth 2^n), immediate
    finality and settlement, no fees."""
    base = MintConfig(data_dir=data_dir, port=0, min_difficulty=0, final_confirmations=1)
    return replace(base, **overrides)


@dataclass
class InProcessMint:
    handle: MintHandle
    runner: web.AppRunner

    async def stop(self) -> None:
        await self.handle.session.close()
        await self.runner.cleanup()


async def start_mint(config: MintConfig) -> InProcessMint:
    """Start the mint's aiohttp app on 127.0.0.1, port 0, in this event loop."""
    app = create_app(config)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    auth = load_auth(config.data_dir)
    handle = MintHandle(url=f"http://127.0.0.1:{port}", pool_key=auth["pool"], desk_key=auth["desk"],
                        data_dir=config.data_dir, session=aiohttp.ClientSession(), ledger=app[LEDGER])
    return InProcessMint(handle, runner)


class MintProcess:
    """``hashpool-mint serve`` in a subprocess on a loopback port (chosen by the mint: ``--port 0``)."""

    def __init__(self, data_dir: Path, *extra_args: str) -> None:
        self.data_dir = data_dir
        self.args = [sys.executable, "-m", "hashpool_cln.refmint", "serve", "--host", "127.0.0.1", "--port", "0",
                     "--data-dir", str(data_dir), *extra_args]
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self, timeout: float = 30.0) -> str:
        self.proc = await asyncio.create_subprocess_exec(
            *self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.proc.stdout is not None
        seen: list[str] = []

        async def wait_url() -> str:
            assert self.proc is not None and self.proc.stdout is not None
            while True:
                line = (await self.proc.stdout.readline()).decode()
                if not line:
                    raise RuntimeError("hashpool-mint exited before listening:\n" + "".join(seen))
                seen.append(line)
                match = _LISTENING.search(line)
                if match:
                    return match.group(1)

        self.url = await asyncio.wait_for(wait_url(), timeout)
        # Keep draining the output so the mint never blocks on a full pipe.
        self._drain = asyncio.ensure_future(self._drain_output())
        return self.url

    async def _drain_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while await self.proc.stdout.readline():
            pass

    async def stop(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), 30)
        await self._drain
        return code

    async def handle(self, session: aiohttp.ClientSession) -> MintHandle:
        auth = load_auth(self.data_dir)
        return MintHandle(url=self.url, pool_key=auth["pool"], desk_key=auth["desk"], data_dir=self.data_dir,
                          session=session)
