"""Cashing ehash out at the pool's desk: ``hashpool-redeem`` over commando, with a claim secret.

Before the call the wallet writes the redemption with a fresh claim secret (64 hex digits) and marks the proofs it
hands over pending. The desk stores only the claim's hash; its answer (and ``hashpool-status`` asked with the
claim) is the only place the change and refund tokens ever appear. So a lost answer is never a loss: the wallet
asks ``hashpool-status {claim}`` until the redemption is final. Every token ends spent with a receipt (the
payment preimage), or back in the wallet (a refund, the change, or untouched proofs).
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from hashpool_cln.cashu.crypto import proof_y
from hashpool_cln.cashu.models import Proof
from hashpool_cln.cashu.tokens import make_token
from hashpool_cln.mintclient import MAX_INT
from hashpool_cln.text import valid_unicode
from hashpool_cln.wallet.commando import (
    COMMANDO_ERROR_REMOTE_AUTH,
    CommandoClient,
    CommandoError,
    CommandoUnavailable,
    NodeAddress,
    OutcomeUnknown,
    rpc_code,
    too_soon,
)
from hashpool_cln.wallet.errors import Code, WalletError
from hashpool_cln.wallet.wallet import Wallet

PAID = ("paid", "settled")
IN_FLIGHT = ("new", "quoted", "custody", "paying")
DESK_STATES = (*IN_FLIGHT, *PAID, "rejected", "refunded")
OPEN = ("sending", "unknown", *IN_FLIGHT)  # the wallet's own states, then the desk's unfinished ones
TEXT_FIELDS = ("id", "payment_hash", "payment_preimage", "change_token", "refund_token")
UNKNOWN_REDEMPTION = 3450
UNKNOWN_CLAIM = object()  # what hashpool-status answered for a claim the desk has never seen
STATUS_TRIES = 4
STATUS_PAUSE = 1.5
# A rune's ``rate=N`` is a minimum interval of 60/N seconds between two commands, and a redemption sends two
# (hashpool-quote, then hashpool-redeem). Waiting covers rate=1 and a little more; longer, the refusal stands.
RATE_WAIT = 75.0
RATE_PAUSES = (0.5, 1.0, 2.0, 4.0, 8.0)  # then 8 s between tries


class DeskLink(Protocol):
    """How the wallet reaches the desk's methods; raises the commando client's three exceptions."""

    async def call(self, method: str, params: dict[str, Any]) -> Any: ...


class CommandoDesk:
    """The desk on the pool's node, through commando over one BOLT8 connection (kept open between calls)."""

    def __init__(self, node: NodeAddress, node_key: bytes, rune: str, *, timeout: float = 90.0,
                 rate_wait: float = RATE_WAIT) -> None:
        self._client = CommandoClient(node, node_key, timeout=timeout)
        self._rune = rune
        self._rate_wait = rate_wait
        self._lock = asyncio.Lock()

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        """Run ``method``; a rune refused as too soon (the command did not run) is sent again after a pause, for
        up to ``rate_wait`` seconds, then the refusal is raised."""
        async with self._lock:  # one command at a time on the connection, as commando expects of a peer
            deadline = time.monotonic() + self._rate_wait
            for attempt in itertools.count():
                try:
                    return await asyncio.to_thread(self._client.call, method, params, self._rune)
                except CommandoError as exc:
                    pause = RATE_PAUSES[min(attempt, len(RATE_PAUSES) - 1)]
                    if not too_soon(exc) or time.monotonic() + pause > deadline:
                        raise
                await asyncio.sleep(pause)

    def close(self) -> None:
        self._client.close()


async def redeem(wallet: Wallet, desk: DeskLink, destination: str, *, amount_msat: int | None = None,
                 unit: str | None = None, maxfee_msat: int | None = None) -> dict[str, Any]:
    """Pay ``destination`` (BOLT11, BOLT12 offer or BIP353 name) with the ehash of one settled epoch."""
    if not isinstance(destination, str) or not destination.strip() or not valid_unicode(destination):
        raise WalletError(Code.BAD_DESTINATION, "give a BOLT11 invoice, a BOLT12 offer or a BIP353 name")
    await resolve_open(wallet, desk)
    unit = unit or await pick_unit(wallet, amount_msat)
    # Largest first, within what the mint takes in one swap: the desk swaps the whole token into custody.
    proofs = (await wallet.unspent(unit))[:(await wallet.mint.limits()).max_inputs]
    if not proofs:
        raise WalletError(Code.NOTHING_TO_DO, f"no spendable ehash of {unit}")
    proofs = await _enough(wallet, desk, proofs, unit, destination.strip(), amount_msat)
    claim = secrets.token_hex(32)
    ys = [proof_y(p.secret) for p in proofs]
    await wallet.store.begin_redemption(claim, destination.strip(), unit, sum(p.amount for p in proofs), ys)
    params: dict[str, Any] = {"token": make_token(wallet.mint.url, unit, proofs), "invstring": destination.strip(),
                              "claim": claim}
    if amount_msat is not None:
        params["amount_msat"] = amount_msat
    if maxfee_msat is not None:
        params["maxfee_msat"] = maxfee_msat
    try:
        answer = await desk.call("hashpool-redeem", params)
    except CommandoUnavailable as exc:
        await _untouched(wallet, claim, "not_sent", None, str(exc))
        raise WalletError(Code.NODE_UNAVAILABLE, f"{exc}; nothing was sent") from None
    except CommandoError as exc:
        began = exc.data if isinstance(exc.data, dict) and exc.data.get("claim") == claim else None
        if began is None:  # refused before the redemption began: the desk never took the token
            await _untouched(wallet, claim, "rejected", exc.code, exc.message)
            raise WalletError(exc.code, exc.message, exc.data) from None
        return await settle(wallet, claim, {**began, "error": {"code": exc.code, "message": exc.message}})
    except OutcomeUnknown:
        await wallet.store.update_redemption(claim, state="unknown")
        found = await _status(desk, claim, tries=STATUS_TRIES)
        if not isinstance(found, dict):
            raise WalletError(Code.OUTCOME_UNKNOWN, "the answer was lost and the desk does not say yet what became "
                              "of it; the proofs stay pending, `hashpool-wallet redemptions` asks again") from None
        answer = found
    return await settle(wallet, claim, answer)


async def _enough(wallet: Wallet, desk: DeskLink, proofs: list[Proof], unit: str, destination: str,
                  amount_msat: int | None) -> list[Proof]:
    """The proofs the payment needs, by ``hashpool-quote`` (it commits nothing): the rest stays spendable in the
    wallet instead of waiting in the desk's custody until the payment is over. A rune without hashpool-quote
    means the whole lot goes."""
    params: dict[str, Any] = {"token": make_token(wallet.mint.url, unit, proofs), "invstring": destination}
    if amount_msat is not None:
        params["amount_msat"] = amount_msat
    try:
        quoted = await desk.call("hashpool-quote", params)
    except CommandoError as exc:
        if exc.code == COMMANDO_ERROR_REMOTE_AUTH:
            return proofs
        raise WalletError(exc.code, exc.message, exc.data) from None
    except (CommandoUnavailable, OutcomeUnknown) as exc:  # a quote changes nothing: nothing to resolve
        raise WalletError(Code.NODE_UNAVAILABLE, f"{exc}; nothing was sent") from None
    target = quoted.get("destination") if isinstance(quoted, dict) else None
    if not isinstance(target, dict):
        return proofs
    if target.get("payable") is False:
        code = rpc_code(target.get("code"))
        raise WalletError(Code.INSUFFICIENT_FUNDS if code is None else code,
                          str(target.get("reason") or "the desk cannot pay this destination with this ehash"))
    needed = target.get("units_needed")
    if not isinstance(needed, int) or isinstance(needed, bool) or needed >= sum(p.amount for p in proofs):
        return proofs
    return await wallet.select(proofs, needed, unit)


async def pick_unit(wallet: Wallet, amount_msat: int | None) -> str:
    """The settled epoch to pay from: the one worth most, or the first whose value covers ``amount_msat``."""
    settled = sorted((b for b in await wallet.balance() if b.value_msat), key=lambda b: -(b.value_msat or 0))
    if not settled:
        raise WalletError(Code.NOTHING_TO_DO, "no ehash of a settled epoch: only settled epochs can be redeemed")
    if amount_msat is None:
        return settled[0].unit
    for b in settled:
        if (b.value_msat or 0) >= amount_msat:
            return b.unit
    raise WalletError(Code.INSUFFICIENT_FUNDS, f"no settled epoch holds {amount_msat} msat; the most is "
                      f"{settled[0].value_msat} msat ({settled[0].unit})")


def unrecordable(r: Any) -> str | None:
    """Why the desk's account of a redemption cannot be recorded as it stands (None when it can): a state the desk
    does not have, a field of the wrong type, text that is not valid Unicode, a number beyond 64 bits."""
    if not isinstance(r, dict):
        return "not an object"
    if r.get("state") not in DESK_STATES:
        return f"state {str(r.get('state'))[:40]!r} is not one of the desk's"
    err = r.get("error")
    texts = [(k, r.get(k)) for k in TEXT_FIELDS] + [("error", err if isinstance(err, str) else None)]
    amount = r.get("amount_msat")
    if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool) or not 0 <= amount <= MAX_INT):
        return "amount_msat is not a 64-bit amount"
    if isinstance(err, dict):
        texts.append(("error.message", err.get("message")))
        if err.get("code") is not None and rpc_code(err.get("code")) is None:
            return "error.code is not a JSON-RPC code"
    elif err is not None and not isinstance(err, str):
        return "error is neither an object nor text"
    for key, value in texts:
        if value is not None and (not isinstance(value, str) or not valid_unicode(value)):
            return f"{key} is not text"
    return None


async def settle(wallet: Wallet, claim: str, r: Any) -> dict[str, Any]:
    """Record the desk's view of the redemption and act on it: tokens written first, then swapped back in."""
    why = unrecordable(r)
    if why is not None:  # nothing recorded: the redemption stays open and is asked about again
        raise WalletError(Code.OUTCOME_UNKNOWN, f"the desk's answer is not a redemption ({why}); the proofs stay "
                          "pending, `hashpool-wallet redemptions` asks again")
    state = r["state"]
    err = r.get("error")
    code = err.get("code") if isinstance(err, dict) else None
    message = err.get("message") if isinstance(err, dict) else (err if isinstance(err, str) else None)
    held = [p.y for p in await wallet.store.proofs(reserved_for=f"redeem:{claim}")]
    # Over, the desk says: it took the proofs into custody, which the mint must confirm (asked before anything is
    # written). A desk's word alone marks nothing spent: proofs the mint still holds unspent are the wallet's again.
    states = await wallet.mint.checkstate(held) if held and (state in PAID or state == "refunded") else []
    if any(s.state == "PENDING" for s in states):  # the mint is still deciding: nothing recorded, asked again later
        raise WalletError(Code.OUTCOME_UNKNOWN, "the mint holds the redemption's proofs pending; they stay pending, "
                          "`hashpool-wallet redemptions` asks again")
    await wallet.store.update_redemption(
        claim, id=r.get("id"), state=state, amount_msat=r.get("amount_msat"), payment_hash=r.get("payment_hash"),
        payment_preimage=r.get("payment_preimage"), change_token=r.get("change_token"),
        refund_token=r.get("refund_token"), error_code=code, error=message)
    if state == "rejected":
        await _untouched(wallet, claim, "rejected", code, message)
    elif state in PAID or state == "refunded":
        await wallet.store.set_proof_states([s.Y for s in states if s.state == "SPENT"], "spent", f"redeem:{claim}")
        await wallet.store.set_proof_states([s.Y for s in states if s.state == "UNSPENT"], "unspent")
        await take_tokens(wallet, claim)
    return {**public(r), **await redemption(wallet, claim)}


async def take_tokens(wallet: Wallet, claim: str) -> None:
    """Swap the change and refund tokens of a finished redemption into the wallet, once."""
    (row,) = [r for r in await wallet.store.redemptions() if r["claim"] == claim]
    if row["taken"]:
        return
    unusable = []
    for token in (row["change_token"], row["refund_token"]):
        if token:
            try:
                await wallet.receive(token)
            except WalletError as exc:
                if exc.code == Code.MINT_REFUSED and (exc.data or {}).get("mint_code") == 11001:
                    continue  # already spent: an earlier run swapped it and recovery stored the result
                if exc.code in (Code.MINT_UNAVAILABLE, Code.OUTCOME_UNKNOWN, Code.BUSY):
                    raise  # try again at the next command
                unusable.append(exc.message)  # a token that can never be taken: say so once, keep it stored
    if unusable:
        await wallet.store.update_redemption(claim, taken=2, error="; ".join(unusable))
    else:
        await wallet.store.update_redemption(claim, taken=1)


async def resolve_open(wallet: Wallet, desk: DeskLink) -> list[dict[str, Any]]:
    """Ask the desk about every redemption not known final, and take back tokens not yet taken."""
    done = []
    for row in await wallet.store.redemptions():
        if row["state"] in OPEN:
            found = await _status(desk, row["claim"], tries=1)
            if isinstance(found, dict):
                done.append(await settle(wallet, row["claim"], found))
            elif found is UNKNOWN_CLAIM and row["state"] in ("sending", "unknown"):
                # The desk has no redemption for this claim: the call never reached it. The proofs are still ours
                # if the mint says they are unspent. (No answer at all decides nothing: they stay pending.)
                await _untouched(wallet, row["claim"], "not_received", None, None)
        elif (row["change_token"] or row["refund_token"]) and not row["taken"]:
            await take_tokens(wallet, row["claim"])
    return done


async def _status(desk: DeskLink, claim: str, *, tries: int) -> dict[str, Any] | object | None:
    """``hashpool-status {claim}``: the redemption; UNKNOWN_CLAIM when the desk says it has none (3450); None
    when no answer came (after ``tries`` attempts)."""
    result: object | None = None
    for attempt in range(tries):
        try:
            answer = await desk.call("hashpool-status", {"claim": claim})
            if isinstance(answer, dict) and unrecordable(answer) is None:
                return answer
        except CommandoError as exc:
            if exc.code != UNKNOWN_REDEMPTION:
                raise WalletError(exc.code, exc.message, exc.data) from None
            result = UNKNOWN_CLAIM
        except (CommandoUnavailable, OutcomeUnknown):
            result = None
        if attempt + 1 < tries:
            await asyncio.sleep(STATUS_PAUSE)
    return result


async def _untouched(wallet: Wallet, claim: str, state: str, code: int | None, message: str | None) -> None:
    """The desk did not take the proofs: back to unspent, unless the mint says they were spent after all."""
    held = [p.y for p in await wallet.store.proofs(reserved_for=f"redeem:{claim}")]
    states = await wallet.mint.checkstate(held) if held else []
    if any(s.state != "UNSPENT" for s in states):
        await wallet.store.update_redemption(claim, state="unknown")
        return
    if held:
        await wallet.store.set_proof_states(held, "unspent")
    await wallet.store.update_redemption(claim, state=state, error_code=code, error=message)


async def redemption(wallet: Wallet, claim: str) -> dict[str, Any]:
    """The wallet's record of one redemption, without its tokens and claim (for tables and ``--json``)."""
    (row,) = [r for r in await wallet.store.redemptions() if r["claim"] == claim]
    return public(row)


def public(row: dict[str, Any]) -> dict[str, Any]:
    """A redemption without what opens tokens (the claim) and without the tokens themselves."""
    hidden = {"claim", "change_token", "refund_token", "error"}
    out = {k: v for k, v in row.items() if k not in hidden and v is not None}
    if isinstance(row.get("error"), str):
        out["error"] = row["error"]
    return out


async def autopay(wallet: Wallet, desk: DeskLink, destination: str, *, min_msat: int = 0,
                  before: Callable[[], Awaitable[Any]] | None = None) -> list[dict[str, Any]]:
    """One round: redeem every settled epoch the wallet holds worth at least ``min_msat`` to ``destination`` (a
    BOLT12 offer without amount or a BIP353 name, so the desk pays the whole value)."""
    if destination.strip().lower().startswith("ln") and not destination.strip().lower().startswith("lno"):
        raise WalletError(Code.BAD_DESTINATION, "autopay pays again and again: give a BOLT12 offer or a BIP353 name, "
                          "not a BOLT11 invoice (it can be paid once)")
    if before is not None:
        await before()
    await resolve_open(wallet, desk)
    paid = []
    for b in await wallet.balance():
        if b.state == "settled" and b.value_msat and b.value_msat >= max(min_msat, 1):
            paid.append(await redeem(wallet, desk, destination, unit=b.unit))
    return paid
