"""The chain watcher driving the reference mint's real ledger (sqlite in a temporary data directory)."""

from __future__ import annotations

import pytest
from regtest.fakechain import ELSEWHERE, SUBSIDY_SATS
from regtest.recording import MINT_SCRIPT

from hashpool_cln.refmint.chainwatch import LedgerSink
from hashpool_cln.refmint.config import MintConfig
from hashpool_cln.refmint.ledger import Ledger
from hashpool_cln.refmint.shares import random_share_hash

REWARD_MSAT = SUBSIDY_SATS * 1000


@pytest.fixture
async def ledger(tmp_path):
    ledger = await Ledger.open(MintConfig(data_dir=tmp_path / "mintdata", final_confirmations=3, start_height=100))
    yield ledger
    await ledger.close()


async def _states(ledger):
    return [(e.height, e.state, e.block_hash, e.reward_msat) for e in await ledger.epochs()]


async def test_reward_closes_the_open_epoch_then_settles_it_when_final(node, make_watcher, ledger):
    watcher = make_watcher(LedgerSink(ledger, 3))
    await watcher.sync()
    (block,) = node.chain.mine(1, MINT_SCRIPT)
    await watcher.sync()
    assert await _states(ledger) == [(100, "maturing", block.hash, REWARD_MSAT), (101, "open", None, 0)]
    node.chain.mine(1)
    await watcher.sync()
    assert (await _states(ledger))[0][1] == "maturing"
    node.chain.mine(1)
    await watcher.sync()
    assert await _states(ledger) == [(100, "settled", block.hash, REWARD_MSAT), (101, "open", None, 0)]


async def test_reorg_before_finality_dissolves_the_reward(node, make_watcher, ledger):
    watcher = make_watcher(LedgerSink(ledger, 3))
    await watcher.sync()
    node.chain.mine(1, MINT_SCRIPT)
    await watcher.sync()
    node.chain.invalidate(101)
    node.chain.mine(4, ELSEWHERE)
    await watcher.sync()
    # The reference ledger keeps the epoch the reward opened; the closed one waits for the next reward, which
    # comes at another height: both share it, pro rata to the units they quoted.
    assert await _states(ledger) == [(100, "maturing", None, 0), (101, "open", None, 0)]
    (again,) = node.chain.mine(1, MINT_SCRIPT)
    node.chain.mine(2)
    await watcher.sync()
    states = await _states(ledger)
    assert [s[1] for s in states] == ["settled", "settled", "open"]
    assert sum(s[3] for s in states) == REWARD_MSAT and {s[2] for s in states[:2]} == {again.hash}


async def test_same_height_remine_keeps_the_epoch_and_swaps_its_block(node, make_watcher, ledger):
    watcher = make_watcher(LedgerSink(ledger, 3))
    await watcher.sync()
    await ledger.create_share_quote(random_share_hash(34).hex(), None)  # 4 units before the boundary
    (old,) = node.chain.mine(1, MINT_SCRIPT)
    await watcher.sync()
    opened = (await ledger.epochs())[-1].unit
    await ledger.create_share_quote(random_share_hash(35).hex(), None)  # 8 units after it, in the new epoch
    node.chain.invalidate(101)
    (new,) = node.chain.mine(1, MINT_SCRIPT)
    await watcher.sync()
    # The same boundary, another block: the closed epoch takes the new block's reward alone, the epoch the
    # boundary opened stays the open one (no second epoch at height 101), its shares dilute nothing.
    assert await _states(ledger) == [(100, "maturing", new.hash, REWARD_MSAT), (101, "open", None, 0)]
    epochs = await ledger.epochs()
    assert epochs[-1].unit == opened and [e.issued for e in epochs] == [4, 8]
    node.chain.mine(2)
    await watcher.sync()
    assert await _states(ledger) == [(100, "settled", new.hash, REWARD_MSAT), (101, "open", None, 0)]
    assert old.hash != new.hash


async def test_deep_reorg_after_finality_keeps_the_final_epochs(node, make_watcher, ledger):
    sink = LedgerSink(ledger, 3)
    watcher = make_watcher(sink)
    await watcher.sync()
    await ledger.create_share_quote(random_share_hash(34).hex(), None)
    (block,) = node.chain.mine(1, MINT_SCRIPT)
    node.chain.mine(2)
    await watcher.sync()
    final = await _states(ledger)
    assert final == [(100, "settled", block.hash, REWARD_MSAT), (101, "open", None, 0)]
    # Four blocks deep, then a longer branch that pays the mint at the same height: the residual risk every
    # pool accepts with its confirmation depth. Settled epochs never change, and no epoch is closed twice.
    node.chain.invalidate(101)
    node.chain.mine(1, MINT_SCRIPT)
    node.chain.mine(4, ELSEWHERE)
    events = await watcher.sync()
    assert "orphaned_final" in [e.kind for e in events]
    assert await _states(ledger) == final


async def test_catch_up_opens_and_settles_epochs_in_sequence(node, make_watcher, ledger):
    await make_watcher(LedgerSink(ledger, 3)).sync()
    blocks = []
    for _ in range(3):
        blocks += node.chain.mine(1, MINT_SCRIPT)
        node.chain.mine(2)
    await make_watcher(LedgerSink(ledger, 3)).sync()
    assert await _states(ledger) == [
        (100, "settled", blocks[0].hash, REWARD_MSAT), (101, "settled", blocks[1].hash, REWARD_MSAT),
        (104, "settled", blocks[2].hash, REWARD_MSAT), (107, "open", None, 0)]


async def test_replayed_events_after_a_crash_change_nothing(node, make_watcher, ledger):
    sink = LedgerSink(ledger, 3)
    watcher = make_watcher(sink)
    await watcher.sync()
    node.chain.mine(1, MINT_SCRIPT)
    node.chain.mine(2)
    await watcher.sync()
    before = await _states(ledger)
    reward = watcher.state.final[101]
    await sink.reward_seen(reward)
    await sink.reward_final(reward)
    await sink.reward_orphaned(reward)  # refused: the reward is final; logged, not raised
    assert await _states(ledger) == before
