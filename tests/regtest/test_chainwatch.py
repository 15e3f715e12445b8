"""The chain watcher against a stand-in bitcoind speaking bitcoind's JSON-RPC over HTTP on loopback."""

from __future__ import annotations

import asyncio
import json

import pytest
from regtest.fakechain import ELSEWHERE, SUBSIDY_SATS, p2wpkh
from regtest.recording import MINT_SCRIPT, RecordingSink

from hashpool_cln.refmint.chainwatch import ChainUnavailable, RpcAuth, WatchState

REWARD_MSAT = SUBSIDY_SATS * 1000


async def test_reward_to_the_mint_opens_then_finalises_an_epoch(node, make_watcher):
    sink = RecordingSink()
    watcher = make_watcher(sink)
    assert await watcher.sync() == []  # first start: history before it is not scanned
    (block,) = node.chain.mine(1, MINT_SCRIPT)
    events = await watcher.sync()
    assert [(e.kind, e.reward.height) for e in events] == [("seen", 101)]
    assert sink.provisional[101].block_hash == block.hash
    assert sink.provisional[101].reward_msat == REWARD_MSAT
    node.chain.mine(1)
    assert await watcher.sync() == []
    assert 101 in sink.provisional  # two confirmations of three
    node.chain.mine(1)
    events = await watcher.sync()
    assert [(e.kind, e.reward.height) for e in events] == [("final", 101)]
    assert sink.final[101].block_hash == block.hash and not sink.provisional


async def test_reward_sums_every_coinbase_output_to_the_mint_script(node, make_watcher):
    sink = RecordingSink()
    watcher = make_watcher(sink, receive_script=MINT_SCRIPT.upper(), receive_address=None, confirmations=1)
    await watcher.sync()
    node.chain.mine(1, MINT_SCRIPT, sats=1_2345_6789, extra=[(ELSEWHERE, 100), (MINT_SCRIPT, 11)])
    await watcher.sync()
    assert sink.final[101].reward_msat == (1_2345_6789 + 11) * 1000


async def test_coinbase_paying_elsewhere_is_ignored(node, make_watcher):
    sink = RecordingSink()
    watcher = make_watcher(sink)
    await watcher.sync()
    node.chain.mine(3, ELSEWHERE)
    node.chain.mine(2, p2wpkh(0x43))  # a script differing from the mint's in its program only
    assert await watcher.sync() == []
    assert sink.log == []
    assert WatchState.load(watcher.config.state_path).height == 105


async def test_reorg_before_finality_dissolves_the_boundary(node, make_watcher):
    sink = RecordingSink()
    watcher = make_watcher(sink)
    await watcher.sync()
    (reward_block,) = node.chain.mine(1, MINT_SCRIPT)
    node.chain.mine(1)
    await watcher.sync()
    assert 101 in sink.provisional
    node.chain.invalidate(101)
    node.chain.mine(3, ELSEWHERE)  # a longer branch that does not pay the mint
    events = await watcher.sync()
    assert [(e.kind, e.reward.height) for e in events] == [("orphaned", 101)]
    assert sink.log == [("seen", 101, reward_block.hash), ("orphaned", 101, reward_block.hash)]
    assert not sink.provisional and not sink.final
    node.chain.mine(5)
    assert await watcher.sync() == []  # nothing left to finalise


async def test_shorter_chain_after_invalidateblock_dissolves_at_once(node, make_watcher):
    sink = RecordingSink()
    watcher = make_watcher(sink)
    await watcher.sync()
    node.chain.mine(1, MINT_SCRIPT)
    await watcher.sync()
    node.chain.invalidate(101)
    events = await watcher.sync()
    assert [(e.kind, e.reward.height) for e in events] == [("orphaned", 101)]
    assert WatchState.load(watcher.config.state_path).height == 100


async def test_same_height_remined_keeps_the_boundary_with_the_new_block(node, make_watcher):
    sink = RecordingSink()
    watcher = make_watcher(sink)
    await watcher.sync()
    node.chain.mine(1, MINT_SCRIPT)
    node.chain.mine(1)
    await watcher.sync()
    node.chain.invalidate(101)
    (new_block,) = node.chain.mine(1, MINT_SCRIPT, sats=SUBSIDY_SATS - 7)
    events = await watcher.sync()
    assert [(e.kind, e.reward.height) for e in events] == [("remined", 101)]
    assert sink.provisional[101].block_hash == new_block.hash
    assert sink.provisional[101].reward_msat == (SUBSIDY_SATS - 7) * 1000
    node.chain.mine(1)
    assert await watcher.sync() == []  # the new block has two confirmations
    node.chain.mine(1)
    assert [e.kind for e in await watcher.sync()] == ["final"]
    assert sink.final[101].block_hash == new_block.hash


async def test_reorg_moving_the_reward_to_another_height_dissolves_then_opens(node, make_watcher):
    sink = RecordingSink()
    watcher = make_watcher(sink)
    await watcher.sync()
    (old,) = node.chain.mine(1, MINT_SCRIPT)
    await watcher.sync()
    node.chain.invalidate(101)
    node.chain.mine(1)
    (new,) = node.chain.mine(1, MINT_SCRIPT)
    events = await watcher.sync()
    assert [(e.kind, e.reward.height, e.reward.block_hash) for e in events] == [
        ("orphaned", 101, old.hash), ("seen", 102, new.hash)]


async def test_lower_boundary_dissolving_takes_the_later_remined_one_with_it(node, make_watcher):
    sink = RecordingSink()
    watcher = make_watcher(sink, confirmations=5)
    await watcher.sync()
    node.chain.mine(1, MINT_SCRIPT)  # 101
    node.chain.mine(1, MINT_SCRIPT)  # 102
    await watcher.sync()
    node.chain.invalidate(101)
    node.chain.mine(1)  # 101 no longer pays the mint
    (b102,) = node.chain.mine(1, MINT_SCRIPT)  # 102 pays it again
    events = await watcher.sync()
    assert [(e.kind, e.reward.height) for e in events] == [("orphaned", 102), ("orphaned", 101), ("seen", 102)]
    assert sink.provisional[102].block_hash == b102.hash and 101 not in sink.provisional


async def test_catch_up_after_downtime_replays_every_reward_in_order(node, make_watcher):
    sink = RecordingSink()
    await make_watcher(sink).sync()
    # The mint is down while three rewards land, interleaved with other blocks.
    rewards = []
    for _ in range(3):
        rewards += node.chain.mine(1, MINT_SCRIPT)
        node.chain.mine(2)
    node.chain.mine(1, MINT_SCRIPT)  # the last one is still provisional at the tip
    restarted = make_watcher(sink)  # a new process: the cursor comes from the state file
    events = await restarted.sync()
    assert [(e.kind, e.reward.height) for e in events] == [
        ("seen", 101), ("final", 101), ("seen", 104), ("final", 104), ("seen", 107), ("final", 107), ("seen", 110)]
    assert [sink.final[h].block_hash for h in (101, 104, 107)] == [b.hash for b in rewards]
    assert list(sink.provisional) == [110]


async def test_catch_up_when_the_next_reward_lands_before_the_previous_is_final(node, make_watcher):
    sink = RecordingSink()
    await make_watcher(sink).sync()
    node.chain.mine(1, MINT_SCRIPT)
    node.chain.mine(1, MINT_SCRIPT)
    node.chain.mine(3)
    events = await make_watcher(sink).sync()
    assert [(e.kind, e.reward.height) for e in events] == [
        ("seen", 101), ("seen", 102), ("final", 101), ("final", 102)]


async def test_cursor_survives_a_restart_between_reward_and_finality(node, make_watcher):
    sink = RecordingSink()
    first = make_watcher(sink)
    await first.sync()
    node.chain.mine(1, MINT_SCRIPT)
    await first.sync()
    await first.close()
    node.chain.mine(2)
    events = await make_watcher(sink).sync()
    assert [(e.kind, e.reward.height) for e in events] == [("final", 101)]
    assert sink.log.count(("seen", 101, node.chain.blocks[101].hash)) == 1


async def test_start_height_scans_history_on_first_start(node, make_watcher):
    node.chain.mine(1, MINT_SCRIPT)  # 101, before the mint ever ran
    node.chain.mine(1)
    sink = RecordingSink()
    events = await make_watcher(sink, start_height=95, confirmations=2).sync()
    assert [(e.kind, e.reward.height) for e in events] == [("seen", 101), ("final", 101)]


async def test_state_file_is_atomic_json_with_the_cursor(node, make_watcher):
    sink = RecordingSink()
    watcher = make_watcher(sink)
    await watcher.sync()
    node.chain.mine(1, MINT_SCRIPT)
    await watcher.sync()
    raw = json.loads(watcher.config.state_path.read_text())
    assert raw["height"] == 101
    assert raw["hashes"]["101"] == node.chain.blocks[101].hash
    assert raw["pending"]["101"]["reward_msat"] == REWARD_MSAT
    assert [p.name for p in watcher.config.state_path.parent.iterdir()] == ["chainwatch.json"]


async def test_run_loop_follows_new_blocks_until_stopped(node, make_watcher):
    sink = RecordingSink()
    watcher = make_watcher(sink, confirmations=1)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    await asyncio.sleep(0.1)
    node.chain.mine(1, MINT_SCRIPT)
    for _ in range(100):
        if sink.final:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert list(sink.final) == [101]


async def test_wrong_credentials_are_reported_as_unavailable(node, make_watcher, tmp_path):
    watcher = make_watcher(RecordingSink(), auth=RpcAuth(user="__cookie__", password="wrong"))
    with pytest.raises(ChainUnavailable, match="refused the credentials"):
        await watcher.sync()


async def test_bitcoind_down_is_reported_as_unavailable(make_watcher, unused_tcp_port):
    watcher = make_watcher(RecordingSink(), rpc_url=f"http://127.0.0.1:{unused_tcp_port}/")
    with pytest.raises(ChainUnavailable, match="did not answer"):
        await watcher.sync()


async def test_unknown_receive_address_is_refused(make_watcher):
    watcher = make_watcher(RecordingSink(), receive_address="bcrt1qnotknown")
    with pytest.raises(ValueError, match="receive address"):
        await watcher.sync()
