"""Step 2 of a redemption (DESIGN §2): turn what the caller gave — a BOLT11 invoice or a BOLT12 offer — into the
invoice the desk will pay and how it pays it. An offer's invoice is fetched here, so its payment hash is known,
and claimed in the ledger, before anything is spent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from hashpool_cln.lightning.port import Destination, NodeError, NodeInfo, NodePort, NodeUnavailable

from . import policy
from .config import DeskConfig
from .errors import Code, DeskError
from .intake import Checked
from .timing import Timings


@dataclass(frozen=True, slots=True)
class Target:
    """Where the money goes and how: the invoice actually paid and the pay call that pays it."""

    kind: str
    destination: str  # as given
    invoice: str  # as paid (a fetched invoice for offers)
    payment_hash: str
    method: str  # xpay | sendamount
    deliver_msat: int | None  # what the payee must receive; None: the whole value, sent with sendamount
    pay_amount_msat: int | None  # the amount argument of the pay call (amountless invoices only)
    expires_at: int | None
    reserve_msat: int | None = None  # a fee reserve fixed when the invoice was fetched (whole-value offers)


class Resolver:
    def __init__(self, node: NodePort, node_info: Callable[[], Awaitable[NodeInfo]], config: DeskConfig,
                 timings: Timings) -> None:
        self.node = node
        self.node_info = node_info  # the node's own getinfo (its network), cached by the desk
        self.config = config
        self.timings = timings

    async def resolve(self, invstring: object, amount_msat: int | None, payer_note: str | None, checked: Checked,
                      maxfee_msat: int | None, *, now: int) -> Target:
        """Decode and check ``invstring`` (fetching an offer's invoice); DeskError if the desk cannot pay it."""
        if not isinstance(invstring, str) or not invstring.strip():
            raise DeskError(Code.INVALID_PARAMS, "invstring must be a BOLT11 invoice or a BOLT12 offer")
        network = (await self.node_info()).network
        dest = await self.decode(invstring.strip())
        policy.check_destination(dest, network, now, self.config)
        if dest.kind != "bolt12_offer":
            return self._target(dest.kind, dest.invstring, dest, amount_msat)
        _same_amount(dest, amount_msat)
        offer = dest.invstring
        reserve = None
        if dest.amount_msat is None and amount_msat is None:
            # The whole value, like an amountless BOLT11 invoice; but an offer's invoice must be fetched for a
            # fixed amount (its payment hash is persisted before the payment), so the routing fee reserve comes
            # off the amount asked for and xpay gets it as its fee limit.
            amount_msat, reserve = self._whole_value_invoice(checked, maxfee_msat)
        try:
            with self.timings.measure("node"):
                invoice = await self.node.fetchinvoice(
                    offer, amount_msat if dest.amount_msat is None else None, payer_note)
        except NodeError as e:
            raise DeskError(Code.OFFER_UNREACHABLE, "the offer's node did not send an invoice",
                            {"node_error": e.code}) from None
        except NodeUnavailable:
            raise DeskError(Code.NODE_UNAVAILABLE, "the Lightning node did not answer") from None
        dest = await self.decode(invoice)
        if dest.kind != "bolt12_invoice":
            raise DeskError(Code.INVALID_DESTINATION, "the offer's node sent something other than an invoice")
        policy.check_destination(dest, network, now, self.config)
        return self._target("bolt12_offer", offer, dest, amount_msat, reserve)

    async def decode(self, invstring: str) -> Destination:
        try:
            with self.timings.measure("node"):
                return await self.node.decode(invstring)
        except NodeError as e:
            raise DeskError(Code.INVALID_DESTINATION, "the node cannot read this invoice or offer",
                            {"node_error": e.code}) from None
        except NodeUnavailable:
            raise DeskError(Code.NODE_UNAVAILABLE, "the Lightning node did not answer") from None

    def _whole_value_invoice(self, checked: Checked, maxfee_msat: int | None) -> tuple[int, int]:
        """The amount to ask an amountless offer for when the caller names none, and the fee reserve it leaves."""
        value = checked.value(checked.whole_units())
        policy.check_amount(value, self.config)
        reserve = policy.fee_reserve(value, maxfee_msat, self.config)
        if value - reserve <= 0:
            raise DeskError(Code.INSUFFICIENT_VALUE, "the token is worth no more than the routing fee reserve",
                            {"value_msat": value, "fee_reserve_msat": reserve})
        return value - reserve, reserve

    def _target(self, kind: str, given: str, dest: Destination, amount_msat: int | None,
                reserve_msat: int | None = None) -> Target:
        if dest.payment_hash is None:
            raise DeskError(Code.INVALID_DESTINATION, "the destination names no payment hash")
        if dest.amount_msat is not None:
            _same_amount(dest, amount_msat)
            deliver, method, pay_amount = dest.amount_msat, "xpay", None
        elif amount_msat is not None:
            deliver, method, pay_amount = amount_msat, "xpay", amount_msat
        else:
            deliver, method, pay_amount = None, "sendamount", None
        if deliver is not None:
            policy.check_amount(deliver, self.config)
        return Target(kind=kind, destination=given, invoice=dest.invstring, payment_hash=dest.payment_hash,
                      method=method, deliver_msat=deliver, pay_amount_msat=pay_amount, expires_at=dest.expires_at,
                      reserve_msat=reserve_msat)


def _same_amount(dest: Destination, amount_msat: int | None) -> None:
    if amount_msat is not None and dest.amount_msat is not None and amount_msat != dest.amount_msat:
        raise DeskError(Code.INVALID_PARAMS, "amount_msat differs from the amount the destination names",
                        {"amount_msat": amount_msat, "destination_msat": dest.amount_msat})
