"""Mining epochs: their life cycle and the states the mint reports (docs/ehash-mint-api.md, "Epoch states").

An epoch runs from the reward that opened it to the reward that closes it. Its state at time ``now``:

- ``open``: the current epoch; new share quotes are stamped with its unit. At most one epoch is open.
- ``provisional``: closed, but its reward is not final: the reward's block has fewer than
  ``final_confirmations`` confirmations, or that block was reorganised away and the epoch waits for the next
  reward (it then shares that reward with the epoch open at the time, pro rata to issued units).
- ``final``: the reward is final, but share quotes of the epoch may still be minted (until ``closed_at +
  issue_grace``), so ``issued`` and therefore the price can still change.
- ``settled``: final and issuance over: the price ``net_reward / issued`` is fixed and the mint quotes and
  melts the epoch's ehash until ``redeem_until`` (the settlement time plus ``redeem_window``).
- ``closed``: past ``redeem_until``: no more quotes or melts; the keyset is inactive (no new signatures).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hashpool_cln.ehash import Epoch, EpochState, net_reward_msat

# Columns read for an EpochRecord; ``r`` is the reward joined on ``e.reward_block_hash``.
EPOCH_SELECT = (
    "SELECT e.seq, e.unit, e.pool, e.height, e.keyset_id, e.opened_at, e.closed_at, e.reward_block_hash,"
    " e.reward_msat, e.pool_fee_ppm, e.issued, r.final_at"
    " FROM epochs e LEFT JOIN rewards r ON r.block_hash = e.reward_block_hash AND r.dissolved = 0"
)


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
    issued: int
    final_at: int | None

    @classmethod
    def from_row(cls, row: tuple) -> EpochRecord:
        return cls(*row)

    def with_issued(self, issued: int) -> EpochRecord:
        return replace(self, issued=issued)

    @property
    def net_reward_msat(self) -> int:
        return net_reward_msat(self.reward_msat, self.pool_fee_ppm)

    def issue_deadline(self, issue_grace: int) -> int | None:
        """Until when share quotes of this epoch may be minted; None while the epoch is open."""
        return None if self.closed_at is None else self.closed_at + issue_grace

    def settled_at(self, issue_grace: int) -> int | None:
        """When the epoch becomes settled: its reward final and its issuance over."""
        if self.closed_at is None or self.final_at is None or self.reward_block_hash is None:
            return None
        return max(self.final_at, self.closed_at + issue_grace)

    def redeem_until(self, issue_grace: int, redeem_window: int) -> int | None:
        settled = self.settled_at(issue_grace)
        return None if settled is None else settled + redeem_window

    def state(self, now: int, issue_grace: int, redeem_window: int) -> EpochState:
        if self.closed_at is None:
            return "open"
        settled = self.settled_at(issue_grace)
        if settled is None:
            return "provisional"
        if now < settled:
            return "final"
        if now < settled + redeem_window:
            return "settled"
        return "closed"

    def to_epoch(self, now: int, issue_grace: int, redeem_window: int, redeemed_msat: int) -> Epoch:
        return Epoch(
            unit=self.unit, pool=self.pool, height=self.height, block_hash=self.reward_block_hash,
            state=self.state(now, issue_grace, redeem_window), issued=self.issued, reward_msat=self.reward_msat,
            redeemed_msat=redeemed_msat, redeem_until=self.redeem_until(issue_grace, redeem_window),
            keysets=(self.keyset_id,), net_reward_msat=self.net_reward_msat,
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
