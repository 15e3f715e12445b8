"""The signed lookup of mint quotes by NUT-20 key (draft NUT "Mint Quote Lookup by Public Key", cashubtc/nuts
branch ``get-quotes-by-pubkeys``, ``xx.md`` at commit ``e799ab4``).

A wallet proves it holds each key by a BIP340 signature of
``SHA256("Cashu_MintQuoteLookup_v1" || mint_pubkey || pubkey || nonce || timestamp)``, every field as its UTF-8
text (keys and nonce lowercase hex, the timestamp in decimal). A request is good for ``max_age`` seconds either
side of the mint's clock, and each nonce once within that window.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from coincurve import PrivateKey

from hashpool_cln.refmint.errors import Code, MintError
from hashpool_cln.refmint.shares import verify_schnorr

LOOKUP_TAG = "Cashu_MintQuoteLookup_v1"
MAX_LOOKUP_PUBKEYS = 50  # every signature is verified before anything is known about the caller
MAX_REMEMBERED_NONCES = 100_000
_NONCE = re.compile(r"[0-9a-f]{32}")


def lookup_digest(mint_pubkey: str, pubkey: str, nonce: str, timestamp: int) -> bytes:
    """The 32-byte digest a lookup signature signs."""
    text = LOOKUP_TAG + mint_pubkey.lower() + pubkey.lower() + nonce.lower() + str(timestamp)
    return hashlib.sha256(text.encode("utf-8")).digest()


def sign_lookup(key: PrivateKey, mint_pubkey: str, nonce: str, timestamp: int) -> str:
    """What a wallet sends for its key ``key``: the BIP340 signature (hex) of ``lookup_digest``."""
    pubkey = key.public_key.format().hex()
    return key.sign_schnorr(lookup_digest(mint_pubkey, pubkey, nonce, timestamp), secrets.token_bytes(32)).hex()


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
