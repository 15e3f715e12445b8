"""Real nodes: redeem vs plain xpay of equal invoices on real lightningd and bitcoind, medians, p90s, CPU, phases.

Runs wherever ``lightningd`` and ``bitcoind`` are on PATH (it says so and stops elsewhere). Two payer nodes with a
channel each to one payee: one runs this checkout's plugin against this checkout's mint, the other (``--before
DIR``, another checkout of the project, e.g. ``git worktree add /tmp/before <commit>``) the plugin of that checkout
against a mint of that checkout, so both sides are measured in one run against the same payee. Plain ``xpay`` of an
equal invoice from the first payer is the floor.

Samples are interleaved (redeem, redeem-before, xpay, then again) so that load on the machine falls on every arm
alike; then ``--concurrency`` callers at once, arm by arm, for throughput and CPU per completed payment (every
process of the run, read from /proc: the nodes, their plugins and subdaemons, bitcoind, the mints and this
process). The desk's phase times come from its Prometheus metrics (``hashpool_desk_seconds``).

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

from procstat import thread_seconds

from hashpool_cln.regtest.layout import free_port

ROOT = Path(__file__).resolve().parent.parent
MISSING = [b for b in ("lightningd", "bitcoind") if shutil.which(b) is None]
ARGS_ENV = "HASHPOOL_BENCH_REALNODE"
INVOICE_MSAT = 1_000_000  # 1,000 sat, fixed
UNITS = 2_048  # one token: 2,048 units at 1,000 msat each, in one proof or in 64 of 32
MSAT_PER_UNIT = 1_000
QUIET = 0.3  # seconds for the nodes to finish a payment's commitments (they idle at ~1 ms of CPU a second)
MINT_LIMIT = 1_000  # the reference mint's default inputs (outputs) per request; larger tokens need it lifted


def main(argv: list[str]) -> None:
    if argv[:1] == [MINT_PROCESS]:
        serve_mint(Path(argv[1]), json.loads(argv[2]))
        return
    parser = argparse.ArgumentParser(prog="bench_realnode", description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10, help="interleaved samples per token size and arm")
    parser.add_argument("--sizes", default="1,64", help="proofs per token, comma separated")
    parser.add_argument("--concurrency", type=int, default=16, help="callers at once in the throughput run")
    parser.add_argument("--before", default=None, help="another checkout whose plugin is measured beside this one")
    parser.add_argument("--settle-batch", type=int, default=0,
                        help="also measure this checkout with hashpool-settle-batch set to this many seconds")
    parser.add_argument("--rounds", type=int, default=3,
                        help="redemptions per caller in the throughput run (each caller takes them one by one)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="throughput runs of every arm, taken in turns; ratios are medians over them")
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


# --- the mint, in a process of its own ---------------------------------------------------------------------

MINT_PROCESS = "--mint-process"


def serve_mint(data_dir: Path, limits: dict[str, int]) -> None:
    """The reference mint's process: it says where it serves, then answers token requests (one JSON line each)
    until stdin closes."""
    sys.path.insert(0, str(ROOT / "tests"))
    from support.pluginharness import ThreadedMint

    mint = ThreadedMint(data_dir, **limits).start()
    try:
        print(json.dumps({"url": mint.url, "desk_key": mint.desk_key, "pool": mint.pool}), flush=True)
        for line in sys.stdin:
            request = json.loads(line)
            if "proof_amounts" in request:
                tokens = mint.tokens_settled(request["proof_amounts"], request["msat_per_unit"])
            else:
                tokens = mint.issue_settled(request["amounts"], request["msat_per_unit"])
            print(json.dumps(tokens), flush=True)
    finally:
        mint.stop()


class MintProcess:
    """The reference mint served from a process of its own, as a pool runs it: its work is not the benchmark's
    (pyln-testing's threads read every node's log in this process), and its CPU is its own."""

    def __init__(self, data_dir: Path, checkout: Path | None = None, **limits: int) -> None:
        env = dict(os.environ)
        if checkout is not None:
            env["PYTHONPATH"] = str(checkout)  # that checkout's mint (this one's test support drives it)
        self.proc = subprocess.Popen([sys.executable, __file__, MINT_PROCESS, str(data_dir), json.dumps(limits)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None and self.proc.stdin is not None
        ready = json.loads(self.proc.stdout.readline() or "null")
        if not ready:
            raise RuntimeError("the mint did not start")
        self.url, self.desk_key, self.pool = ready["url"], ready["desk_key"], ready["pool"]
        self.pid = self.proc.pid

    def _ask(self, request: dict) -> list[str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def issue_settled(self, amounts: list[int], msat_per_unit: int) -> list[str]:
        return self._ask({"amounts": amounts, "msat_per_unit": msat_per_unit})

    def tokens_settled(self, proof_amounts: list[list[int]], msat_per_unit: int) -> list[str]:
        return self._ask({"proof_amounts": proof_amounts, "msat_per_unit": msat_per_unit})

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


# --- figures ------------------------------------------------------------------------------------------------


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def tree_cpu(labels: dict[int, str] | None = None) -> dict[str, float]:
    """CPU seconds by process name of this process (with its reaped children) and of every live process below it
    (lightningd, its subdaemons and plugins, bitcoind, the mint); ``labels`` names processes by pid instead."""
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
        try:
            own = thread_seconds(entry)
        except OSError:  # it ended meanwhile
            continue
        if int(entry) == os.getpid():
            own += (int(fields[13]) + int(fields[14])) / tick
            name = "bench"
        name = (labels or {}).get(int(entry), name)
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


def by_process(seconds: dict[str, float]) -> str:
    """CPU ms by process name, busiest first, those over 1 ms."""
    busy = sorted(((v, k) for k, v in seconds.items() if v >= 0.001), reverse=True)
    return ", ".join(f"{k} {v * 1e3:.1f}" for v, k in busy)


def _metric(port: int, prefix: str, label: str) -> dict[str, float]:
    """The desk's ``prefix`` series from its metrics, by the value of ``label``."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(prefix + "{"):
            name, value = line.rsplit(" ", 1)
            out[name.split(f'{label}="', 1)[1].split('"', 1)[0]] = float(value)
    return out


def desk_seconds(port: int) -> dict[str, float]:
    """The desk's summed work by kind (crypto, mint, node, sqlite), from its metrics."""
    return _metric(port, "hashpool_desk_seconds_total", "category")


def phase_seconds(port: int) -> dict[str, tuple[float, float]]:
    """Each phase's (summed seconds, count), from the desk's ``hashpool_phase_seconds`` histogram."""
    sums = _metric(port, "hashpool_phase_seconds_sum", "phase")
    counts = _metric(port, "hashpool_phase_seconds_count", "phase")
    return {phase: (sums[phase], counts.get(phase, 0.0)) for phase in sums}


class KeptConnection:
    """One connection to a node's RPC socket carrying call after call, as the desk's client keeps its own."""

    def __init__(self, node) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(os.path.join(node.daemon.lightning_dir, "regtest", "lightning-rpc"))
        self.buf = ""
        self.decoder = json.JSONDecoder()

    def call(self, method: str, params: dict) -> dict:
        self.sock.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode())
        while True:
            self.buf = self.buf.lstrip()
            try:
                answer, end = self.decoder.raw_decode(self.buf)
            except ValueError:
                self.buf += self.sock.recv(65536).decode()
                continue
            self.buf = self.buf[end:]
            if "result" not in answer:
                raise RuntimeError(f"{method}: {answer}")
            return answer["result"]


def call_costs(payer, payee, rounds: int = 300) -> dict[str, float]:
    """lightningd's CPU per call of what a redemption asks of it besides the payment (seconds): the desk's node
    calls on the payer, a call to the desk's plugin, and a custom notification (sent by ``plugins/notifier.py``
    on the payee)."""
    payer_rpc, payee_rpc = KeptConnection(payer), KeptConnection(payee)
    bolt11 = payee.rpc.invoice(INVOICE_MSAT, "bench-call-costs", "bench")["bolt11"]
    unknown = "00" * 32
    calls = {
        "decode": (payer_rpc, payer, "decode", {"string": bolt11}, 1),
        "listsendpays": (payer_rpc, payer, "listsendpays", {"payment_hash": unknown}, 1),
        "hashpool-info (a call to the plugin)": (payer_rpc, payer, "hashpool-info", {}, 1),
        "notify-burst 0": (payee_rpc, payee, "notify-burst", {"n": 0}, 1),
        "a custom notification": (payee_rpc, payee, "notify-burst", {"n": 10}, 10),
    }
    out: dict[str, float] = {}
    for name, (rpc, node, method, params, per_call) in calls.items():
        rpc.call(method, params)
        pid = node.daemon.proc.pid
        before = thread_seconds(pid)
        for _ in range(rounds):
            rpc.call(method, params)
        out[name] = (thread_seconds(pid) - before) / rounds / per_call
    # A notification's own cost: a burst's less the call that carries it, per notification.
    out["a custom notification"] -= out.pop("notify-burst 0") / 10
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


# --- the session ---------------------------------------------------------------------------------------------

if not MISSING and os.environ.get(ARGS_ENV):
    os.environ.setdefault("RUST", "0")  # a lightningd built without cln-grpc refuses --grpc-port
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
    sys.path.insert(0, str(ROOT / "tests"))

    import pytest
    from pyln.testing.fixtures import *  # noqa: F403  (bitcoind, node_factory, ...)

    @pytest.fixture
    def jsonschemas() -> dict:
        return {}  # the bench checks no schemas: the test suite does

    def _payer(node_factory, mint: MintProcess, checkout: Path | None, port: int, **extra: object):
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
        mints = {"": MintProcess(tmp_path / "mint", **limits)}
        try:
            if args["before"]:
                mints["before"] = MintProcess(tmp_path / "mint-before", Path(args["before"]).resolve(), **limits)
            _run(args, node_factory, mints)
        finally:
            for mint in mints.values():
                mint.stop()

    def _run(args: dict, node_factory, mints: dict[str, MintProcess]) -> None:
        report = open(args["report"], "w")

        def emit(line: str) -> None:
            report.write(line + "\n")
            report.flush()

        try:
            _measure(args, node_factory, mints, emit)
        finally:
            report.close()

    def _measure(args: dict, node_factory, mints: dict[str, MintProcess], print) -> None:
        payee = node_factory.get_node(options={"plugin": str(ROOT / "bench" / "plugins" / "notifier.py")})
        mint = mints[""]
        arms: dict[str, tuple] = {}
        after_port = free_port()
        arms["redeem"] = (_payer(node_factory, mint, None, after_port), after_port)
        if args["settle_batch"]:
            port = free_port()
            arms["redeem-batch"] = (_payer(node_factory, mint, None, port,
                                           **{"hashpool-settle-batch": args["settle_batch"]}), port)
        if args["before"]:
            port = free_port()
            arms["redeem-before"] = (_payer(node_factory, mints["before"], Path(args["before"]).resolve(), port), port)
        for node, _ in arms.values():
            node_factory.join_nodes([node, payee], fundamount=10**7, wait_for_announce=True)
        plain = arms["redeem"][0]
        labels = {m.pid: f"mint ({name})" if name else "mint" for name, m in mints.items()}
        labels.update({plugin_pid(node): f"plugin ({name})" for name, (node, _) in arms.items()})
        mint_of = {name: mints["before"] if name == "redeem-before" else mint for name in arms}
        sizes = [int(s) for s in args["sizes"].split(",")]
        n = args["samples"]
        counter = iter(range(10**9))

        def invoice() -> str:
            return payee.rpc.invoice(INVOICE_MSAT, f"bench-{next(counter)}", "bench")["bolt11"]

        def tokens(size: int, count: int, mint: MintProcess = mint) -> list[str]:
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

        for name, (node, _) in arms.items():
            redeem(node, tokens(1, 1, mint_of[name])[0])  # warm: each plugin's first look at its mint
        print("\nlightningd's CPU per call, one connection kept (what a redemption asks besides its payment):")
        print("  " + ", ".join(f"{name} {seconds * 1e3:.3f} ms" for name, seconds in call_costs(plain, payee).items()))
        print("\n| tokens | arm | median ms | p90 ms | ÷ xpay median | desk overhead ms (median − xpay) |")
        print("|---|---|---|---|---|---|")
        # CPU of the one-at-a-time samples, by arm and process: what a payment costs with nothing beside it.
        alone: dict[int, dict[str, dict[str, float]]] = {}
        phases_alone: dict[int, dict[str, dict[str, float]]] = {}
        for size in sizes:
            phases_before = {name: phase_seconds(port) for name, (_, port) in arms.items()}
            pool = {name: tokens(size, n, mint_of[name]) for name in arms}
            times: dict[str, list[float]] = {name: [] for name in [*arms, "xpay"]}
            alone[size] = {name: {} for name in times}

            def sample(name: str, call, times=times, cpu=alone[size]) -> None:
                before = tree_cpu(labels)
                times[name].append(call())
                # The channel's commitment dance goes on after the payer has the preimage: read the CPU once it
                # is over, or a short call would leave its tail to the next sample.
                time.sleep(QUIET)
                for k, v in tree_cpu(labels).items():
                    cpu[name][k] = cpu[name].get(k, 0.0) + (v - before.get(k, 0.0)) / n

            for i in range(n):
                for name, (node, _) in arms.items():
                    sample(name, lambda node=node, token=pool[name][i]: redeem(node, token))
                sample("xpay", xpay)
            phases_alone[size] = {}
            for name, (_, port) in arms.items():
                means = phases_alone[size][name] = {}
                for phase, (total_s, count) in phase_seconds(port).items():
                    total_s0, count0 = phases_before[name].get(phase, (0.0, 0.0))
                    if count > count0:
                        means[phase] = (total_s - total_s0) / (count - count0)
            base = statistics.median(times["xpay"])
            for name, values in times.items():
                med = statistics.median(values)
                print(f"| {size} proof{'s' if size > 1 else ''} | {name} | {med * 1e3:.0f} | {p90(values) * 1e3:.0f}"
                      f" | {med / base:.2f} | {(med - base) * 1e3:.0f} |")

        print("\nCPU ms per payment one at a time, by process (those over 1 ms; bench includes reading /proc):")
        for size, arms_cpu in alone.items():
            for name, kinds in arms_cpu.items():
                print(f"  {size} proof{'s' if size > 1 else ''}, {name}: {sum(kinds.values()) * 1e3:.0f} in all; "
                      + by_process(kinds))

        print("\nthe desk's phases one at a time, mean ms (hashpool_phase_seconds: intake = the call until the "
              "redemption is written, then swap, pay, settle; the move to paying is in none; a desk from before "
              "writing and pricing shared a commit also has quote):")
        for size, arms_phases in phases_alone.items():
            for name, means in arms_phases.items():
                order = [p for p in ("intake", "quote", "swap", "pay", "settle") if p in means]
                print(f"  {size} proof{'s' if size > 1 else ''}, {name}: "
                      + ", ".join(f"{p} {means[p] * 1e3:.1f}" for p in order))

        c, rounds, repeats = args["concurrency"], args["rounds"], args["repeats"]
        total = c * rounds
        names = [*arms, "xpay"]
        # Each repeat runs every arm once, one after another; a ratio is taken within a repeat, so that a slower
        # stretch of the shared machine falls on both of its sides, and the median over repeats is reported. The
        # order turns by one arm each repeat: no arm always runs first, or always right after the same other one.
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
        work: dict[str, dict[str, float]] = {name: {} for name in arms}
        by_name: dict[str, dict[str, float]] = {name: {} for name in names}
        for repeat in range(repeats):
            for name in names[repeat % len(names):] + names[:repeat % len(names)]:
                batch = tokens(1, total, mint_of[name]) if name != "xpay" else [None] * total
                node, port = arms.get(name, (plain, None))
                seconds_before = desk_seconds(port) if port else {}
                spy = None
                if args["py_spy"] and port and repeat == 0:
                    spy = record_plugin(node, Path(args["py_spy"]) / f"{name}.txt")
                cpu0, t0 = tree_cpu(labels), time.perf_counter()
                with concurrent.futures.ThreadPoolExecutor(c) as pool_:
                    if name == "xpay":
                        list(pool_.map(lambda _t: xpay(), batch))
                    else:
                        list(pool_.map(lambda t, node=node: redeem(node, t), batch))
                wall = time.perf_counter() - t0
                if name == "redeem-batch":
                    settled_all(node)  # the settlements the calls left for later are part of their cost
                time.sleep(QUIET)
                cpu_after = tree_cpu(labels)
                for k, v in cpu_after.items():
                    by_name[name][k] = by_name[name].get(k, 0.0) + (v - cpu0.get(k, 0.0)) / total / repeats
                cpu = sum(cpu_after.values()) - sum(cpu0.values())
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    spy.wait(30)
                runs[name].append((total / wall, cpu / total))
                if port:
                    after = desk_seconds(port)
                    for k in after:
                        spent = after[k] - seconds_before.get(k, 0.0)
                        work[name][k] = work[name].get(k, 0.0) + spent / total / repeats
        print(f"\n| {c} callers × {rounds}, 1-proof tokens, {repeats} repeats (medians) | payments/s | ÷ xpay "
              f"| CPU ms per payment | ÷ xpay CPU | ÷ xpay per repeat (payments/s; CPU) |")
        print("|---|---|---|---|---|---|")
        for name in names:
            rates = [r for r, _ in runs[name]]
            cpus = [u for _, u in runs[name]]
            rate_ratios = [r / x for (r, _), (x, _) in zip(runs[name], runs["xpay"])]
            cpu_ratios = [u / x for (_, u), (_, x) in zip(runs[name], runs["xpay"])]
            each = ", ".join(f"{a:.2f}; {b:.2f}" for a, b in zip(rate_ratios, cpu_ratios))
            print(f"| {name} | {statistics.median(rates):.1f} | {statistics.median(rate_ratios):.2f} "
                  f"| {statistics.median(cpus) * 1e3:.0f} | {statistics.median(cpu_ratios):.2f} | {each} |")
        print("\nCPU ms per payment under concurrency, by process (those over 1 ms; mean over the repeats):")
        for name, kinds in by_name.items():
            print(f"  {name}: " + by_process(kinds))
        print("\nthe desk's summed work per redemption under concurrency, ms (hashpool_desk_seconds):")
        for name, kinds in work.items():
            print(f"  {name}: " + ", ".join(f"{k} {v * 1e3:.1f}" for k, v in sorted(kinds.items())))

if __name__ == "__main__":
    main(sys.argv[1:])
