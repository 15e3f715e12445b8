"""The chain watcher against a real bitcoind (regtest): rewards, finality, a reorg, catch-up after downtime.

Runs wherever bitcoind, bitcoin-cli and lightningd (v26.06+) are on PATH; skips with the reason elsewhere.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from hashpool_cln.refmint.chainwatch import BitcoinRPC, ChainWatchConfig, ChainWatcher, LedgerSink, RpcAuth
from hashpool_cln.refmint.config import MintConfig
from hashpool_cln.refmint.ledger import Ledger
from hashpool_cln.regtest import preflight, procs
from hashpool_cln.regtest.layout import Layout
from hashpool_cln.regtest.stack import CONFIRMATIONS, WALLET, Stack

FOUND = preflight.check()
PROBLEMS = preflight.problems_report(FOUND)
pytestmark = [pytest.mark.realnode, pytest.mark.skipif(PROBLEMS is not None, reason=str(PROBLEMS))]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = Stack(Layout(tmp_path_factory.mktemp("regtest")), {f.tool.name: str(f.path) for f in FOUND})
    stack.start_bitcoind()
    stack.prepare_wallet()
    yield stack
    stack.down()


@pytest.fixture
def btc(stack):
    """Blocking calls, for the tests that are not coroutines."""
    client = stack.bitcoin(wallet=True)
    yield client
    client.close()


@pytest.fixture
async def rpc(stack):
    settings = stack.settings()
    client = BitcoinRPC(f"http://127.0.0.1:{settings.bitcoind_rpc_port}/wallet/{WALLET}",
                        RpcAuth(cookie_file=stack.layout.cookie))
    yield client
    await client.close()


@pytest.fixture
async def ledger(tmp_path, rpc):
    ledger = await Ledger.open(MintConfig(data_dir=tmp_path / "mint", final_confirmations=CONFIRMATIONS,
                                          start_height=await rpc.call("getblockcount")))
    yield ledger
    await ledger.close()


@pytest.fixture
async def watcher(stack, ledger, tmp_path):
    settings = stack.settings()
    watcher = ChainWatcher(ChainWatchConfig(
        rpc_url=f"http://127.0.0.1:{settings.bitcoind_rpc_port}/", auth=RpcAuth(cookie_file=stack.layout.cookie),
        state_path=tmp_path / "mint" / "chainwatch.json", receive_address=settings.mint_address,
        confirmations=CONFIRMATIONS), LedgerSink(ledger, CONFIRMATIONS))
    await watcher.sync()
    yield watcher
    await watcher.close()


def _subsidy_msat(height: int) -> int:
    return (50 * 100_000_000 >> (height // 150)) * 1000  # regtest halves every 150 blocks


async def test_reward_mined_to_the_mint_opens_and_finalises_an_epoch(stack, rpc, ledger, watcher):
    settings = stack.settings()
    (reward,) = await rpc.call("generatetoaddress", 1, settings.mint_address)
    height = await rpc.call("getblockcount")
    await watcher.sync()
    closed, opened = await ledger.epochs()
    assert (closed.state, closed.block_hash, closed.reward_msat) == ("maturing", reward, _subsidy_msat(height))
    assert (opened.state, opened.height) == ("open", height)
    await rpc.call("generatetoaddress", CONFIRMATIONS - 2, settings.funds_address)
    await watcher.sync()
    assert (await ledger.epochs())[0].state == "maturing"
    await rpc.call("generatetoaddress", 1, settings.funds_address)
    await watcher.sync()
    assert (await ledger.epochs())[0].state == "settled"


async def test_reorg_by_invalidateblock_before_finality_dissolves_the_reward(stack, rpc, ledger, watcher):
    settings = stack.settings()
    (reward,) = await rpc.call("generatetoaddress", 1, settings.mint_address)
    await watcher.sync()
    assert (await ledger.epochs())[0].block_hash == reward
    await rpc.call("invalidateblock", reward)
    await rpc.call("generatetoaddress", CONFIRMATIONS + 1, settings.funds_address)
    events = await watcher.sync()
    assert [(e.kind, e.reward.block_hash) for e in events] == [("orphaned", reward)]
    closed = (await ledger.epochs())[0]
    assert (closed.state, closed.block_hash, closed.reward_msat) == ("maturing", None, 0)
    assert watcher.state.pending == {}


def _epochs(stack) -> list[dict]:
    with urllib.request.urlopen(stack.mint_url() + "/v1/ehash/epochs", timeout=5) as resp:
        return json.loads(resp.read())["epochs"]


def test_mint_catches_up_on_rewards_mined_while_it_was_down(stack, btc):
    settings = stack.settings()
    stack.start_mint()
    before = len(_epochs(stack))
    assert stack.stop_mint()
    rewards = []
    for _ in range(3):
        rewards += btc("generatetoaddress", 1, settings.mint_address)
        btc("generatetoaddress", 1, settings.funds_address)
    btc("generatetoaddress", CONFIRMATIONS, settings.funds_address)
    stack.start_mint()
    procs.wait_until("the mint to catch up", lambda: len(_epochs(stack)) == before + 3, 30,
                     stack.layout.log_file("mint"))
    epochs = _epochs(stack)
    assert [e["block_hash"] for e in epochs[before - 1:before + 2]] == rewards
    heights = [e["height"] for e in epochs]
    assert heights == sorted(heights)
    procs.wait_until("the epochs to settle", lambda: [e["state"] for e in _epochs(stack)][before - 1:] ==
                     ["settled"] * 3 + ["open"], 30, stack.layout.log_file("mint"))
    stack.stop_mint()
