"""Mining epochs: their life cycle and the states the mint reports (docs/ehash-mint-api.md, "Epoch states").

An epoch runs from the reward that opened it to the reward that closes it. Its price is over the units it
*quoted*: every share quote stamped with its unit counts in ``issued`` when it is made, minted or not, so the
price is fixed the moment the epoch closes and a quote stays mintable for as long as the epoch's keyset is
active (no issuance deadline that could lose a swept quote). Its state at time ``now``:

- ``open``: the current epoch; new share quotes are stamped with its unit. At most one epoch is open.
- ``maturing``: closed, but its reward is not final: the reward's block has fewer than
  ``final_confirmations`` confirmations, or that block was reorganised away and the epoch waits for the next
  reward (it then shares that reward with the epoch open at the time, pro rata to issued units; or, when the
  next reward is a block re-mined at the same height, takes it alone: the same boundary, another hash).
- ``settled``: the reward is final; the price ``net_reward / issued`` is fixed and the mint quotes and melts
  the epoch's ehash until ``redeem_until`` (the time it became final plus ``redeem_window``).
- ``retired``: past ``redeem_until``: no more quotes, melts or signatures (the keyset is inactive).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hashpool_cln.ehash import Epoch, EpochState, net_reward_msat

# Columns read for an EpochRecord; ``r`` is the reward joined on ``e.reward_block_hash``.
EPOCH_COLUMNS = ("e.seq, e.unit, e.pool, e.height, e.keyset_id, e.opened_at, e.closed_at, e.reward_block_hash,"
                 " e.reward_msat, e.pool_fee_ppm, e.issued, r.final_at, e.minted, e.redeemed_msat")
EPOCH_FROM = " FROM epochs e LEFT JOIN rewards r ON r.block_hash = e.reward_block_hash AND r.dissolved = 0"
EPOCH_SELECT = "SELECT " + EPOCH_COLUMNS + EPOCH_FROM


@dataclass(frozen=True, slots=True)
class EpochRecord:
    seq: int
    unit: str
    pool: str
    height: int
    keyset_id: str
    opened_at: int
    closed_at: int | None
    reward_block_hash: str | None
    reward_msat: int
    pool_fee_ppm: int
    issued: int  # units quoted: what the price divides by
    final_at: int | None
    minted: int  # units signed from its quotes (at most issued)
    redeemed_msat: int  # what its paid melt quotes took from the reward

    @classmethod
    def from_row(cls, row: tuple) -> EpochRecord:
        return cls(*row)

    def with_counts(self, issued: int, minted: int) -> EpochRecord:
        return replace(self, issued=issued, minted=minted)

    @property
    def net_reward_msat(self) -> int:
        return net_reward_msat(self.reward_msat, self.pool_fee_ppm)

    def settled_at(self) -> int | None:
        """When the epoch became settled: closed and its reward final."""
        if self.closed_at is None or self.final_at is None or self.reward_block_hash is None:
            return None
        return max(self.final_at, self.closed_at)

    def redeem_until(self, redeem_window: int) -> int | None:
        settled = self.settled_at()
        return None if settled is None else settled + redeem_window

    def state(self, now: int, redeem_window: int) -> EpochState:
        if self.closed_at is None:
            return "open"
        settled = self.settled_at()
        if settled is None:
            return "maturing"
        if now < settled + redeem_window:
            return "settled"
        return "retired"

    def to_epoch(self, now: int, redeem_window: int) -> Epoch:
        return Epoch(
            unit=self.unit, pool=self.pool, height=self.height, block_hash=self.reward_block_hash,
            state=self.state(now, redeem_window), issued=self.issued, reward_msat=self.reward_msat,
            redeemed_msat=self.redeemed_msat, redeem_until=self.redeem_until(redeem_window),
            keysets=(self.keyset_id,), net_reward_msat=self.net_reward_msat, minted=self.minted,
        )


def split_reward(reward_msat: int, issued: list[int]) -> list[int]:
    """Share a reward between epochs pro rata to their issued units (floor; the rounding remainder goes to the
    newest epoch that issued anything). If no epoch issued anything, the newest one gets it all.
    """
    total = sum(issued)
    if total == 0:
        return [0] * (len(issued) - 1) + [reward_msat]
    parts = [reward_msat * n // total for n in issued]
    last = max(i for i, n in enumerate(issued) if n > 0)
    parts[last] += reward_msat - sum(parts)
    return parts
