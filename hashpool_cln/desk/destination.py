"""Step 2 of a redemption (DESIGN §2): turn what the caller gave — a BOLT11 invoice, a BOLT12 offer or a BIP353
name — into the invoice the desk will pay and how it pays it. An offer's invoice is fetched here, so its payment
hash is known, and claimed in the ledger, before anything is spent. A BIP353 name is resolved by the node to its
payment instructions; the first BOLT12 offer among them is then paid like any offer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from hashpool_cln.lightning.port import Destination, NodeError, NodeInfo, NodePort, NodeUnavailable

from . import bip353, policy
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
    address: str | None = None  # the BIP353 name as given, when ``destination`` is the offer it resolved to


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
            raise DeskError(Code.INVALID_PARAMS,
                            "invstring must be a BOLT11 invoice, a BOLT12 offer or a BIP353 name (₿user@domain)")
        given = text = invstring.strip()
        name = bip353.parse(given) if bip353.is_name(given) else None  # a malformed name never reaches the node
        network = (await self.node_info()).network
        fixed_msat = None
        if name is not None:
            text, fixed_msat = await self._lookup(name)
        dest = await self.decode(text)
        if name is not None:
            if dest.kind != "bolt12_offer":
                raise DeskError(Code.INVALID_DESTINATION, f"{name} resolved to something other than a BOLT12 offer")
            amount_msat = _name_amount(name, dest, fixed_msat, amount_msat)
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
        else:
            # Refused here, before the offer's node is asked for an invoice the desk would never pay.
            policy.check_amount(amount_msat if dest.amount_msat is None else dest.amount_msat, self.config)
        try:
            with self.timings.measure("node"):
                invoice = await self.node.fetchinvoice(
                    offer, amount_msat if dest.amount_msat is None else None, payer_note,
                    bip353=None if name is None else str(name))
        except NodeError as e:
            raise DeskError(Code.OFFER_UNREACHABLE, "the offer's node did not send an invoice",
                            {"node_error": e.code}) from None
        except NodeUnavailable:
            raise DeskError(Code.NODE_UNAVAILABLE, "the Lightning node did not answer") from None
        dest = await self.decode(invoice)
        if dest.kind != "bolt12_invoice":
            raise DeskError(Code.INVALID_DESTINATION, "the offer's node sent something other than an invoice")
        policy.check_destination(dest, network, now, self.config)
        return self._target("bolt12_offer", offer, dest, amount_msat, reserve,
                            address=None if name is None else given)

    async def _lookup(self, name: bip353.Name) -> tuple[str, int | None]:
        """The first BOLT12 offer ``name`` resolves to, with the amount its instructions fix (on-chain ones are
        skipped: the desk pays over Lightning only)."""
        try:
            with self.timings.measure("node"):
                instructions = await self.node.fetchbip353(str(name))
        except NodeError as e:
            raise bip353.lookup_error(name, e) from None
        except NodeUnavailable:
            raise DeskError(Code.NODE_UNAVAILABLE, "the Lightning node did not answer") from None
        for instruction in instructions:
            if instruction.offer is not None:
                return instruction.offer, instruction.offchain_amount_msat
        raise DeskError(Code.INVALID_DESTINATION,
                        f"{name} offers no BOLT12 offer" + (" (only on-chain payment)" if instructions else ""))

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
                reserve_msat: int | None = None, *, address: str | None = None) -> Target:
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
                      reserve_msat=reserve_msat, address=address)


def _name_amount(name: bip353.Name, offer: Destination, fixed_msat: int | None, amount_msat: int | None) -> int | None:
    """The amount to ask the resolved offer for: the one the name's instructions fix, else the caller's."""
    if fixed_msat is None:
        return amount_msat
    if offer.amount_msat is not None and offer.amount_msat != fixed_msat:
        raise DeskError(Code.INVALID_DESTINATION, f"{name}'s payment instructions and its offer name different amounts",
                        {"instructions_msat": fixed_msat, "offer_msat": offer.amount_msat})
    if amount_msat is not None and amount_msat != fixed_msat:
        raise DeskError(Code.INVALID_PARAMS, "amount_msat differs from the amount the destination names",
                        {"amount_msat": amount_msat, "destination_msat": fixed_msat})
    return fixed_msat


def _same_amount(dest: Destination, amount_msat: int | None) -> None:
    if amount_msat is not None and dest.amount_msat is not None and amount_msat != dest.amount_msat:
        raise DeskError(Code.INVALID_PARAMS, "amount_msat differs from the amount the destination names",
                        {"amount_msat": amount_msat, "destination_msat": dest.amount_msat})
