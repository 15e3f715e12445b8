"""Playing the pool and the miner's proxy against a mint: share quotes, minting them into ehash, rewards.

Used by ``hashpool-mint shares`` and ``hashpool-mint reward`` and by tests that need real ehash. Signatures
become proofs only through ``MintClient.unblind_signatures`` (keys verified against the keyset id, DLEQ checked).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from coincurve import PrivateKey

from hashpool_cln.cashu import crypto
from hashpool_cln.cashu.amounts import split_amount
from hashpool_cln.cashu.models import BlindedMessage, BlindSignature, Proof, Token
from hashpool_cln.cashu.nut20 import sign_quote
from hashpool_cln.mintclient import MintClient
from hashpool_cln.refmint.shares import random_share_hash


class PoolRequestError(Exception):
    """The mint refused a pool request; ``status``, ``code`` and ``detail`` are its answer."""

    def __init__(self, status: int, code: int | None, detail: str) -> None:
        super().__init__(f"mint answered {status} (code {code}): {detail}")
        self.status = status
        self.code = code
        self.detail = detail


@dataclass
class Blinded:
    outputs: list[BlindedMessage]
    secrets: list[str]
    rs: list[PrivateKey]


def blind_outputs(keyset_id: str, amounts: Sequence[int], secrets: Sequence[str] = ()) -> Blinded:
    """Secrets blinded into outputs of ``keyset_id``, one per amount: ``secrets`` first, then fresh random ones."""
    out = Blinded([], [], [])
    for i, amount in enumerate(amounts):
        secret = secrets[i] if i < len(secrets) else os.urandom(32).hex()
        B_, r = crypto.blind(secret.encode("utf-8"))
        out.outputs.append(BlindedMessage(amount=amount, id=keyset_id, B_=B_.format().hex()))
        out.secrets.append(secret)
        out.rs.append(r)
    return out


class Pool:
    """The pool's side of a mint (bearer-authenticated) plus the miner proxy's minting of share quotes."""

    def __init__(self, url: str, pool_auth: str, session: aiohttp.ClientSession) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {pool_auth}"}
        self._session = session

    async def request(self, method: str, path: str, body: dict[str, Any] | None = None, *,
                      auth: bool = True) -> Any:
        async with self._session.request(method, self.url + path, json=body,
                                         headers=self._headers if auth else None) as resp:
            try:
                data = await resp.json(content_type=None)
            except ValueError:
                data = None
            if resp.status != 200:
                detail = data.get("detail") if isinstance(data, dict) else None
                code = data.get("code") if isinstance(data, dict) else None
                raise PoolRequestError(resp.status, code, str(detail or resp.reason))
            return data

    async def share_quote(self, header_hash: bytes, pubkey: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"header_hash": header_hash.hex()}
        if pubkey is not None:
            body["pubkey"] = pubkey
        return await self.request("POST", "/v1/mint/quote/mining_share", body)

    async def mint(self, quote: dict[str, Any], client: MintClient, lock_key: PrivateKey | None = None) -> list[Proof]:
        """Mint a share quote into proofs of its epoch (signing the request when the quote is locked)."""
        keyset = next((k for k in await client.keysets() if k.unit == quote["unit"] and k.active), None)
        if keyset is None:
            raise PoolRequestError(200, None, f"the mint lists no active keyset for {quote['unit']}")
        blinded = blind_outputs(keyset.id, split_amount(quote["amount"]))
        body: dict[str, Any] = {"quote": quote["quote"], "outputs": [o.to_dict() for o in blinded.outputs]}
        if lock_key is not None:
            body["signature"] = sign_quote(lock_key, quote["quote"], blinded.outputs)
        answer = await self.request("POST", "/v1/mint/mining_share", body, auth=False)
        sigs = [BlindSignature.from_dict(s) for s in answer["signatures"]]
        return await client.unblind_signatures(blinded.outputs, blinded.secrets, blinded.rs, sigs)

    async def reward(self, height: int, block_hash: str, reward_msat: int, confirmations: int) -> list[dict]:
        answer = await self.request("POST", "/v1/admin/reward", {
            "height": height, "block_hash": block_hash, "reward_msat": reward_msat, "confirmations": confirmations})
        return answer["epochs"]


async def issue_token(url: str, pool_auth: str, count: int, leading_zeros: int,
                      lock_key: PrivateKey | None = None) -> Token:
    """Submit ``count`` random shares with ``leading_zeros`` leading zero bits and mint them into one token."""
    proofs: list[Proof] = []
    unit = ""
    async with aiohttp.ClientSession() as session, MintClient(url) as client:
        pool = Pool(url, pool_auth, session)
        pubkey = lock_key.public_key.format().hex() if lock_key is not None else None
        for _ in range(count):
            quote = await pool.share_quote(random_share_hash(leading_zeros), pubkey)
            proofs += await pool.mint(quote, client, lock_key)
            unit = quote["unit"]
    return Token(mint=url, unit=unit, proofs=tuple(proofs))
