"""A small misbehaving mint on loopback for MintClient fault tests.

By default it answers like an honest mint over one real keyset (keys derived from a fixed seed, id v2 with
the fee, DLEQ on every signature). ``override(method, path, handler)`` replaces one route's answer so a test
can make the mint slow, broken, lying or rude. Every request is recorded (method, path, headers, JSON body).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from hashpool_cln.cashu import crypto
from hashpool_cln.cashu.keysets import derive_keyset_id_v2, derive_mint_keys

UNIT = "hash_" + "02" + "ab" * 32 + "_840000"
AMOUNTS = [1 << i for i in range(8)]
FEE_PPK = 100

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_keyset(seed: bytes = b"fakemint seed", fee_ppk: int = FEE_PPK) -> tuple[str, dict[int, Any], dict[int, str]]:
    """(keyset id, private keys, public keys hex) of a keyset for ``UNIT``."""
    private = derive_mint_keys(seed, "m/0'/0'", AMOUNTS)
    public = {a: k.public_key.format().hex() for a, k in private.items()}
    return derive_keyset_id_v2(public, UNIT, input_fee_ppk=fee_ppk), private, public


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


class FakeMint:
    def __init__(self) -> None:
        self.keyset_id, self.private, self.public = make_keyset()
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self._overrides: dict[tuple[str, str], Handler] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    def override(self, method: str, path: str, handler: Handler) -> None:
        self._overrides[(method, path)] = handler

    def answer(self, method: str, path: str, data: Any, status: int = 200) -> None:
        """Make the route answer ``data`` (JSON) with ``status``."""

        async def handler(request: web.Request) -> web.Response:
            return json_response(data, status)

        self.override(method, path, handler)

    def sign(self, output: dict[str, Any], key_amount: int | None = None) -> dict[str, Any]:
        """An honest blind signature with DLEQ (``key_amount``: sign with another amount's key)."""
        a = self.private[key_amount or output["amount"]]
        B_ = crypto.point(output["B_"])
        C_ = crypto.sign(B_, a)
        e, s = crypto.dleq_create(a, B_, C_)
        return {"amount": output["amount"], "id": output["id"], "C_": C_.format().hex(),
                "dleq": {"e": e.hex(), "s": s.hex()}}

    async def start(self) -> FakeMint:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.requests.append((request.method, request.path, dict(request.headers), body))
        handler = self._overrides.get((request.method, request.path))
        if handler is not None:
            return await handler(request)
        return await self._honest(request.method, request.path, body)

    async def _honest(self, method: str, path: str, body: Any) -> web.Response:
        meta = {"id": self.keyset_id, "unit": UNIT, "active": True, "input_fee_ppk": FEE_PPK, "final_expiry": None}
        if path == "/v1/keysets":
            return json_response({"keysets": [meta]})
        if path == f"/v1/keys/{self.keyset_id}":
            return json_response({"keysets": [{**meta, "keys": {str(a): k for a, k in self.public.items()}}]})
        if path == "/v1/swap":
            return json_response({"signatures": [self.sign(o) for o in body["outputs"]]})
        if path == "/v1/checkstate":
            return json_response({"states": [{"Y": y, "state": "UNSPENT", "witness": None} for y in body["Ys"]]})
        if path == "/v1/restore":
            return json_response({"outputs": [], "signatures": []})
        if path == "/v1/melt/quote/ehash":
            return json_response({"quote": "q1", "unit": body["unit"], "amount": body["amount"],
                                  "amount_msat": body["amount"] * 1000, "state": "UNPAID", "expiry": 2_000_000_000})
        return json_response({"detail": "not found", "code": 0}, status=404)
