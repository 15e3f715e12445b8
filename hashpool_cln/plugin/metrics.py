"""The desk's Prometheus metrics, served in the text exposition format on ``hashpool-metrics`` (off by default).

Two sources. The ledger, read at each scrape through ``Desk.info``: redemptions by state, payments in flight,
custody held per unit, totals paid (these survive restarts). The desk's events, counted as they happen in this
process: outcomes and error codes, phase latencies (the time between the committed moves that bound a phase),
recovery runs and the moves they made, and a probe of the mint every ``PROBE_INTERVAL`` seconds.

Labels carry only states, outcomes, phases, error codes, timing categories and ehash units: never an id, a token,
a payment hash or anything else a caller chose.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from hashpool_cln.desk.states import State
from hashpool_cln.plugin.options import METRICS as OPTION
from hashpool_cln.plugin.options import METRICS_PUBLIC as PUBLIC_OPTION
from hashpool_cln.plugin.options import OptionError

log = logging.getLogger("hashpool.plugin.metrics")

PATH = "/metrics"
PROBE_INTERVAL = 15.0
PROBE_TIMEOUT = 5.0
WAIT_FOR_DESK = 0.5
PHASES = ("intake", "swap", "pay", "settle")
# Seconds: from a sqlite commit to a payment that waits out an HTLC held for minutes.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
# Phases are timed per redemption between its moves; a redemption that never moves again (held for the
# operator, say) must not keep its entry for ever.
MAX_TRACKED = 10_000
# The move that ends each phase, by the state it leaves: (state left, state reached) -> phase.
_PHASE_OF = {
    (State.QUOTED, State.CUSTODY): "swap",
    (State.PAYING, State.PAID): "pay",
    (State.PAYING, State.REFUNDED): "pay",
    (State.PAID, State.SETTLED): "settle",
}
_OUTCOMES = frozenset({State.PAID, State.REFUNDED, State.REJECTED, State.SETTLED})

# When the current task's call began (for the intake phase), and whether it is a recovery run.
_call_started: contextvars.ContextVar[float | None] = contextvars.ContextVar("hashpool_call_started", default=None)
_recovering: contextvars.ContextVar[bool] = contextvars.ContextVar("hashpool_recovering", default=False)


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def url(self, port: int | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port if port is None else port}{PATH}"


def parse_address(value: Any, public: bool = False) -> Address:
    """``host:port`` (``[v6]:port`` for IPv6; port 0 picks a free one). A host that is not loopback is refused
    unless ``public``: the metrics tell anyone who can reach them how much the desk holds and pays."""
    if not isinstance(value, str) or ":" not in value:
        raise OptionError(f"{OPTION} must be host:port, got {value!r}")
    host, _, port_text = value.strip().rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise OptionError(f"{OPTION} must be host:port with a port from 0 to 65535, got {value!r}")
    if not public and not _is_loopback(host):
        raise OptionError(f"{OPTION}: {host} is not a loopback address; set {PUBLIC_OPTION}=true to serve "
                          "metrics beyond this machine")
    return Address(host, int(port_text))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise OptionError(f"{name} must be true or false, got {value!r}")


def resolve(options: Mapping[str, Any]) -> Address | None:
    """The metrics address from the plugin's options; None when metrics are off."""
    value = options.get(OPTION)
    if value is None or value == "":
        return None
    public = options.get(PUBLIC_OPTION)
    return parse_address(value, parse_flag(PUBLIC_OPTION, public) if public is not None else False)


def call_started() -> None:
    """Mark the start of a method call in the current task: the intake phase runs from here to the redemption's
    first commit."""
    _call_started.set(time.perf_counter())


class DeskMetrics:
    """Every metric of one plugin process, on a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.outcomes = Counter("hashpool_redemption_outcomes", "Redemptions reaching paid, settled, refunded or "
                                "rejected since the plugin started", ["outcome"], registry=r)
        self.errors = Counter("hashpool_redemption_errors", "Redemptions refunded or rejected, by error code",
                              ["code"], registry=r)
        self.phases = Histogram("hashpool_phase_seconds", "Time from the move that starts a phase of a "
                                "redemption to the one that ends it", ["phase"], buckets=BUCKETS, registry=r)
        self.mint_up = Gauge("hashpool_mint_up", "1 when the mint answered the last probe (GET /v1/info)",
                             registry=r)
        self.mint_latency = Histogram("hashpool_mint_probe_seconds", "Answer time of the mint's /v1/info probe",
                                      buckets=BUCKETS, registry=r)
        self.recovery_runs = Counter("hashpool_recovery_runs", "Reconciliations of unfinished redemptions (the "
                                     "one at start, then the periodic ones)", registry=r)
        self.recovery_failures = Counter("hashpool_recovery_failures", "Reconciliation runs that ended in an "
                                         "exception", registry=r)
        self.recovery_moves = Counter("hashpool_recovery_moves", "Moves made by reconciliation runs, by the "
                                      "state reached", ["state"], registry=r)
        self.recovery_seconds = Histogram("hashpool_recovery_seconds", "Duration of reconciliation runs",
                                          buckets=BUCKETS, registry=r)
        for phase in PHASES:
            self.phases.labels(phase)
        for outcome in _OUTCOMES:
            self.outcomes.labels(outcome.value)
        self._entered: OrderedDict[str, tuple[State, float]] = OrderedDict()
        self.ledger = LedgerCollector()
        r.register(self.ledger)

    # --- the desk's events ---

    def on_event(self, redemption_id: str, old: str, new: str, fields: Mapping[str, Any]) -> None:
        """``Desk.on_event`` callback: count the move and time the phase it ends."""
        now = time.perf_counter()
        state = State(new)
        if not old:
            started = _call_started.get()
            if started is not None:
                self.phases.labels("intake").observe(now - started)
        else:
            entered = self._entered.pop(redemption_id, None)
            phase = _PHASE_OF.get((State(old), state))
            if entered is not None and phase is not None and entered[0] is State(old):
                self.phases.labels(phase).observe(now - entered[1])
        if state not in (State.SETTLED, State.REJECTED, State.REFUNDED):
            self._entered[redemption_id] = (state, now)
            while len(self._entered) > MAX_TRACKED:
                self._entered.popitem(last=False)
        if state in _OUTCOMES:
            self.outcomes.labels(state.value).inc()
        error = fields.get("error")
        if state in (State.REFUNDED, State.REJECTED) and isinstance(error, Mapping):
            self.errors.labels(str(int(error.get("code") or 0))).inc()
        if _recovering.get():
            self.recovery_moves.labels(state.value).inc()

    @contextlib.asynccontextmanager
    async def recovery(self) -> AsyncIterator[None]:
        """Around a reconciliation run: counts it, times it, and attributes the moves made inside to it."""
        token = _recovering.set(True)
        started = time.perf_counter()
        self.recovery_runs.inc()
        try:
            yield
        except asyncio.CancelledError:
            raise
        except Exception:
            self.recovery_failures.inc()
            raise
        finally:
            self.recovery_seconds.observe(time.perf_counter() - started)
            _recovering.reset(token)

    # --- the mint ---

    async def probe_mint(self, mint: Any) -> None:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(mint.info(), PROBE_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except Exception:  # any failure is "not reachable now"; the reason is logged by the desk's own calls
            self.mint_up.set(0)
            return
        self.mint_latency.observe(time.perf_counter() - started)
        self.mint_up.set(1)

    async def probe_forever(self, desk_of: Callable[[], Any]) -> None:
        """Probe the mint as soon as the desk runs, then every ``PROBE_INTERVAL`` seconds."""
        while True:
            desk = desk_of()
            if desk is None:
                await asyncio.sleep(WAIT_FOR_DESK)
                continue
            await self.probe_mint(desk.mint)
            await asyncio.sleep(PROBE_INTERVAL)

    # --- exposition ---

    async def render(self, desk: Any) -> bytes:
        """The text exposition, with the ledger's figures read now (``desk`` None: the desk is not running)."""
        self.ledger.update(await _ledger(desk))
        return generate_latest(self.registry)


async def _ledger(desk: Any) -> dict[str, Any] | None:
    if desk is None:
        return None
    try:
        info = await desk.info()
    except asyncio.CancelledError:
        raise
    except Exception:  # closing, or the ledger unreadable: reported as the desk being down
        return None
    return {"info": info, "seconds": dict(desk.timings.seconds)}


class LedgerCollector:
    """The figures read from the ledger at each scrape (a custom collector: label sets come and go)."""

    def __init__(self) -> None:
        self._snapshot: dict[str, Any] | None = None

    def update(self, snapshot: dict[str, Any] | None) -> None:
        self._snapshot = snapshot

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator[Any]:
        snap = self._snapshot
        up = GaugeMetricFamily("hashpool_desk_up", "1 when the desk runs and its ledger answers")
        up.add_metric([], 0 if snap is None else 1)
        yield up
        if snap is None:
            return
        info = snap["info"]
        by_state = GaugeMetricFamily("hashpool_redemptions", "Redemptions in the ledger, by state", labels=["state"])
        for state in State:
            by_state.add_metric([state.value], int(info["redemptions"].get(state.value, 0)))
        yield by_state
        in_flight = GaugeMetricFamily("hashpool_payments_in_flight", "Redemptions whose payment may be under way")
        in_flight.add_metric([], int(info["in_flight"]))
        yield in_flight
        held = {name: GaugeMetricFamily(f"hashpool_custody_{name}", f"Ehash held by the desk (bought, not settled "
                                        f"with the mint): {what}, per unit", labels=["unit"])
                for name, what in (("units", "units"), ("proofs", "proofs"), ("redemptions", "redemptions"))}
        for unit, figures in sorted(info["custody"].items()):
            for name, family in held.items():
                family.add_metric([unit], int(figures[name]))
        yield from held.values()
        paid = info["paid"]
        for name, key, what in (("paid_redemptions", "redemptions", "Redemptions that paid (paid or settled)"),
                                ("paid_msat", "amount_msat", "Msat delivered to payees by redemptions that paid"),
                                ("paid_fees_msat", "fee_msat", "Routing fees in msat of redemptions that paid"),
                                ("paid_value_msat", "value_msat", "Mint-quoted msat value of the ehash bought by "
                                                                  "redemptions that paid")):
            family = CounterMetricFamily(f"hashpool_{name}", what)
            family.add_metric([], int(paid[key]))
            yield family
        seconds = CounterMetricFamily("hashpool_desk_seconds", "Seconds the desk spent per kind of work (its "
                                      "own crypto and ledger, waits on the mint and the node)", labels=["category"])
        for category, value in sorted(snap["seconds"].items()):
            seconds.add_metric([category], float(value))
        yield seconds


class MetricsServer:
    """The HTTP endpoint (aiohttp on the desk's loop, so a scrape reads the ledger without crossing threads)."""

    def __init__(self, metrics: DeskMetrics, desk_of: Callable[[], Any], address: Address) -> None:
        self.metrics, self.desk_of, self.address = metrics, desk_of, address
        self.port: int | None = None
        self._runner: Any = None
        self._probe: asyncio.Task | None = None

    async def start(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_get(PATH, self._scrape)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.address.host, self.address.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        self._probe = asyncio.get_running_loop().create_task(self.metrics.probe_forever(self.desk_of))
        log.info("metrics served on %s", self.address.url(self.port))

    async def _scrape(self, request: Any) -> Any:
        from aiohttp import web

        body = await self.metrics.render(self.desk_of())
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
