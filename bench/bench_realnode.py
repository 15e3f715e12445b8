"""Real nodes: redeem vs plain xpay of equal invoices on real lightningd and bitcoind, medians, p90s, CPU, phases.

Runs wherever ``lightningd`` and ``bitcoind`` are on PATH (it says so and stops elsewhere). Two payer nodes with a
channel each to one payee: one runs this checkout's plugin, the other (``--before DIR``, another checkout of the
project, e.g. ``git worktree add /tmp/before <commit>``) the plugin of that checkout, so both are measured in one
run against the same mint and payee. Plain ``xpay`` of an equal invoice from the first payer is the floor.

Samples are interleaved (redeem, redeem-before, xpay, then again) so that load on the machine falls on every arm
alike; then ``--concurrency`` callers at once, arm by arm, for throughput and CPU per completed payment (every
process of the run, read from /proc: the nodes, their plugins and subdaemons, bitcoind, and this process, which
serves the mint). The desk's phase times come from its Prometheus metrics (``hashpool_desk_seconds``).

The benchmark drives pyln-testing through pytest (its node factory is a fixture); ``main`` runs that session.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MISSING = [b for b in ("lightningd", "bitcoind") if shutil.which(b) is None]
ARGS_ENV = "HASHPOOL_BENCH_REALNODE"
INVOICE_MSAT = 1_000_000  # 1,000 sat, fixed
UNITS = 2_048  # one token: 2,048 units at 1,000 msat each, in one proof or in 64 of 32
MSAT_PER_UNIT = 1_000
MINT_LIMIT = 1_000  # the reference mint's default inputs (outputs) per request; larger tokens need it lifted


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_realnode", description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10, help="interleaved samples per token size and arm")
    parser.add_argument("--sizes", default="1,64", help="proofs per token, comma separated")
    parser.add_argument("--concurrency", type=int, default=16, help="callers at once in the throughput run")
    parser.add_argument("--before", default=None, help="another checkout whose plugin is measured beside this one")
    parser.add_argument("--settle-batch", type=int, default=0,
                        help="also measure this checkout with hashpool-settle-batch set to this many seconds")
    parser.add_argument("--rounds", type=int, default=3,
                        help="redemptions per caller in the throughput run (each caller takes them one by one)")
    parser.add_argument("--py-spy", default=None, metavar="DIR",
                        help="record each plugin under the throughput run with py-spy (on PATH) into DIR")
    args = parser.parse_args(argv)
    if MISSING:
        print(f"skipped: {' and '.join(MISSING)} not on PATH")
        return
    import tempfile

    import pytest

    with tempfile.TemporaryDirectory(prefix="bench-realnode-") as tmp:
        report = Path(tmp) / "report.txt"
        os.environ[ARGS_ENV] = json.dumps({**vars(args), "report": str(report)})
        code = pytest.main([__file__, "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
                            "--rootdir", str(ROOT / "tests"), "-W", "ignore"])
        if report.exists():
            print(report.read_text(), end="")
    if code not in (0, 5):
        raise SystemExit(f"the real-node benchmark failed (pytest exit {code})")


# --- figures ------------------------------------------------------------------------------------------------


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def tree_cpu() -> dict[str, float]:
    """CPU seconds by process name of this process (with its reaped children) and of every live process below it
    (lightningd, its subdaemons and plugins, bitcoind; this process serves the mint)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            name, rest = Path(f"/proc/{entry}/stat").read_text().split(" (", 1)[1].rsplit(")", 1)
        except (OSError, ValueError):
            continue
        fields = rest.split()
        own = (int(fields[11]) + int(fields[12])) / tick
        if int(entry) == os.getpid():
            own += (int(fields[13]) + int(fields[14])) / tick
            name = "bench+mint"
        stats[int(entry)] = (int(fields[1]), name, own)
    mine = {os.getpid()}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _, _) in stats.items():
            if ppid in mine and pid not in mine:
                mine.add(pid)
                grew = True
    out: dict[str, float] = {}
    for pid in mine & stats.keys():
        _, name, own = stats[pid]
        if name != "py-spy":  # the profiler's own work is not the run's
            out[name] = out.get(name, 0.0) + own
    return out


def desk_seconds(port: int) -> dict[str, float]:
    """The desk's summed phase seconds, from its metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("hashpool_desk_seconds"):
            name, value = line.rsplit(" ", 1)
            kind = name.split('category="', 1)[1].split('"', 1)[0] if 'category="' in name else name
            out[kind] = float(value)
    return out


def plugin_pid(node) -> int:
    """The pid of the hashpool plugin that ``node``'s lightningd runs."""
    parent = str(node.daemon.proc.pid)
    for entry in os.listdir("/proc"):
        try:
            if not entry.isdigit() or Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1] != parent:
                continue
            if b"hashpool-redeem.py" in Path(f"/proc/{entry}/cmdline").read_bytes():
                return int(entry)
        except OSError:
            continue
    raise RuntimeError("the node runs no hashpool plugin")


def record_plugin(node, out: Path) -> subprocess.Popen:
    """py-spy sampling the node's plugin (every thread, idle ones left out) into ``out`` as collapsed stacks,
    until it is sent SIGINT."""
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(["py-spy", "record", "--pid", str(plugin_pid(node)), "--format", "raw", "--rate", "200",
                            "--output", str(out), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached before the callers start
    return spy


def settled_all(node, timeout: float = 60.0) -> None:
    """Wait until the node's desk holds no paid redemption that still waits for its settlement."""
    deadline = time.monotonic() + timeout
    while node.rpc.call("hashpool-redemptions", {"state": "paid", "limit": 1})["redemptions"]:
        if time.monotonic() > deadline:
            raise RuntimeError("paid redemptions were not settled in time")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the session ---------------------------------------------------------------------------------------------

if not MISSING and os.environ.get(ARGS_ENV):
    os.environ.setdefault("RUST", "0")  # a lightningd built without cln-grpc refuses --grpc-port
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
    sys.path.insert(0, str(ROOT / "tests"))

    import pytest
    from pyln.testing.fixtures import *  # noqa: F403  (bitcoind, node_factory, ...)
    from support.pluginharness import ThreadedMint

    @pytest.fixture
    def jsonschemas() -> dict:
        return {}  # the bench checks no schemas: the test suite does

    def _payer(node_factory, mint: ThreadedMint, checkout: Path | None, port: int, **extra: object):
        opts = {**extra, "plugin": str((checkout or ROOT) / "plugin" / "hashpool-redeem.py"),
                "hashpool-mint-url": mint.url, "hashpool-mint-key": mint.desk_key, "hashpool-pool": mint.pool,
                "hashpool-metrics": f"127.0.0.1:{port}", "hashpool-max-msat": 10**10}
        saved = os.environ.get("PYTHONPATH")
        if checkout is not None:
            os.environ["PYTHONPATH"] = str(checkout)  # the node's plugin imports that checkout's package
        try:
            return node_factory.get_node(options=opts)
        finally:
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved

    def test_bench(node_factory, tmp_path) -> None:
        args = json.loads(os.environ[ARGS_ENV])
        largest = max(int(s) for s in args["sizes"].split(","))
        # Tokens past the mint's default request limits are measured with those limits lifted for them.
        limits = {"max_inputs": largest, "max_outputs": largest} if largest > MINT_LIMIT else {}
        mint = ThreadedMint(tmp_path / "mint", **limits).start()
        try:
            _run(args, node_factory, mint)
        finally:
            mint.stop()

    def _run(args: dict, node_factory, mint: ThreadedMint) -> None:
        report = open(args["report"], "w")

        def emit(line: str) -> None:
            report.write(line + "\n")
            report.flush()

        try:
            _measure(args, node_factory, mint, emit)
        finally:
            report.close()

    def _measure(args: dict, node_factory, mint: ThreadedMint, print) -> None:
        payee = node_factory.get_node()
        arms: dict[str, tuple] = {}
        after_port = free_port()
        arms["redeem"] = (_payer(node_factory, mint, None, after_port), after_port)
        if args["settle_batch"]:
            port = free_port()
            arms["redeem-batch"] = (_payer(node_factory, mint, None, port,
                                           **{"hashpool-settle-batch": args["settle_batch"]}), port)
        if args["before"]:
            port = free_port()
            arms["redeem-before"] = (_payer(node_factory, mint, Path(args["before"]).resolve(), port), port)
        for node, _ in arms.values():
            node_factory.join_nodes([node, payee], fundamount=10**7, wait_for_announce=True)
        plain = arms["redeem"][0]
        sizes = [int(s) for s in args["sizes"].split(",")]
        n = args["samples"]
        counter = iter(range(10**9))

        def invoice() -> str:
            return payee.rpc.invoice(INVOICE_MSAT, f"bench-{next(counter)}", "bench")["bolt11"]

        def tokens(size: int, count: int) -> list[str]:
            if size == 1:
                return mint.issue_settled([UNITS] * count, msat_per_unit=MSAT_PER_UNIT)
            return mint.tokens_settled([[UNITS // size] * size] * count, msat_per_unit=MSAT_PER_UNIT)

        def redeem(node, token: str) -> float:
            bolt11 = invoice()
            start = time.perf_counter()
            out = node.rpc.call("hashpool-redeem", {"token": token, "invstring": bolt11})
            took = time.perf_counter() - start
            assert out["state"] in ("paid", "settled"), out
            return took

        def xpay() -> float:
            bolt11 = invoice()
            start = time.perf_counter()
            plain.rpc.call("xpay", {"invstring": bolt11})
            return time.perf_counter() - start

        redeem(plain, tokens(1, 1)[0])  # warm: the plugin's first look at the mint
        print("\n| tokens | arm | median ms | p90 ms | ÷ xpay median | desk overhead ms (median − xpay) |")
        print("|---|---|---|---|---|---|")
        for size in sizes:
            pool = {name: tokens(size, n) for name in arms}
            times: dict[str, list[float]] = {name: [] for name in [*arms, "xpay"]}
            for i in range(n):
                for name, (node, _) in arms.items():
                    times[name].append(redeem(node, pool[name][i]))
                times["xpay"].append(xpay())
            base = statistics.median(times["xpay"])
            for name, values in times.items():
                med = statistics.median(values)
                print(f"| {size} proof{'s' if size > 1 else ''} | {name} | {med * 1e3:.0f} | {p90(values) * 1e3:.0f}"
                      f" | {med / base:.2f} | {(med - base) * 1e3:.0f} |")

        c, rounds = args["concurrency"], args["rounds"]
        total = c * rounds
        print(f"\n| {c} callers × {rounds}, 1-proof tokens | payments/s | ÷ xpay | CPU ms per payment | ÷ xpay CPU |")
        print("|---|---|---|---|---|")
        results: dict[str, tuple[float, float]] = {}
        phases: dict[str, dict[str, float]] = {}
        by_name: dict[str, dict[str, float]] = {}
        for name in [*arms, "xpay"]:
            batch = tokens(1, total) if name != "xpay" else [None] * total
            node, port = arms.get(name, (plain, None))
            seconds_before = desk_seconds(port) if port else {}
            spy = record_plugin(node, Path(args["py_spy"]) / f"{name}.txt") if args["py_spy"] and port else None
            cpu0, t0 = tree_cpu(), time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(c) as pool_:
                if name == "xpay":
                    list(pool_.map(lambda _t: xpay(), batch))
                else:
                    list(pool_.map(lambda t, node=node: redeem(node, t), batch))
            wall = time.perf_counter() - t0
            if name == "redeem-batch":
                settled_all(node)  # the settlements the calls left for later are part of their cost
            cpu_after = tree_cpu()
            by_name[name] = {k: (v - cpu0.get(k, 0.0)) / total for k, v in cpu_after.items()}
            cpu = sum(cpu_after.values()) - sum(cpu0.values())
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
            results[name] = (total / wall, cpu / total)
            if port:
                after = desk_seconds(port)
                phases[name] = {k: (after[k] - seconds_before.get(k, 0.0)) / total for k in after}
        rate0, cpu0_ = results["xpay"]
        for name, (rate, cpu) in results.items():
            print(f"| {name} | {rate:.1f} | {rate / rate0:.2f} | {cpu * 1e3:.0f} | {cpu / cpu0_:.2f} |")
        print("\nCPU ms per payment under concurrency, by process (those over 1 ms):")
        for name, kinds in by_name.items():
            busy = sorted(((v, k) for k, v in kinds.items() if v >= 0.001), reverse=True)
            print(f"  {name}: " + ", ".join(f"{k} {v * 1e3:.1f}" for v, k in busy))
        print("\nthe desk's summed work per redemption under concurrency, ms (hashpool_desk_seconds):")
        for name, kinds in phases.items():
            print(f"  {name}: " + ", ".join(f"{k} {v * 1e3:.1f}" for k, v in sorted(kinds.items())))


if __name__ == "__main__":
    main(sys.argv[1:])
