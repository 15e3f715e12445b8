"""Miner wallet: redeem round trip over BOLT8 + commando versus the local RPC, on the real plugin process.

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


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_wallet", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="redemptions per path")
    args = parser.parse_args(argv)
    bench_redeem(args.rounds)


if __name__ == "__main__":
    main(sys.argv[1:])
