"""Serialized Cashu tokens (NUT-00): V3 ``cashuA`` (base64url JSON) and V4 ``cashuB`` (base64url CBOR).

``parse_token`` is strict and total: any input, however malformed, ends in a TokenError whose ``reason`` slug
says what was wrong; nothing else escapes. Validation is structural (types, hex, sizes, amounts, duplicate
secrets, points on the curve); whether the mint, unit and keysets are acceptable is the caller's business.

Hex fields (keyset ids, ``C``, DLEQ scalars) are returned in lowercase. V4 keyset ids keep the form found in
the token: 8-byte ids (v1 ids, or short forms of v2 ids) become 16 hex characters and are turned into full ids
by ``resolve_short_ids`` once the mint's keysets are known.

Caps (why these numbers):

- ``MAX_TOKEN_CHARS`` = 1 MiB: a V3 token of 1,024 proofs with v2 keyset ids and DLEQ proofs is about 630 kB
  (V4: about 300 kB); nothing a wallet sends by paste or RPC is larger, and the cap bounds the work done
  before anything else is checked.
- ``MAX_PROOFS`` = 4,096: four times the largest token we expect (1,024 proofs); an amount below 2**64 needs at
  most 64 proofs per keyset, so larger tokens are unconsolidated and can be swapped down first.
- ``MAX_SECRET_CHARS`` = 1,024: random secrets are 64 characters and a NUT-11 secret with a few keys and tags
  stays well under it; it is also nutshell's default limit, so a longer secret could not be spent there.
- ``MAX_WITNESS_CHARS`` = 16,384 and ``MAX_TEXT_CHARS`` (mint URL, unit) = 1,024 keep single fields sane.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import cbor2

from .crypto import point
from .errors import CryptoError, KeysetError, TokenError
from .keysets import resolve_short_id
from .models import DLEQ, Proof, Token

MAX_TOKEN_CHARS = 1 << 20
MAX_PROOFS = 4096
MAX_SECRET_CHARS = 1024
MAX_WITNESS_CHARS = 16384
MAX_TEXT_CHARS = 1024
MAX_AMOUNT = 1 << 63  # largest power of two a u64 amount can hold

URI_PREFIX = "cashu:"
TOKEN_PREFIX = "cashu"
V3_VERSION = "A"
V4_VERSION = "B"

_HEX16 = re.compile(r"[0-9a-fA-F]{16}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_HEX66 = re.compile(r"[0-9a-fA-F]{66}")
_B64_BODY = re.compile(r"[A-Za-z0-9_\-+/]*")
_JSON_WS = " \t\n\r"

# CBOR tags the decoder would otherwise turn into dates, decimals, regexes, shared references...; no token
# field uses a tag, so every tag is refused rather than given a chance to build unexpected objects.
_BUILTIN_CBOR_TAGS = (0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261, 1004, 43000, 55799)


def _err(message: str, reason: str) -> TokenError:
    return TokenError(message, reason=reason)


# ---------------------------------------------------------------------------------------------------------
# Public API


def parse_token(text: str) -> Token:
    """Decode a serialized token (``cashuA``/``cashuB``, optional ``cashu:`` URI prefix, padded or unpadded
    base64url). Raises TokenError with a specific ``reason`` on anything wrong, and nothing else."""
    try:
        return _parse(text)
    except TokenError:
        raise
    except Exception as exc:  # a bug, not bad input: still never let a traceback reach the caller
        raise _err("token could not be parsed", "internal") from exc


def serialize_v4(token: Token) -> str:
    """Encode as ``cashuB`` + unpadded base64url CBOR, proofs grouped by keyset id in first-seen order.

    Keys are written in the order of the NUT-00 examples (t, d, m, u; a, s, c, d, w), so a V4 token with one
    group per keyset round-trips byte for byte.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for proof in token.proofs:
        groups.setdefault(proof.id, []).append(_proof_to_v4(proof))
    body: dict[str, Any] = {"t": [{"i": bytes.fromhex(kid), "p": proofs} for kid, proofs in groups.items()]}
    if token.memo is not None:
        body["d"] = token.memo
    body["m"] = token.mint
    body["u"] = token.unit
    return TOKEN_PREFIX + V4_VERSION + _b64encode(cbor2.dumps(body))


def serialize_v3(token: Token) -> str:
    """Encode as ``cashuA`` + unpadded base64url of compact JSON (one mint entry, then unit and memo)."""
    body: dict[str, Any] = {
        "token": [{"mint": token.mint, "proofs": [p.to_dict() for p in token.proofs]}],
        "unit": token.unit,
    }
    if token.memo is not None:
        body["memo"] = token.memo
    return TOKEN_PREFIX + V3_VERSION + _b64encode(json.dumps(body, separators=(",", ":")).encode())


def resolve_short_ids(token: Token, keyset_ids: Iterable[str]) -> Token:
    """Replace every proof's keyset id by the full id among ``keyset_ids`` (the mint's keysets).

    Full ids that are known stay as they are; 8-byte ids are resolved by prefix (NUT-02 short ids). Raises
    TokenError (reason ``unknown_keyset_id`` or ``ambiguous_keyset_id``) when an id matches no keyset or,
    as a short id, more than one.
    """
    known = [kid.lower() for kid in keyset_ids]
    known_set = set(known)
    resolved: dict[str, str] = {}
    for kid in token.keyset_ids:
        if kid in known_set:
            resolved[kid] = kid
            continue
        try:
            resolved[kid] = resolve_short_id(kid, known)
        except KeysetError as exc:
            ambiguous = exc.reason == "ambiguous_keyset"
            raise _err(
                f"keyset id {kid} {'matches several' if ambiguous else 'matches none'} of the mint's keysets",
                "ambiguous_keyset_id" if ambiguous else "unknown_keyset_id",
            ) from exc
    if all(old == new for old, new in resolved.items()):
        return token
    proofs = tuple(p if resolved[p.id] == p.id else replace(p, id=resolved[p.id]) for p in token.proofs)
    return replace(token, proofs=proofs)


# ---------------------------------------------------------------------------------------------------------
# Envelope: prefix, version, base64


def _parse(text: object) -> Token:
    if not isinstance(text, str):
        raise _err(f"token must be text, not {type(text).__name__}", "not_text")
    if len(text) > MAX_TOKEN_CHARS:
        raise _err(f"token is longer than {MAX_TOKEN_CHARS} characters", "too_long")
    text = text.strip()
    if text[: len(URI_PREFIX)].lower() == URI_PREFIX:
        text = text[len(URI_PREFIX) :]
    if not text.startswith(TOKEN_PREFIX):
        raise _err("not a Cashu token: it must start with 'cashu' followed by a version letter", "bad_prefix")
    version = text[len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + 1]
    payload = _b64decode(text[len(TOKEN_PREFIX) + 1 :]) if version in (V3_VERSION, V4_VERSION) else b""
    if version == V3_VERSION:
        return _parse_v3(_load_json(payload))
    if version == V4_VERSION:
        return _parse_v4(_load_cbor(payload))
    shown = repr(version) if version else "nothing"
    raise _err(f"unsupported token version {shown} after 'cashu' (known: A for V3, B for V4)", "unknown_version")


def _b64decode(body: str) -> bytes:
    """Decode base64url, padded or not; the standard alphabet (+/) is tolerated, anything else refused."""
    if not body:
        raise _err("token has no payload after its version letter", "bad_encoding")
    stripped = body.rstrip("=")
    if len(body) - len(stripped) > 2 or not stripped.isascii() or _B64_BODY.fullmatch(stripped) is None:
        raise _err("token payload is not base64url text", "bad_encoding")
    if len(stripped) % 4 == 1:
        raise _err("token payload has an impossible base64 length (truncated?)", "bad_encoding")
    padded = stripped + "=" * (-len(stripped) % 4)
    try:
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _err("token payload is not valid base64url", "bad_encoding") from exc


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _err("token JSON repeats a key in one object", "bad_json")
    return result


def _reject_constant(name: str) -> Any:
    raise _err(f"token JSON contains {name}, which is not JSON", "bad_json")


_JSON_DECODER = json.JSONDecoder(object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant)


def _load_json(payload: bytes) -> Any:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _err("V3 token payload is not UTF-8 text", "bad_json") from exc
    start = len(text) - len(text.lstrip(_JSON_WS))
    try:
        value, end = _JSON_DECODER.raw_decode(text, start)
    except TokenError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, int digit limits, absurd nesting
        raise _err(f"V3 token payload is not valid JSON: {exc}", "bad_json") from exc
    if text[end:].strip(_JSON_WS):
        raise _err("V3 token has data after its JSON object", "trailing_data")
    return value


def _refuse_tag(*_args: Any) -> Any:
    raise ValueError("CBOR tags are not allowed in tokens")


_REFUSE_TAGS = dict.fromkeys(_BUILTIN_CBOR_TAGS, _refuse_tag)


def _load_cbor(payload: bytes) -> Any:
    stream = io.BytesIO(payload)
    try:
        decoder = cbor2.CBORDecoder(
            stream,
            tag_hook=_refuse_tag,
            semantic_decoders=_REFUSE_TAGS,
            max_depth=16,  # a token is 5 levels deep
            allow_duplicate_keys=False,
        )
        value = decoder.decode()
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError, EOFError) as exc:
        raise _err(f"V4 token payload is not valid CBOR: {exc}", "bad_cbor") from exc
    if stream.tell() != len(payload):
        raise _err(f"V4 token has {len(payload) - stream.tell()} bytes after its CBOR map", "trailing_data")
    return value


# ---------------------------------------------------------------------------------------------------------
# Field checks shared by both versions


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _bad_field(where: str, expected: str, value: Any) -> TokenError:
    return _err(f"{where} must be {expected}, not {_type_name(value)}", "bad_field")


def _text(value: Any, where: str, limit: int = MAX_TEXT_CHARS) -> str:
    if not isinstance(value, str):
        raise _bad_field(where, "a string", value)
    if len(value) > limit:
        raise _err(f"{where} is longer than {limit} characters", "bad_field")
    _utf8(value, where)
    return value


def _utf8(value: str, where: str) -> None:
    # JSON escapes can smuggle lone surrogates into a str; they have no UTF-8 form, so no mint could hash them.
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _err(f"{where} is not valid Unicode text", "bad_field") from exc


def _mint(value: Any, where: str) -> str:
    mint = _text(value, where).rstrip("/")  # NUT-00: mint URLs are compared without trailing slashes
    if not mint:
        raise _err(f"{where} is empty", "bad_mint")
    return mint


def _unit(value: Any, where: str) -> str:
    if value is None:
        raise _err(
            "token has no unit; tokens without a unit are refused because their value cannot be known",
            "missing_unit",
        )
    unit = _text(value, where)
    if not unit:
        raise _err(f"{where} is empty", "missing_unit")
    return unit


def _memo(value: Any, where: str) -> str | None:
    return None if value is None else _text(value, where, MAX_TOKEN_CHARS)


def _amount(value: Any, where: str) -> int:
    if type(value) is not int:
        raise _bad_field(where, "an integer", value)
    if value <= 0 or value > MAX_AMOUNT or value & (value - 1):
        raise _err(f"{where} must be a positive power of two up to 2**63, got {value}", "bad_amount")
    return value


def _secret(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _bad_field(where, "a string", value)
    if not value:
        raise _err(f"{where} is empty", "bad_secret")
    if len(value) > MAX_SECRET_CHARS:
        raise _err(f"{where} is longer than {MAX_SECRET_CHARS} characters", "bad_secret")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _err(f"{where} is not valid Unicode text", "bad_secret") from exc
    return value


def _witness(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad_field(where, "a string", value)
    if len(value) > MAX_WITNESS_CHARS:
        raise _err(f"{where} is longer than {MAX_WITNESS_CHARS} characters", "bad_witness")
    _utf8(value, where)
    return value


def _keyset_id_hex(value: Any, where: str) -> str:
    """Keyset ids: 16 hex (v1 ``00..``, or a v2 short id ``01..``) or 66 hex (v2 ``01..``)."""
    if not isinstance(value, str):
        raise _bad_field(where, "a hex string", value)
    if _HEX16.fullmatch(value) is None and _HEX66.fullmatch(value) is None:
        raise _err(f"{where} must be 16 or 66 hex characters, got {_shown(value)}", "bad_keyset_id")
    return _keyset_id_version(value.lower(), where)


def _keyset_id_bytes(value: Any, where: str) -> str:
    if not isinstance(value, bytes):
        raise _bad_field(where, "a byte string", value)
    if len(value) not in (8, 33):
        raise _err(f"{where} must be 8 or 33 bytes, got {len(value)}", "bad_keyset_id")
    return _keyset_id_version(value.hex(), where)


def _keyset_id_version(kid: str, where: str) -> str:
    version = kid[:2]
    if (version == "00" and len(kid) == 16) or version == "01":
        return kid
    raise _err(f"{where} {kid} has an unknown keyset id version {version}", "bad_keyset_id")


def _point_hex(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _bad_field(where, "a hex string", value)
    if _HEX66.fullmatch(value) is None:
        raise _err(f"{where} must be 66 hex characters (a compressed point), got {_shown(value)}", "bad_point")
    return _point(value.lower(), where)


def _point_bytes(value: Any, where: str) -> str:
    if not isinstance(value, bytes):
        raise _bad_field(where, "a byte string", value)
    if len(value) != 33:
        raise _err(f"{where} must be a 33-byte compressed point, got {len(value)} bytes", "bad_point")
    return _point(value.hex(), where)


def _point(hex_str: str, where: str) -> str:
    # Cheap shape check first, then a real decode: a C off the curve can never verify at the mint.
    if hex_str[:2] not in ("02", "03"):
        raise _err(f"{where} must be a compressed point (02/03 prefix)", "bad_point")
    try:
        point(hex_str)
    except CryptoError as exc:
        raise _err(f"{where} is not a point on secp256k1", "bad_point") from exc
    return hex_str


def _scalar_hex(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _bad_field(where, "a hex string", value)
    if _HEX64.fullmatch(value) is None:
        raise _err(f"{where} must be 64 hex characters, got {_shown(value)}", "bad_dleq")
    return value.lower()


def _scalar_bytes(value: Any, where: str) -> str:
    if not isinstance(value, bytes):
        raise _bad_field(where, "a byte string", value)
    if len(value) != 32:
        raise _err(f"{where} must be 32 bytes, got {len(value)}", "bad_dleq")
    return value.hex()


def _dleq(value: Any, where: str, scalar: Any) -> DLEQ | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad_field(where, "an object", value)
    for key in ("e", "s"):
        if key not in value:
            raise _err(f"{where} has no '{key}'", "bad_dleq")
    r = value.get("r")
    return DLEQ(
        e=scalar(value["e"], f"{where}.e"),
        s=scalar(value["s"], f"{where}.s"),
        r=None if r is None else scalar(r, f"{where}.r"),
    )


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:80] + "...")


def _require(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise _err(f"{where} has no '{key}'", "missing_field")
    return obj[key]


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _bad_field(where, "a list", value)
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad_field(where, "an object", value)
    return value


class _Proofs:
    """Collects proofs, enforcing the proof cap and unique secrets as they arrive (linear, one pass)."""

    def __init__(self) -> None:
        self.proofs: list[Proof] = []
        self.secrets: set[str] = set()

    def reserve(self, count: int) -> None:
        if len(self.proofs) + count > MAX_PROOFS:
            raise _err(f"token holds more than {MAX_PROOFS} proofs", "too_many_proofs")

    def add(self, proof: Proof) -> None:
        if proof.secret in self.secrets:
            raise _err(f"token contains the secret of proof {len(self.proofs)} twice", "duplicate_secret")
        self.secrets.add(proof.secret)
        self.proofs.append(proof)

    def finish(self) -> tuple[Proof, ...]:
        if not self.proofs:
            raise _err("token holds no proofs", "no_proofs")
        return tuple(self.proofs)


# ---------------------------------------------------------------------------------------------------------
# V3


def _parse_v3(doc: Any) -> Token:
    doc = _object(doc, "V3 token")
    entries = _list(_require(doc, "token", "V3 token"), "V3 'token'")
    unit = _unit(doc.get("unit"), "V3 'unit'")
    memo = _memo(doc.get("memo"), "V3 'memo'")
    mint = ""
    proofs = _Proofs()
    for n, entry in enumerate(entries):
        where = f"token[{n}]"
        entry = _object(entry, where)
        entry_mint = _mint(_require(entry, "mint", where), f"{where}.mint")
        if mint and entry_mint != mint:
            raise _err(f"token mixes mints ({mint} and {entry_mint}); one mint per token", "multiple_mints")
        mint = entry_mint
        items = _list(_require(entry, "proofs", where), f"{where}.proofs")
        proofs.reserve(len(items))
        for item in items:
            proofs.add(_proof_v3(item, f"proof {len(proofs.proofs)}"))
    return Token(mint=mint, unit=unit, proofs=proofs.finish(), memo=memo)


def _proof_v3(item: Any, where: str) -> Proof:
    item = _object(item, where)
    return Proof(
        amount=_amount(_require(item, "amount", where), f"{where} amount"),
        id=_keyset_id_hex(_require(item, "id", where), f"{where} keyset id"),
        secret=_secret(_require(item, "secret", where), f"{where} secret"),
        C=_point_hex(_require(item, "C", where), f"{where} C"),
        dleq=_dleq(item.get("dleq"), f"{where} dleq", _scalar_hex),
        witness=_witness(item.get("witness"), f"{where} witness"),
    )


# ---------------------------------------------------------------------------------------------------------
# V4


def _parse_v4(doc: Any) -> Token:
    doc = _object(doc, "V4 token")
    if "u" not in doc:
        raise _err("V4 token has no unit ('u'), which is required", "missing_unit")
    mint = _mint(_require(doc, "m", "V4 token"), "V4 'm' (mint)")
    unit = _unit(doc["u"], "V4 'u' (unit)")
    memo = _memo(doc.get("d"), "V4 'd' (memo)")
    groups = _list(_require(doc, "t", "V4 token"), "V4 't'")
    proofs = _Proofs()
    for n, group in enumerate(groups):
        where = f"t[{n}]"
        group = _object(group, where)
        kid = _keyset_id_bytes(_require(group, "i", where), f"{where}.i (keyset id)")
        items = _list(_require(group, "p", where), f"{where}.p")
        proofs.reserve(len(items))
        for item in items:
            proofs.add(_proof_v4(item, kid, f"proof {len(proofs.proofs)}"))
    return Token(mint=mint, unit=unit, proofs=proofs.finish(), memo=memo)


def _proof_v4(item: Any, kid: str, where: str) -> Proof:
    item = _object(item, where)
    return Proof(
        amount=_amount(_require(item, "a", where), f"{where} 'a' (amount)"),
        id=kid,
        secret=_secret(_require(item, "s", where), f"{where} 's' (secret)"),
        C=_point_bytes(_require(item, "c", where), f"{where} 'c'"),
        dleq=_dleq(item.get("d"), f"{where} 'd' (dleq)", _scalar_bytes),
        witness=_witness(item.get("w"), f"{where} 'w' (witness)"),
    )


def _proof_to_v4(proof: Proof) -> dict[str, Any]:
    d: dict[str, Any] = {"a": proof.amount, "s": proof.secret, "c": bytes.fromhex(proof.C)}
    if proof.dleq is not None:
        dleq = {"e": bytes.fromhex(proof.dleq.e), "s": bytes.fromhex(proof.dleq.s)}
        if proof.dleq.r is not None:
            dleq["r"] = bytes.fromhex(proof.dleq.r)
        d["d"] = dleq
    if proof.witness is not None:
        d["w"] = proof.witness
    return d
