"""Async HTTP client for the pool's mint: the Cashu endpoints the desk uses and the ehash settlement API.

Endpoints: NUT-01/02 keys and keysets, NUT-03 swap, NUT-07 checkstate, NUT-09 restore, NUT-06 info, and the
ehash endpoints (``/v1/ehash/epochs``, ``/v1/melt/quote/ehash``, ``/v1/melt/ehash``; docs/ehash-mint-api.md).

Three kinds of failure, all subclasses of MintClientError:

* MintError: the mint answered with an error body ``{"detail", "code"}``; nothing was done.
* MintUnavailable: no usable answer (refused, reset, timeout, not JSON, a 5xx without an error body). For a
  POST the outcome is then **unknown**: the mint may or may not have acted; replay or ask (checkstate, restore,
  the quote's state) before deciding anything.
* MintProtocolError: the mint answered something that breaks the protocol (wrong types or shapes, keys that do
  not hash to their keyset id, signatures whose DLEQ proof fails). For a POST the mint may have acted as well.

Every answer is parsed strictly: types are checked, nothing is trusted for being well-formed JSON.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote as urlquote
from urllib.parse import urlsplit

from coincurve import PrivateKey

from hashpool_cln.cashu import crypto
from hashpool_cln.cashu.errors import CashuError
from hashpool_cln.cashu.keysets import Keyset, verify_keyset_id
from hashpool_cln.cashu.models import DLEQ, BlindedMessage, BlindSignature, Proof
from hashpool_cln.ehash import LEGACY_EPOCH_STATES, REFERENCE_PATTERN, EhashQuote, Epoch
from hashpool_cln.httpclient import HttpClient, HttpError, TooLarge
from hashpool_cln.text import is_hex, valid_unicode

DEFAULT_TIMEOUT = 10.0
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
MAX_INT = 2**63 - 1  # the largest number an answer may hold: what sqlite (and every ledger here) can store
DEFAULT_LIMIT = 1000  # inputs (outputs) per request of a mint that does not say: CDK mints refuse more

ProofStateName = Literal["UNSPENT", "PENDING", "SPENT"]
_PROOF_STATES = ("UNSPENT", "PENDING", "SPENT")
_QUOTE_STATES = ("UNPAID", "PAID", "EXPIRED")
_EPOCH_STATES = ("open", "maturing", "settled", "retired")
_KEYSET_ID = re.compile(r"^(00[0-9a-f]{14}|01[0-9a-f]{64})$")
_AMOUNT_KEY = re.compile(r"^[1-9][0-9]{0,19}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_REFERENCE = re.compile(REFERENCE_PATTERN)
_URL_PATH = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/]*(?:%[0-9A-Fa-f]{2}[A-Za-z0-9\-._~!$&'()*+,;=:@/]*)*")


class MintClientError(Exception):
    """Base of everything the mint client raises."""


class MintError(MintClientError):
    """The mint refused the request with a Cashu error body."""

    def __init__(self, status: int, code: int, detail: str) -> None:
        super().__init__(f"mint refused (HTTP {status}, code {code}): {detail}")
        self.status = status
        self.code = code
        self.detail = detail


class MintUnavailable(MintClientError):
    """No usable answer from the mint; for a POST the outcome is unknown."""


class MintProtocolError(MintClientError):
    """The mint's answer breaks the protocol (shape, types, keyset id, DLEQ)."""


class MintUnsupported(MintProtocolError):
    """The mint does not serve this endpoint (HTTP 404 or 405): it speaks another dialect or an older version.
    Nothing was done. (Refusals of requests the mint read are HTTP 400, NUT-00.)"""


@dataclass(frozen=True, slots=True)
class MintLimits:
    """The most inputs and outputs the mint takes in one request (swap, melt, checkstate, restore)."""

    max_inputs: int = DEFAULT_LIMIT
    max_outputs: int = DEFAULT_LIMIT


@dataclass(frozen=True, slots=True)
class ProofState:
    """NUT-07 state of the proof whose ``Y`` is given."""

    Y: str
    state: ProofStateName
    witness: str | None = None


def check_mint_url(url: str) -> str:
    """The mint's base URL without a trailing slash; ValueError for anything but https or loopback http."""
    if not isinstance(url, str):
        raise ValueError("mint URL must be a string")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"mint URL must be http(s)://host[:port][/path], not {url!r}")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise ValueError("mint URL must not carry credentials, a query or a fragment")
    try:
        parts.port  # noqa: B018  (raises for a port that is not a number in range)
    except ValueError:
        raise ValueError(f"mint URL has a bad port: {url!r}") from None
    if not _URL_PATH.fullmatch(parts.path):
        raise ValueError(f"mint URL's path must be plain URL characters (percent-encode the rest): {url!r}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(f"refusing plain http to {parts.hostname}: use https (http is allowed on loopback only)")
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MintClient:
    """One mint, reached over HTTP with a deadline on every call; use as ``async with MintClient(url) as m``."""

    def __init__(self, url: str, *, desk_key: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = check_mint_url(url)
        if desk_key is not None and (not isinstance(desk_key, str) or not desk_key or "\n" in desk_key):
            raise ValueError("desk key must be a non-empty single-line string")
        self._desk_key = desk_key
        self.timeout = timeout
        parts = urlsplit(self.url)
        self._path = parts.path  # the base path every endpoint's path is appended to
        self._http = HttpClient(f"{parts.scheme}://{parts.netloc}", max_body=MAX_RESPONSE_BYTES)
        self._keys: dict[str, Keyset] = {}  # verified against their ids: immutable, cached for good
        self._keysets: dict[str, Keyset] = {}  # metadata from the last /v1/keysets
        self._limits: MintLimits | None = None
        self._info: dict[str, Any] | None = None

    def __repr__(self) -> str:  # never shows the desk key
        return f"MintClient({self.url!r})"

    async def __aenter__(self) -> MintClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._http.close()

    # ---- Cashu endpoints --------------------------------------------------------------------------------------

    async def info(self) -> dict[str, Any]:
        """NUT-06 mint info, as the mint gives it (an object)."""
        return _obj(await self._get("/v1/info"), "info")

    async def limits(self) -> MintLimits:
        """How many inputs and outputs the mint takes per request, from ``/v1/info``'s ``limits`` (read once,
        then cached); a mint that does not say is taken to allow ``DEFAULT_LIMIT`` of each."""
        if self._limits is None:
            self._limits = _limits(await self._settings())
        return self._limits

    async def _settings(self) -> dict[str, Any]:
        """``/v1/info`` as first read: what it says of limits and features is read once."""
        if self._info is None:
            self._info = await self.info()
        return self._info

    async def partial_melt(self) -> bool:
        """Whether the mint settles a melt quote for fewer units than quoted (``/v1/info``'s
        ``ehash.partial_melt``, docs/ehash-mint-api.md 5.2; read once, then cached). A mint that does not say
        (a CDK mint) does not."""
        ehash = (await self._settings()).get("ehash")
        return isinstance(ehash, dict) and ehash.get("partial_melt") is True

    async def keysets(self) -> list[Keyset]:
        """All keysets (metadata only: ``keys`` is empty); refreshes the cached metadata."""
        body = _obj(await self._get("/v1/keysets"), "keysets")
        result = []
        for i, entry in enumerate(_list(body, "keysets", "keysets")):
            where = f"keysets[{i}]"
            e = _obj(entry, where)
            result.append(Keyset(
                id=_keyset_id(e, where), unit=_str(e, "unit", where), keys={},
                active=_bool(e, "active", where), input_fee_ppk=_opt_int(e, "input_fee_ppk", where) or 0,
                final_expiry=_opt_int(e, "final_expiry", where),
            ))
        self._keysets = {k.id: k for k in result}
        return result

    async def keys(self, keyset_id: str) -> Keyset:
        """The keyset's keys, checked to hash to ``keyset_id`` (MintProtocolError if they do not); cached."""
        if not isinstance(keyset_id, str) or not _KEYSET_ID.match(keyset_id):
            raise ValueError(f"not a keyset id: {keyset_id!r}")
        cached = self._keys.get(keyset_id)
        if cached is not None:
            return cached
        body = _obj(await self._get(f"/v1/keys/{urlquote(keyset_id, safe='')}"), "keys")
        entries = [_obj(e, "keys.keysets[]") for e in _list(body, "keysets", "keys")]
        matching = [e for e in entries if e.get("id") == keyset_id]
        if len(matching) != 1:
            raise MintProtocolError(f"GET /v1/keys/{keyset_id}: answer does not hold exactly that keyset")
        e = matching[0]
        where = f"keyset {keyset_id}"
        keys = _keys_map(e.get("keys"), where)
        unit = _str(e, "unit", where)
        final_expiry = _opt_int(e, "final_expiry", where)
        fee = _opt_int(e, "input_fee_ppk", where)
        active = e.get("active")
        if fee is None or not isinstance(active, bool):
            # NUT-01 makes these optional here; /v1/keysets carries them (and the v2 id covers the fee).
            meta = self._keysets.get(keyset_id) or {k.id: k for k in await self.keysets()}.get(keyset_id)
            if fee is None:
                fee = meta.input_fee_ppk if meta is not None else 0
            if not isinstance(active, bool):
                active = meta.active if meta is not None else False
        try:
            verify_keyset_id(keyset_id, keys, unit, final_expiry, input_fee_ppk=fee)
        except CashuError as exc:
            raise MintProtocolError(f"the mint's keys for keyset {keyset_id} do not match its id: {exc}") from None
        keyset = Keyset(id=keyset_id, unit=unit, keys=keys, active=active, input_fee_ppk=fee,
                        final_expiry=final_expiry)
        self._keys[keyset_id] = keyset
        return keyset

    async def swap(self, inputs: Sequence[Proof], outputs: Sequence[BlindedMessage]) -> list[BlindSignature]:
        """NUT-03: spend ``inputs``, get one signature per output (in order, amounts and keysets checked).

        Verify and unblind the answer with ``unblind_signatures``.
        """
        body = {"inputs": [p.to_dict(include_dleq=False) for p in inputs], "outputs": [o.to_dict() for o in outputs]}
        answer = _obj(await self._post("/v1/swap", body), "swap")
        signatures = parse_signatures(_list(answer, "signatures", "swap"), "swap")
        _match_outputs(outputs, signatures, "swap")
        return signatures

    async def checkstate(self, ys: Sequence[str]) -> list[ProofState]:
        """NUT-07: the state of each proof by its ``Y``, in the order asked."""
        answer = _obj(await self._post("/v1/checkstate", {"Ys": list(ys)}), "checkstate")
        states = []
        for i, entry in enumerate(_list(answer, "states", "checkstate")):
            where = f"checkstate.states[{i}]"
            e = _obj(entry, where)
            state = _str(e, "state", where)
            if state not in _PROOF_STATES:
                raise MintProtocolError(f"{where}: unknown state {state!r}")
            witness = e.get("witness")
            if witness is not None and not isinstance(witness, str):
                raise MintProtocolError(f"{where}: witness is not a string")
            states.append(ProofState(Y=_str(e, "Y", where), state=state, witness=witness))  # type: ignore[arg-type]
        if [s.Y.lower() for s in states] != [y.lower() for y in ys]:
            raise MintProtocolError("checkstate: states do not answer the Ys asked, in order")
        return states

    async def restore(self, outputs: Sequence[BlindedMessage]) -> tuple[list[BlindedMessage], list[BlindSignature]]:
        """NUT-09: the signatures the mint already made for any of ``outputs`` (the outputs it knows, in pairs).

        Outputs and signatures pair by index and are matched to the outputs asked by ``B_`` alone: mints may
        return the outputs as sent (any amount, even 0) or as signed, so each returned output takes its amount
        and keyset from its signature.
        """
        answer = _obj(await self._post("/v1/restore", {"outputs": [o.to_dict() for o in outputs]}), "restore")
        returned = [_hex(_obj(e, f"restore.outputs[{i}]"), "B_", 66, f"restore.outputs[{i}]")
                    for i, e in enumerate(_list(answer, "outputs", "restore"))]
        key = "signatures" if "signatures" in answer else "promises"  # older mints say "promises"
        signatures = parse_signatures(_list(answer, key, "restore"), "restore")
        if len(returned) != len(signatures):
            raise MintProtocolError(f"restore: {len(signatures)} signatures for {len(returned)} outputs")
        asked = {o.B_.lower() for o in outputs}
        if any(b not in asked for b in returned):
            raise MintProtocolError("restore: the mint returned outputs that were not asked for")
        if len(set(returned)) != len(returned):
            raise MintProtocolError("restore: the mint returned an output twice")
        known = [BlindedMessage(amount=s.amount, id=s.id, B_=b) for b, s in zip(returned, signatures)]
        return known, signatures

    async def unblind_signatures(self, outputs: Sequence[BlindedMessage], secrets: Sequence[str],
                                 rs: Sequence[PrivateKey], signatures: Sequence[BlindSignature], *,
                                 require_dleq: bool = True) -> list[Proof]:
        """Check each signature's DLEQ proof (NUT-12) against the keyset's key, then unblind it into a Proof.

        The one place where blind signatures become proofs: a signature that answers another output, lacks a
        DLEQ (when required) or whose DLEQ fails raises MintProtocolError. Proofs carry ``dleq`` with ``r`` so
        whoever receives them can check them too.
        """
        if not (len(outputs) == len(secrets) == len(rs) == len(signatures)):
            raise ValueError("outputs, secrets, blinding factors and signatures must pair up")
        _match_outputs(outputs, list(signatures), "signatures")
        proofs = []
        for i, (out, secret, r, sig) in enumerate(zip(outputs, secrets, rs, signatures)):
            keyset = await self.keys(sig.id)
            try:
                A = keyset.public_key(sig.amount)
                B_ = crypto.point(out.B_)
                C_ = crypto.point(sig.C_)
            except CashuError as exc:
                raise MintProtocolError(f"signature {i}: {exc}") from None
            if sig.dleq is None:
                if require_dleq:
                    raise MintProtocolError(f"signature {i} (amount {sig.amount}) carries no DLEQ proof")
            elif not _dleq_ok(B_, C_, sig.dleq, A):
                raise MintProtocolError(f"signature {i} (amount {sig.amount}): DLEQ proof does not verify; "
                                        "the mint may be tagging this output")
            C = crypto.unblind(C_, r, A)
            dleq = DLEQ(e=sig.dleq.e, s=sig.dleq.s, r=r.secret.hex()) if sig.dleq is not None else None
            proofs.append(Proof(amount=sig.amount, id=sig.id, secret=secret, C=C.format().hex(), dleq=dleq))
        return proofs

    # ---- ehash endpoints --------------------------------------------------------------------------------------

    async def epochs(self) -> list[Epoch]:
        answer = _obj(await self._get("/v1/ehash/epochs"), "epochs")
        return [_epoch(_obj(e, f"epochs[{i}]"), f"epochs[{i}]")
                for i, e in enumerate(_list(answer, "epochs", "epochs"))]

    async def melt_quote_ehash(self, unit: str, amount: int, request: str | None = None, *,
                               reference: str | None = None) -> EhashQuote:
        """A share-backed quote for ``amount`` units of ``unit`` (authenticated: commits the epoch's budget).

        With a ``reference`` (1-64 characters of ``[A-Za-z0-9_-]``, e.g. the redemption id), asking again
        returns the same quote, so a lost answer is recovered by asking again and the budget is held once.
        """
        if reference is not None and (not isinstance(reference, str) or not _REFERENCE.fullmatch(reference)):
            raise ValueError("reference must be 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'")
        # CDK's custom melt-quote body: method and request always present (an empty request binds no invoice)
        body: dict[str, Any] = {"method": "ehash", "request": request or "", "unit": unit, "amount": amount}
        if reference is not None:
            body["reference"] = reference
        q = _quote(_obj(await self._post("/v1/melt/quote/ehash", body, auth=True), "quote"), "melt quote")
        if q.unit != unit or q.amount != amount:
            raise MintProtocolError(f"melt quote is for {q.amount} {q.unit}, asked {amount} {unit}")
        if reference is not None and q.reference not in (None, reference):
            raise MintProtocolError(f"melt quote carries reference {q.reference!r}, asked {reference!r}")
        return q

    async def release_melt_quote_ehash(self, quote_id: str) -> EhashQuote:
        """Give an unpaid quote's budget back now (it answers EXPIRED from then on); releasing again is harmless.
        A paid quote cannot be released: the mint refuses with code 20006 (MintError)."""
        body = {"quote": quote_id}
        q = _quote(_obj(await self._post("/v1/melt/quote/ehash/release", body, auth=True), "release"), "release")
        if q.quote != quote_id:
            raise MintProtocolError(f"released quote {quote_id}, the mint answered for {q.quote}")
        if q.state == "UNPAID":
            raise MintProtocolError(f"released quote {quote_id} still answers UNPAID")
        return q

    async def get_melt_quote_ehash(self, quote_id: str) -> EhashQuote:
        path = f"/v1/melt/quote/ehash/{urlquote(quote_id, safe='')}"
        # The quote belongs to the desk that asked for it: the mint shows it to that role only.
        q = _quote(_obj(await self._request("GET", path, None, auth=True), "quote"), "melt quote")
        if q.quote != quote_id:
            raise MintProtocolError(f"asked for quote {quote_id}, got {q.quote}")
        return q

    async def melt_ehash(self, quote_id: str, inputs: Sequence[Proof], payment_hash: str,
                         preimage: str, *, amount: int | None = None) -> EhashQuote:
        """Burn ``inputs`` against the quote, proving the Lightning payment (authenticated). With ``amount``
        (a partial melt, only where ``partial_melt()``), the inputs are worth ``amount`` units, at most the
        quote's, and the mint settles the quote for those units alone."""
        body: dict[str, Any] = {"quote": quote_id, "inputs": [p.to_dict(include_dleq=False) for p in inputs],
                                "payment": {"payment_hash": payment_hash, "preimage": preimage}}
        if amount is not None:
            body["amount"] = amount
        q = _quote(_obj(await self._post("/v1/melt/ehash", body, auth=True), "melt"), "melt")
        if q.quote != quote_id:
            raise MintProtocolError(f"melted quote {quote_id}, the mint answered for {q.quote}")
        if amount is not None and q.state == "PAID" and q.amount != amount:
            raise MintProtocolError(f"melted {amount} units of quote {quote_id}, the mint settled {q.amount}")
        return q

    # ---- HTTP -------------------------------------------------------------------------------------------------

    async def post_json(self, path: str, body: Mapping[str, Any]) -> Any:
        """POST an endpoint this client has no method for (issuance, for a miner's wallet), unauthenticated, with
        the same deadline and error rules; the caller checks the answer's shape."""
        return await self._post(path, body)

    async def _get(self, path: str) -> Any:
        return await self._request("GET", path, None, auth=False)

    async def _post(self, path: str, body: Mapping[str, Any], *, auth: bool = False) -> Any:
        return await self._request("POST", path, body, auth=auth)

    async def _request(self, method: str, path: str, body: Mapping[str, Any] | None, *, auth: bool) -> Any:
        what = f"{method} {path}"
        unknown = "; the outcome is unknown" if method == "POST" else ""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if auth and self._desk_key is not None:
            headers["Authorization"] = f"Bearer {self._desk_key}"
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        try:
            resp = await asyncio.wait_for(self._http.request(method, self._path + path, data, headers),
                                          self.timeout)
        except asyncio.TimeoutError:
            raise MintUnavailable(f"{what}: no answer within {self.timeout:g} s{unknown}") from None
        except TooLarge:
            raise MintProtocolError(f"{what}: answer larger than {MAX_RESPONSE_BYTES} bytes") from None
        except (HttpError, OSError) as exc:
            raise MintUnavailable(f"{what}: mint unreachable ({type(exc).__name__}: {exc}){unknown}") from None
        status, raw = resp.status, resp.body
        if status in (404, 405):
            raise MintUnsupported(f"{what}: the mint does not serve this endpoint (HTTP {status})")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise MintUnavailable(f"{what}: HTTP {status} answer is not JSON{unknown}") from None
        if b"\\u" in raw and not valid_unicode(data):  # an escaped lone surrogate: text nothing can store or hash
            raise MintProtocolError(f"{what}: answer holds text that is not valid Unicode (a lone surrogate)")
        if 200 <= status < 300:
            return data
        if status >= 400 and isinstance(data, dict):
            detail, code = data.get("detail"), data.get("code")
            if isinstance(detail, str) and isinstance(code, int) and not isinstance(code, bool):
                raise MintError(status, code, detail)
        if status >= 500:
            raise MintUnavailable(f"{what}: HTTP {status} without a Cashu error body{unknown}")
        raise MintProtocolError(f"{what}: HTTP {status} with an answer that is not a Cashu error body")


def _dleq_ok(B_: Any, C_: Any, dleq: DLEQ, A: Any) -> bool:
    try:
        e, s = bytes.fromhex(dleq.e), bytes.fromhex(dleq.s)
    except ValueError:
        return False
    return crypto.dleq_verify(B_, C_, e, s, A)


def _match_outputs(outputs: Sequence[BlindedMessage], signatures: Sequence[BlindSignature], where: str) -> None:
    if len(outputs) != len(signatures):
        raise MintProtocolError(f"{where}: {len(signatures)} signatures for {len(outputs)} outputs")
    for i, (o, s) in enumerate(zip(outputs, signatures)):
        if (o.amount, o.id) != (s.amount, s.id):
            raise MintProtocolError(f"{where}: signature {i} is for {s.amount} in keyset {s.id}, "
                                    f"the output was {o.amount} in keyset {o.id}")


# ---- strict parsing of untrusted JSON ---------------------------------------------------------------------------

def _obj(v: Any, where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise MintProtocolError(f"{where}: expected an object")
    return v


def _list(d: dict[str, Any], key: str, where: str) -> list[Any]:
    v = d.get(key)
    if not isinstance(v, list):
        raise MintProtocolError(f"{where}: {key} is {'missing' if v is None else 'not a list'}")
    return v


def _str(d: dict[str, Any], key: str, where: str) -> str:
    v = d.get(key)
    if not isinstance(v, str):
        raise MintProtocolError(f"{where}: {key} is {'missing' if v is None else 'not a string'}")
    return v


def _bool(d: dict[str, Any], key: str, where: str) -> bool:
    v = d.get(key)
    if not isinstance(v, bool):
        raise MintProtocolError(f"{where}: {key} is {'missing' if v is None else 'not a boolean'}")
    return v


def _int(d: dict[str, Any], key: str, where: str) -> int:
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise MintProtocolError(f"{where}: {key} is {'missing' if v is None else 'not a non-negative integer'}")
    if v > MAX_INT:
        raise MintProtocolError(f"{where}: {key} is larger than 2^63-1")
    return v


def _opt_int(d: dict[str, Any], key: str, where: str) -> int | None:
    return None if d.get(key) is None else _int(d, key, where)


def _opt_str(d: dict[str, Any], key: str, where: str) -> str | None:
    return None if d.get(key) is None else _str(d, key, where)


def _hex(d: dict[str, Any], key: str, length: int, where: str) -> str:
    v = _str(d, key, where).lower()
    if not is_hex(v, length):
        raise MintProtocolError(f"{where}: {key} is not {length} hex characters")
    return v


def _keyset_id(d: dict[str, Any], where: str) -> str:
    v = _str(d, "id", where)
    if not _KEYSET_ID.match(v):
        raise MintProtocolError(f"{where}: {v!r} is not a keyset id")
    return v


def _keys_map(v: Any, where: str) -> dict[int, str]:
    if not isinstance(v, dict) or not v:
        raise MintProtocolError(f"{where}: keys is not a non-empty object")
    keys = {}
    for amount, key in v.items():
        if not isinstance(amount, str) or not _AMOUNT_KEY.match(amount) or not isinstance(key, str):
            raise MintProtocolError(f"{where}: bad key entry {amount!r}")
        try:
            crypto.point(key)
        except CashuError:
            raise MintProtocolError(f"{where}: key for amount {amount} is not a compressed point") from None
        keys[int(amount)] = key.lower()
    return keys


def _dleq(d: dict[str, Any], where: str) -> DLEQ | None:
    v = d.get("dleq")
    if v is None:
        return None
    e = _obj(v, f"{where}.dleq")
    return DLEQ(e=_hex(e, "e", 64, f"{where}.dleq"), s=_hex(e, "s", 64, f"{where}.dleq"))


def parse_signatures(entries: list[Any], where: str) -> list[BlindSignature]:
    """Blind signatures from an answer, strictly (MintProtocolError): for endpoints answered by other modules."""
    out = []
    for i, entry in enumerate(entries):
        w = f"{where}.signatures[{i}]"
        e = _obj(entry, w)
        amount = _int(e, "amount", w)
        if amount == 0:
            raise MintProtocolError(f"{w}: amount is zero")
        out.append(BlindSignature(amount=amount, id=_keyset_id(e, w), C_=_hex(e, "C_", 66, w), dleq=_dleq(e, w)))
    return out


def _quote(e: dict[str, Any], where: str) -> EhashQuote:
    state = _str(e, "state", where)
    if state not in _QUOTE_STATES:
        raise MintProtocolError(f"{where}: unknown quote state {state!r}")
    return EhashQuote(quote=_str(e, "quote", where), unit=_str(e, "unit", where), amount=_int(e, "amount", where),
                      amount_msat=_int(e, "amount_msat", where), state=state,  # type: ignore[arg-type]
                      expiry=_int(e, "expiry", where), reference=_opt_str(e, "reference", where),
                      request=_opt_str(e, "request", where) or None,
                      payment_preimage=_opt_str(e, "payment_preimage", where))


def _limits(info: dict[str, Any]) -> MintLimits:
    """``/v1/info``'s ``limits``: each missing entry defaults to DEFAULT_LIMIT; a present one must be >= 1."""
    given = info.get("limits")
    if given is None:
        return MintLimits()
    d = _obj(given, "info.limits")
    values = [_opt_int(d, key, "info.limits") for key in ("max_inputs", "max_outputs")]
    if any(v == 0 for v in values):
        raise MintProtocolError("info.limits: a limit of 0 would allow no request at all")
    return MintLimits(*(DEFAULT_LIMIT if v is None else v for v in values))


def _epoch(e: dict[str, Any], where: str) -> Epoch:
    state = _str(e, "state", where)
    state = LEGACY_EPOCH_STATES.get(state, state)  # mints of version 1 of the API
    if state not in _EPOCH_STATES:
        raise MintProtocolError(f"{where}: unknown epoch state {state!r}")
    keysets = _list(e, "keysets", where)
    if not all(isinstance(k, str) and _KEYSET_ID.match(k) for k in keysets):
        raise MintProtocolError(f"{where}: keysets is not a list of keyset ids")
    return Epoch(unit=_str(e, "unit", where), pool=_str(e, "pool", where), height=_int(e, "height", where),
                 block_hash=_opt_str(e, "block_hash", where), state=state,  # type: ignore[arg-type]
                 issued=_int(e, "issued", where), reward_msat=_int(e, "reward_msat", where),
                 redeemed_msat=_int(e, "redeemed_msat", where), redeem_until=_opt_int(e, "redeem_until", where),
                 keysets=tuple(keysets), net_reward_msat=_opt_int(e, "net_reward_msat", where),
                 minted=_opt_int(e, "minted", where))
