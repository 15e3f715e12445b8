"""The NodePort over Core Lightning's JSON-RPC unix socket (``lightning-dir/rpc-file``).

Request and result shapes follow CLN v26.06 ``doc/schemas``. Everything the node sends back is checked before
use; amounts must be JSON integers (msat), as CLN has printed them since v23.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from hashpool_cln.lightning import jsonrpc
from hashpool_cln.lightning.port import (
    Destination,
    NodeError,
    NodeInfo,
    NodeUnavailable,
    Payment,
    PaymentInstruction,
    PaymentStatus,
)
from hashpool_cln.text import is_hex

DEFAULT_TIMEOUT = 30.0
# xpay may run somewhat past retry_for while its last parts resolve; beyond this the outcome is "unknown".
PAY_GRACE = 60.0
# BOLT12: an invoice without invoice_relative_expiry expires 7200 s after invoice_created_at.
BOLT12_DEFAULT_RELATIVE_EXPIRY = 7200

# BOLT11 prefixes (CLN's lightning_hrp) to CLN network names; "tb" is both testnet and testnet4.
_HRP_NETWORKS: dict[str, tuple[str, ...]] = {
    "bc": ("bitcoin",), "tb": ("testnet", "testnet4"), "tbs": ("signet",), "bcrt": ("regtest",),
}
# BOLT12 chain hashes as CLN prints them (genesis block hash in internal byte order).
_CHAIN_NETWORKS = {
    bytes.fromhex(display)[::-1].hex(): name for name, display in {
        "bitcoin": "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
        "testnet": "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943",
        "testnet4": "00000000da84f2bafbbc53dee25a72ae507ff4914b867c565be350b0da8bf043",
        "signet": "00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6",
        "regtest": "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
    }.items()
}
_STATUS_RANK: dict[str, int] = {"complete": 3, "pending": 2, "failed": 1}
# fetchbip353 (the cln-bip353 plugin) resolves over DNS-over-HTTPS, then may try an LN-Address fallback.
FETCHBIP353_TIMEOUT = 60.0
_INSTRUCTION_FIELDS = frozenset({"description", "offer", "onchain", "offchain_amount_msat", "onchain_amount_sat"})
_U64 = 2**64


class NodeProtocolError(NodeUnavailable):
    """The node answered something that does not match CLN's schema; treated as "outcome unknown"."""


class _Bad(Exception):
    """A field of a node answer has the wrong type or is missing."""


class ClnNode:
    """NodePort implementation: a socket connection to itself for each call in flight (kept for later calls
    once its answer is in), each call with a deadline."""

    def __init__(self, rpc_path: str | os.PathLike[str], *, timeout: float = DEFAULT_TIMEOUT,
                 pay_grace: float = PAY_GRACE) -> None:
        self.rpc_path = os.fspath(rpc_path)
        self.timeout = timeout
        self.pay_grace = pay_grace
        self._network: str | None = None
        self._connections = jsonrpc.connections(self.rpc_path)

    def close(self) -> None:
        self._connections.close()

    async def call(self, method: str, params: dict[str, Any] | None = None, *,
                   timeout: float | None = None) -> Any:
        """Raw call: the ``result`` object; NodeError on a JSON-RPC error, NodeUnavailable otherwise."""
        try:
            return await jsonrpc.call(self.rpc_path, method, params or {}, self.timeout if timeout is None else timeout,
                                      self._connections)
        except jsonrpc.RpcError as e:
            raise NodeError(method, e.code, e.message, e.data) from None
        except jsonrpc.RpcUnavailable as e:
            raise NodeUnavailable(f"{method}: {e}; outcome unknown") from None

    async def _call_obj(self, method: str, params: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        result = await self.call(method, params, timeout=timeout)
        if not isinstance(result, dict):
            raise NodeProtocolError(f"{method}: result is not an object")
        return result

    async def getinfo(self) -> NodeInfo:
        r = await self._call_obj("getinfo", {})
        try:
            info = NodeInfo(id=_hex(r, "id", 66), network=_str(r, "network"), blockheight=_int(r, "blockheight"))
        except _Bad as e:
            raise NodeProtocolError(f"getinfo: {e}") from None
        self._network = info.network
        return info

    async def decode(self, invstring: str) -> Destination:
        """Decode a BOLT11 invoice, BOLT12 offer or BOLT12 invoice.

        Anything else CLN can decode (runes, invoice requests, ...) is refused as NodeError code -32602, the
        code CLN itself uses for strings it cannot parse.
        """
        r = await self._call_obj("decode", {"string": invstring})
        kind = r.get("type")
        try:
            if kind == "bolt11 invoice":
                return await self._bolt11(invstring, r)
            if kind == "bolt12 offer":
                return self._bolt12_offer(invstring, r)
            if kind == "bolt12 invoice":
                return self._bolt12_invoice(invstring, r)
        except _Bad as e:
            raise NodeProtocolError(f"decode: {e}") from None
        if not isinstance(kind, str):
            raise NodeProtocolError("decode: answer has no type")
        raise NodeError("decode", -32602, f"not a BOLT11 invoice or BOLT12 offer/invoice but a {kind}")

    async def _bolt11(self, invstring: str, r: dict[str, Any]) -> Destination:
        valid = _bool(r, "valid")
        created_at = _int(r, "created_at")
        return Destination(
            kind="bolt11", invstring=invstring, network=await self._hrp_network(_str(r, "currency")),
            amount_msat=_int(r, "amount_msat", required=False), payment_hash=_hex(r, "payment_hash", 64),
            payee=_hex(r, "payee", 66), created_at=created_at, expires_at=created_at + _int(r, "expiry"),
            description=_str(r, "description", required=False), valid=valid,
        )

    def _bolt12_offer(self, invstring: str, r: dict[str, Any]) -> Destination:
        return Destination(
            kind="bolt12_offer", invstring=invstring, network=self._chains_network(r),
            amount_msat=_int(r, "offer_amount_msat", required=False), payment_hash=None,
            payee=_str(r, "offer_issuer_id", required=False), created_at=None,
            expires_at=_int(r, "offer_absolute_expiry", required=False),
            description=_str(r, "offer_description", required=False), recurring=_recurring(r),
            currency=_str(r, "offer_currency", required=False), valid=_bool(r, "valid"),
        )

    def _bolt12_invoice(self, invstring: str, r: dict[str, Any]) -> Destination:
        valid = _bool(r, "valid")
        created_at = _int(r, "invoice_created_at", required=valid)
        relative = _int(r, "invoice_relative_expiry", required=False)
        expires_at = None
        if created_at is not None:
            expires_at = created_at + (BOLT12_DEFAULT_RELATIVE_EXPIRY if relative is None else relative)
        chain = _hex(r, "invreq_chain", 64, required=False)
        return Destination(
            kind="bolt12_invoice", invstring=invstring,
            network=self._chains_network(r) if chain is None else _CHAIN_NETWORKS.get(chain),
            amount_msat=_int(r, "invoice_amount_msat", required=valid),
            payment_hash=_hex(r, "invoice_payment_hash", 64, required=valid),
            payee=_str(r, "invoice_node_id", required=False), created_at=created_at, expires_at=expires_at,
            description=_str(r, "offer_description", required=False), recurring=_recurring(r),
            currency=_str(r, "offer_currency", required=False), valid=valid,
        )

    async def _hrp_network(self, hrp: str) -> str | None:
        names = _HRP_NETWORKS.get(hrp)
        if names is None:
            return None
        if len(names) > 1:
            # Only the node knows whether "tb" means testnet or testnet4 for it.
            node_network = self._network or (await self.getinfo()).network
            if node_network in names:
                return node_network
        return names[0]

    def _chains_network(self, r: dict[str, Any]) -> str | None:
        """The offer's network: its chain if it names one (the node's own if several), bitcoin if it names none."""
        chains = r.get("offer_chains")
        if chains is None:
            return "bitcoin"
        if not isinstance(chains, list) or not all(isinstance(c, str) for c in chains):
            raise _Bad("offer_chains is not a list of chain hashes")
        networks = [_CHAIN_NETWORKS.get(c.lower()) for c in chains]
        if self._network is not None and self._network in networks:
            return self._network
        known = [n for n in networks if n is not None]
        return known[0] if known else None

    async def fetchinvoice(self, offer: str, amount_msat: int | None, payer_note: str | None, *,
                           bip353: str | None = None) -> str:
        params: dict[str, Any] = {"offer": offer}
        if amount_msat is not None:
            params["amount_msat"] = amount_msat
        if payer_note is not None:
            params["payer_note"] = payer_note
        if bip353 is not None:
            params["bip353"] = bip353
        # fetchinvoice waits up to its own 60 s default for the offer's node to answer.
        r = await self._call_obj("fetchinvoice", params, timeout=max(self.timeout, 60.0 + self.pay_grace))
        try:
            return _str(r, "invoice")
        except _Bad as e:
            raise NodeProtocolError(f"fetchinvoice: {e}") from None

    async def fetchbip353(self, address: str) -> list[PaymentInstruction]:
        """Resolve a BIP353 name with ``fetchbip353`` (CLN's cln-bip353 plugin; -32601 on a node without it)."""
        r = await self._call_obj("fetchbip353", {"address": address},
                                 timeout=max(self.timeout, FETCHBIP353_TIMEOUT))
        try:
            return _bip353_answer(r)
        except _Bad as e:
            raise NodeProtocolError(f"fetchbip353: {e}") from None

    async def xpay(self, invstring: str, *, amount_msat: int | None, maxfee_msat: int, retry_for: int,
                   label: str) -> Payment:
        params: dict[str, Any] = {"invstring": invstring, "maxfee": maxfee_msat, "retry_for": retry_for,
                                  "label": label}
        if amount_msat is not None:
            params["amount_msat"] = amount_msat
        return await self._pay("xpay", params, retry_for)

    async def sendamount(self, invstring: str, *, amount_msat: int, maxfee_msat: int, retry_for: int,
                         label: str) -> Payment:
        params = {"invstring": invstring, "amount_msat": amount_msat, "maxfee": maxfee_msat,
                  "retry_for": retry_for, "label": label}
        return await self._pay("sendamount", params, retry_for)

    async def _pay(self, method: str, params: dict[str, Any], retry_for: int) -> Payment:
        r = await self._call_obj(method, params, timeout=retry_for + self.pay_grace)
        try:
            preimage = _hex(r, "payment_preimage", 64)
            # xpay does not return the payment hash; the preimage determines it exactly. The payment it made
            # carries this call's label.
            return Payment(status="complete", payment_hash=hashlib.sha256(bytes.fromhex(preimage)).hexdigest(),
                           preimage=preimage, amount_msat=_int(r, "amount_msat"),
                           amount_sent_msat=_int(r, "amount_sent_msat"), label=params["label"])
        except _Bad as e:
            raise NodeProtocolError(f"{method} succeeded but its answer is unreadable ({e}); "
                                    "ask payment_status") from None

    async def payment_status(self, payment_hash: str) -> Payment:
        """What the node knows of payments of this hash. ``listsendpays`` first: ``listpays`` is made from its
        parts (adding only that the ``pay`` plugin still retries parts that failed), so a hash without parts
        (a fresh invoice, the usual case) costs the node one call."""
        try:
            sendpays = _list(await self._call_obj("listsendpays", {"payment_hash": payment_hash}), "payments")
            pays: list[dict[str, Any]] = []
            if sendpays:
                pays = _list(await self._call_obj("listpays", {"payment_hash": payment_hash}), "pays")
            return _merge_status(payment_hash, pays, sendpays)
        except _Bad as e:
            raise NodeProtocolError(f"payment status of {payment_hash}: {e}") from None


def _merge_status(payment_hash: str, pays: list[dict[str, Any]], parts: list[dict[str, Any]]) -> Payment:
    """complete > pending > failed > unknown, over ``listpays`` groups and ``listsendpays`` parts together."""
    best: PaymentStatus = "unknown"
    for entry in [*pays, *parts]:
        if _hex(entry, "payment_hash", 64) != payment_hash:
            raise _Bad("an entry for another payment hash")
        status = _str(entry, "status")
        if status not in _STATUS_RANK:
            raise _Bad(f"unknown payment status {status!r}")
        if best == "unknown" or _STATUS_RANK[status] > _STATUS_RANK[best]:
            best = status  # type: ignore[assignment]
    if best != "complete":
        return Payment(status=best, payment_hash=payment_hash)
    for pay in pays:
        if pay["status"] == "complete":
            return Payment(status="complete", payment_hash=payment_hash, preimage=_hex(pay, "preimage", 64),
                           amount_msat=_int(pay, "amount_msat", required=False),
                           amount_sent_msat=_int(pay, "amount_sent_msat"), label=_str(pay, "label", required=False))
    # Only listsendpays knows it: add up the parts of the group that completed.
    done = [p for p in parts if p["status"] == "complete"]
    group = _int(done[0], "groupid")
    group_parts = [p for p in done if _int(p, "groupid") == group]
    amounts = [_int(p, "amount_msat", required=False) for p in group_parts]
    return Payment(
        status="complete", payment_hash=payment_hash, preimage=_hex(done[0], "payment_preimage", 64),
        amount_msat=None if None in amounts else sum(a for a in amounts if a is not None),
        amount_sent_msat=sum(_int(p, "amount_sent_msat") for p in group_parts),
        label=_str(done[0], "label", required=False),
    )


def _bip353_answer(r: dict[str, Any]) -> list[PaymentInstruction]:
    """fetchbip353's result, checked against its schema: ``proof`` (hex) and ``instructions``, nothing else."""
    extra = set(r) - {"proof", "instructions"}
    if extra:
        raise _Bad(f"unexpected field {sorted(extra)[0]!r}")
    proof = _str(r, "proof")
    if not proof or len(proof) % 2 or not is_hex(proof):
        raise _Bad("proof is not a hex DNSSEC proof")
    return [_instruction(i) for i in _list(r, "instructions")]


def _instruction(d: dict[str, Any]) -> PaymentInstruction:
    """One instruction: an offer (with its optional fixed msat amount) or an on-chain address (optional sats)."""
    extra = set(d) - _INSTRUCTION_FIELDS
    if extra:
        raise _Bad(f"an instruction has the unexpected field {sorted(extra)[0]!r}")
    offer, onchain = _str(d, "offer", required=False), _str(d, "onchain", required=False)
    if (offer is None) == (onchain is None):
        raise _Bad("an instruction must name exactly one of offer and onchain")
    if offer == "" or onchain == "":
        raise _Bad("an instruction names an empty offer or address")
    offchain = _int(d, "offchain_amount_msat", required=False)
    onchain_sat = _int(d, "onchain_amount_sat", required=False)
    if (offchain is not None and offer is None) or (onchain_sat is not None and onchain is None):
        raise _Bad("an instruction's amount does not match its kind")
    if any(a is not None and a >= _U64 for a in (offchain, onchain_sat)):
        raise _Bad("an instruction's amount is not a u64")
    return PaymentInstruction(offer=offer, onchain=onchain, offchain_amount_msat=offchain,
                              onchain_amount_sat=onchain_sat, description=_str(d, "description", required=False))


def _recurring(r: dict[str, Any]) -> bool:
    # offer_recurrence (v26.06); older releases also printed offer_recurrence_compulsory / _optional.
    return any(k.startswith("offer_recurrence") for k in r)


def _list(r: dict[str, Any], key: str) -> list[dict[str, Any]]:
    v = r.get(key)
    if not isinstance(v, list) or not all(isinstance(e, dict) for e in v):
        raise _Bad(f"{key} is not a list of objects")
    return v


def _int(d: dict[str, Any], key: str, *, required: bool = True) -> Any:
    v = d.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise _Bad(f"{key} is {'missing' if v is None else 'not a non-negative integer'}")
    return v


def _str(d: dict[str, Any], key: str, *, required: bool = True) -> Any:
    v = d.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, str):
        raise _Bad(f"{key} is {'missing' if v is None else 'not a string'}")
    return v


def _bool(d: dict[str, Any], key: str) -> bool:
    v = d.get(key)
    if not isinstance(v, bool):
        raise _Bad(f"{key} is {'missing' if v is None else 'not a boolean'}")
    return v


def _hex(d: dict[str, Any], key: str, length: int, *, required: bool = True) -> Any:
    v = _str(d, key, required=required)
    if v is None:
        return None
    if not is_hex(v, length):
        raise _Bad(f"{key} is not {length} hex characters")
    return v.lower()
