"""Errors the reference mint answers with: an HTTP status, a NUT error code and a human detail.

Codes 1xxxx-3xxxx are the NUT error codes (cashubtc/nuts ``error_codes.md``); 51xxx are the ehash
settlement codes this mint defines (``docs/ehash-mint-api.md``).
"""

from __future__ import annotations

from enum import IntEnum


class Code(IntEnum):
    MALFORMED = 0  # the request itself is unreadable: bad JSON, wrong types, missing fields
    PROOF_INVALID = 10001
    PROOFS_SPENT = 11001
    PROOFS_PENDING = 11002
    OUTPUTS_SIGNED = 11003
    OUTPUTS_PENDING = 11004
    UNBALANCED = 11005
    AMOUNT_OUT_OF_RANGE = 11006
    DUPLICATE_INPUTS = 11007
    DUPLICATE_OUTPUTS = 11008
    MULTIPLE_UNITS = 11009
    UNIT_MISMATCH = 11010
    UNIT_UNSUPPORTED = 11013
    TOO_MANY_INPUTS = 11014
    TOO_MANY_OUTPUTS = 11015
    DUPLICATE_QUOTES = 11016
    BATCH_TOO_LARGE = 11017
    KEYSET_UNKNOWN = 12001
    KEYSET_INACTIVE = 12002
    QUOTE_ISSUED = 20002
    QUOTE_PENDING = 20005
    QUOTE_PAID = 20006
    QUOTE_EXPIRED = 20007
    SIGNATURE_INVALID = 20008
    PUBKEY_INVALID = 20009
    AUTH_REQUIRED = 30001
    AUTH_FAILED = 30002
    # ehash settlement and issuance (this mint's own codes)
    QUOTE_UNKNOWN = 51000
    EPOCH_NOT_REDEEMABLE = 51001
    BUDGET_EXHAUSTED = 51002
    PAYMENT_PROOF_INVALID = 51003
    SHARE_DUPLICATE = 51004
    REWARD_REFUSED = 51005
    REFERENCE_CONFLICT = 51006
    LOOKUP_STALE = 51007
    LOOKUP_REPLAYED = 51008


class MintError(Exception):
    """A refusal the mint reports to its caller; never carries secrets or internals."""

    def __init__(self, code: Code, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status

    def to_dict(self) -> dict[str, object]:
        return {"detail": self.detail, "code": int(self.code)}


def malformed(detail: str) -> MintError:
    return MintError(Code.MALFORMED, detail)
