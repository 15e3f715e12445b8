"""The ehash settlement objects of the pool/mint RPC (docs/ehash-mint-api.md), shared by mint and desk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

EpochState = Literal["open", "maturing", "settled", "retired"]
# Names of version 1 of the API, as older mints still say them, and what they mean now.
LEGACY_EPOCH_STATES: dict[str, EpochState] = {"provisional": "maturing", "final": "maturing", "closed": "retired"}
QuoteState = Literal["UNPAID", "PAID", "EXPIRED"]

PPM = 1_000_000
REFERENCE_PATTERN = r"[A-Za-z0-9_-]{1,64}"  # a melt quote's reference (docs/ehash-mint-api.md, 5.1)


def net_reward_msat(reward_msat: int, pool_fee_ppm: int) -> int:
    """The part of a block reward that backs ehash: the reward less the pool fee, rounded down."""
    return reward_msat - (reward_msat * pool_fee_ppm + PPM - 1) // PPM


def quote_amount_msat(amount: int, reward_net_msat: int, issued: int) -> int:
    """What ``amount`` units of an epoch are worth: ``floor(amount * reward_net_msat / issued)``."""
    if issued <= 0:
        raise ValueError("an epoch with no issued units has no price")
    return amount * reward_net_msat // issued


@dataclass(frozen=True, slots=True)
class Epoch:
    unit: str
    pool: str
    height: int
    block_hash: str | None
    state: EpochState
    issued: int
    reward_msat: int
    redeemed_msat: int
    redeem_until: int | None
    keysets: tuple[str, ...]
    # The reward less the pool fee fixed into the epoch when it closed: what its units are quoted against.
    # None from mints that do not publish it (then the fee must come from elsewhere, e.g. /v1/info).
    net_reward_msat: int | None = None
    minted: int | None = None  # units signed from the epoch's quotes (None from mints that do not say)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "unit": self.unit, "pool": self.pool, "height": self.height, "block_hash": self.block_hash,
            "state": self.state, "issued": self.issued, "reward_msat": self.reward_msat,
            "redeemed_msat": self.redeemed_msat, "redeem_until": self.redeem_until, "keysets": list(self.keysets),
        }
        for key in ("net_reward_msat", "minted"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Epoch:
        return cls(
            unit=d["unit"], pool=d["pool"], height=d["height"], block_hash=d.get("block_hash"),
            state=d["state"], issued=d["issued"], reward_msat=d["reward_msat"],
            redeemed_msat=d["redeemed_msat"], redeem_until=d.get("redeem_until"), keysets=tuple(d["keysets"]),
            net_reward_msat=d.get("net_reward_msat"), minted=d.get("minted"),
        )


@dataclass(frozen=True, slots=True)
class EhashQuote:
    """A share-backed melt quote: ``amount`` units of ``unit`` are worth ``amount_msat`` until ``expiry``."""

    quote: str
    unit: str
    amount: int
    amount_msat: int
    state: QuoteState
    expiry: int
    # The name the desk gave the quote (its redemption id): asking again with it returns this quote.
    reference: str | None = None
    request: str | None = None  # the invoice the desk said it would pay
    payment_preimage: str | None = None  # once PAID: the proof of the payment the quote was melted against

    def to_dict(self) -> dict[str, Any]:
        """CDK's custom melt-quote response (method ``ehash``, no fee reserve) with the ehash fields."""
        out: dict[str, Any] = {"quote": self.quote, "method": "ehash", "unit": self.unit, "amount": self.amount,
                               "fee_reserve": 0, "amount_msat": self.amount_msat, "state": self.state,
                               "expiry": self.expiry}
        for key in ("reference", "request", "payment_preimage"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EhashQuote:
        return cls(quote=d["quote"], unit=d["unit"], amount=d["amount"], amount_msat=d["amount_msat"],
                   state=d["state"], expiry=d["expiry"], reference=d.get("reference"), request=d.get("request"),
                   payment_preimage=d.get("payment_preimage"))
