"""A hostile mint on loopback: every request goes on to a real mint, and some answers come back corrupted.

``HostileMint(upstream, rng)`` listens on 127.0.0.1; each request is forwarded to ``upstream`` (the reference
mint, which acts on it as usual) and, with probability ``rate``, the answer is replaced by one of ``FAULTS``:
a value of the wrong type, a field dropped, a list cut, doubled or reversed, a point that is not on the curve or
is another one (a signature or DLEQ that does not verify), a hex digit flipped (B_, C_, Y, keys, ids), a huge
or negative number, a lone surrogate, 100,000-deep nesting, a 5,000-digit number, a truncated or non-JSON body,
a 5xx, a Cashu error body after the mint acted, or a stall past the client's deadline. ``refuse`` answers a
Cashu error without forwarding (the mint did nothing). ``plan`` puts chosen faults on cue, for targeted tests.

Corruptions are of the detectable kind: a well-formed lie about a proof's state or a quote's (the mint's word
on what it did) is left out, since no wallet could tell it from the truth.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web
from coincurve import PrivateKey

FAULTS = ("type", "drop", "list", "point", "hex", "int", "surrogate", "deep", "bigint", "truncate", "notjson",
          "status500", "error_after", "refuse", "stall")
# The fields whose value is the mint's word on a state: changed to another valid state it is a lie, not a fault.
STATE_WORDS = {"UNSPENT", "PENDING", "SPENT", "UNPAID", "PAID", "ISSUED", "EXPIRED", "open", "maturing",
               "settled", "retired"}
HOSTILE_VALUES: tuple[Any, ...] = (None, True, False, 0, -1, 2**64, 10**30, 1.5, "", "\ud800", "x" * 300, [], {},
                                   [1], {"a": 1}, "02" + "ff" * 32)
_HEX = re.compile(r"^[0-9a-fA-F]+$")


class HostileMint:
    """The proxy; ``await start()``, then point a wallet at ``url``; ``await stop()`` at the end."""

    def __init__(self, upstream: str, rng: random.Random, *, rate: float = 0.3, stall_s: float = 1.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.rng = rng
        self.rate = rate
        self.stall_s = stall_s
        self.stalls = True  # off while a caller with a long deadline (the CLI) is served
        self.faults: list[tuple[str, str]] = []  # (path, fault) of every corrupted answer, in order
        # Faults on cue, before any drawn at random: (part of the path, a fault's name or a function that rewrites
        # the answer's JSON), each used once, in order.
        self.plan: list[tuple[str, str | Callable[[Any], Any]]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> HostileMint:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._session = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _pick(self, path: str) -> str | Callable[[Any], Any] | None:
        if self.plan and self.plan[0][0] in path:
            return self.plan.pop(0)[1]
        if self.rng.random() >= self.rate:
            return None
        fault = self.rng.choice(FAULTS)
        return "status500" if fault == "stall" and not self.stalls else fault

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fault = self._pick(request.path)
        body = await request.read()
        if fault == "refuse":
            self.faults.append((request.path, fault))
            return web.json_response({"detail": "refused by the hostile mint", "code": self.rng.choice(
                (11001, 10002, 12001, 0, 99999))}, status=400)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "authorization")}
        async with self._session.request(request.method, self.upstream + request.path_qs, data=body,
                                         headers=headers) as resp:
            status, raw = resp.status, await resp.read()
        if fault is None:
            return web.Response(body=raw, status=status, content_type="application/json")
        if callable(fault):
            self.faults.append((request.path, "rewrite"))
            return web.Response(body=json.dumps(fault(json.loads(raw))), status=status,
                                content_type="application/json")
        self.faults.append((request.path, fault))
        if fault == "stall":
            await asyncio.sleep(self.stall_s)
            return web.Response(body=raw, status=status, content_type="application/json")
        status, out = corrupt(self.rng, fault, status, raw)
        return web.Response(body=out, status=status, content_type="application/json")


def corrupt(rng: random.Random, fault: str, status: int, raw: bytes) -> tuple[int, bytes]:
    """The answer ``(status, raw)`` with ``fault`` applied."""
    if fault == "deep":
        return status, b"[" * 100_000 + b"]" * 100_000
    if fault == "bigint":
        return status, b'{"signatures": [], "keysets": [], "states": [], "amount": ' + b"9" * 5000 + b"}"
    if fault == "truncate":
        return status, raw[: rng.randrange(max(1, len(raw)))]
    if fault == "notjson":
        return status, rng.choice((b"<html>502 Bad Gateway</html>", b"", b"\xff\xfe\x00", b"nul", b"{'a': 1}"))
    if fault == "status500":
        return rng.choice((500, 502, 503)), raw
    if fault == "status404":  # on cue only: the endpoint is not served (another dialect, an older mint)
        return 404, b'{"detail": "Not Found"}'
    if fault == "error_after":
        return 400, json.dumps({"detail": "refused after all", "code": rng.choice((11001, 10002, 20001))}).encode()
    try:
        doc = json.loads(raw)
    except ValueError:
        return status, raw
    return status, json.dumps(mutate(rng, fault, doc)).encode()


def mutate(rng: random.Random, fault: str, doc: Any) -> Any:
    """``doc`` with one node changed the way ``fault`` says (the document itself when no node fits)."""
    test: Callable[[Any], bool] = {
        "type": lambda v: True,
        "drop": lambda v: isinstance(v, dict) and bool(v),
        "list": lambda v: isinstance(v, list) and bool(v),
        "point": lambda v: isinstance(v, str) and len(v) == 66 and bool(_HEX.match(v)),
        "hex": lambda v: isinstance(v, str) and len(v) >= 16 and bool(_HEX.match(v)),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "surrogate": lambda v: isinstance(v, str),
    }[fault]
    nodes = [(parent, key) for parent, key, value in _walk(doc)
             if test(value) and not (isinstance(value, str) and value in STATE_WORDS)]
    if not nodes:
        return doc
    parent, key = rng.choice(nodes)
    value = doc if parent is None else parent[key]
    new = _changed(rng, fault, value)
    if parent is None:
        return new
    if new is _DROP:
        del parent[key]
    else:
        parent[key] = new
    return doc


_DROP = object()


def _changed(rng: random.Random, fault: str, value: Any) -> Any:
    if fault == "type":
        return rng.choice(HOSTILE_VALUES)
    if fault == "drop":
        del value[rng.choice(list(value))]
        return value
    if fault == "list":
        i = rng.randrange(len(value))
        how = rng.randrange(4)
        if how == 0:
            del value[i]
        elif how == 1:
            value.insert(i, value[i])
        elif how == 2:
            value.reverse()
        else:
            value.append(rng.choice(HOSTILE_VALUES))
        return value
    if fault == "point":
        return rng.choice(("02" + "ff" * 32, "04" + value[2:], PrivateKey().public_key.format().hex()))
    if fault == "hex":
        i = rng.randrange(len(value))
        return value[:i] + ("0" if value[i] != "0" else "1") + value[i + 1:]
    if fault == "int":
        return rng.choice((-1, 0, 2**63, 2**64 + 1, 10**40, value * 2 or 1, value + 1, True))
    return "\ud800" + value  # surrogate


def _walk(doc: Any, parent: Any = None, key: Any = None) -> list[tuple[Any, Any, Any]]:
    out = [(parent, key, doc)]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _walk(v, doc, k)
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _walk(v, doc, i)
    return out
