"""A ledger stand-in that records the chain watcher's events in order."""

from __future__ import annotations

from dataclasses import dataclass, field

from regtest.fakechain import p2wpkh

from hashpool_cln.refmint.chainwatch import Reward

MINT_SCRIPT = p2wpkh(0x42)
MINT_ADDRESS = "bcrt1qmintaddressforthetests"


@dataclass
class RecordingSink:
    """Keeps the ledger events in order, with a view of which boundaries are provisional and final."""

    log: list[tuple[str, int, str]] = field(default_factory=list)
    provisional: dict[int, Reward] = field(default_factory=dict)
    final: dict[int, Reward] = field(default_factory=dict)

    async def reward_seen(self, reward: Reward) -> None:
        self.log.append(("seen", reward.height, reward.block_hash))
        self.provisional[reward.height] = reward

    async def reward_remined(self, old: Reward, new: Reward) -> None:
        self.log.append(("remined", new.height, new.block_hash))
        assert self.provisional[old.height] == old
        self.provisional[new.height] = new

    async def reward_final(self, reward: Reward) -> None:
        self.log.append(("final", reward.height, reward.block_hash))
        assert self.provisional.pop(reward.height) == reward
        self.final[reward.height] = reward

    async def reward_orphaned(self, reward: Reward) -> None:
        self.log.append(("orphaned", reward.height, reward.block_hash))
        assert self.provisional.pop(reward.height) == reward


