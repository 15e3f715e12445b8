"""Fixtures: a stand-in bitcoind on loopback and a chain watcher over it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from regtest.fakechain import FakeBitcoind, FakeChain
from regtest.recording import MINT_ADDRESS, MINT_SCRIPT, RecordingSink

from hashpool_cln.refmint.chainwatch import ChainWatchConfig, ChainWatcher, RpcAuth


@dataclass
class Node:
    chain: FakeChain
    bitcoind: FakeBitcoind
    url: str
    cookie: Path


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    chain = FakeChain()
    chain.addresses[MINT_ADDRESS] = MINT_SCRIPT
    chain.mine(100)
    bitcoind = FakeBitcoind(chain)
    runner = web.AppRunner(bitcoind.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    cookie = tmp_path / ".cookie"
    cookie.write_text(f"{bitcoind.user}:{bitcoind.password}")
    yield Node(chain, bitcoind, f"http://127.0.0.1:{port}/", cookie)
    await runner.cleanup()


@pytest.fixture
async def make_watcher(node: Node, tmp_path: Path) -> AsyncIterator[Callable[..., ChainWatcher]]:
    made: list[ChainWatcher] = []

    def make(sink: RecordingSink, **overrides) -> ChainWatcher:
        options = {"rpc_url": node.url, "state_path": tmp_path / "mint" / "chainwatch.json",
                   "auth": RpcAuth(cookie_file=node.cookie), "receive_address": MINT_ADDRESS,
                   "confirmations": 3, "poll_interval": 0.05}
        options.update(overrides)
        watcher = ChainWatcher(ChainWatchConfig(**options), sink)
        made.append(watcher)
        return watcher

    yield make
    for watcher in made:
        await watcher.close()
