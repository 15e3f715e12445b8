"""Errors the desk reports to its callers, each with a stable JSON-RPC code (documented in README)."""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class Code(IntEnum):
    """JSON-RPC error codes of the ``hashpool-*`` methods. Stable: wallets match on them."""

    # The token (nothing happened; the caller's token is untouched)
    INVALID_TOKEN = 3400
    UNKNOWN_MINT = 3401
    UNIT_NOT_ALLOWED = 3402
    EPOCH_NOT_REDEEMABLE = 3403
    KEYSET_REFUSED = 3404
    CONDITION_REFUSED = 3405
    PROOF_INVALID = 3406
    TOKEN_SPENT = 3407
    TOKEN_IN_USE = 3408
    TOO_MANY_PROOFS = 3409
    # The destination
    INVALID_DESTINATION = 3410
    WRONG_NETWORK = 3411
    DESTINATION_EXPIRED = 3412
    DESTINATION_UNSUPPORTED = 3413
    OFFER_UNREACHABLE = 3414
    DESTINATION_IN_USE = 3415
    AMOUNT_REQUIRED = 3416
    # Policy and price
    INSUFFICIENT_VALUE = 3420
    OVER_LIMIT = 3421
    EPOCH_BUDGET_EXHAUSTED = 3422
    FEE_TOO_HIGH = 3423
    RATE_REFUSED = 3424
    # The mint
    MINT_UNAVAILABLE = 3430
    MINT_REFUSED = 3431
    # The payment
    PAYMENT_FAILED = 3440
    PAYMENT_PENDING = 3441
    NODE_UNAVAILABLE = 3442
    # Bookkeeping
    UNKNOWN_REDEMPTION = 3450
    NOT_READY = 3460
    SHUTTING_DOWN = 3461
    # JSON-RPC's own
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603


class DeskError(Exception):
    """A refusal or failure the caller can act on. ``data`` carries no secrets."""

    def __init__(self, code: Code, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data or {}

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": int(self.code), "message": self.message}
        if self.data:
            body["data"] = self.data
        return body
