"""Mining shares as the mint sees them: the amount a share header hash earns and NUT-20 quote signatures."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import Literal

from coincurve import PrivateKey
from coincurve.keys import PublicKeyXOnly

from hashpool_cln.cashu.models import BlindedMessage

HashOrder = Literal["display", "internal"]
QUOTE_SIG_TAG = b"Cashu_MintQuoteSig_v1"

# Shares earn at most 2^62 units so that amounts and per-epoch sums stay within sqlite's signed 64-bit integers.
MAX_SHARE_EXPONENT = 62


def leading_zero_bits(digest: bytes) -> int:
    """Leading zero bits of ``digest`` read as a big-endian number (the hash as displayed, first byte first)."""
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def share_amount(digest: bytes, min_difficulty: int) -> int:
    """``2^(leading_zero_bits - min_difficulty)`` capped at ``2^MAX_SHARE_EXPONENT``; 0 below the minimum."""
    excess = leading_zero_bits(digest) - min_difficulty
    if excess < 0:
        return 0
    return 1 << min(excess, MAX_SHARE_EXPONENT)


def random_share_hash(leading_zeros: int) -> bytes:
    """A random 32-byte hash with exactly ``leading_zeros`` leading zero bits (test shares, no real work)."""
    if not 0 <= leading_zeros < 256:
        raise ValueError("leading_zeros must be in [0, 255]")
    value = int.from_bytes(secrets.token_bytes(32), "big") >> leading_zeros
    value |= 1 << (255 - leading_zeros)
    return value.to_bytes(32, "big")


def display_order(header_hash: str, order: HashOrder) -> bytes:
    """The 32 bytes of a header hash as displayed (the big-endian number, first byte first).

    ``order`` says how ``header_hash`` (64 hex) was given: ``"display"`` as block explorers and
    ``bitcoin-cli getblockhash`` show it, or ``"internal"``: the bytes SHA256d produces (little-endian), the
    order upstream Hashpool sends (rust-bitcoin's ``as_byte_array()``).
    """
    raw = bytes.fromhex(header_hash)
    return raw[::-1] if order == "internal" else raw


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
    return key.sign_schnorr(quote_message(quote, outputs), secrets.token_bytes(32)).hex()


def verify_schnorr(pubkey: str, digest: bytes, signature: str) -> bool:
    """A BIP340 signature (128 hex) of the 32-byte ``digest`` by the key ``pubkey`` (compressed hex)."""
    try:
        sig = bytes.fromhex(signature)
        xonly = PublicKeyXOnly(bytes.fromhex(pubkey)[1:])
    except ValueError:
        return False
    return len(sig) == 64 and xonly.verify(sig, digest)


def verify_quote_signature(pubkey: str, quote: str, outputs: Sequence[BlindedMessage], signature: str) -> bool:
    """Check a NUT-20 signature made by the key ``pubkey`` (compressed hex) over the quote and its outputs, in
    the message of NUT-20 or in CDK's domain-separated one."""
    return (verify_schnorr(pubkey, quote_message(quote, outputs), signature)
            or verify_schnorr(pubkey, quote_message_v1(quote, outputs), signature))
