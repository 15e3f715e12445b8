"""Runs the real plugin process and talks to it exactly as lightningd v26.06 does.

lightningd starts a plugin with ``LIGHTNINGD_PLUGIN=1`` and ``LIGHTNINGD_VERSION`` set, in the node's network
directory, then speaks JSON-RPC 2.0 over the plugin's stdin/stdout: ``getmanifest`` (with
``allow-deprecated-apis``), ``init`` (``options`` and ``configuration``), commands with string ids, ``setconfig``
for dynamic options, and the ``shutdown`` notification (``params: {"shutdown": {}}``). The plugin answers and
sends ``log`` and custom notifications on its stdout. Shapes follow lightningd/plugin.c and notification.c.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hashpool_cln.cashu.amounts import split_amount
from hashpool_cln.cashu.models import Proof
from hashpool_cln.cashu.tokens import make_token
from support.refmint import InProcessMint, MintHandle, mint_config, start_mint

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "plugin" / "hashpool-redeem.py"
SCHEMAS = ROOT / "doc" / "schemas"
LIGHTNINGD_VERSION = "v26.06"
# What lightningd v26.06 sends as configuration.feature_set for a default node (hex bitfields).
FEATURE_SET = {
    "init": "0800000000000000000000000000000000000000000000000000000000000000000000000000000000000000882aa2a",
    "node": "0800000000000000000000000000000000000000000000000000000000000000000000000000000000000000888aa2a",
    "channel": "",
    "invoice": "02000002024100",
    "bolt11": "02000002024100",
}


@functools.cache
def method_schemas() -> dict[str, Any]:
    """``{method: [request validator, response validator]}`` for our methods, built as pyln-testing builds
    them for lightningd's (it knows CLN's schema types: msat, u64, hash, secret...)."""
    from pyln.testing.fixtures import _load_schema

    return {path.stem: _load_schema(str(path)) for path in sorted(SCHEMAS.glob("hashpool-*.json"))}


def response_schemas() -> dict[str, Any]:
    return {name: pair[1] for name, pair in method_schemas().items()}


class PluginDied(Exception):
    pass


@dataclass
class RpcReply:
    id: str
    result: Any = None
    error: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def ok(self) -> Any:
        if self.error is not None:
            raise AssertionError(f"expected a result, got error {self.error}")
        return self.result


class PluginHarness:
    """One plugin process; ``start()`` → ``getmanifest()`` → ``init()`` → ``call()``… → ``shutdown()``."""

    def __init__(self, lightning_dir: Path, *, rpc_file: str = "lightning-rpc", network: str = "regtest",
                 python: str = sys.executable, plugin: Path = PLUGIN) -> None:
        self.lightning_dir = Path(lightning_dir)
        self.rpc_file = rpc_file
        self.network = network
        self.python = python
        self.plugin = plugin
        self.proc: subprocess.Popen | None = None
        self._ids = itertools.count(1)
        self._replies: dict[str, dict[str, Any]] = {}
        self.notifications: list[dict[str, Any]] = []  # everything the plugin sent that has no id
        self.stdout_raw: list[str] = []  # every message the plugin wrote, verbatim
        self.stderr = b""
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None
        self._eof = False

    # --- process ---

    def start(self) -> PluginHarness:
        env = dict(os.environ)
        env.update(LIGHTNINGD_PLUGIN="1", LIGHTNINGD_VERSION=LIGHTNINGD_VERSION)
        self.lightning_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([self.python, str(self.plugin)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=self.lightning_dir, env=env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        decoder = json.JSONDecoder()
        buf = ""
        while True:
            chunk = self.proc.stdout.read1(65536)  # type: ignore[attr-defined]
            if not chunk:
                break
            buf += chunk.decode()
            while True:
                stripped = buf.lstrip()
                if not stripped:
                    buf = ""
                    break
                try:
                    msg, end = decoder.raw_decode(stripped)
                except json.JSONDecodeError:
                    buf = stripped
                    break
                self.stdout_raw.append(stripped[:end])
                buf = stripped[end:]
                self._dispatch(msg)
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr += line

    def _dispatch(self, msg: dict[str, Any]) -> None:
        assert msg.get("jsonrpc") == "2.0", msg  # lightningd kills plugins that write anything else
        with self._cond:
            if "id" in msg and ("result" in msg or "error" in msg):
                self._replies[str(msg["id"])] = msg
            else:
                self.notifications.append(msg)
            self._cond.notify_all()

    def _send(self, obj: dict[str, Any]) -> None:
        self.send_raw(json.dumps(obj).encode())

    def send_raw(self, message: bytes) -> None:
        """Write one message exactly as given (then the blank line that ends every message)."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(message + b"\n\n")
        self.proc.stdin.flush()

    def has_reply(self, req_id: str) -> bool:
        with self._cond:
            return req_id in self._replies

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as when the node's host loses power; nothing gets to clean up."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # type: ignore[union-attr]
                self.proc.wait(5)
            except (subprocess.TimeoutExpired, OSError):
                self.kill()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()

    # --- protocol ---

    def send(self, method: str, params: Any, *, id_prefix: str = "cli") -> str:
        """Send a request without waiting; returns its id (see ``reply``)."""
        req_id = f"{id_prefix}:{method}#{next(self._ids)}"
        if id_prefix != "cln":  # a command relayed by lightningd carries the caller's id and lightningd's
            req_id += f"/cln:{method}#{next(self._ids)}"
        self._send({"jsonrpc": "2.0", "id": req_id, "method": method, "params": params})
        return req_id

    def reply(self, req_id: str, timeout: float = 30.0) -> RpcReply:
        msg = self.wait_for(lambda: self._replies.get(req_id), timeout, f"reply to {req_id}")
        return RpcReply(id=req_id, result=msg.get("result"), error=msg.get("error"), raw=msg)

    def request(self, method: str, params: Any, *, id_prefix: str = "cli", timeout: float = 30.0) -> RpcReply:
        return self.reply(self.send(method, params, id_prefix=id_prefix), timeout)

    def call(self, method: str, params: Any = None, *, timeout: float = 30.0) -> RpcReply:
        """Call ``method``; a result of one of ours is checked against its schema in doc/schemas."""
        reply = self.request(method, {} if params is None else params, timeout=timeout)
        if reply.error is None and method in response_schemas():
            response_schemas()[method].validate(reply.result)
        return reply

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def getmanifest(self, allow_deprecated_apis: bool = False) -> dict[str, Any]:
        return self.request("getmanifest", {"allow-deprecated-apis": allow_deprecated_apis},
                            id_prefix="cln", timeout=60).ok()

    def init(self, options: dict[str, Any], *, startup: bool = True, timeout: float = 60.0) -> Any:
        configuration = {
            "lightning-dir": str(self.lightning_dir),
            "rpc-file": self.rpc_file,
            "startup": startup,
            "network": self.network,
            "feature_set": FEATURE_SET,
        }
        return self.request("init", {"options": options, "configuration": configuration}, id_prefix="cln",
                            timeout=timeout).ok()

    def setconfig(self, name: str, val: Any) -> RpcReply:
        """As lightningd relays ``setconfig``: scalar values as strings, multi values as arrays of strings."""
        params: dict[str, Any] = {"config": name}
        if val is not None:
            params["val"] = [str(v) for v in val] if isinstance(val, list) else str(val)
        return self.request("setconfig", params)

    def shutdown(self) -> None:
        self.notify("shutdown", {"shutdown": {}})

    # --- observation ---

    def wait_for(self, probe: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = probe()
                if value:
                    return value
                if self._eof:
                    raise PluginDied(f"plugin exited while waiting for {what}; stderr: {self.stderr[-2000:]!r}; "
                                     f"logs: {self.logs()[-20:]}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out waiting for {what}; logs: {self.logs()[-20:]}")
                self._cond.wait(min(left, 0.2))

    def logs(self, level: str | None = None) -> list[str]:
        with self._cond:
            return [n["params"]["message"] for n in self.notifications
                    if n.get("method") == "log" and (level is None or n["params"].get("level") == level)]

    def log_levels(self) -> set[str]:
        with self._cond:
            return {n["params"].get("level") for n in self.notifications if n.get("method") == "log"}

    def custom(self, topic: str) -> list[dict[str, Any]]:
        """Payloads of the plugin's notifications on ``topic`` (as lightningd would forward them)."""
        with self._cond:
            return [n["params"] for n in self.notifications if n.get("method") == topic]

    def wait_log(self, needle: str, timeout: float = 30.0) -> str:
        return self.wait_for(lambda: next((m for m in self.logs() if needle in m), None), timeout,
                             f"log line containing {needle!r}")


def assert_clean(h: PluginHarness) -> None:
    """What every session must show: no Python traceback anywhere, no error-level log for expected failures."""
    first = next((i for i, m in enumerate(h.stdout_raw) if "Traceback" in m), None)
    assert first is None, "traceback written by the plugin:\n" + "\n".join(h.stdout_raw[first:first + 40])
    assert b"Traceback" not in h.stderr, h.stderr[-2000:]
    assert not h.log_levels() & {"error", "broken"}, h.logs()


# --- the reference mint on loopback, with real ehash ---------------------------------------------------------

class ThreadedMint:
    """The shared test mint (``support.refmint``) served from an event loop of its own, in a background thread.

    Tests that drive the plugin process are synchronous and block while they wait for its answers; a mint on
    the test's own event loop would stall meanwhile, so it gets a loop that keeps running. Every helper below
    is a blocking front to ``MintHandle``.
    """

    def __init__(self, data_dir: Path, **config: Any) -> None:
        self.data_dir = data_dir
        self.config = config  # MintConfig overrides (support.refmint.mint_config)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="refmint")
        self._mint: InProcessMint | None = None
        self.pool = ""

    def start(self) -> ThreadedMint:
        self._thread.start()
        self._mint = self._run(start_mint(mint_config(self.data_dir, **self.config)))
        info = self._run(self.handle.ok("GET", "/v1/info"))
        self.pool = info["ehash"]["pool"]  # the pool's public key, as hashpool-pool names it
        return self

    def stop(self) -> None:
        if self._mint is not None:
            self._run(self._mint.stop())
            self._mint = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _run(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def handle(self) -> MintHandle:
        assert self._mint is not None, "the mint is not running"
        return self._mint.handle

    @property
    def url(self) -> str:
        return self.handle.url

    @property
    def desk_key(self) -> str:
        return self.handle.desk_key

    def issue_settled(self, amounts: list[int], msat_per_unit: int = 1_000_000) -> list[str]:
        """Tokens of a freshly settled epoch in which exactly ``amounts`` were issued, each unit worth
        ``msat_per_unit``."""
        return self._run(self._issue_settled(amounts, msat_per_unit))

    def tokens_settled(self, proof_amounts: list[list[int]], msat_per_unit: int = 1_000_000) -> list[str]:
        """Like ``issue_settled``, but each token made of proofs of exactly the amounts listed (one swap each)."""
        return self._run(self._issue_settled([sum(a) for a in proof_amounts], msat_per_unit, proof_amounts), 120)

    async def _issue_settled(self, amounts: list[int], msat_per_unit: int,
                             proof_amounts: list[list[int]] | None = None) -> list[str]:
        handle = self.handle
        issued = []
        for n, amount in enumerate(amounts):
            proofs: list[Proof] = []
            for part in split_amount(amount):  # one share per power of two: 2^n units for n leading zero bits
                proofs += await handle.issue(part.bit_length() - 1)
            if proof_amounts is not None:
                proofs = await handle.swap(proofs, proof_amounts[n])
            issued.append(proofs)
        settled = (await handle.reward(sum(amounts) * msat_per_unit))[0]
        assert settled["state"] == "settled", settled
        return [make_token(handle.url, settled["unit"], p) for p in issued]
