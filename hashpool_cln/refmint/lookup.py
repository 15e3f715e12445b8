"""The signed lookup of mint quotes by NUT-20 key (draft NUT "Mint Quote Lookup by Public Key", cashubtc/nuts
branch ``get-quotes-by-pubkeys``, ``xx.md`` at commit ``e799ab4``).

The mint's side: every key's signature (``hashpool_cln.cashu.lookup``) must verify, a request is good for
``max_age`` seconds either side of the mint's clock, and each nonce once within that window.
"""

from __future__ import annotations

import re

from hashpool_cln.cashu.crypto import verify_schnorr
from hashpool_cln.cashu.lookup import lookup_digest
from hashpool_cln.refmint.errors import Code, MintError

MAX_LOOKUP_PUBKEYS = 50  # every signature is verified before anything is known about the caller
MAX_REMEMBERED_NONCES = 100_000
_NONCE = re.compile(r"[0-9a-f]{32}")


class NonceBook:
    """The nonces of lookups accepted within the last ``max_age`` seconds (in memory).

    A restart forgets them, so a request signed before this process started is refused as stale: a request
    seen before a restart cannot be replayed after it.
    """

    def __init__(self, max_age: int, started_at: int) -> None:
        self.max_age = max_age
        self.started_at = started_at
        self._seen: dict[str, int] = {}  # nonce -> the time after which its request is stale anyway

    def check_fresh(self, nonce: str, timestamp: int, now: int) -> None:
        """Refuse a malformed nonce, a timestamp out of the window, or a nonce already used in it."""
        if not _NONCE.fullmatch(nonce):
            raise MintError(Code.MALFORMED, "nonce must be 32 lowercase hex characters (16 random bytes)")
        if abs(now - timestamp) > self.max_age:
            raise MintError(Code.LOOKUP_STALE,
                            f"timestamp is more than {self.max_age} s from the mint's time ({now}): sign again")
        if timestamp < self.started_at:
            raise MintError(Code.LOOKUP_STALE, "the request was signed before the mint started: sign again")
        if nonce in self._seen:
            raise MintError(Code.LOOKUP_REPLAYED, "nonce already used: sign again with a fresh nonce")

    def remember(self, nonce: str, timestamp: int, now: int) -> None:
        """Record an accepted request's nonce (call right after ``check_fresh``, with no await between)."""
        if len(self._seen) >= MAX_REMEMBERED_NONCES:
            self._seen = {n: t for n, t in self._seen.items() if t >= now}
            if len(self._seen) >= MAX_REMEMBERED_NONCES:
                raise MintError(Code.MALFORMED, "too many lookups in the replay window, try again later", status=503)
        self._seen[nonce] = timestamp + self.max_age


def verify_lookup(mint_pubkey: str, pubkeys: list[str], signatures: list[str], nonce: str, timestamp: int) -> None:
    """Every key's signature must verify (20008 naming the first that does not)."""
    if len(pubkeys) != len(signatures):
        raise MintError(Code.SIGNATURE_INVALID, "pubkey_signatures must hold one signature per pubkey")
    for i, (pubkey, signature) in enumerate(zip(pubkeys, signatures)):
        if not verify_schnorr(pubkey, lookup_digest(mint_pubkey, pubkey, nonce, timestamp), signature):
            raise MintError(Code.SIGNATURE_INVALID, f"pubkey_signatures[{i}] does not verify for pubkeys[{i}]")
