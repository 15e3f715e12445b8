"""The desk as the plugin hosts it: built at ``init``, recovered before any work, closed at ``shutdown``.

Threads: pyln's stdin loop calls ``init``, ``on_option_change``, ``call`` and ``shutdown``; everything that
touches the desk runs on the one asyncio loop of ``LoopThread``. Methods called while recovery runs wait for it;
if the desk cannot start (say the database is unreadable) they answer NOT_READY and the next call tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from hashpool_cln.desk import files
from hashpool_cln.desk.errors import Code, DeskError
from hashpool_cln.plugin import metrics, options
from hashpool_cln.plugin.bridge import LoopThread, serve
from hashpool_cln.plugin.methods import MethodSpec
from hashpool_cln.plugin.params import bind

log = logging.getLogger("hashpool.plugin")

NOTIFICATION = "hashpool_redemption"
# The only fields a notification carries: no token, secret or preimage ever leaves through one.
NOTIFICATION_FIELDS = ("id", "state", "old_state", "unit", "amount", "amount_msat", "payment_hash")
# lightningd kills a plugin 30 s after asking it to stop; requests still running by then are answered
# SHUTTING_DOWN (their redemptions are persisted and recovery finishes them at the next start).
SHUTDOWN_GRACE = 20.0
CLOSE_TIMEOUT = 8.0
# How often unfinished redemptions are reconciled with the node and the mint: often while a payment is in
# flight (its outcome arrives only through listpays once the call that started it is gone), rarely otherwise
# (redemptions waiting for the mint to come back, or for settlement).
WATCH_PAYING = 3.0
WATCH_IDLE = 60.0


class Service:
    def __init__(self, plugin: Any) -> None:
        self.plugin = plugin
        self.settings: options.Settings | None = None
        self.rpc_path: str | None = None
        self.loop: LoopThread | None = None
        self.desk: Any = None
        self._started = False
        self._closing = False
        self._start_lock: asyncio.Lock | None = None
        self._tasks: set[asyncio.Task] = set()
        self._watcher: asyncio.Task | None = None
        self._resources: contextlib.AsyncExitStack | None = None
        self.metrics = metrics.DeskMetrics()
        self.metrics_server: metrics.MetricsServer | None = None

    # --- lifecycle (pyln's thread) ---

    def init(self, opts: Mapping[str, Any], configuration: Mapping[str, Any]) -> dict[str, Any] | None:
        """Check the options and start recovery in the background; ``{"disable": why}`` on bad options."""
        lightning_dir = str(configuration["lightning-dir"])
        try:
            self.settings = options.resolve(opts, lightning_dir)
            metrics_address = metrics.resolve(opts)
            files.private_dir(self.settings.db_path.parent)
            files.private_dir(self.settings.seed_path.parent)
        except (options.OptionError, files.FileRefused, OSError) as exc:
            log.warning("hashpool-redeem disabled: %s", _describe(exc))
            return {"disable": _describe(exc)}
        self.rpc_path = os.path.join(lightning_dir, str(configuration["rpc-file"]))
        self.loop = LoopThread()
        self.loop.start()
        self.loop.submit(self._start_quietly())
        if metrics_address is not None:
            self.loop.submit(self._serve_metrics(metrics_address))
        return None

    def shutdown(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop taking work, let running calls finish for ``grace`` seconds, then close the desk and the loop.
        Once only: later calls return at once."""
        if self._closing:
            return
        self._closing = True
        if self.loop is None:
            return
        deadline = time.monotonic() + grace
        while self._tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            self.loop.call(self._close(), CLOSE_TIMEOUT)
        except Exception as exc:
            log.warning("closing the desk failed: %s", type(exc).__name__)
        self.loop.stop()

    def setconfig(self, request: Any, config: Any, val: Any) -> None:
        """lightningd's ``setconfig`` for our dynamic options (limits and fee caps): check, store, apply.

        Answered here rather than through pyln's ``on_change``, whose refusals carry a Python traceback.
        """
        from hashpool_cln.plugin.bridge import ParamError, answer

        try:
            if not isinstance(config, str) or config not in options.SPEC_BY_NAME:
                raise ParamError(f"unknown option {config!r}")
            number = options.parse_dynamic(config, val)
        except (ParamError, options.OptionError) as exc:
            answer(request, error=ParamError(str(exc)))
            return
        self.plugin.options[config].value = number
        if self.settings is not None:
            self.settings = dataclasses.replace(self.settings, **{options.SETTING_OF[config]: number})
        if self.loop is not None:
            try:
                self.loop.call(self._apply_settings(), CLOSE_TIMEOUT)
            except Exception as exc:
                answer(request, error=exc)
                return
        log.info("%s set to %d", config, number)
        answer(request, {})

    # --- requests ---

    def call(self, request: Any, spec: MethodSpec, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Answer ``request`` for method ``spec`` from the loop (never raises into pyln)."""
        if self.loop is None:  # before init: lightningd does not route calls then, but be precise
            from hashpool_cln.plugin.bridge import answer

            answer(request, error=DeskError(Code.NOT_READY, "the plugin is not initialised"))
            return

        async def work() -> Any:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            try:
                metrics.call_started()
                bound = bind(spec.params, args, kwargs)
                desk = await self._ready()
                return omit_none(await spec.run(desk, bound))
            finally:
                self._tasks.discard(task)

        serve(self.loop, request, work)

    # --- on the loop ---

    async def _ready(self) -> Any:
        if self._closing:
            raise DeskError(Code.SHUTTING_DOWN, "the plugin is stopping")
        if self._started:
            return self.desk
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if not self._started:
                try:
                    await self._start()
                except Exception as exc:
                    raise DeskError(Code.NOT_READY, f"the desk could not start: {_describe(exc)}") from None
        return self.desk

    async def _start_quietly(self) -> None:
        try:
            await self._ready()
        except DeskError as exc:
            log.warning("%s; methods will retry", exc.message)

    async def _start(self) -> None:
        from hashpool_cln.desk.desk import Desk
        from hashpool_cln.lightning.clnrpc import ClnNode
        from hashpool_cln.mintclient import MintClient

        assert self.settings is not None and self.rpc_path is not None
        s = self.settings
        async with contextlib.AsyncExitStack() as stack:
            mint = await stack.enter_async_context(MintClient(s.mint_url, desk_key=s.mint_key))
            desk = Desk(self._desk_config(), ClnNode(self.rpc_path), mint)
            desk.on_event(self._notify)
            desk.on_event(self.metrics.on_event)
            stack.push_async_callback(desk.close)  # also when start fails halfway (the ledger may be open)
            started = time.monotonic()
            async with self.metrics.recovery():
                await desk.start()
            self._resources = stack.pop_all()
        self.desk = desk
        self._started = True
        log.info("desk ready (recovery took %.1f s)", time.monotonic() - started)
        self._watcher = asyncio.get_running_loop().create_task(self._watch(desk))

    async def _watch(self, desk: Any) -> None:
        """Reconcile unfinished redemptions until the desk closes.

        A payment whose call was lost (the plugin restarted, the node's answer never came) stays ``paying``
        until the node's records say how it ended; nothing else would look again.
        """
        from hashpool_cln.desk.recovery import reconcile

        idle = unsettled = 0.0
        batch = self.settings.settle_batch if self.settings is not None else 0
        while True:
            # Short naps, looking each time: a payment put in flight while the desk was idle is looked at within
            # WATCH_PAYING, not after the rest of an idle wait.
            await asyncio.sleep(WATCH_PAYING)
            idle += WATCH_PAYING
            unsettled += WATCH_PAYING
            if batch and unsettled >= batch:
                unsettled = 0.0
                await self._settle_batch(desk)
            if not desk.in_flight() and idle < WATCH_IDLE:
                continue
            idle = 0.0
            try:
                async with self.metrics.recovery():
                    await reconcile(desk)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next round tries again; the ledger is unchanged by a failed one
                log.warning("reconciling redemptions failed: %s", _describe(exc))

    async def _settle_batch(self, desk: Any) -> None:
        """Hand every paid redemption's units to the mint (``hashpool-settle-batch``); what waits stays paid."""
        try:
            await desk.settle()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("settling paid redemptions failed: %s", _describe(exc))

    def _desk_config(self) -> Any:
        from hashpool_cln.desk.config import DeskConfig

        s = self.settings
        assert s is not None
        return DeskConfig(mint_url=s.mint_url, mint_key=s.mint_key, db_path=str(s.db_path),
                          seed_path=str(s.seed_path), pools=list(s.pools), max_msat=s.max_msat,
                          maxfee_ppm=s.maxfee_ppm, maxfee_msat=s.maxfee_msat,
                          min_invoice_life=s.min_invoice_life,
                          settle="batch" if s.settle_batch else "immediate")

    async def _apply_settings(self) -> None:
        if self.desk is not None:
            self.desk.config = self._desk_config()

    async def _serve_metrics(self, address: metrics.Address) -> None:
        server = metrics.MetricsServer(self.metrics, lambda: self.desk if self._started else None, address)
        try:
            await server.start()
        except OSError as exc:  # the port is taken, say: the desk runs on without its metrics
            log.warning("metrics not served on %s: %s", address.url(), exc)
            return
        self.metrics_server = server

    async def _close(self) -> None:
        if self.metrics_server is not None:
            await self.metrics_server.close()
            self.metrics_server = None
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        running = [t for t in self._tasks if not t.done()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        if self._resources is not None:
            await self._resources.aclose()  # the desk, then the mint client
            self._resources = None
        self.desk = None
        self._started = False

    def _notify(self, redemption_id: str, old_state: Any, new_state: Any, fields: Mapping[str, Any]) -> None:
        payload = {k: v for k, v in fields.items() if k in NOTIFICATION_FIELDS}
        # The desk names no old state ("") for a redemption's first move; a notification says null.
        payload.update(id=redemption_id, state=str(new_state), old_state=str(old_state) if old_state else None)
        try:
            self.plugin.notify(NOTIFICATION, {NOTIFICATION: payload})
        except OSError as exc:  # lightningd went away; the ledger has the move, the notification is lost
            log.warning("notification for %s not sent: %s", redemption_id, type(exc).__name__)


def omit_none(value: Any) -> Any:
    """``value`` without null members, at any depth: lightningd's own answers leave out what is not known."""
    if isinstance(value, dict):
        return {k: omit_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [omit_none(v) for v in value]
    return value


def _describe(exc: BaseException) -> str:
    """What a caller may read of why the desk cannot start: never a path, a token or a key."""
    if isinstance(exc, OSError):  # its str() names the file; its strerror does not
        return f"{type(exc).__name__}: {exc.strerror or 'cannot use a file'}"
    if isinstance(exc, (DeskError, ValueError, files.FileRefused, options.OptionError)):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__
