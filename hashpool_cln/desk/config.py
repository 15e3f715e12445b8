"""What an operator sets for a desk: where it keeps its ledger and seed, which ehash it buys, its limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class DeskConfig:
    mint_url: str  # the pool's mint; tokens must name it (or one of ``mint_aliases``)
    db_path: str  # the ledger (sqlite, created 0600)
    seed_path: str  # hex seed of the desk's NUT-13 outputs and P2PK key (created 0600 if absent)
    pools: list[str]  # pool public keys whose epochs the desk buys
    max_msat: int  # largest payment value of one redemption
    maxfee_ppm: int = 5_000  # default routing fee budget, parts per million of the payment ...
    maxfee_msat: int = 50_000  # ... but never more than this; also the most a caller may allow
    min_invoice_life: int = 60  # seconds an invoice must still be valid for when the desk takes custody
    mint_key: str | None = None  # bearer key for the mint's desk-only calls (used to build the MintClient)
    mint_aliases: tuple[str, ...] = ()  # other URLs under which tokens name the same mint
    epoch_budget_msat: int | None = None  # most the desk commits to one epoch (None: no desk-side cap)
    allow_legacy_unit: bool = False  # accept the single pre-epoch unit ``hash``
    retry_for: int = 60  # seconds the node keeps trying a payment
    # After the node's retry window, how long a "failed" with nothing in flight must hold before recovery
    # believes it (a paying plugin that crashed may have left the node mid-attempt).
    payment_grace: int = 60
    settle: Literal["immediate", "batch"] = "immediate"
    # The pool's fee on rewards, for mints whose epochs do not publish their net reward; None: as the mint's
    # /v1/info publishes it. An epoch's published net_reward_msat always wins (its fee was fixed when it closed).
    pool_fee_ppm: int | None = None
    rate_tolerance_msat: int = 1  # a quote may differ by this much from the epoch's published rate
    metadata: dict[str, str] = field(default_factory=dict)  # free-form, shown by info()
