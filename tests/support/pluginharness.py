"""Runs the real plugin process and talks to it exactly as lightningd v26.06 does.

lightningd starts a plugin with ``LIGHTNINGD_PLUGIN=1`` and ``LIGHTNINGD_VERSION`` set, in the node's network
directory, then speaks JSON-RPC 2.0 over the plugin's stdin/stdout: ``getmanifest`` (with
``allow-deprecated-apis``), ``init`` (``options`` and ``configuration``), commands with string ids, ``setconfig``
for dynamic options, and the ``shutdown`` notification (``params: {"shutdown": {}}``). The plugin answers and
sends ``log`` and custom notifications on its stdout. Shapes follow lightningd/plugin.c and notification.c.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from coincurve import PrivateKey

from hashpool_cln.cashu import crypto
from hashpool_cln.cashu.amounts import split_amount
from hashpool_cln.cashu.models import Proof, Token
from hashpool_cln.cashu.tokens import serialize_v4
from hashpool_cln.refmint.app import create_app
from hashpool_cln.refmint.config import MintConfig, load_auth
from hashpool_cln.refmint.shares import random_share_hash

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "plugin" / "hashpool-redeem.py"
LIGHTNINGD_VERSION = "v26.06"
# What lightningd v26.06 sends as configuration.feature_set for a default node (hex bitfields).
FEATURE_SET = {
    "init": "0800000000000000000000000000000000000000000000000000000000000000000000000000000000000000882aa2a",
    "node": "0800000000000000000000000000000000000000000000000000000000000000000000000000000000000000888aa2a",
    "channel": "",
    "invoice": "02000002024100",
    "bolt11": "02000002024100",
}


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
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj).encode() + b"\n\n")
        self.proc.stdin.flush()

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
        return self.request(method, {} if params is None else params, timeout=timeout)

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


# --- the reference mint on loopback, with real ehash ---------------------------------------------------------

class EhashMint:
    """The reference mint served from a background thread, and a pool issuing real ehash through it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.pool_secret = secrets.token_hex(32)
        self.pool = PrivateKey(bytes.fromhex(self.pool_secret)).public_key.format().hex()
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = None
        self._thread = None
        self._runner = None
        self.auth: dict[str, str] = {}
        self._height = 100

    def start(self) -> EhashMint:
        config = MintConfig(data_dir=self.data_dir, port=self.port, pool_key=self.pool_secret, min_difficulty=0)
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def serve() -> None:
            self._runner = web.AppRunner(create_app(config))
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(serve())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, daemon=True, name="refmint")
        self._thread.start()
        assert ready.wait(15), "the reference mint did not start"
        self.auth = load_auth(self.data_dir)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    @property
    def desk_key(self) -> str:
        return self.auth["desk"]

    def _http(self, method: str, path: str, body: dict | None = None, role: str | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if role:
            req.add_header("Authorization", f"Bearer {self.auth[role]}")
        with urllib.request.urlopen(req, timeout=15) as resp:
            return json.loads(resp.read())

    def issue(self, amount: int) -> str:
        """A token worth ``amount`` units of the open epoch, minted from test shares (one per power of two)."""
        proofs, unit = [], None
        for part in split_amount(amount):
            quote = self._http("POST", "/v1/mint/quote/mining_share",
                               {"header_hash": random_share_hash(part.bit_length() - 1).hex()}, role="pool")
            unit = quote["unit"]
            keyset = next(k for k in self._http("GET", "/v1/keysets")["keysets"] if k["unit"] == unit and k["active"])
            keys = self._http("GET", f"/v1/keys/{keyset['id']}")["keysets"][0]["keys"]
            secret = secrets.token_hex(32)
            B_, r = crypto.blind(secret.encode())
            sigs = self._http("POST", "/v1/mint/mining_share", {
                "quote": quote["quote"],
                "outputs": [{"amount": part, "id": keyset["id"], "B_": B_.format().hex()}]})["signatures"]
            C = crypto.unblind(crypto.point(sigs[0]["C_"]), r, crypto.point(keys[str(part)]))
            proofs.append(Proof(amount=part, id=keyset["id"], secret=secret, C=C.format().hex()))
        return serialize_v4(Token(mint=self.url, unit=unit, proofs=tuple(proofs)))

    def settle(self, reward_msat: int) -> None:
        """A block reward lands, final at once: the open epoch settles and a new one opens."""
        self._height += 1
        self._http("POST", "/v1/admin/reward", {"height": self._height, "block_hash": secrets.token_hex(32),
                                                "reward_msat": reward_msat, "confirmations": 100}, role="pool")

    def issue_settled(self, amounts: list[int], msat_per_unit: int = 1_000_000) -> list[str]:
        """Tokens of a freshly settled epoch in which exactly ``amounts`` were issued."""
        tokens = [self.issue(a) for a in amounts]
        self.settle(sum(amounts) * msat_per_unit)
        return tokens


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
