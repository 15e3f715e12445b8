"""The signed lookup of mint quotes by NUT-20 key (draft NUT "Mint Quote Lookup by Public Key", cashubtc/nuts
branch ``get-quotes-by-pubkeys``, ``xx.md`` at commit ``e799ab4``): the message and the wallet's signature.

A wallet proves it holds each key by a BIP340 signature of
``SHA256("Cashu_MintQuoteLookup_v1" || mint_pubkey || pubkey || nonce || timestamp)``, every field as its UTF-8
text (keys and nonce lowercase hex, the timestamp in decimal).
"""

from __future__ import annotations

import hashlib

from coincurve import PrivateKey

from hashpool_cln.cashu.crypto import sign_schnorr

LOOKUP_TAG = "Cashu_MintQuoteLookup_v1"


def lookup_digest(mint_pubkey: str, pubkey: str, nonce: str, timestamp: int) -> bytes:
    """The 32-byte digest a lookup signature signs."""
    text = LOOKUP_TAG + mint_pubkey.lower() + pubkey.lower() + nonce.lower() + str(timestamp)
    return hashlib.sha256(text.encode("utf-8")).digest()


def sign_lookup(key: PrivateKey, mint_pubkey: str, nonce: str, timestamp: int) -> str:
    """What a wallet sends for its key ``key``: the BIP340 signature (hex) of ``lookup_digest``."""
    pubkey = key.public_key.format().hex()
    return sign_schnorr(key, lookup_digest(mint_pubkey, pubkey, nonce, timestamp))
