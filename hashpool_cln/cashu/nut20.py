"""NUT-20 quote signatures: the wallet that holds a quote's locking key signs the quote and its outputs.

Two messages are in use: NUT-20's ``sha256(quote || B_0 || B_1 || ...)`` and the domain-separated one newer CDK
wallets sign. A wallet signs the first; a mint accepts either.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from coincurve import PrivateKey

from hashpool_cln.cashu.crypto import sign_schnorr, verify_schnorr
from hashpool_cln.cashu.models import BlindedMessage

QUOTE_SIG_TAG = b"Cashu_MintQuoteSig_v1"


def quote_message(quote: str, outputs: Sequence[BlindedMessage]) -> bytes:
    """The 32-byte message a NUT-20 quote signature signs: ``sha256(quote || B_0 || B_1 || ...)`` (UTF-8 text)."""
    return hashlib.sha256((quote + "".join(o.B_ for o in outputs)).encode("utf-8")).digest()


def quote_message_v1(quote: str, outputs: Sequence[BlindedMessage]) -> bytes:
    """The domain-separated NUT-20 message newer CDK wallets sign: sha256 of ``"Cashu_MintQuoteSig_v1"``, then
    the quote id and, per output, its amount (minimal big-endian bytes) and ``B_`` (33 bytes), each prefixed
    with its length as a 4-byte big-endian integer."""
    parts = [_framed(quote.encode("utf-8"))]
    for o in outputs:
        parts.append(_framed(o.amount.to_bytes((o.amount.bit_length() + 7) // 8, "big")))
        parts.append(_framed(bytes.fromhex(o.B_)))
    return hashlib.sha256(QUOTE_SIG_TAG + b"".join(parts)).digest()


def _framed(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def sign_quote(key: PrivateKey, quote: str, outputs: Sequence[BlindedMessage]) -> str:
    """BIP340 signature of ``quote_message`` (hex), what a wallet sends with a locked quote."""
    return sign_schnorr(key, quote_message(quote, outputs))


def verify_quote_signature(pubkey: str, quote: str, outputs: Sequence[BlindedMessage], signature: str) -> bool:
    """Check a NUT-20 signature made by the key ``pubkey`` (compressed hex) over the quote and its outputs, in
    the message of NUT-20 or in CDK's domain-separated one."""
    return (verify_schnorr(pubkey, quote_message(quote, outputs), signature)
            or verify_schnorr(pubkey, quote_message_v1(quote, outputs), signature))
