"""What the desk needs from a Lightning node, independent of how it is reached.

One implementation speaks CLN JSON-RPC (``clnrpc.py``); tests use the same one against a stand-in node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

DestinationKind = Literal["bolt11", "bolt12_offer", "bolt12_invoice"]
PaymentStatus = Literal["complete", "pending", "failed", "unknown"]


@dataclass(frozen=True, slots=True)
class NodeInfo:
    id: str
    network: str  # CLN's names: bitcoin, testnet, testnet4, signet, regtest
    blockheight: int


@dataclass(frozen=True, slots=True)
class Destination:
    """A decoded invstring (CLN ``decode``), reduced to what the desk's policy looks at."""

    kind: DestinationKind
    invstring: str
    network: str | None
    amount_msat: int | None  # None: amountless
    payment_hash: str | None  # None for offers
    payee: str | None
    created_at: int | None
    expires_at: int | None  # unix seconds
    description: str | None = None
    recurring: bool = False  # offers with a recurrence
    currency: str | None = None  # offers priced in a fiat currency
    valid: bool = True


@dataclass(frozen=True, slots=True)
class Payment:
    """What the node knows of the payment with ``payment_hash``."""

    status: PaymentStatus
    payment_hash: str | None = None
    preimage: str | None = None
    amount_msat: int | None = None  # delivered to the payee
    amount_sent_msat: int | None = None  # including routing fees
    label: str | None = None  # the label the paying call gave (listpays/listsendpays ``label``), if any


@dataclass(frozen=True, slots=True)
class PaymentInstruction:
    """One payment instruction a BIP353 name resolves to (CLN ``fetchbip353``): a BOLT12 offer or an on-chain
    address, each with the amount the recipient fixed, if any."""

    offer: str | None = None
    onchain: str | None = None
    offchain_amount_msat: int | None = None  # only with an offer
    onchain_amount_sat: int | None = None  # only with an on-chain address
    description: str | None = None


class NodeError(Exception):
    """The node answered a call with a JSON-RPC error."""

    def __init__(self, method: str, code: int, message: str, data: object = None) -> None:
        super().__init__(f"{method}: {message} (code {code})")
        self.method = method
        self.code = code
        self.message = message
        self.data = data


class NodeUnavailable(Exception):
    """The call's outcome is unknown: the connection failed or was lost before an answer."""


class NodePort(Protocol):
    async def getinfo(self) -> NodeInfo: ...

    def close(self) -> None:
        """Let go of idle connections; a later call opens what it needs."""
        ...

    async def decode(self, invstring: str) -> Destination: ...

    async def fetchinvoice(self, offer: str, amount_msat: int | None, payer_note: str | None, *,
                           bip353: str | None = None) -> str:
        """A BOLT12 invoice for ``offer``; raises NodeError when the offer's node does not answer.

        ``bip353``: the name (``user@domain``) the offer was resolved from, which BOLT12 requires the invoice
        request to carry.
        """
        ...

    async def fetchbip353(self, address: str) -> list[PaymentInstruction]:
        """The DNSSEC-verified payment instructions of a BIP353 name (``user@domain``), in the record's order.

        NodeError when the node cannot resolve it, including code -32601 when it lacks the command.
        """
        ...

    async def xpay(self, invstring: str, *, amount_msat: int | None, maxfee_msat: int, retry_for: int,
                   label: str) -> Payment:
        """Pay; NodeError on failure (the payment may still have parts in flight: ask payment_status). The
        Payment returned, and the node's record of it, carry ``label``."""
        ...

    async def sendamount(self, invstring: str, *, amount_msat: int, maxfee_msat: int, retry_for: int,
                         label: str) -> Payment:
        """Spend exactly ``amount_msat`` (the payee bears routing fees); amountless destinations only."""
        ...

    async def payment_status(self, payment_hash: str) -> Payment:
        """Merge ``listpays`` and ``listsendpays``: complete > pending > failed; ``unknown`` if neither knows it."""
        ...
