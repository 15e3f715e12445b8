"""The claim: a per-redemption secret that alone opens a redemption's change and refund tokens.

A redemption id is public (listings, notifications, logs); the claim is not. The caller may choose it (a wallet
writes it to its own database before calling, so a lost answer loses nothing) or the desk draws one; either way
only the redeem answer carries it, and the ledger keeps only its sha256.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from .errors import Code, DeskError

_CLAIM = re.compile(r"[0-9a-f]{64}")


def check(value: object, name: str = "claim") -> str:
    """``value`` if it is a claim (64 lowercase hex characters); -32602 otherwise."""
    if not isinstance(value, str) or _CLAIM.fullmatch(value) is None:
        raise DeskError(Code.INVALID_PARAMS, f"{name} must be 64 lowercase hex characters")
    return value


def draw() -> str:
    return secrets.token_hex(32)


def digest(claim: str) -> str:
    """What the ledger stores of a claim."""
    return hashlib.sha256(bytes.fromhex(claim)).hexdigest()
