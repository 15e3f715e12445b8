"""Redemptions held for the operator, and the operator's decision on them (``hashpool-resolve``).

A redemption is held when the node holds a completed payment of its payment hash that the desk cannot take as
its own (``node_paid``): xpay answered "already paid" while the node lists no completed payment, or the payment
the node lists was made under another label (someone paid the invoice from this node by hand). The desk never
decides these alone — taking the payment as its own would charge the caller for a payment it may not have made,
refunding would hand back the value of an invoice already settled — so they stay ``paying`` until the operator
says which it is:

    paid     the payment is this redemption's: the redemption records it (preimage from the node's record, or
             the one the operator gives, checked against the payment hash) and settles
    refund   no payment of this redemption exists: the custody proofs go back as a refund token

Both refuse a redemption that is not held, and every decision is checked against the node's records right
before it is written: ``refund`` is refused while any payment of the hash is in flight or when the one the node
lists completed under the redemption's own label, and ``paid`` needs a preimage that matches. The decision is
written (who, when, why) in the same commit as the move it allows; nothing is ever paid by either.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from hashpool_cln.lightning.port import Payment

from .errors import Code, DeskError
from .states import State
from .store import Record

DECISIONS = ("paid", "refund")
DEFAULT_WHO = "operator"
MAX_REASON = 500
MAX_WHO = 64
_HEX32 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class Decision:
    decision: str
    reason: str
    who: str
    preimage: str | None


@dataclass(frozen=True, slots=True)
class AcceptedPayment:
    """What the redemption records when the operator takes a payment as its own."""

    preimage: str
    amount_msat: int | None
    amount_sent_msat: int | None

    @property
    def fee_msat(self) -> int | None:
        if self.amount_msat is None or self.amount_sent_msat is None:
            return None
        return self.amount_sent_msat - self.amount_msat


def check_decision(decision: Any, reason: Any, who: Any = None, preimage: Any = None) -> Decision:
    """The operator's parameters, checked; INVALID_PARAMS names the first one that is wrong."""
    if decision not in DECISIONS:
        raise DeskError(Code.INVALID_PARAMS, "decision must be 'paid' or 'refund'")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise DeskError(Code.INVALID_PARAMS, f"reason must be a non-empty string of at most {MAX_REASON} characters")
    if who is None:
        who = DEFAULT_WHO
    if not isinstance(who, str) or not who.strip() or len(who) > MAX_WHO:
        raise DeskError(Code.INVALID_PARAMS, f"who must be a non-empty string of at most {MAX_WHO} characters")
    if preimage is not None:
        if decision != "paid":
            raise DeskError(Code.INVALID_PARAMS, "preimage goes only with decision 'paid'")
        if not isinstance(preimage, str) or not _HEX32.fullmatch(preimage.lower()):
            raise DeskError(Code.INVALID_PARAMS, "preimage must be 64 hex characters")
        preimage = preimage.lower()
    return Decision(decision, reason.strip(), who.strip(), preimage)


def is_held(rec: Record) -> bool:
    return rec.state is State.PAYING and bool(rec.get("node_paid"))


def check_held(rec: Record) -> None:
    if not is_held(rec):
        raise DeskError(Code.NOT_HELD, f"this redemption is {rec.state}, not waiting for the operator's decision",
                        {"id": rec.id, "state": str(rec.state)})


def accepted_payment(rec: Record, payment: Payment, preimage: str | None) -> AcceptedPayment:
    """The payment ``paid`` records: the node's completed one (any label), else the operator's preimage."""
    if payment.status == "complete" and payment.preimage is not None:
        if preimage is not None and preimage != payment.preimage.lower():
            raise DeskError(Code.DECISION_REFUSED, "the preimage given is not the one the node's payment carries",
                            {"id": rec.id})
        return AcceptedPayment(payment.preimage, payment.amount_msat, payment.amount_sent_msat)
    if preimage is None:
        raise DeskError(Code.DECISION_REFUSED, "the node lists no completed payment of this invoice: give the "
                        "payment's preimage to accept it as paid", {"id": rec.id})
    if hashlib.sha256(bytes.fromhex(preimage)).hexdigest() != rec["payment_hash"]:
        raise DeskError(Code.DECISION_REFUSED, "the preimage does not match the invoice's payment hash",
                        {"id": rec.id})
    return AcceptedPayment(preimage, None, None)


def check_refundable(rec: Record, payment: Payment, own_label: str) -> None:
    """Refuse ``refund`` when the node's records show that this redemption's payment exists or may still."""
    if payment.status == "pending":
        raise DeskError(Code.DECISION_REFUSED, "a payment of this invoice is still in flight on the node",
                        {"id": rec.id})
    if payment.status == "complete" and payment.label == own_label:
        raise DeskError(Code.DECISION_REFUSED, "the node lists this redemption's own payment as complete: it is "
                        "paid, never refunded", {"id": rec.id})


def moved(after: Record | None, before: Record) -> Record:
    """The record the decision moved; NOT_HELD when something else moved it first (nothing was written)."""
    if after is None:
        raise DeskError(Code.NOT_HELD, "the redemption moved meanwhile; look at it again", {"id": before.id})
    return after


def record(choice: Decision, now: int) -> dict[str, Any]:
    """The ledger columns that keep the decision (written with the move it allows)."""
    return {"resolved_decision": choice.decision, "resolved_by": choice.who, "resolved_at": now,
            "resolved_reason": choice.reason}


def public(rec: Record) -> dict[str, Any] | None:
    """The decision as the operator's answers show it; None for a redemption nobody decided."""
    if rec.get("resolved_decision") is None:
        return None
    return {"decision": rec["resolved_decision"], "by": rec["resolved_by"], "at": rec["resolved_at"],
            "reason": rec["resolved_reason"]}
