"""The miner's side of issuance, as upstream Hashpool speaks it: CDK's custom payment method ``ehash``.

* the signed lookup by key (draft NUT "Mint Quote Lookup by Public Key"): ``POST /v1/mint/quote/ehash/pubkey``
  with ``pubkeys``, ``pubkey_signatures``, ``timestamp``, ``nonce``; each signature is BIP340 over
  ``SHA256("Cashu_MintQuoteLookup_v1" || mint_pubkey || pubkey || nonce || timestamp)``, all as UTF-8 text;
* the NUT-29 batch check ``POST /v1/mint/quote/ehash/check`` and batch mint ``POST /v1/mint/ehash/batch``, every
  quote locked to the wallet's NUT-20 key and signed over ``quote_id || B_0 || ... || B_(n-1)``.

Answers are parsed strictly; the mint client's error rules apply (MintError, MintUnavailable, MintProtocolError).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from coincurve import PrivateKey

from hashpool_cln.cashu.lookup import sign_lookup
from hashpool_cln.cashu.models import BlindedMessage, BlindSignature
from hashpool_cln.cashu.nut20 import sign_quote
from hashpool_cln.mintclient import MAX_INT, MintClient, MintError, MintProtocolError, parse_signatures

METHOD = "ehash"
STALE_LOOKUP, NONCE_USED = 51007, 51008  # docs/ehash-mint-api.md 4.4
LOOKUP_LIMIT = 1000  # the most quotes one lookup answers (docs/ehash-mint-api.md 4.4): ask again for more
DEFAULT_BATCH = 100  # NUT-29 leaves the limit to the mint; this many when it says none
_STATES = ("UNPAID", "PAID", "ISSUED")
# Their wire form is the mint's own (shares.py, lookup.py): the wallet signs what the mint verifies.


@dataclass(frozen=True, slots=True)
class MintQuote:
    quote: str
    unit: str
    amount: int
    state: str
    pubkey: str | None
    expiry: int | None = None  # None until the quote's epoch is settled: then the end of its redemption window

    def expired(self, now: int) -> bool:
        return self.expiry is not None and now >= self.expiry  # the mint's own rule (docs/ehash-mint-api.md 4.2)


class Issuance:
    """The ``ehash`` issuance endpoints of one mint, through its MintClient."""

    def __init__(self, mint: MintClient, method: str = METHOD) -> None:
        self.mint = mint
        self.method = method
        self._info: dict[str, Any] | None = None

    async def info(self) -> dict[str, Any]:
        if self._info is None:
            self._info = await self.mint.info()
        return self._info

    async def mint_pubkey(self) -> str:
        pubkey = (await self.info()).get("pubkey")
        if not isinstance(pubkey, str) or len(pubkey) != 66:
            raise MintProtocolError("the mint's info has no pubkey: it cannot serve the signed lookup by key")
        return pubkey.lower()

    async def max_batch(self) -> int:
        nuts = (await self.info()).get("nuts")
        entry = nuts.get("29") if isinstance(nuts, dict) else None
        size = entry.get("max_batch_size") if isinstance(entry, dict) else None
        return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else DEFAULT_BATCH

    async def max_outputs(self) -> int:
        return (await self.mint.limits()).max_outputs

    async def lookup(self, keys: Sequence[PrivateKey]) -> list[MintQuote]:
        """Every mintable quote locked to ``keys``, proven ours by signatures made now (a fresh nonce each call).
        A refusal of the timestamp or nonce (the mint restarted, clocks apart) is signed again once, fresh."""
        try:
            answer = await self._lookup(keys)
        except MintError as exc:
            if exc.code not in (STALE_LOOKUP, NONCE_USED):
                raise
            answer = await self._lookup(keys)
        if not isinstance(answer, dict) or not isinstance(answer.get("quotes"), list):
            raise MintProtocolError("quote lookup: expected {\"quotes\": [...]}")
        return [_quote(q, f"lookup.quotes[{i}]") for i, q in enumerate(answer["quotes"])]

    async def _lookup(self, keys: Sequence[PrivateKey]) -> Any:
        mint_pubkey = await self.mint_pubkey()
        nonce, timestamp = secrets.token_hex(16), int(time.time())
        body = {"pubkeys": [k.public_key.format().hex() for k in keys],
                "pubkey_signatures": [sign_lookup(k, mint_pubkey, nonce, timestamp) for k in keys],
                "timestamp": timestamp, "nonce": nonce}
        return await self.mint.post_json(f"/v1/mint/quote/{self.method}/pubkey", body)

    async def check(self, quote_ids: Sequence[str]) -> list[MintQuote]:
        """NUT-29 batch check: the quotes' states, in the order asked."""
        answer = await self.mint.post_json(f"/v1/mint/quote/{self.method}/check", {"quotes": list(quote_ids)})
        if not isinstance(answer, list):
            raise MintProtocolError("batch check: expected a list of quotes")
        quotes = [_quote(q, f"check[{i}]") for i, q in enumerate(answer)]
        if [q.quote for q in quotes] != list(quote_ids):
            raise MintProtocolError("batch check: the quotes answered are not the ones asked, in order")
        return quotes

    async def mint_batch(self, quotes: Sequence[MintQuote], outputs: Sequence[BlindedMessage],
                         key: PrivateKey) -> list[BlindSignature]:
        """NUT-29 batch mint of ``quotes`` (one unit, all locked to ``key``) into ``outputs``."""
        body = {"quotes": [q.quote for q in quotes], "quote_amounts": [q.amount for q in quotes],
                "outputs": [o.to_dict() for o in outputs],
                "signatures": [sign_quote(key, q.quote, outputs) for q in quotes]}
        answer = await self.mint.post_json(f"/v1/mint/{self.method}/batch", body)
        if not isinstance(answer, dict) or not isinstance(answer.get("signatures"), list):
            raise MintProtocolError("batch mint: expected {\"signatures\": [...]}")
        signatures = parse_signatures(answer["signatures"], "batch mint")
        if [(s.amount, s.id) for s in signatures] != [(o.amount, o.id) for o in outputs]:
            raise MintProtocolError("batch mint: the signatures do not answer the outputs, in order")
        return signatures


def _quote(q: Any, where: str) -> MintQuote:
    if not isinstance(q, dict):
        raise MintProtocolError(f"{where}: not an object")
    quote, unit, amount, state = q.get("quote"), q.get("unit"), q.get("amount"), q.get("state")
    if not (isinstance(quote, str) and isinstance(unit, str) and isinstance(amount, int)
            and not isinstance(amount, bool) and 0 < amount <= MAX_INT and state in _STATES):
        raise MintProtocolError(f"{where}: not a mint quote (quote, unit, amount, state)")
    pubkey, expiry = q.get("pubkey"), q.get("expiry")
    if expiry is not None and (not isinstance(expiry, int) or isinstance(expiry, bool) or abs(expiry) > MAX_INT):
        raise MintProtocolError(f"{where}: expiry is not an integer or null")
    return MintQuote(quote, unit, amount, state, pubkey.lower() if isinstance(pubkey, str) else None, expiry)
