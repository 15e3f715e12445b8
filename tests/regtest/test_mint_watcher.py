"""The reference mint's app with the chain watcher attached (as the regtest stack runs it), over HTTP."""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
import pytest
from aiohttp import web
from regtest.fakechain import SUBSIDY_SATS
from regtest.recording import MINT_ADDRESS, MINT_SCRIPT

from hashpool_cln.refmint import chainwatch
from hashpool_cln.refmint.app import LEDGER, create_app
from hashpool_cln.refmint.config import MintConfig


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    chainwatch.add_arguments(parser)
    return parser.parse_args(list(argv))


async def _epochs(session: aiohttp.ClientSession, url: str) -> list[dict]:
    async with session.get(url + "/v1/ehash/epochs") as resp:
        assert resp.status == 200
        return (await resp.json())["epochs"]


async def _wait_for(predicate, session, url, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        epochs = await _epochs(session, url)
        if predicate(epochs):
            return epochs
        assert asyncio.get_running_loop().time() < deadline, epochs
        await asyncio.sleep(0.05)


async def test_mint_app_follows_the_chain_through_the_attached_watcher(node, tmp_path, unused_tcp_port):
    data_dir = tmp_path / "mint"
    args = _args("--bitcoin-rpc-url", node.url, "--bitcoin-rpc-cookie", str(node.cookie),
                 "--receive-address", MINT_ADDRESS, "--poll-interval", "0.05")
    watch = chainwatch.config_from_args(args, data_dir, confirmations=2)
    assert watch is not None and watch.state_path == data_dir / "chainwatch.json"
    app = create_app(MintConfig(data_dir=data_dir, port=unused_tcp_port, final_confirmations=2, start_height=100))
    chainwatch.attach(app, watch, LEDGER)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    url = f"http://127.0.0.1:{unused_tcp_port}"
    try:
        async with aiohttp.ClientSession() as session:
            assert [e["state"] for e in await _epochs(session, url)] == ["open"]
            for _ in range(1000):  # until the first poll took the tip: blocks mined after it are watched
                if watch.state_path.exists():
                    break
                await asyncio.sleep(0.01)
            (block,) = node.chain.mine(1, MINT_SCRIPT)
            epochs = await _wait_for(lambda es: len(es) == 2, session, url)
            assert (epochs[0]["state"], epochs[0]["block_hash"], epochs[0]["reward_msat"]) == (
                "maturing", block.hash, SUBSIDY_SATS * 1000)
            node.chain.mine(1)
            epochs = await _wait_for(lambda es: es[0]["state"] == "settled", session, url)
            assert epochs[1]["height"] == 101 and epochs[1]["state"] == "open"
    finally:
        await runner.cleanup()
    assert (data_dir / "chainwatch.json").exists()


def test_watcher_is_off_without_a_bitcoind_url(tmp_path):
    assert chainwatch.config_from_args(_args(), tmp_path, 3) is None


@pytest.mark.parametrize(("argv", "message"), [
    (["--bitcoin-rpc-url", "http://127.0.0.1:1/", "--receive-address", "x"], "cookie"),
    (["--bitcoin-rpc-url", "http://127.0.0.1:1/", "--bitcoin-rpc-user", "u", "--bitcoin-rpc-password", "p"],
     "receive"),
    (["--bitcoin-rpc-url", "http://127.0.0.1:1/", "--bitcoin-rpc-cookie", "c", "--receive-address", "x",
      "--receive-script", MINT_SCRIPT], "exactly one"),
])
def test_incomplete_watcher_options_are_refused(tmp_path, argv, message):
    with pytest.raises(ValueError, match=message):
        chainwatch.config_from_args(_args(*argv), tmp_path, 3)
