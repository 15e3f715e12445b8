"""BIP353 human-readable names (``₿user@domain``) as destinations.

The desk checks a name's syntax itself, before any node call, and asks the node to resolve it (``fetchbip353``);
here too is what a failed resolution means for the caller.

Syntax (BIP353, DNS): an optional leading ``₿``, then ``user@domain``; the user and the domain are each one or
more DNS labels joined by dots, each label 1 to 63 characters of ASCII letters, digits, ``-`` and ``_``
(international names must be written in punycode, ``xn--...``); the name the record lives at,
``user.user._bitcoin-payment.domain.``, must fit the DNS limit of 255 octets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NoReturn

from hashpool_cln.lightning.port import NodeError

from .errors import Code, DeskError

PREFIX = "₿"
_LABEL = re.compile(r"[A-Za-z0-9_-]{1,63}")
_MAX_DNS_NAME = 255  # octets in wire form: a length byte per label, the labels, the root's zero byte
_RECORD_LABELS = ("user", "_bitcoin-payment")

# CLN answers -32601 for a command no plugin provides; the cln-bip353 plugin (a Rust plugin, absent from a node
# built without them) answers every failure of its own with -32700 and a message. Its messages are the only
# signal, so they are matched loosely, and anything not known to be the name's fault counts as a failed lookup.
UNKNOWN_COMMAND = -32601
_NOT_THE_NAMES_FAULT = ("DNS Request", "Failed to fetch", "callback failed", "Too many queries", "timed out",
                        "timeout", "error sending request", "connect")
_NO_SUCH_NAME = ("No validated TXT record", "invalid address", "did not contain valid methods",
                 "dnssec proof not found", "Multiple TXT records", "DNSSEC signatures were invalid",
                 "TXT record contained an invalid string", "UnknownPaymentInstructions", "InvalidBolt12",
                 "InvalidInstructions", "InconsistentInstructions", "InstructionsExpired", "UnknownRequiredParameter")


@dataclass(frozen=True, slots=True)
class Name:
    user: str
    domain: str

    def __str__(self) -> str:
        """The form ``fetchbip353`` and ``fetchinvoice`` take (no ``₿``)."""
        return f"{self.user}@{self.domain}"


def is_name(text: str) -> bool:
    """Whether ``text`` is meant as a BIP353 name: invoices and offers (bech32) never hold ``@`` or ``₿``."""
    return text.startswith(PREFIX) or "@" in text


def parse(text: str) -> Name:
    """The name in ``text``; INVALID_DESTINATION saying what is wrong with it otherwise."""
    body = text[len(PREFIX):] if text.startswith(PREFIX) else text
    if not body.isascii():
        _refuse(text, "it must be ASCII (write an international name in punycode, xn--...)")
    user, at, domain = body.partition("@")
    if not at or "@" in domain:
        _refuse(text, "it must be user@domain with exactly one @")
    for part, value in (("user", user), ("domain", domain)):
        if not value:
            _refuse(text, f"the {part} part is empty")
        for label in value.split("."):
            if not label:
                _refuse(text, f"the {part} part has an empty label (a leading, trailing or doubled dot)")
            if not _LABEL.fullmatch(label):
                _refuse(text, f"the {part} part's labels must be 1 to 63 letters, digits, '-' or '_'")
    labels = [*user.split("."), *_RECORD_LABELS, *domain.split(".")]
    if sum(len(label) + 1 for label in labels) + 1 > _MAX_DNS_NAME:
        _refuse(text, "it is too long for a DNS name")
    return Name(user=user, domain=domain)


def lookup_error(name: Name, error: NodeError) -> DeskError:
    """What a failed ``fetchbip353`` means for the caller."""
    data = {"node_error": error.code, "node_message": error.message[:200]}
    if error.code == UNKNOWN_COMMAND:
        return DeskError(Code.DESTINATION_UNSUPPORTED,
                         "this node cannot resolve BIP353 names: it lacks the fetchbip353 command of Core Lightning's "
                         "cln-bip353 plugin (a Rust plugin; build or install Core Lightning with it)", data)
    if "non-Bitcoin currency" in error.message:
        return DeskError(Code.DESTINATION_UNSUPPORTED, f"{name} asks for an amount in another currency", data)
    if "WrongNetwork" in error.message:
        return DeskError(Code.WRONG_NETWORK, f"{name} names payment instructions for another network", data)
    if any(m in error.message for m in _NO_SUCH_NAME) and not any(m in error.message for m in _NOT_THE_NAMES_FAULT):
        return DeskError(Code.INVALID_DESTINATION, f"{name} does not resolve to usable payment instructions", data)
    return DeskError(Code.OFFER_UNREACHABLE, f"{name} could not be resolved now (the DNS lookup failed)", data)


def _refuse(text: str, why: str) -> NoReturn:
    raise DeskError(Code.INVALID_DESTINATION, f"not a BIP353 name (₿user@domain): {why}",
                    {"invstring": text[:300]})
