"""The mint's HTTP interface (aiohttp): routes, bearer authentication and the mapping of every error to
``{"detail": str, "code": int}``. The mint logic lives in ``ledger.py``; the routes are specified in
``docs/ehash-mint-api.md``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from hashpool_cln.cashu.units import MAX_HEIGHT
from hashpool_cln.refmint import wire
from hashpool_cln.refmint.config import MintConfig, load_auth, prepare_data_dir
from hashpool_cln.refmint.errors import Code, MintError, malformed
from hashpool_cln.refmint.ledger import MAX_CONFIRMATIONS, MAX_REWARD_MSAT, MAX_TIMESTAMP, Ledger
from hashpool_cln.refmint.lookup import MAX_LOOKUP_PUBKEYS
from hashpool_cln.refmint.shares import HashOrder
from hashpool_cln.text import valid_unicode

log = logging.getLogger(__name__)

LEDGER = web.AppKey("ledger", Ledger)
CONFIG = web.AppKey("config", MintConfig)
AUTH = web.AppKey("auth", dict)
KEYS_CACHE = web.AppKey("keys_cache", dict)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _reply(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, dumps=_dumps)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except MintError as exc:
        return _reply(exc.to_dict(), status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        detail = exc.reason if exc.status != 413 else f"request body too large (limit {request.app[CONFIG].max_body})"
        return _reply({"detail": detail, "code": int(Code.MALFORMED)}, status=exc.status)
    except sqlite3.OperationalError as exc:
        log.error("database error in %s %s: %s", request.method, request.path, exc)
        return _reply({"detail": "the mint's database is busy, try again", "code": int(Code.MALFORMED)}, status=503)
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return _reply({"detail": "internal error", "code": int(Code.MALFORMED)}, status=500)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise malformed("request body is not valid JSON") from None
    if raw.isascii() and b"\\u" not in raw:
        return wire.obj(value)  # no escape, no UTF-8 bytes: no surrogate can be in it
    try:
        if not valid_unicode(value):
            raise malformed("request body holds text that is not valid Unicode (a lone surrogate)")
    except RecursionError:
        raise malformed("request body is nested too deeply") from None
    return wire.obj(value)


def _require(request: web.Request, role: str) -> str:
    """Check the bearer key of ``role``; returns a digest naming the key holder (what its quotes belong to)."""
    header = request.headers.get("Authorization")
    if header is None:
        raise MintError(Code.AUTH_REQUIRED, f"this endpoint requires the {role} bearer key", status=401)
    scheme, _, token = header.partition(" ")
    expected = request.app[AUTH][role]
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode("utf-8", "replace"),
                                                            expected.encode()):
        raise MintError(Code.AUTH_FAILED, f"bad {role} bearer key", status=401)
    return hashlib.sha256(expected.encode()).hexdigest()[:32]


def _is_role(request: web.Request, role: str) -> bool:
    try:
        _require(request, role)
    except MintError:
        return False
    return True


def _ledger(request: web.Request) -> Ledger:
    return request.app[LEDGER]


# ---------------------------------------------------------------- NUT-01/02/06


async def info(request: web.Request) -> web.Response:
    return _reply(_ledger(request).info())


async def keysets(request: web.Request) -> web.Response:
    return _reply({"keysets": [
        {"id": k.id, "unit": k.unit, "active": k.active, "input_fee_ppk": k.input_fee_ppk}
        for k in _ledger(request).keysets()
    ]})


def _keys_entry(request: web.Request, kid: str) -> dict[str, Any]:
    cache = request.app[KEYS_CACHE]
    entry = cache.get(kid)
    if entry is None:
        k = _ledger(request).keyset(kid)
        entry = {"id": k.id, "unit": k.unit, "input_fee_ppk": k.input_fee_ppk,
                 "keys": {str(a): pub for a, pub in sorted(k.keys.items())}}
        cache[kid] = entry
    return entry


async def keys(request: web.Request) -> web.Response:
    return _reply({"keysets": [_keys_entry(request, k.id) for k in _ledger(request).keysets() if k.active]})


async def keys_of(request: web.Request) -> web.Response:
    return _reply({"keysets": [_keys_entry(request, request.match_info["keyset_id"])]})


# ---------------------------------------------------------------- NUT-03/07/09


async def swap(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    body = await _body(request)
    inputs = wire.proofs(body, "inputs", cfg.max_inputs)
    outputs = wire.outputs(body, "outputs", cfg.max_outputs)
    sigs = await _ledger(request).swap(inputs, outputs)
    return _reply({"signatures": [s.to_dict() for s in sigs]})


async def checkstate(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    body = await _body(request)
    ys = wire.items(wire.field(body, "Ys"), "Ys", cfg.max_inputs, Code.TOO_MANY_INPUTS)
    ys = [wire.hexstr(y, f"Ys[{i}]", 66) for i, y in enumerate(ys)]
    states = await _ledger(request).check_state(ys)
    return _reply({"states": [s.to_dict() for s in states]})


async def restore(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    body = await _body(request)
    outputs = wire.outputs(body, "outputs", cfg.max_outputs, any_amount=True)
    msgs, sigs = await _ledger(request).restore(outputs)
    return _reply({"outputs": [m.to_dict() for m in msgs], "signatures": [s.to_dict() for s in sigs]})


# ---------------------------------------------------------------- ehash epochs and settlement


async def epochs(request: web.Request) -> web.Response:
    return _reply({"epochs": [e.to_dict() for e in await _ledger(request).epochs()]})


async def melt_quote(request: web.Request) -> web.Response:
    owner = _require(request, "desk")
    body = await _body(request)
    unit = wire.string(wire.field(body, "unit"), "unit", 200)
    amount = wire.integer(wire.field(body, "amount"), "amount", 0, wire.MAX_WIRE_AMOUNT - 1)
    _check_method(body)
    req = wire.opt_string(body.get("request"), "request", 4096)
    reference = wire.opt_string(body.get("reference"), "reference", 64)
    quote = await _ledger(request).create_melt_quote(unit, amount, req, owner=owner, reference=reference)
    return _reply(quote.to_dict())


def _check_method(body: dict[str, Any]) -> None:
    """CDK's custom melt bodies name their method; on these routes it can only be ``ehash``."""
    method = wire.opt_string(body.get("method"), "method", 64)
    if method not in (None, "ehash"):
        raise malformed(f"method must be 'ehash' on this route, not {method[:64]!r}")


async def melt_quote_get(request: web.Request) -> web.Response:
    _require(request, "desk")
    quote = await _ledger(request).get_melt_quote(wire.string(request.match_info["quote"], "quote", 200))
    return _reply(quote.to_dict())


async def melt_quote_release(request: web.Request) -> web.Response:
    owner = _require(request, "desk")
    body = await _body(request)
    quote_id = wire.string(wire.field(body, "quote"), "quote", 200)
    return _reply((await _ledger(request).release_melt_quote(quote_id, owner)).to_dict())


async def melt(request: web.Request) -> web.Response:
    _require(request, "desk")
    cfg = request.app[CONFIG]
    body = await _body(request)
    quote = wire.string(wire.field(body, "quote"), "quote", 200)
    inputs = wire.proofs(body, "inputs", cfg.max_inputs)
    # NUT-08 change outputs of CDK's melt body: read, but the inputs must be exact (no fee reserve), so no change
    change = body.get("outputs") is not None and wire.outputs(body, "outputs", cfg.max_outputs, any_amount=True)
    payment = wire.obj(wire.field(body, "payment"), "payment")
    payment_hash = wire.hexstr(wire.field(payment, "payment_hash", "payment"), "payment.payment_hash", 64)
    preimage = wire.hexstr(wire.field(payment, "preimage", "payment"), "payment.preimage", 64)
    amount = body.get("amount")
    if amount is not None:
        amount = wire.integer(amount, "amount", 0, wire.MAX_WIRE_AMOUNT - 1)
    result = (await _ledger(request).melt(quote, inputs, payment_hash, preimage, amount)).to_dict()
    if change is not False:
        result["change"] = []
    return _reply(result)


# ---------------------------------------------------------------- share issuance (method ehash)


async def _share_quote(request: web.Request, order: HashOrder, require_pubkey: bool) -> web.Response:
    _require(request, "pool")
    body = await _body(request)
    extra = body.get("extra")  # cdk-ehash's README nests header_hash in "extra"; CDK itself flattens it
    source = wire.obj(extra, "extra") if isinstance(extra, dict) and "header_hash" not in body else body
    header_hash = wire.hexstr(wire.field(source, "header_hash"), "header_hash", 64)
    pubkey = wire.opt_string(body.get("pubkey"), "pubkey", 66)
    amount = body.get("amount")
    unit = wire.opt_string(body.get("unit"), "unit", 200)
    wire.opt_string(body.get("description"), "description", 1024)
    quote = await _ledger(request).create_share_quote(
        header_hash, pubkey, order=order, unit=unit, require_pubkey=require_pubkey,
        amount=None if amount is None else wire.amount(amount, "amount"))
    return _reply(quote.to_dict())


async def ehash_quote(request: web.Request) -> web.Response:
    """CDK's custom mint quote of method ehash: upstream's body, hash in internal byte order, key required."""
    return await _share_quote(request, "internal", require_pubkey=True)


async def share_quote(request: web.Request) -> web.Response:
    """The ``mining_share`` alias: hash in display order, key optional."""
    return await _share_quote(request, "display", require_pubkey=False)


async def share_quote_get(request: web.Request) -> web.Response:
    quote_id = wire.string(request.match_info["quote"], "quote", 200)
    return _reply((await _ledger(request).get_share_quote(quote_id)).to_dict())


async def share_quote_check(request: web.Request) -> web.Response:
    body = await _body(request)
    ids = _quote_ids(request, body)
    return _reply([q.to_dict() for q in await _ledger(request).share_quotes(ids)])


def _quote_ids(request: web.Request, body: dict[str, Any]) -> list[str]:
    limit = request.app[CONFIG].max_batch_size
    ids = wire.items(wire.field(body, "quotes"), "quotes", limit, Code.BATCH_TOO_LARGE)
    return [wire.string(q, f"quotes[{i}]", 200) for i, q in enumerate(ids)]


async def share_quote_by_hash(request: web.Request) -> web.Response:
    # Pool only: the share history of a miner is the miner's business (wallets use the signed lookup).
    _require(request, "pool")
    header_hash = wire.hexstr(request.match_info["header_hash"], "header_hash", 64)
    return _reply((await _ledger(request).share_quote_by_hash(header_hash)).to_dict())


async def share_quote_lookup(request: web.Request) -> web.Response:
    body = await _body(request)
    limit = MAX_LOOKUP_PUBKEYS
    pubkeys = wire.items(wire.field(body, "pubkeys"), "pubkeys", limit, Code.BATCH_TOO_LARGE)
    signatures = wire.items(wire.field(body, "pubkey_signatures"), "pubkey_signatures", limit, Code.BATCH_TOO_LARGE)
    quotes = await _ledger(request).lookup_share_quotes(
        [wire.string(k, f"pubkeys[{i}]", 66) for i, k in enumerate(pubkeys)],
        [wire.string(s, f"pubkey_signatures[{i}]", 128) for i, s in enumerate(signatures)],
        wire.integer(wire.field(body, "timestamp"), "timestamp", 0, MAX_TIMESTAMP),
        wire.string(wire.field(body, "nonce"), "nonce", 32))
    return _reply({"quotes": [q.to_dict() for q in quotes]})


async def mint_shares(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    body = await _body(request)
    quote = wire.string(wire.field(body, "quote"), "quote", 200)
    outputs = wire.outputs(body, "outputs", cfg.max_outputs)
    signature = wire.opt_string(body.get("signature"), "signature", 128)
    sigs = await _ledger(request).mint_shares(quote, outputs, signature)
    return _reply({"signatures": [s.to_dict() for s in sigs]})


async def mint_batch(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    body = await _body(request)
    ids = _quote_ids(request, body)
    outputs = wire.outputs(body, "outputs", cfg.max_outputs)
    signatures = body.get("signatures")
    if signatures is not None:
        signatures = [wire.opt_string(s, f"signatures[{i}]", 128)
                      for i, s in enumerate(wire.items(signatures, "signatures", len(ids), Code.SIGNATURE_INVALID))]
    amounts = body.get("quote_amounts")
    if amounts is not None:
        amounts = [wire.amount(a, f"quote_amounts[{i}]")
                   for i, a in enumerate(wire.items(amounts, "quote_amounts", len(ids), Code.BATCH_TOO_LARGE))]
    sigs = await _ledger(request).mint_batch(ids, outputs, signatures, amounts)
    return _reply({"signatures": [s.to_dict() for s in sigs]})


# ---------------------------------------------------------------- chain events (admin)


async def admin_reward(request: web.Request) -> web.Response:
    _require(request, "pool")
    body = await _body(request)
    block_hash = wire.hexstr(wire.field(body, "block_hash"), "block_hash", 64)
    epochs_ = await _ledger(request).apply_reward(
        wire.integer(wire.field(body, "height"), "height", 0, MAX_HEIGHT), block_hash,
        wire.integer(wire.field(body, "reward_msat"), "reward_msat", 0, MAX_REWARD_MSAT),
        wire.integer(body.get("confirmations", request.app[CONFIG].final_confirmations), "confirmations",
                     0, MAX_CONFIRMATIONS))
    return _reply({"epochs": [e.to_dict() for e in epochs_]})


async def admin_confirm(request: web.Request) -> web.Response:
    _require(request, "pool")
    body = await _body(request)
    block_hash = wire.hexstr(wire.field(body, "block_hash"), "block_hash", 64)
    confirmations = wire.integer(wire.field(body, "confirmations"), "confirmations", 0, MAX_CONFIRMATIONS)
    epochs_ = await _ledger(request).confirm(block_hash, confirmations)
    return _reply({"epochs": [e.to_dict() for e in epochs_]})


async def admin_dissolve(request: web.Request) -> web.Response:
    _require(request, "pool")
    body = await _body(request)
    block_hash = wire.hexstr(wire.field(body, "block_hash"), "block_hash", 64)
    epochs_ = await _ledger(request).dissolve(block_hash)
    return _reply({"epochs": [e.to_dict() for e in epochs_]})


ROUTES = [
    ("GET", "/v1/info", info),
    ("GET", "/v1/keysets", keysets),
    ("GET", "/v1/keys", keys),
    ("GET", "/v1/keys/{keyset_id}", keys_of),
    ("POST", "/v1/swap", swap),
    ("POST", "/v1/checkstate", checkstate),
    ("POST", "/v1/restore", restore),
    ("GET", "/v1/ehash/epochs", epochs),
    ("POST", "/v1/melt/quote/ehash", melt_quote),
    ("POST", "/v1/melt/quote/ehash/release", melt_quote_release),
    ("GET", "/v1/melt/quote/ehash/{quote}", melt_quote_get),
    ("POST", "/v1/melt/ehash", melt),
    ("POST", "/v1/mint/quote/ehash", ehash_quote),
    ("POST", "/v1/mint/quote/ehash/check", share_quote_check),
    ("POST", "/v1/mint/quote/ehash/pubkey", share_quote_lookup),
    ("GET", "/v1/mint/quote/ehash/by_hash/{header_hash}", share_quote_by_hash),
    ("GET", "/v1/mint/quote/ehash/{quote}", share_quote_get),
    ("POST", "/v1/mint/ehash", mint_shares),
    ("POST", "/v1/mint/ehash/batch", mint_batch),
    ("POST", "/v1/mint/quote/pubkey", share_quote_lookup),
    # mining_share: the same method under its older name (display byte order, key optional)
    ("POST", "/v1/mint/quote/mining_share", share_quote),
    ("POST", "/v1/mint/quote/mining_share/check", share_quote_check),
    ("POST", "/v1/mint/quote/mining_share/pubkey", share_quote_lookup),
    ("GET", "/v1/mint/quote/mining_share/by_hash/{header_hash}", share_quote_by_hash),
    ("GET", "/v1/mint/quote/mining_share/{quote}", share_quote_get),
    ("POST", "/v1/mint/mining_share", mint_shares),
    ("POST", "/v1/mint/mining_share/batch", mint_batch),
    ("POST", "/v1/admin/reward", admin_reward),
    ("POST", "/v1/admin/confirm", admin_confirm),
    ("POST", "/v1/admin/dissolve", admin_dissolve),
]


async def _ledger_ctx(app: web.Application) -> AsyncIterator[None]:
    ledger = await Ledger.open(app[CONFIG])
    app[LEDGER] = ledger
    try:
        yield
    finally:
        await ledger.close()


def create_app(config: MintConfig) -> web.Application:
    """The mint as an aiohttp application; the ledger opens on startup and closes on cleanup."""
    prepare_data_dir(config.data_dir)
    app = web.Application(client_max_size=config.max_body, middlewares=[error_middleware])
    app[CONFIG] = config
    app[AUTH] = load_auth(config.data_dir)
    app[KEYS_CACHE] = {}
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    app.cleanup_ctx.append(_ledger_ctx)
    return app
