"""The ``hashpool-*`` JSON-RPC methods: their parameters, help text, and what each asks of the desk."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hashpool_cln.desk.states import State
from hashpool_cln.plugin.params import Param, claim, count, msat, note, one_of, text

DEFAULT_LIST_LIMIT = 50
MINT_PROBE_TIMEOUT = 5.0


@dataclass(frozen=True)
class MethodSpec:
    name: str
    params: tuple[Param, ...]
    help: str
    # (desk, bound parameters) -> the result object
    run: Callable[[Any, dict[str, Any]], Awaitable[Any]]


async def _redeem(desk: Any, p: dict[str, Any]) -> Any:
    return await desk.redeem(p["token"], p["invstring"], amount_msat=p["amount_msat"],
                             maxfee_msat=p["maxfee_msat"], payer_note=p["payer_note"], claim=p["claim"])


async def _quote(desk: Any, p: dict[str, Any]) -> Any:
    return await desk.quote(p["token"], p["invstring"], amount_msat=p["amount_msat"])


async def _status(desk: Any, p: dict[str, Any]) -> Any:
    return await desk.status(p["id"], claim=p["claim"])


async def _redemptions(desk: Any, p: dict[str, Any]) -> Any:
    return {"redemptions": await desk.redemptions(p["state"], p["limit"])}


async def _info(desk: Any, p: dict[str, Any]) -> Any:
    from hashpool_cln import __version__

    out = dict(await desk.info())
    out.setdefault("version", __version__)
    if "mint_reachable" not in out:
        out["mint_reachable"] = await _mint_answers(desk)
    return out


async def _mint_answers(desk: Any) -> bool:
    try:
        await asyncio.wait_for(desk.mint.info(), MINT_PROBE_TIMEOUT)
    except Exception:  # any failure means "not reachable now"; the reason is not the operator's question here
        return False
    return True


async def _settle(desk: Any, p: dict[str, Any]) -> Any:
    return await desk.settle(p["unit"])


TOKEN = Param("token", text, required=True)

METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        "hashpool-redeem",
        (TOKEN, Param("invstring", text, required=True), Param("amount_msat", msat), Param("maxfee_msat", msat),
         Param("payer_note", note), Param("claim", claim)),
        "Pay a BOLT11 invoice, BOLT12 offer or BIP353 name with the value of an ehash token (all of it when the "
        "destination and amount_msat name no amount); returns the preimage and a token for any change, or a refund "
        "token if the payment failed, and the claim (the caller's, or one drawn) that alone shows them again.",
        _redeem,
    ),
    MethodSpec(
        "hashpool-quote",
        (TOKEN, Param("invstring", text), Param("amount_msat", msat)),
        "What an ehash token is worth now, and whether it can pay the given invoice, offer or name (fee reserve, "
        "quote expiry). Nothing is spent.",
        _quote,
    ),
    MethodSpec(
        "hashpool-status",
        (Param("id", text), Param("claim", claim)),
        "One redemption by id (its public fields), or by claim (also its change or refund token); give either "
        "or both.",
        _status,
    ),
    MethodSpec(
        "hashpool-redemptions",
        (Param("state", one_of([s.value for s in State])),
         Param("limit", count, default=DEFAULT_LIST_LIMIT)),
        "Recent redemptions, newest first, optionally only those in one state (never their tokens).",
        _redemptions,
    ),
    MethodSpec(
        "hashpool-info",
        (),
        "The desk's configuration (no secrets), whether the mint answers now, the desk's P2PK key, "
        "redemptions counted by state, payments in flight, ehash held per unit, and totals paid.",
        _info,
    ),
    MethodSpec(
        "hashpool-settle",
        (Param("unit", text),),
        "Settle the ehash this desk bought with the mint now (one unit, or all).",
        _settle,
    ),
)
