"""Mining shares as the mint sees them: the amount a share header hash earns."""

from __future__ import annotations

import secrets
from typing import Literal

HashOrder = Literal["display", "internal"]

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
