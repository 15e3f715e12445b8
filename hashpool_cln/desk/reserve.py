"""The routing fee reserve: what a payment buys on top of its amount, and what routing leaves of it for the caller.

The caller pays the routing fee actually paid. A payment of a fixed amount (an invoice or offer with an amount, or
``amount_msat``) buys units worth the amount plus its reserve — ``min(ceil(amount * maxfee_ppm / 10^6),
maxfee_msat)``, or the caller's smaller ``maxfee_msat`` — and xpay may spend at most the reserve on routing.
Custody holds the units the amount needs as one set of outputs and the reserve's units as another, denominated
so that any part of it is an exact sum of its proofs (``wallet.reserve_amounts``). When the payment completes,
the units its amount plus the actual routing fee need are kept; the reserve proofs worth the rest join the
caller's change token in the same commit that records the payment, and the settlement melts the kept units
against a new quote for exactly them (the first quote was for all the units bought). Where the desk's outputs
carry an input fee the reserve is not split out, and it is charged in full. A whole-value payment (no amount
anywhere) spends every unit: to an amountless BOLT11 invoice with sendamount, so the payee receives the value less
the actual routing fee and nothing is left over; to an amountless offer, whose invoice must be fetched for a
fixed amount before paying, by asking for the value less the reserve, which again caps the fee and is charged in
full. ``quote`` shows all of it before anything is spent: ``fee_reserve_msat``, ``cost_msat`` (the most the
payment can cost: the value of the units bought), ``units_needed`` and ``unused_fee_reserve`` (``caller``,
``payee`` or ``desk``).
"""

from __future__ import annotations

from hashpool_cln.cashu.amounts import pick_exact
from hashpool_cln.desk import policy
from hashpool_cln.desk.config import DeskConfig
from hashpool_cln.desk.destination import Target
from hashpool_cln.desk.intake import Checked
from hashpool_cln.desk.store import Record


def reserve_for(target: Target, deliver_msat: int, maxfee_msat: int | None, config: DeskConfig) -> int:
    """The routing fee reserve of a payment delivering ``deliver_msat``."""
    if target.reserve_msat is not None:
        return target.reserve_msat
    return policy.fee_reserve(deliver_msat, maxfee_msat, config)


def units_needed(checked: Checked, target: Target, maxfee_msat: int | None, config: DeskConfig) -> tuple[int, int]:
    """Units the payment needs at the epoch's rate, with the fee reserve; whole-value sends need them all."""
    if target.deliver_msat is None:
        value = checked.value(checked.amount)
        return checked.amount, policy.fee_reserve(value, maxfee_msat, config)
    reserve = reserve_for(target, target.deliver_msat, maxfee_msat, config)
    return policy.units_for(target.deliver_msat + reserve, checked.epoch, checked.pool_fee_ppm), reserve


def returns_reserve(checked: Checked, target: Target) -> bool:
    """Whether the unused part of the fee reserve goes back to the caller: for a fixed amount the caller chose
    (not a whole-value offer, whose reserve was fixed when its invoice was fetched), when the desk's outputs
    carry no input fee (melting part of a custody whose proofs each cost a fee would need fee-exact sums)."""
    return (target.method == "xpay" and target.deliver_msat is not None and target.reserve_msat is None
            and checked.output_keyset().input_fee_ppk == 0)


def goes_to(checked: Checked, target: Target) -> str:
    """Who keeps the part of the reserve routing does not use: ``payee``, ``caller`` or ``desk``."""
    if target.method == "sendamount":
        return "payee"
    return "caller" if returns_reserve(checked, target) else "desk"


def unused(rec: Record, sent_msat: int | None) -> tuple[list[int], int] | None:
    """What goes back of a paid redemption's reserve: the indexes (into its ``reserve_amounts``) of the proofs and
    the units they hold; None when all of it was used, or the reserve was not bought as outputs of its own, or the
    node does not say what it sent."""
    amounts = rec.amounts("reserve_amounts")
    if not amounts or sent_msat is None or rec.get("payment_units") is None:
        return None
    total = rec["payment_units"] + sum(amounts)
    used = policy.units_used(sent_msat, rec["payment_units"], total, rec["rate_net_msat"], rec["rate_issued"])
    if used == total:
        return None
    return pick_exact(amounts, total - used), total - used
