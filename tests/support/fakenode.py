"""A stand-in for lightningd's JSON-RPC unix socket, for tests and benchmarks.

It is a real JSON-RPC 2.0 server on a unix socket speaking CLN v26.06 wire shapes (requests by name, params
as an object or a list; answers ``{"jsonrpc", "id", "result"}`` or ``{"error": {"code", "message", "data"}}``,
each followed by a blank line). It answers getinfo, decode, fetchinvoice, fetchbip353, xpay, sendamount, listpays
and listsendpays; other methods get CLN's "Unknown command" (-32601).

BIP353: ``register_name("alice@example.com", {"offer": offer.text}, ...)`` gives a name its payment instructions
(fetchbip353's shape); ``fail_name(address, message)`` makes its lookup fail as the cln-bip353 plugin does
(-32700 with a message); other names answer the plugin's "no TXT record" failure. ``FakeNode(..., bip353=False)``
is a node built without the cln-bip353 plugin: fetchbip353 is an unknown command.

Decoding: BOLT11 is decoded for real with the ``bolt11`` package. BOLT12 cannot be decoded in Python, so offers
and BOLT12 invoices are *made up*: ``support.invoices.make_offer`` builds an opaque ``lno1...`` string with known
fields, and only strings registered with ``register_offer`` (or fetched from one) decode; others are refused.

Paying: the stand-in plays the payee too. It knows the preimage of every invoice made by ``support.invoices`` (and
any given to ``add_preimage``); a payment to an invoice whose preimage it does not know fails with 203. It keeps its
own record of attempts (``attempts``, ``complete_count``) so tests can assert that no invoice was paid twice, and
counts calls per method (``calls``).

Scripting, per payment hash (or per invstring, e.g. an offer) or for all payments (``default``)::

    node = FakeNode(tmp_path / "rpc"); await node.start()
    node.script(inv.payment_hash, Outcome.PENDING_THEN_COMPLETE)   # consumed one per pay call
    ...; node.resolve(inv.payment_hash)                              # the pending payment reaches its fate

Without a script a payment succeeds; an invoice already paid answers 219 and one with a payment in flight -3,
as xpay does. ``script_method(name, ...)`` interferes with any method (error, dropped connection, garbage,
malformed result, delay) before it runs. ``start_in_thread()`` runs the server on its own loop in a background
thread for tests where another process connects to the socket. ``instant=True`` caches decodes and keeps no
request log, for benchmarks.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import dataclasses
import hashlib
import json
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import bolt11
from coincurve import PrivateKey

from support.invoices import (
    CHAIN_HASH,
    NETWORK_HRP,
    FakeBolt12Invoice,
    FakeOffer,
    make_bolt12_invoice,
    payee_preimage,
)

Answer = Literal["result", "error", "drop", "garbage", "malformed", "reply"]
Fate = Literal["complete", "failed"]

_MESSAGES = {
    203: "Destination said it doesn't know invoice: incorrect_or_unknown_payment_details",
    205: "Failed: We could not find a usable set of paths",
    206: "Could not find route without excessive cost",
    207: "Invoice expired",
    209: "Failed after 3 attempts. Other payment error",
    210: "Timed out after retry_for: giving up",
    219: "Already paid this invoice successfully",
    -3: "Already paying this invoice",
}
_PAY_PARAMS = {
    "xpay": ["invstring", "amount_msat", "maxfee", "layers", "retry_for", "partial_msat", "maxdelay", "payer_note",
             "label"],
    "sendamount": ["invstring", "amount_msat", "maxfee", "layers", "retry_for", "maxdelay", "payer_note", "label"],
}
_POSITIONAL = {
    **_PAY_PARAMS,
    "getinfo": [], "decode": ["string"],
    "fetchinvoice": ["offer", "amount_msat", "quantity", "recurrence_counter", "recurrence_start", "recurrence_label",
                     "timeout", "payer_note", "payer_metadata", "bip353"],
    "fetchbip353": ["address"],
    "listpays": ["bolt11", "payment_hash", "status", "index", "start", "limit"],
    "listsendpays": ["bolt11", "payment_hash", "status", "index", "start", "limit"],
}


@dataclass(frozen=True)
class Outcome:
    """How one call goes.

    answer: what the caller gets (``result``; ``error`` with ``code``; ``drop``: the socket is closed without an
    answer; ``garbage``: non-JSON then close; ``malformed``: a result that breaks CLN's schema).
    For payments, ``fate`` is what the payment becomes, ``delay`` how long it is in flight before the answer, and
    ``pending_for`` how long it stays pending *after* the answer (``None``: until ``FakeNode.resolve``).
    ``prior`` creates an earlier payment of the same invoice first (``complete`` or ``pending``), so the natural
    answer is 219 or -3.
    """

    answer: Answer = "result"
    fate: Fate = "complete"
    code: int | None = None
    message: str | None = None
    delay: float = 0.0
    pending_for: float | None = 0.0
    prior: Literal["complete", "pending"] | None = None
    reply_with: Any = None

    SUCCEED: ClassVar[Outcome]
    ALREADY_PAID: ClassVar[Outcome]
    CONCURRENT: ClassVar[Outcome]
    PENDING_THEN_COMPLETE: ClassVar[Outcome]
    PENDING_THEN_FAILED: ClassVar[Outcome]
    DROP_THEN_COMPLETE: ClassVar[Outcome]
    DROP_THEN_FAILED: ClassVar[Outcome]
    DROP: ClassVar[Outcome]
    GARBAGE: ClassVar[Outcome]
    MALFORMED: ClassVar[Outcome]

    def __post_init__(self) -> None:
        if self.answer == "error" and self.code is None:
            raise ValueError("an error outcome needs a code")
        if self.answer in ("result", "malformed") and (self.fate != "complete" or self.pending_for != 0.0):
            raise ValueError("a successful answer needs a payment that completed before it")

    @staticmethod
    def fail(code: int, message: str | None = None) -> Outcome:
        """A definitive failure: the payment fails, the caller gets ``code``."""
        return Outcome(answer="error", fate="failed", code=code, message=message)

    @staticmethod
    def error(code: int, message: str = "scripted error") -> Outcome:
        """For ``script_method``: answer any method with this JSON-RPC error."""
        return Outcome(answer="error", fate="failed", code=code, message=message)

    @staticmethod
    def reply(result: Any) -> Outcome:
        """For ``script_method``: answer with ``result`` as it is (to feed a client odd but parseable JSON)."""
        return Outcome(answer="reply", reply_with=result)

    @staticmethod
    def slow(seconds: float, then: Outcome | None = None) -> Outcome:
        """``then`` (default: succeed) after ``seconds`` in flight."""
        return dataclasses.replace(then or Outcome.SUCCEED, delay=seconds)

    def settling_after(self, seconds: float | None) -> Outcome:
        return dataclasses.replace(self, pending_for=seconds)


Outcome.SUCCEED = Outcome()
Outcome.ALREADY_PAID = Outcome(prior="complete")
Outcome.CONCURRENT = Outcome(prior="pending")
# xpay (without slow mode) gives up and answers while parts are still in flight.
Outcome.PENDING_THEN_COMPLETE = Outcome(answer="error", code=209, fate="complete", pending_for=None)
Outcome.PENDING_THEN_FAILED = Outcome(answer="error", code=209, fate="failed", pending_for=None)
Outcome.DROP_THEN_COMPLETE = Outcome(answer="drop", fate="complete")
Outcome.DROP_THEN_FAILED = Outcome(answer="drop", fate="failed")
Outcome.DROP = Outcome(answer="drop")
Outcome.GARBAGE = Outcome(answer="garbage")
Outcome.MALFORMED = Outcome(answer="malformed")


class RpcFailure(Exception):
    def __init__(self, code: int, message: str, data: object = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


@dataclass
class Attempt:
    """One payment attempt (one part) as listsendpays shows it."""

    id: int
    groupid: int
    payment_hash: str
    invstring: str
    kind: Literal["bolt11", "bolt12"]
    destination: str
    amount_msat: int
    amount_sent_msat: int
    label: str | None
    created_at: int
    status: Literal["pending", "complete", "failed"] = "pending"
    fate: Fate = "complete"
    completed_at: int | None = None
    preimage: str | None = field(default=None, repr=False)

    def sendpay(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "created_index": self.id, "id": self.id, "groupid": self.groupid, "partid": 0,
            "payment_hash": self.payment_hash, "status": self.status, "amount_msat": self.amount_msat,
            "destination": self.destination, "created_at": self.created_at,
            "amount_sent_msat": self.amount_sent_msat, self.kind: self.invstring,
        }
        if self.label is not None:
            d["label"] = self.label
        if self.status == "complete":
            d.update(completed_at=self.completed_at, payment_preimage=self.preimage)
        return d

    def pay(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "created_index": self.id, "payment_hash": self.payment_hash, "status": self.status,
            "destination": self.destination, "created_at": self.created_at, self.kind: self.invstring,
        }
        if self.label is not None:
            d["label"] = self.label
        if self.status == "complete":
            d.update(completed_at=self.completed_at, amount_msat=self.amount_msat,
                     amount_sent_msat=self.amount_sent_msat, preimage=self.preimage, number_of_parts=1)
        elif self.status == "failed":
            d["amount_sent_msat"] = self.amount_sent_msat
        return d


class _Drop(Exception):
    pass


class _Garbage(Exception):
    pass


class _Malformed(Exception):
    """Answer with ``args[0]`` as the result instead of what the method would return."""


class FakeNode:
    """The stand-in node; see the module docstring."""

    def __init__(self, rpc_path: str | os.PathLike[str], *, network: str = "regtest", blockheight: int = 500,
                 instant: bool = False, bip353: bool = True) -> None:
        self.rpc_path = Path(rpc_path)
        self.network = network
        self.bip353 = bip353  # False: no cln-bip353 plugin, so no fetchbip353
        self.blockheight = blockheight
        self.instant = instant
        self.node_key = PrivateKey(hashlib.sha256(b"hashpool-cln fake node " + network.encode()).digest())
        self.id = self.node_key.public_key.format().hex()
        self.default: Outcome = Outcome.SUCCEED
        self.fee_msat = 0  # routing fee every payment costs
        self.spendable_msat: int | None = None  # None: unlimited outbound liquidity
        self.calls: Counter[str] = Counter()
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.attempts: list[Attempt] = []
        self._scripts: dict[str, list[Outcome]] = {}
        self._method_scripts: dict[str, list[Outcome]] = {}
        self._preimages: dict[str, str] = {}
        self._offers: dict[str, FakeOffer] = {}
        self._bolt12_invoices: dict[str, FakeBolt12Invoice] = {}
        self._names: dict[str, list[dict[str, Any]] | RpcFailure] = {}
        self._decoded: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()  # open client connections, closed by stop() as lightningd does
        self.connections = 0  # client connections accepted so far

    # ---- scripting -------------------------------------------------------------------------------------------

    def script(self, key: str, *outcomes: Outcome) -> None:
        """Queue outcomes for pay calls to ``key`` (payment hash or invstring), consumed one per call."""
        with self._lock:
            self._scripts.setdefault(key.lower() if len(key) == 64 else key, []).extend(outcomes)

    def script_method(self, method: str, *outcomes: Outcome) -> None:
        """Queue interference for the next calls of ``method`` (error, drop, garbage, malformed, delay)."""
        with self._lock:
            self._method_scripts.setdefault(method, []).extend(outcomes)

    def add_preimage(self, preimage: str) -> None:
        with self._lock:
            self._preimages[hashlib.sha256(bytes.fromhex(preimage)).hexdigest()] = preimage

    def register_offer(self, offer: FakeOffer) -> None:
        with self._lock:
            self._offers[offer.text] = offer

    def register_bolt12_invoice(self, invoice: FakeBolt12Invoice) -> None:
        with self._lock:
            self._bolt12_invoices[invoice.text] = invoice
            self._preimages[invoice.payment_hash] = invoice.preimage

    def register_name(self, address: str, *instructions: dict[str, Any]) -> None:
        """``address`` (``user@domain``, case-insensitive) resolves to these fetchbip353 instructions."""
        with self._lock:
            self._names[address.removeprefix("₿").lower()] = [dict(i) for i in instructions]

    def fail_name(self, address: str, message: str) -> None:
        """Looking ``address`` up fails as the cln-bip353 plugin fails: -32700 with ``message``."""
        with self._lock:
            self._names[address.removeprefix("₿").lower()] = RpcFailure(-32700, message)

    def resolve(self, payment_hash: str, fate: Fate | None = None) -> int:
        """Pending attempts of ``payment_hash`` reach their scripted fate (or ``fate``); returns how many."""
        with self._lock:
            pending = [a for a in self.attempts if a.payment_hash == payment_hash and a.status == "pending"]
            for a in pending:
                self._settle(a, fate or a.fate)
            return len(pending)

    def payments(self, payment_hash: str) -> list[Attempt]:
        with self._lock:
            return [a for a in self.attempts if a.payment_hash == payment_hash]

    def complete_count(self, payment_hash: str) -> int:
        """How many times the stand-in paid ``payment_hash`` (more than 1 would be a double payment)."""
        return sum(1 for a in self.payments(payment_hash) if a.status == "complete")

    # ---- lifecycle --------------------------------------------------------------------------------------------

    async def start(self) -> FakeNode:
        self._loop = asyncio.get_running_loop()
        path = str(self.rpc_path)
        if len(os.fsencode(path)) > 100:
            dirfd = os.open(self.rpc_path.parent, os.O_PATH)
            try:
                via_fd = f"/proc/self/fd/{dirfd}/{self.rpc_path.name}"
                self._server = await asyncio.start_unix_server(self._serve, via_fd)
            finally:
                os.close(dirfd)
        else:
            self._server = await asyncio.start_unix_server(self._serve, path)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for t in list(self._tasks):
                t.cancel()
            for w in list(self._writers):
                w.transport.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.rpc_path.unlink()

    async def __aenter__(self) -> FakeNode:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start_in_thread(self) -> FakeNode:
        """Serve from a background thread with its own event loop (for other processes to connect to)."""
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self.start())
            except BaseException as e:  # reported to the starting thread
                failure.append(e)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="fakenode", daemon=True)
        self._thread.start()
        started.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop_thread(self) -> None:
        if self._thread is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    # ---- the wire --------------------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = json.JSONDecoder()
        utf8 = codecs.getincrementaldecoder("utf-8")()
        buf = ""
        self.connections += 1
        self._writers.add(writer)
        try:
            while chunk := await reader.read(65536):
                buf += utf8.decode(chunk)
                while buf.strip():
                    buf = buf.lstrip()
                    try:
                        req, end = decoder.raw_decode(buf)
                    except json.JSONDecodeError:
                        break
                    buf = buf[end:]
                    task = asyncio.ensure_future(self._respond(req, writer))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        except (ConnectionError, UnicodeDecodeError):
            writer.transport.abort()
        finally:
            self._writers.discard(writer)

    async def _respond(self, req: Any, writer: asyncio.StreamWriter) -> None:
        rid = req.get("id") if isinstance(req, dict) else None
        try:
            result = await self._dispatch(req)
            answer: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "result": result}
        except RpcFailure as e:
            err: dict[str, Any] = {"code": e.code, "message": e.message}
            if e.data is not None:
                err["data"] = e.data
            answer = {"jsonrpc": "2.0", "id": rid, "error": err}
        except _Drop:
            writer.transport.abort()
            return
        except _Malformed as e:
            answer = {"jsonrpc": "2.0", "id": rid, "result": e.args[0]}
        except _Garbage:
            if not writer.is_closing():
                writer.write(b"<html>this is not JSON</html>\n\n")
                writer.close()
            return
        except Exception as e:  # a fault in the stand-in itself: make it visible to the test
            answer = {"jsonrpc": "2.0", "id": rid,
                      "error": {"code": -32603, "message": f"fakenode internal error: {type(e).__name__}: {e}"}}
        if not writer.is_closing():
            writer.write(json.dumps(answer).encode() + b"\n\n")

    async def _dispatch(self, req: Any) -> Any:
        if not isinstance(req, dict) or not isinstance(req.get("method"), str):
            raise RpcFailure(-32600, "Invalid request")
        method = req["method"]
        params = req.get("params", {})
        if isinstance(params, list):
            names = _POSITIONAL.get(method, [])
            if len(params) > len(names):
                raise RpcFailure(-32602, "too many parameters")
            params = dict(zip(names, params))
        if not isinstance(params, dict):
            raise RpcFailure(-32602, "params must be an object or an array")
        with self._lock:
            self.calls[method] += 1
            if not self.instant:
                self.requests.append((method, params))
            queue = self._method_scripts.get(method)
            interference = queue.pop(0) if queue else None
        if interference is not None:
            await asyncio.sleep(interference.delay)
            _interfere(interference)
        handler = getattr(self, f"_rpc_{method}", None)
        if handler is None:
            raise RpcFailure(-32601, f"Unknown command '{method}'")
        unknown = set(params) - set(_POSITIONAL.get(method, []))
        if unknown:
            raise RpcFailure(-32602, f"unknown parameter: {sorted(unknown)[0]}")
        try:
            return await handler(**params) if method in _PAY_PARAMS else handler(**params)
        except TypeError as e:
            raise RpcFailure(-32602, f"bad parameters: {e}") from None

    # ---- methods ---------------------------------------------------------------------------------------------

    def _rpc_getinfo(self, **_: Any) -> dict[str, Any]:
        return {
            "id": self.id, "alias": "FAKENODE", "color": "020304", "num_peers": 1, "num_pending_channels": 0,
            "num_active_channels": 1, "num_inactive_channels": 0, "address": [], "binding": [],
            "version": "v26.06-fake", "blockheight": self.blockheight, "network": self.network,
            "fees_collected_msat": 0, "lightning-dir": str(self.rpc_path.parent),
        }

    def _rpc_decode(self, string: str, **_: Any) -> dict[str, Any]:
        if not isinstance(string, str):
            raise RpcFailure(-32602, "string: should be a string")
        text = string.strip()
        if text.lower().startswith("lightning:"):
            text = text[len("lightning:"):]
        with self._lock:
            if text in self._offers:
                return dict(self._offers[text].decoded)
            if text in self._bolt12_invoices:
                return dict(self._bolt12_invoices[text].decoded)
            cached = self._decoded.get(text)
        if cached is not None:
            return dict(cached)
        if text.lower().startswith(("lno1", "lni1", "lnr1")):
            raise RpcFailure(-32602, f"string: Unparsable string: invalid token '{string}'")
        try:
            inv = bolt11.decode(text)
        except Exception as e:
            raise RpcFailure(-32602, f"string: Invalid bolt11: {type(e).__name__}: invalid token '{string}'") from None
        d: dict[str, Any] = {
            "type": "bolt11 invoice", "valid": True, "currency": inv.currency, "created_at": inv.date,
            "expiry": inv.expiry, "payee": inv.payee, "payment_hash": inv.payment_hash,
            "signature": inv.signature.signature_data[:64].hex() if inv.signature else "",
            "min_final_cltv_expiry": inv.min_final_cltv_expiry,
        }
        if inv.amount_msat:
            d["amount_msat"] = int(inv.amount_msat)
        if inv.description is not None:
            d["description"] = inv.description
        if inv.payment_secret:
            d["payment_secret"] = inv.payment_secret
        if self.instant:
            with self._lock:
                self._decoded[text] = d
        return dict(d)

    def _rpc_fetchbip353(self, address: Any, **_: Any) -> dict[str, Any]:
        if not self.bip353:
            raise RpcFailure(-32601, "Unknown command 'fetchbip353'")
        # The plugin's own syntax check (LDK's HumanReadableName): ₿ stripped, one @, hostname characters.
        user, at, domain = address.removeprefix("₿").partition("@") if isinstance(address, str) else ("", "", "")
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not at or not user or not domain or not set(user + domain) <= allowed:
            raise RpcFailure(-32700, "invalid address")
        with self._lock:
            entry = self._names.get(f"{user}@{domain}".lower())
        if entry is None:
            raise RpcFailure(-32700, 'failed to fetch payment instructions: '
                                     'HrnResolutionError("No validated TXT record found")')
        if isinstance(entry, RpcFailure):
            raise entry
        if not entry:
            raise RpcFailure(-32700, "payment instructions did not contain valid methods")
        proof = hashlib.sha256(f"dnssec proof of {user}@{domain}".encode()).hexdigest() * 4
        return {"proof": proof, "instructions": [dict(i) for i in entry]}

    def _rpc_fetchinvoice(self, offer: str, amount_msat: Any = None, payer_note: str | None = None,
                          bip353: str | None = None, **_: Any) -> dict[str, Any]:
        with self._lock:
            fake = self._offers.get(offer)
        if fake is None:
            raise RpcFailure(-32602, f"offer: Unparsable offer: invalid token '{offer}'")
        fields = fake.decoded
        expiry = fields.get("offer_absolute_expiry")
        if expiry is not None and expiry <= time.time():
            raise RpcFailure(1002, "Offer expired")
        if fields.get("offer_recurrence"):
            raise RpcFailure(-32602, "needs recurrence_counter")
        amount = _msat(amount_msat) if amount_msat is not None else fields.get("offer_amount_msat")
        if amount is None:
            raise RpcFailure(-32602, "amount_msat parameter required")
        invoice = make_bolt12_invoice(fake, amount, payer_note=payer_note)
        if bip353 is not None:
            name, _at, domain = bip353.removeprefix("₿").partition("@")
            invoice.decoded["invreq_bip_353_name"] = {"name": name, "domain": domain}
        self.register_bolt12_invoice(invoice)
        return {"invoice": invoice.text, "changes": {}}

    async def _rpc_xpay(self, invstring: str, amount_msat: Any = None, maxfee: Any = None, retry_for: int = 60,
                        label: str | None = None, **_: Any) -> dict[str, Any]:
        target = self._resolve_target(invstring)
        if target["kind"] == "bolt11" and target["amount_msat"] is None:
            if amount_msat is None:
                raise RpcFailure(-32602, "amount_msat: Invoice has no amount, so must be specified")
            amount = _msat(amount_msat)
        elif amount_msat is not None:
            raise RpcFailure(-32602, "amount_msat: Invoice specifies amount, cannot specify one")
        else:
            amount = target["amount_msat"]
        fee = self.fee_msat
        limit = _msat(maxfee) if maxfee is not None else max(5000, amount // 100)
        return await self._pay(invstring, target, amount, amount + fee, fee, limit, label)

    async def _rpc_sendamount(self, invstring: str, amount_msat: Any, maxfee: Any = None, retry_for: int = 60,
                              label: str | None = None, **_: Any) -> dict[str, Any]:
        target = self._resolve_target(invstring, amount_msat=_msat(amount_msat))
        if target["kind"] == "bolt11" and target["amount_msat"] is not None:
            raise RpcFailure(-32602, "invstring: bolt11 invoice must not specify an amount")
        sent = _msat(amount_msat)
        fee = min(self.fee_msat, sent)
        limit = _msat(maxfee) if maxfee is not None else max(5000, sent // 100)
        return await self._pay(invstring, target, sent - fee, sent, fee, limit, label)

    def _rpc_listpays(self, bolt11: str | None = None, payment_hash: str | None = None,
                      status: str | None = None, **_: Any) -> dict[str, Any]:
        return {"pays": [a.pay() for a in self._select(bolt11, payment_hash, status)]}

    def _rpc_listsendpays(self, bolt11: str | None = None, payment_hash: str | None = None,
                          status: str | None = None, **_: Any) -> dict[str, Any]:
        return {"payments": [a.sendpay() for a in self._select(bolt11, payment_hash, status)]}

    # ---- payment machinery -----------------------------------------------------------------------------------

    def _select(self, invstring: str | None, payment_hash: str | None, status: str | None) -> list[Attempt]:
        with self._lock:
            return [a for a in self.attempts
                    if (invstring is None or a.invstring == invstring)
                    and (payment_hash is None or a.payment_hash == payment_hash)
                    and (status is None or a.status == status)]

    def _resolve_target(self, invstring: str, amount_msat: int | None = None) -> dict[str, Any]:
        """What a pay call is paying: a BOLT11 invoice, or a BOLT12 invoice (fetched first for an offer)."""
        with self._lock:
            is_offer = invstring in self._offers
        if is_offer:
            invstring = self._rpc_fetchinvoice(invstring, amount_msat)["invoice"]
        d = self._rpc_decode(invstring)
        if d["type"] == "bolt11 invoice":
            if d["currency"] != NETWORK_HRP.get(self.network):
                raise RpcFailure(-32602, "invstring: Invoice is for another network")
            expires_at = d["created_at"] + d["expiry"]
            preimage = self._preimages.get(d["payment_hash"])
            if preimage is None and d.get("payment_secret"):
                candidate = payee_preimage(d["payment_secret"])
                if hashlib.sha256(bytes.fromhex(candidate)).hexdigest() == d["payment_hash"]:
                    preimage = candidate
            return {"kind": "bolt11", "invstring": invstring, "payment_hash": d["payment_hash"],
                    "amount_msat": d.get("amount_msat"), "expires_at": expires_at, "destination": d["payee"],
                    "preimage": preimage}
        if d["type"] != "bolt12 invoice":
            raise RpcFailure(-32602, "invstring: Unparsable invoice")
        if d.get("invreq_chain", CHAIN_HASH["bitcoin"]) != CHAIN_HASH[self.network]:
            raise RpcFailure(-32602, "invstring: Invoice is for another network")
        return {"kind": "bolt12", "invstring": invstring, "payment_hash": d["invoice_payment_hash"],
                "amount_msat": d["invoice_amount_msat"],
                "expires_at": d["invoice_created_at"] + d.get("invoice_relative_expiry", 7200),
                "destination": d["invoice_node_id"], "preimage": self._preimages.get(d["invoice_payment_hash"])}

    def _next_outcome(self, *keys: str) -> Outcome:
        with self._lock:
            for key in keys:
                queue = self._scripts.get(key)
                if queue:
                    return queue.pop(0)
            return self.default

    def _new_attempt(self, target: dict[str, Any], amount: int, sent: int, label: str | None,
                     fate: Fate) -> Attempt:
        with self._lock:
            groupid = 1 + sum(1 for a in self.attempts if a.payment_hash == target["payment_hash"])
            attempt = Attempt(id=len(self.attempts) + 1, groupid=groupid, payment_hash=target["payment_hash"],
                              invstring=target["invstring"], kind=target["kind"], destination=target["destination"],
                              amount_msat=amount, amount_sent_msat=sent, label=label, created_at=int(time.time()),
                              fate=fate, preimage=None)
            self.attempts.append(attempt)
            return attempt

    def _settle(self, attempt: Attempt, fate: Fate) -> None:
        with self._lock:
            if attempt.status != "pending":
                return
            if fate == "complete" and self.complete_count(attempt.payment_hash) == 0:
                attempt.status, attempt.completed_at = "complete", int(time.time())
                attempt.preimage = self._preimages[attempt.payment_hash]
                if self.spendable_msat is not None:
                    self.spendable_msat -= attempt.amount_sent_msat
            else:
                attempt.status = "failed"

    async def _pay(self, invstring: str, target: dict[str, Any], amount: int, sent: int, fee: int, maxfee: int,
                   label: str | None) -> dict[str, Any]:
        h = target["payment_hash"]
        if target["preimage"] is not None:
            with self._lock:
                self._preimages[h] = target["preimage"]
        outcome = self._next_outcome(invstring, h)
        if outcome.prior is not None and not any(a.status in ("complete", "pending") for a in self.payments(h)):
            prior = self._new_attempt(target, amount, sent, label, "complete")
            if outcome.prior == "complete":
                self._settle(prior, "complete")
        statuses = {a.status for a in self.payments(h)}
        if "complete" in statuses:
            raise RpcFailure(219, _MESSAGES[219])
        if "pending" in statuses:
            raise RpcFailure(-3, _MESSAGES[-3])
        if target["expires_at"] <= time.time():
            raise RpcFailure(207, _MESSAGES[207])
        if fee > maxfee:
            raise RpcFailure(206, _MESSAGES[206])
        if self.spendable_msat is not None and sent > self.spendable_msat:
            raise RpcFailure(205, _MESSAGES[205])
        if target["preimage"] is None and outcome.fate == "complete":
            self._settle(self._new_attempt(target, amount, sent, label, "failed"), "failed")
            raise RpcFailure(203, _MESSAGES[203])
        attempt = self._new_attempt(target, amount, sent, label, outcome.fate)
        if outcome.delay:
            await asyncio.sleep(outcome.delay)
        if outcome.pending_for == 0.0:
            self._settle(attempt, outcome.fate)
        elif outcome.pending_for is not None:
            asyncio.get_running_loop().call_later(outcome.pending_for, self._settle, attempt, outcome.fate)
        _interfere(outcome)
        if attempt.status != "complete":
            raise RpcFailure(209, _MESSAGES[209])  # a scripted success on an unpayable target
        return {"payment_preimage": attempt.preimage, "failed_parts": 0, "successful_parts": 1,
                "amount_msat": attempt.amount_msat, "amount_sent_msat": attempt.amount_sent_msat}


def _interfere(outcome: Outcome) -> None:
    """Raise what the scripted answer calls for; return for a normal answer."""
    if outcome.answer == "error":
        assert outcome.code is not None
        raise RpcFailure(outcome.code, outcome.message or _MESSAGES.get(outcome.code, "scripted failure"))
    if outcome.answer == "drop":
        raise _Drop()
    if outcome.answer == "garbage":
        raise _Garbage()
    if outcome.answer == "malformed":
        raise _Malformed({"malformed": True})
    if outcome.answer == "reply":
        raise _Malformed(outcome.reply_with)




def _msat(value: Any) -> int:
    """CLN's msat parameter: an integer, or a string with an ``msat`` or ``sat`` suffix."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        if value.endswith("msat") and value[:-4].isdigit():
            return int(value[:-4])
        if value.endswith("sat") and value[:-3].isdigit():
            return int(value[:-3]) * 1000
        if value.isdigit():
            return int(value)
    raise RpcFailure(-32602, f"should be a millisatoshi amount: invalid token '{value}'")
