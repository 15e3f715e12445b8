"""Miner wallet: sweep throughput (quotes/s, batches of 1/50/200) and redeem round trip, commando vs local RPC.

Sweep: share quotes locked to the wallet's key on the reference mint (loopback HTTP, its batch limit raised to
200), swept by the wallet: signed lookup, NUT-29 batch check, batch mint into NUT-13 outputs, DLEQ checked,
stored in sqlite. The figure is quotes turned into stored proofs per second, over the whole sweep.

Redeem: the same redemption (one token, a fixed BOLT11 invoice) through the plugin's JSON-RPC as lightningd
hands it over (the plugin harness), and through a BOLT8 connection and commando's messages to a stand-in node that
forwards to that same plugin process. The difference is what the Lightning transport adds; the BOLT8 handshake
with the ``init`` exchange is timed on its own.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def bench_redeem(rounds: int) -> None:
    from support.fakenode import FakeNode
    from support.invoices import make_invoice
    from support.pluginharness import PluginHarness, ThreadedMint
    from wallet.standin import CommandoStandin, StandinError

    from hashpool_cln.wallet.commando import CommandoClient, NodeAddress

    tmp = Path(tempfile.mkdtemp(prefix="hp-bw-"))
    node = FakeNode(tmp / "lightning-rpc", instant=True).start_in_thread()
    mint = ThreadedMint(tmp / "mint").start()
    harness = PluginHarness(tmp, python=sys.executable).start()

    def forward(method: str, params: object) -> object:
        reply = harness.call(method, params, timeout=60)
        if reply.error is not None:
            raise StandinError(reply.error["code"], reply.error.get("message", ""), reply.error.get("data"))
        return reply.result

    standin = CommandoStandin(forward).start()
    try:
        harness.getmanifest()
        harness.init({"hashpool-mint-url": mint.url, "hashpool-mint-key": mint.desk_key,
                      "hashpool-pool": [mint.pool]})
        tokens = mint.issue_settled([64] * (2 * rounds + 2))
        local: list[float] = []
        remote: list[float] = []
        handshakes: list[float] = []
        address = NodeAddress.parse(standin.address)
        client = CommandoClient(address, b"\x05" * 32, timeout=60)
        client.connect()

        def timed(call: Callable[[], object]) -> float:
            start = time.perf_counter()
            out = call()
            assert isinstance(out, dict) and out["state"] in ("paid", "settled"), out
            return time.perf_counter() - start

        # Warm both paths once, then alternate so that load from elsewhere hits both alike.
        for i in range(rounds + 1):
            by_rpc = {"token": tokens[2 * i], "invstring": make_invoice(1_000_000).bolt11}
            by_commando = {"token": tokens[2 * i + 1], "invstring": make_invoice(1_000_000).bolt11}
            t_local = timed(lambda p=by_rpc: harness.call("hashpool-redeem", p).ok())
            t_remote = timed(lambda p=by_commando: client.call("hashpool-redeem", p, "rune-all"))
            if i:
                local.append(t_local)
                remote.append(t_remote)
            start = time.perf_counter()
            CommandoClient(address, b"\x06" * 32, timeout=60).connect()
            handshakes.append(time.perf_counter() - start)
        client.close()
        loc, rem = _median_ms(local), _median_ms(remote)
        print(f"redeem round trip, median of {rounds}:")
        print(f"  local RPC (plugin harness)      {loc:8.1f} ms")
        print(f"  BOLT8 + commando                {rem:8.1f} ms")
        print(f"  commando overhead               {rem - loc:8.1f} ms ({rem / loc:.2f}x)")
        print(f"  BOLT8 handshake + init          {_median_ms(handshakes):8.1f} ms (once per connection)")
    finally:
        standin.stop()
        harness.close()
        mint.stop()
        node.stop_thread()
        shutil.rmtree(tmp, ignore_errors=True)


async def _sweep_rate(quotes: int, batch: int) -> tuple[float, int]:
    from support.refmint import mint_config, start_mint

    from hashpool_cln.mintclient import MintClient
    from hashpool_cln.wallet.issuance import Issuance
    from hashpool_cln.wallet.seed import WalletKeys, new_mnemonic
    from hashpool_cln.wallet.store import WalletStore
    from hashpool_cln.wallet.sweep import sweep
    from hashpool_cln.wallet.wallet import Wallet

    tmp = Path(tempfile.mkdtemp(prefix="hp-bs-"))
    mint = await start_mint(mint_config(tmp / "mint", max_batch_size=200))
    keys = WalletKeys(new_mnemonic())
    store = await WalletStore.open(tmp / "wallet.sqlite3")
    wallet = Wallet(store, keys, MintClient(mint.handle.url, timeout=60))
    try:
        for _ in range(quotes):
            await mint.handle.ehash_quote(5, keys.lock_key)
        start = time.perf_counter()
        result = await sweep(wallet, Issuance(wallet.mint), batch_size=batch)
        elapsed = time.perf_counter() - start
        assert result.minted == quotes, result
        return quotes / elapsed, result.batches
    finally:
        await wallet.mint.close()
        await store.close()
        await mint.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def bench_sweep(quotes: int, sizes: list[int]) -> None:
    import asyncio

    print(f"sweep of {quotes} quotes (one proof each) into the wallet:")
    print(f"  {'batch':>6} {'batches':>8} {'quotes/s':>10}")
    rates = {}
    for size in sizes:
        rate, count = asyncio.run(_sweep_rate(quotes, size))
        rates[size] = rate
        print(f"  {size:>6} {count:>8} {rate:>10.0f}")
    if 1 in rates:
        print("  " + ", ".join(f"batch {s}: {r / rates[1]:.1f}x batch 1" for s, r in rates.items() if s != 1))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_wallet", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="redemptions per path")
    parser.add_argument("--quotes", type=int, default=400, help="quotes per sweep")
    parser.add_argument("--batches", default="1,50,200", help="batch sizes, comma-separated")
    args = parser.parse_args(argv)
    bench_sweep(args.quotes, [int(b) for b in args.batches.split(",")])
    bench_redeem(args.rounds)


if __name__ == "__main__":
    main(sys.argv[1:])
