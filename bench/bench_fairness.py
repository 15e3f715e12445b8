"""Fair CPU: p50/p99 latency of hashpool-info and of a 1-proof hashpool-quote, idle and while a 4,000-proof token
is quoted over and over, through the real plugin process.

The plugin runs as lightningd runs it (JSON-RPC on stdin/stdout, ``support.pluginharness``) with the node
stand-in on its unix socket and the reference mint on loopback (input and output limits raised to 4,096 so that
the large token is a valid one). One caller quotes the large token back to back (every quote parses it and
hashes its 4,000 secrets to curve points); another measures the small calls one at a time. Target: loaded within 2x of
idle, p50 and p99, for both calls.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

TARGET = 2.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _measure(plugin, calls: int, method: str, params) -> list[float]:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        reply = plugin.request(method, params, timeout=60)
        times.append(time.perf_counter() - start)
        assert reply.error is None, reply.error
    return times


def run(proofs: int, calls: int) -> bool:
    from support.fakenode import FakeNode
    from support.pluginharness import PluginHarness, ThreadedMint

    lightning_dir = Path(tempfile.mkdtemp(prefix="hp-bf-"))
    mint_dir = Path(tempfile.mkdtemp(prefix="hp-bf-mint-"))
    node = FakeNode(lightning_dir / "lightning-rpc", instant=True).start_in_thread()
    mint = ThreadedMint(mint_dir, max_inputs=4096, max_outputs=4096).start()
    plugin = PluginHarness(lightning_dir).start()
    ok = True
    try:
        plugin.getmanifest()
        plugin.init({"hashpool-mint-url": mint.url, "hashpool-mint-key": mint.desk_key,
                     "hashpool-pool": [mint.pool], "hashpool-max-msat": str(10**12)})
        big, small = mint.tokens_settled([[1] * proofs, [64]])
        warm = plugin.request("hashpool-quote", [big], timeout=120)  # keys cached from here on
        assert warm.error is None, warm.error
        _measure(plugin, 5, "hashpool-info", {})
        _measure(plugin, 5, "hashpool-quote", [small])

        idle = {"info": _measure(plugin, calls, "hashpool-info", {}),
                "quote": _measure(plugin, calls, "hashpool-quote", [small])}

        stop = threading.Event()
        big_times: list[float] = []

        # The large request is encoded once: this process also serves the mint that hashpool-info asks, and must
        # not spend its own time on megabytes of JSON while the small calls are timed.
        params = json.dumps([big]).encode()

        def hammer() -> None:
            for n in itertools.count():
                if stop.is_set():
                    return
                req_id = f"big#{n}"
                start = time.perf_counter()
                plugin.send_raw(b'{"jsonrpc":"2.0","id":"' + req_id.encode() + b'","method":"hashpool-quote",'
                                b'"params":' + params + b"}")
                reply = plugin.reply(req_id, timeout=120)
                big_times.append(time.perf_counter() - start)
                assert reply.error is None, reply.error

        worker = threading.Thread(target=hammer, daemon=True)
        worker.start()
        time.sleep(0.5)
        loaded: dict[str, list[float]] = {"info": [], "quote": []}
        try:
            # Until the large token was quoted at least three times over, and every figure has its calls.
            while len(big_times) < 3 or len(loaded["info"]) < calls:
                loaded["info"] += _measure(plugin, 1, "hashpool-info", {})
                loaded["quote"] += _measure(plugin, 1, "hashpool-quote", [small])
                time.sleep(0.005)
        finally:
            stop.set()
            worker.join(120)

        print(f"large token: {proofs} proofs, quoted {len(big_times)} times while {len(loaded['info'])} calls of "
              f"each kind were measured, "
              f"median {statistics.median(big_times) * 1e3:.0f} ms per quote")
        print(f"{'call':<22} {'idle p50':>9} {'idle p99':>9} {'load p50':>9} {'load p99':>9} {'x p50':>6} "
              f"{'x p99':>6}  target")
        for name, label in (("info", "hashpool-info"), ("quote", "hashpool-quote 1 proof")):
            i50, i99 = _percentile(idle[name], 0.5), _percentile(idle[name], 0.99)
            l50, l99 = _percentile(loaded[name], 0.5), _percentile(loaded[name], 0.99)
            r50, r99 = l50 / i50, l99 / i99
            met = r50 <= TARGET and r99 <= TARGET
            ok &= met
            print(f"{label:<22} {i50 * 1e3:>8.1f}ms {i99 * 1e3:>8.1f}ms {l50 * 1e3:>8.1f}ms {l99 * 1e3:>8.1f}ms "
                  f"{r50:>5.2f}x {r99:>5.2f}x  {'met' if met else 'MISSED'} (<= {TARGET:.0f}x)")
    finally:
        plugin.close()
        mint.stop()
        node.stop_thread()
        shutil.rmtree(lightning_dir, ignore_errors=True)
        shutil.rmtree(mint_dir, ignore_errors=True)
    return ok


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_fairness", description=__doc__.splitlines()[0])
    parser.add_argument("--proofs", type=int, default=4000, help="proofs in the large token (default 4000)")
    parser.add_argument("--calls", type=int, default=200, help="calls measured per figure (default 200)")
    args = parser.parse_args(argv)
    if not run(args.proofs, args.calls):
        print("fairness target missed")


if __name__ == "__main__":
    main(sys.argv[1:])
