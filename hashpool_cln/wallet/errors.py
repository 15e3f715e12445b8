"""The wallet's error codes. The desk's own codes (3400-3499, JSON-RPC -32602...) pass through unchanged, and so
do commando's (19536, 19537 for a refused rune) and the mint's (NUT error codes, 10000-59999)."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from hashpool_cln.mintclient import MintError


class Code(IntEnum):
    NOT_CONFIGURED = 4000  # no mnemonic, or no mint / node / rune where a command needs one
    BAD_AMOUNT = 4001
    INSUFFICIENT_FUNDS = 4002
    BAD_TOKEN = 4003
    WRONG_MINT = 4004
    UNKNOWN_UNIT = 4005
    MINT_UNAVAILABLE = 4006  # the mint did not answer; nothing was changed
    OUTCOME_UNKNOWN = 4007  # a request went out and its answer was lost; the next command finishes it
    NODE_UNAVAILABLE = 4008  # no BOLT8 session with the pool's node; nothing was sent
    BAD_DESTINATION = 4009
    NOTHING_TO_DO = 4010
    MINT_REFUSED = 4011  # the mint refused; its own code is in data.mint_code
    BUSY = 4012  # another command holds these proofs right now


class WalletError(Exception):
    """A failure the CLI reports as ``{"code", "message", "data"?}``; never carries secrets."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = int(code)
        self.message = message
        self.data = data

    @classmethod
    def from_mint(cls, exc: MintError) -> WalletError:
        return cls(Code.MINT_REFUSED, f"the mint refused: {exc.detail}", {"mint_code": exc.code})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out
