"""Real BOLT11 invoices for tests, and made-up BOLT12 offers for the stand-in node.

BOLT11 invoices are encoded and signed with the ``bolt11`` package by a fake payee whose node key is fixed
(``PAYEE_KEY``). The payee derives each preimage from the invoice's payment secret with a key only it (and the
stand-in node, playing the payee's side) knows, so the stand-in can settle any invoice made here without
registration.

BOLT12 cannot be encoded or decoded in Python here: ``make_offer`` returns an *opaque* string that merely looks
like an offer (``lno1`` + random bech32 characters) together with the fields the stand-in node reports when it
"decodes" it. Such strings mean something only to a ``FakeNode`` they are registered with.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import bolt11
from bolt11.models.tags import TagChar, Tags
from coincurve import PrivateKey

PAYEE_KEY = hashlib.sha256(b"hashpool-cln test payee node key").hexdigest()
PAYEE_ID = PrivateKey.from_hex(PAYEE_KEY).public_key.format().hex()
_PREIMAGE_KEY = hashlib.sha256(b"hashpool-cln test payee preimage key").digest()

# BOLT11 human-readable prefixes and BOLT12 chain hashes (CLN prints them in internal byte order).
NETWORK_HRP = {"bitcoin": "bc", "testnet": "tb", "testnet4": "tb", "signet": "tbs", "regtest": "bcrt"}
_GENESIS_DISPLAY = {
    "bitcoin": "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
    "testnet": "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943",
    "testnet4": "00000000da84f2bafbbc53dee25a72ae507ff4914b867c565be350b0da8bf043",
    "signet": "00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6",
    "regtest": "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
}
CHAIN_HASH = {name: bytes.fromhex(h)[::-1].hex() for name, h in _GENESIS_DISPLAY.items()}

_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def payee_preimage(payment_secret: str) -> str:
    """The preimage the fake payee uses for the invoice with ``payment_secret``."""
    return hmac.new(_PREIMAGE_KEY, bytes.fromhex(payment_secret), hashlib.sha256).hexdigest()


def payment_hash_of(preimage: str) -> str:
    return hashlib.sha256(bytes.fromhex(preimage)).hexdigest()


@dataclass(frozen=True)
class Invoice:
    bolt11: str
    payment_hash: str
    preimage: str
    amount_msat: int | None
    network: str
    created_at: int
    expiry: int
    payee: str
    description: str

    @property
    def expires_at(self) -> int:
        return self.created_at + self.expiry


def make_invoice(amount_msat: int | None = 100_000, *, network: str = "regtest", expiry: int = 3600,
                 created_at: int | None = None, description: str = "hashpool test invoice",
                 payee_key: str = PAYEE_KEY, payable: bool = True) -> Invoice:
    """A signed BOLT11 invoice the fake payee can settle (``amount_msat=None``: amountless).

    ``payable=False``: the payment hash is not the fake payee's, so no payment to it can complete.
    """
    secret = secrets.token_hex(32)
    preimage = payee_preimage(secret) if payable else secrets.token_hex(32)
    payment_hash = payment_hash_of(preimage)
    created_at = int(time.time()) if created_at is None else created_at
    tags = Tags()
    tags.add(TagChar.payment_hash, payment_hash)
    tags.add(TagChar.payment_secret, secret)
    tags.add(TagChar.description, description)
    tags.add(TagChar.expire_time, expiry)
    tags.add(TagChar.min_final_cltv_expiry, 18)
    inv = bolt11.Bolt11(currency=NETWORK_HRP[network], date=created_at, tags=tags,
                        amount_msat=bolt11.MilliSatoshi(amount_msat) if amount_msat else None)
    text = bolt11.encode(inv, payee_key)
    return Invoice(bolt11=text, payment_hash=payment_hash, preimage=preimage, amount_msat=amount_msat,
                   network=network, created_at=created_at, expiry=expiry,
                   payee=PrivateKey.from_hex(payee_key).public_key.format().hex(), description=description)


def _opaque(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_BECH32) for _ in range(80))


@dataclass(frozen=True)
class FakeOffer:
    """A made-up BOLT12 offer: ``text`` is opaque, ``decoded`` is what the stand-in's ``decode`` answers."""

    text: str
    decoded: dict[str, Any]
    network: str


def make_offer(amount_msat: int | None = 100_000, *, network: str = "regtest", description: str = "hashpool offer",
               absolute_expiry: int | None = None, recurrence: bool = False, currency: str | None = None,
               chains: list[str] | None = None, issuer_id: str = PAYEE_ID) -> FakeOffer:
    """An offer with known fields; ``currency`` ("USD") prices it in fiat, ``chains=[]`` omits offer_chains."""
    text = _opaque("lno1")
    decoded: dict[str, Any] = {
        "type": "bolt12 offer", "valid": True,
        "offer_id": hashlib.sha256(text.encode()).hexdigest(),
        "offer_description": description, "offer_issuer_id": issuer_id,
    }
    chain_names = [network] if chains is None else chains
    if chain_names and chain_names != ["bitcoin"]:
        decoded["offer_chains"] = [CHAIN_HASH[n] for n in chain_names]
    if currency is not None:
        decoded["offer_currency"] = currency
        decoded["currency_minor_unit"] = 2
        if amount_msat is not None:
            decoded["offer_amount"] = amount_msat
    elif amount_msat is not None:
        decoded["offer_amount_msat"] = amount_msat
    if absolute_expiry is not None:
        decoded["offer_absolute_expiry"] = absolute_expiry
    if recurrence:
        decoded["offer_recurrence"] = {"time_unit": 1, "time_unit_name": "minutes", "period": 60,
                                       "compulsory_field": True}
    return FakeOffer(text=text, decoded=decoded, network=network)


@dataclass(frozen=True)
class FakeBolt12Invoice:
    """A made-up BOLT12 invoice fetched for a FakeOffer; the stand-in knows its preimage."""

    text: str
    decoded: dict[str, Any]
    preimage: str
    offer: FakeOffer = field(repr=False)

    @property
    def payment_hash(self) -> str:
        return self.decoded["invoice_payment_hash"]

    @property
    def amount_msat(self) -> int:
        return self.decoded["invoice_amount_msat"]


def make_bolt12_invoice(offer: FakeOffer, amount_msat: int, *, payer_note: str | None = None,
                        relative_expiry: int | None = 7200, created_at: int | None = None) -> FakeBolt12Invoice:
    """The invoice the offer's issuer answers an invoice request for ``amount_msat`` with."""
    preimage = os.urandom(32).hex()
    text = _opaque("lni1")
    decoded = {k: v for k, v in offer.decoded.items() if k.startswith("offer_") or k == "currency_minor_unit"}
    decoded.update({
        "type": "bolt12 invoice", "valid": True,
        "invreq_metadata": os.urandom(16).hex(), "invreq_payer_id": PAYEE_ID,
        "invreq_amount_msat": amount_msat,
        "invoice_paths": [], "invoice_created_at": int(time.time()) if created_at is None else created_at,
        "invoice_payment_hash": payment_hash_of(preimage), "invoice_amount_msat": amount_msat,
        "invoice_node_id": offer.decoded.get("offer_issuer_id", PAYEE_ID), "signature": os.urandom(64).hex(),
    })
    if offer.network != "bitcoin":
        decoded["invreq_chain"] = CHAIN_HASH[offer.network]
    if relative_expiry is not None:
        decoded["invoice_relative_expiry"] = relative_expiry
    if payer_note is not None:
        decoded["invreq_payer_note"] = payer_note
    return FakeBolt12Invoice(text=text, decoded=decoded, preimage=preimage, offer=offer)
