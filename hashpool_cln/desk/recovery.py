"""Bring every unfinished redemption to a final or a waiting state, from the ledger, the mint and the node.

Run on start (the last process may have died anywhere) and whenever the operator or a timer asks. Each state
is resumed from what its committed record allows, and nothing is repeated that might already have happened:
a swap is replayed with the identical request (NUT-13 outputs), a payment is asked again only of the node,
which never pays one payment hash twice. A redemption in ``custody`` without its melt quote asks for it under
its open reference (the mint answers the same quote), or is refunded when the mint refuses.

The steps used here are the desk's public ones; which redemptions a live call drives is asked of the desk
(``drive`` / ``let_go``), so recovery never takes one from under it.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from hashpool_cln.cashu import crypto
from hashpool_cln.cashu.models import Proof
from hashpool_cln.mintclient import MintError, MintProtocolError, MintUnavailable

from .errors import Code, DeskError
from .states import State
from .store import Record

if TYPE_CHECKING:
    from .desk import Desk

log = logging.getLogger("hashpool_cln.desk.recovery")

UNFINISHED = (State.NEW, State.QUOTED, State.CUSTODY, State.PAYING, State.PAID)


async def reconcile(desk: Desk) -> dict[str, int]:
    """Resume every unfinished redemption once; return how many end in each state."""
    records = await desk.store.list(UNFINISHED, limit=1_000_000)
    outcome: dict[str, int] = {}
    for rec in reversed(records):  # oldest first
        if not desk.drive(rec.id):
            continue  # a live call drives it
        try:
            rec = await resume(desk, rec)
        except DeskError as e:
            log.warning("redemption %s waits: %s", rec.id, e.message)
            rec = await desk.store.get(rec.id) or rec
        except Exception as e:
            # One redemption's failure (a mint answer nobody foresaw, say) never stops the others, nor the start:
            # it stays where its ledger says, and the next round tries it again. The class only: messages may
            # quote what the mint said about a token.
            log.warning("redemption %s waits: %s while resuming it", rec.id, type(e).__name__)
        finally:
            desk.let_go(rec.id)
        outcome[str(rec.state)] = outcome.get(str(rec.state), 0) + 1
    try:
        await desk.release_quotes()  # what earlier rounds could not release (the mint did not answer)
    except Exception as e:
        log.warning("releasing quotes waits: %s", type(e).__name__)
    return outcome


async def resume(desk: Desk, rec: Record) -> Record:
    if rec.state is State.NEW:
        # Nothing reached the mint beyond a price request: the caller's token is untouched.
        await desk.reject(rec, DeskError(Code.NOT_READY, "interrupted before it was priced"))
        return await desk.store.get(rec.id) or rec
    if rec.state is State.QUOTED:
        rec = await _resume_quoted(desk, rec)
    if rec.state is State.CUSTODY:
        rec = await desk.pay(rec)
    if rec.state is State.PAYING:
        rec = await _resume_paying(desk, rec)
    if rec.state is State.PAID and desk.config.settle == "immediate":
        rec = await desk.settle_one(rec)
    return rec


async def _resume_quoted(desk: Desk, rec: Record) -> Record:
    """The swap may or may not have happened: ask the mint before deciding."""
    inputs = [Proof.from_dict(json.loads(p)) for p in await desk.store.inputs(rec.id)]
    try:
        states = await desk.checkstate([crypto.proof_y(p.secret) for p in inputs])
    except (MintUnavailable, MintProtocolError, MintError):
        raise DeskError(Code.MINT_UNAVAILABLE, "the mint did not answer; the redemption waits for it") from None
    if {s.state for s in states} == {"UNSPENT"} and desk.unpayable(rec) is not None:
        # Untouched, and too late to pay: leave the token with its owner.
        await desk.reject(rec, DeskError(Code.DESTINATION_EXPIRED, desk.unpayable(rec) or "too late"))
        return await desk.store.get(rec.id) or rec
    # Untouched and still payable: the identical swap. Spent: the same request answers "spent" and
    # restore tells whether the outputs are ours.
    try:
        return await desk.take_custody(rec)
    except DeskError:
        return await desk.store.get(rec.id) or rec


async def _resume_paying(desk: Desk, rec: Record) -> Record:
    status = await desk.payment_status(rec["payment_hash"])
    if status is None or status.status == "pending":
        return rec
    if status.status == "complete":
        return await desk.follow_payment(rec, status)
    settled_by = (rec["paying_at"] or 0) + desk.payment_window()
    if status.status == "failed":
        # The node may still be between two attempts of a payment a crashed desk started: wait it out.
        if desk.now() >= settled_by:
            return await desk.refund(rec, Code.PAYMENT_FAILED, "the payment failed")
        return rec
    # Unknown to the node: the call never reached it, or is still looking for a route. Asking again is safe —
    # the node pays one payment hash at most once — while the destination is still good.
    if desk.unpayable(rec) is None:
        return await desk.send_payment(rec)
    if desk.now() >= settled_by:
        return await desk.refund(rec, Code.DESTINATION_EXPIRED, "the payment never started and the invoice expired")
    return rec
