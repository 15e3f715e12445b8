"""HTTP fuzz of the reference mint over every route: bad input gets a 4xx with ``{detail, code}``, never a 5xx,
and the mint serves real requests afterwards.

Seeded and reproducible: ``HASHPOOL_FUZZ_SEED`` (default 1) and ``HASHPOOL_FUZZ_REQUESTS`` (default 3000; raise it
for a long run). Each request starts from a well-formed body for its route (real proofs, outputs and quote ids)
and mutates it: fields dropped or replaced by values of every JSON type, huge and negative integers, long and
non-ASCII text with lone surrogates, deep nesting, long lists; or it sends bytes that are not JSON at all.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from typing import Any

import yarl
from coincurve import PrivateKey
from support.refmint import MintHandle

from hashpool_cln.refmint.app import ROUTES
from hashpool_cln.refmint.miner import blind_outputs

SEED = int(os.environ.get("HASHPOOL_FUZZ_SEED", "1"))
REQUESTS = int(os.environ.get("HASHPOOL_FUZZ_REQUESTS", "3000"))
ALLOWED = {200, 400, 401, 404, 405, 413}


def _text(rng: random.Random) -> str:
    pick = rng.randrange(8)
    if pick == 0:
        return "\ud800" + "x" * rng.randrange(3)  # a lone surrogate (JSON-escaped on the wire)
    if pick == 1:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(1, 20)))
    if pick == 2:
        return "x" * rng.choice((65, 200, 5000, 70_000))
    if pick == 3:
        return os.urandom(rng.choice((16, 32, 33, 64))).hex()
    if pick == 4:
        return "02" + os.urandom(32).hex()
    if pick == 5:
        return ""
    if pick == 6:
        return "01" + os.urandom(32).hex()
    return rng.choice(("ehash", "hash", "sat", "null", "0", "-1", "../../etc", "%00", "\x00", "lnbcrt1"))


def _value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(10 if depth < 3 else 6)
    if pick == 0:
        return rng.choice((0, 1, -1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63), 10**30))
    if pick == 1:
        return rng.choice((0.5, -0.0, 1e300, 1e-300))
    if pick == 2:
        return rng.choice((True, False, None))
    if pick in (3, 4, 5):
        return _text(rng)
    if pick in (6, 7):
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {_text(rng)[:20]: _value(rng, depth + 1) for _ in range(rng.randrange(4))}


def _mutate(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """The well-formed ``value`` with a few of its parts broken."""
    if isinstance(value, dict) and value:
        out = dict(value)
        for _ in range(rng.randrange(1, 3)):
            key = rng.choice(list(out) or [""])
            action = rng.randrange(4)
            if action == 0:
                out.pop(key, None)
            elif action == 1 or depth > 3:
                out[key] = _value(rng)
            else:
                out[key] = _mutate(rng, out.get(key), depth + 1)
        if rng.random() < 0.1:
            out[_text(rng)[:30]] = _value(rng)
        return out
    if isinstance(value, list) and value:
        action = rng.randrange(4)
        if action == 0:
            return value * rng.choice((2, 600, 1100))  # duplicates, and more than the per-request limits
        if action == 1:
            return []
        i = rng.randrange(len(value))
        return [*value[:i], _mutate(rng, value[i], depth + 1), *value[i + 1:]]
    return _value(rng)


def _raw(rng: random.Random) -> bytes:
    pick = rng.randrange(6)
    if pick == 0:
        return b"[" * 100_000
    if pick == 1:
        return b'{"amount": ' + b"9" * 5000 + b"}"
    if pick == 2:
        return os.urandom(rng.randrange(1, 200))
    if pick == 3:
        return b'{"quote": "\xff\xfe", "outputs": []}'
    if pick == 4:
        return b'{"a": 1,}'
    return json.dumps(_value(rng)).encode()


async def _templates(mint: MintHandle) -> dict[str, Any]:
    """Well-formed bodies and path values for every route, made of real mint objects."""
    key = PrivateKey()
    unit, proofs = await mint.settled_epoch(1_000_000, 3, count=2)
    quote = await mint.ehash_quote(2, key)
    kid = await mint.keyset_id(quote["unit"])
    melt = await mint.ok("POST", "/v1/melt/quote/ehash", {"unit": unit, "amount": 8}, role="desk")
    outs = [o.to_dict() for o in blind_outputs(kid, [4]).outputs]
    inputs = [p.to_dict() for p in proofs]
    return {
        "paths": {"keyset_id": kid, "quote": quote["quote"], "header_hash": quote["header_hash"]},
        "/v1/swap": {"inputs": inputs, "outputs": outs},
        "/v1/checkstate": {"Ys": ["02" + "11" * 32, "03" + "22" * 32]},
        "/v1/restore": {"outputs": outs},
        "/v1/melt/quote/ehash": {"method": "ehash", "request": "", "unit": unit, "amount": 8, "reference": "r-1"},
        "/v1/melt/quote/ehash/release": {"quote": melt["quote"]},
        "/v1/melt/ehash": {"quote": melt["quote"], "inputs": inputs, "outputs": [],
                           "payment": {"payment_hash": "11" * 32, "preimage": "22" * 32}},
        "/v1/mint/quote/ehash": {"unit": "hash", "header_hash": quote["header_hash"], "amount": 4,
                                 "pubkey": key.public_key.format().hex()},
        "/v1/mint/quote/mining_share": {"header_hash": quote["header_hash"]},
        "check": {"quotes": [quote["quote"]]},
        "mint": {"quote": quote["quote"], "outputs": outs, "signature": "00" * 64},
        "batch": {"quotes": [quote["quote"]], "outputs": outs, "signatures": ["00" * 64], "quote_amounts": [4]},
        "pubkey": await mint.lookup_body([key]),
        "/v1/admin/reward": {"height": 5, "block_hash": "33" * 32, "reward_msat": 1000, "confirmations": 1},
        "/v1/admin/confirm": {"block_hash": "33" * 32, "confirmations": 3},
        "/v1/admin/dissolve": {"block_hash": "33" * 32},
    }


def _template_for(path: str, templates: dict[str, Any]) -> Any:
    if path in templates:
        return templates[path]
    for suffix, name in (("/check", "check"), ("/batch", "batch"), ("/pubkey", "pubkey")):
        if path.endswith(suffix):
            return templates[name]
    return templates["mint"] if path.startswith("/v1/mint/") else {}


def _path(rng: random.Random, template: str, values: dict[str, str]) -> str:
    out = template
    for name, good in values.items():
        if "{" + name + "}" in out:
            choice = rng.randrange(5)
            value = good if choice == 0 else yarl.URL.build(path=_text(rng)[:300]).raw_path.lstrip("/") or "x"
            if choice == 1:
                value = rng.choice(("%ED%A0%80", "%FF%FE", "%00", "..", "a" * 3000))
            out = out.replace("{" + name + "}", value)
    return out


BAD_AUTH = ("Bearer", "Basic x", "Bearer \u00e9\u00e9", "bearer " + "a" * 5000)


async def _send(mint: MintHandle, method: str, path: str, body: bytes | None, role: str | None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if role in ("pool", "desk"):
        headers["Authorization"] = f"Bearer {mint.pool_key if role == 'pool' else mint.desk_key}"
    elif role is not None:
        headers["Authorization"] = role
    url = yarl.URL(mint.url + path, encoded=True)
    async with mint.session.request(method, url, data=body, headers=headers) as resp:
        text = await resp.read()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text


async def test_fuzz_every_route(refmint_factory) -> None:
    mint = await refmint_factory(max_body=256 * 1024)
    templates = await _templates(mint)
    rng = random.Random(SEED)
    plan = []
    for _ in range(REQUESTS):
        method, template, _ = rng.choice(ROUTES)
        path = _path(rng, template, templates["paths"])
        if method == "GET":
            body = None
        elif rng.random() < 0.15:
            body = _raw(rng)
        else:
            body = json.dumps(_mutate(rng, _template_for(template, templates))).encode()
        role = rng.choice((None, "pool", "desk", "desk" if "melt" in template else "pool", rng.choice(BAD_AUTH)))
        plan.append((method, path, body, role))
    bad: list[tuple] = []
    seen: dict[int, int] = {}
    queue: asyncio.Queue = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)

    async def worker() -> None:
        while not queue.empty():
            method, path, body, role = queue.get_nowait()
            status, answer = await _send(mint, method, path, body, role)
            seen[status] = seen.get(status, 0) + 1
            coded = isinstance(answer, dict) and isinstance(answer.get("detail"), str) \
                and isinstance(answer.get("code"), int)
            if status not in ALLOWED or (status != 200 and not coded):
                bad.append((method, path[:100], (body or b"")[:200], status, str(answer)[:200]))

    await asyncio.gather(*(worker() for _ in range(8)))
    assert bad == [], "\n".join(map(str, bad[:5]))
    assert sum(seen.values()) == REQUESTS and seen.get(400, 0) > REQUESTS // 4, seen
    # still serving: info, and a real swap
    assert (await mint.ok("GET", "/v1/info"))["limits"]["max_inputs"] == 1000
    assert sum(p.amount for p in await mint.swap(await mint.issue(2))) == 4
