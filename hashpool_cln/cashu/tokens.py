"""Serialized Cashu tokens (NUT-00): V3 ``cashuA`` (base64url JSON) and V4 ``cashuB`` (base64url CBOR).

``parse_token`` is strict and total: any input, however malformed, ends in a TokenError whose ``reason`` slug
says what was wrong; nothing else escapes. Validation is structural (types, hex, sizes, amounts, duplicate
secrets, points on the curve); whether the mint, unit and keysets are acceptable is the caller's business.

Hex fields (keyset ids, ``C``, DLEQ scalars) are returned in lowercase. V4 keyset ids keep the form found in
the token: 8-byte ids (v1 ids, or short forms of v2 ids) become 16 hex characters and are turned into full ids
by ``resolve_short_ids`` once the mint's keysets are known.

Caps (why these numbers):

- ``MAX_TOKEN_CHARS`` = 2 MiB: a V4 token of ``MAX_PROOFS`` proofs with v2 keyset ids and DLEQ proofs is about
  1.2 MB (V3 of 1,024 such proofs: about 630 kB); the cap bounds the work done before anything else is checked.
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
from collections.abc import Iterable
from dataclasses import replace
from itertools import repeat
from operator import itemgetter
from typing import Any, NamedTuple

import cbor2
import pybase64

from hashpool_cln.text import is_hex

from .crypto import first_non_point
from .errors import KeysetError, TokenError
from .keysets import resolve_short_id
from .models import DLEQ, Proof, Token, build_dleqs, build_proofs

MAX_TOKEN_CHARS = 2 << 20
MAX_PROOFS = 4096
MAX_SECRET_CHARS = 1024
MAX_WITNESS_CHARS = 16384
MAX_TEXT_CHARS = 1024
MAX_AMOUNT = 1 << 63  # largest power of two a u64 amount can hold

URI_PREFIX = "cashu:"
TOKEN_PREFIX = "cashu"
V3_VERSION = "A"
V4_VERSION = "B"

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
    if len(body) - len(stripped) > 2 or not stripped.isascii():
        raise _err("token payload is not base64url text", "bad_encoding")
    if len(stripped) % 4 == 1:
        raise _err("token payload has an impossible base64 length (truncated?)", "bad_encoding")
    padded = stripped + "=" * (-len(stripped) % 4)
    try:
        # Strict both ways: a character outside the alphabet is refused, not skipped.
        if "+" in stripped or "/" in stripped:  # the standard alphabet, rare in tokens
            return binascii.a2b_base64(padded.replace("-", "+").replace("_", "/"), strict_mode=True)
        # base64url as tokens are written: pybase64's vectorized decoder is ~25x faster than binascii's, which
        # was an eighth of a large token's parse.
        return pybase64.b64decode(padded, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _err("token payload is not base64url text", "bad_encoding") from exc


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


def _text(value: Any, where: str, limit: int = MAX_TEXT_CHARS, too_long: str = "bad_field") -> str:
    if not isinstance(value, str):
        raise _bad_field(where, "a string", value)
    if len(value) > limit:
        raise _err(f"{where} is longer than {limit} characters", too_long)
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
    return None if value is None else _text(value, where, MAX_WITNESS_CHARS, too_long="bad_witness")


def _keyset_id_hex(value: Any, where: str) -> str:
    """Keyset ids: 16 hex (v1 ``00..``, or a v2 short id ``01..``) or 66 hex (v2 ``01..``)."""
    if not isinstance(value, str):
        raise _bad_field(where, "a hex string", value)
    if not (is_hex(value, 16) or is_hex(value, 66)):
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
    if not is_hex(value, 66):
        raise _err(f"{where} must be 66 hex characters (a compressed point), got {_shown(value)}", "bad_point")
    return _point_prefix(value.lower(), where)


def _point_bytes(value: Any, where: str) -> str:
    if not isinstance(value, bytes):
        raise _bad_field(where, "a byte string", value)
    if len(value) != 33:
        raise _err(f"{where} must be a 33-byte compressed point, got {len(value)} bytes", "bad_point")
    return _point_prefix(value.hex(), where)


def _point_prefix(hex_str: str, where: str) -> str:
    # The shape only; whether it is on the curve is checked for all proofs at once (``_Proofs.finish``).
    if hex_str[:2] not in ("02", "03"):
        raise _err(f"{where} must be a compressed point (02/03 prefix)", "bad_point")
    return hex_str


def _scalar_hex(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _bad_field(where, "a hex string", value)
    if not is_hex(value, 64):
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
    """Collects a token's proofs, their secrets and their ``C`` encodings. The proof cap is enforced as groups
    arrive; unique secrets and ``C`` on the curve are checked once for all proofs in ``finish`` (one native parse
    per ``C``)."""

    def __init__(self, c_field: str) -> None:
        self.proofs: list[Proof] = []
        self.secrets: list[str] = []
        self.points: list[bytes] = []
        self.c_field = c_field  # how errors name the C field in this token version

    def reserve(self, count: int) -> None:
        if len(self.proofs) + count > MAX_PROOFS:
            raise _err(f"token holds more than {MAX_PROOFS} proofs", "too_many_proofs")

    def add(self, proof: Proof) -> None:
        self.proofs.append(proof)
        self.secrets.append(proof.secret)
        self.points.append(bytes.fromhex(proof.C))

    def add_group(self, group: _Group) -> None:
        self.proofs += group.proofs
        self.secrets += group.secrets
        self.points += group.points

    def finish(self) -> tuple[Proof, ...]:
        proofs = self.proofs
        if not proofs:
            raise _err("token holds no proofs", "no_proofs")
        if len(set(self.secrets)) != len(proofs):
            seen: set[str] = set()
            for n, secret in enumerate(self.secrets):
                if secret in seen:
                    raise _err(f"token contains the secret of proof {n} twice", "duplicate_secret")
                seen.add(secret)
        bad = first_non_point(self.points)  # a C off the curve can never verify at the mint
        if bad is not None:
            where = f"proof {bad} {self.c_field}"
            _point_prefix(self.points[bad].hex(), where)
            raise _err(f"{where} is not a point on secp256k1", "bad_point")
        return tuple(proofs)


# ---------------------------------------------------------------------------------------------------------
# Fast path for whole groups of proofs
#
# A token is usually a list of proofs of one shape: power-of-two amounts, ASCII secrets, 33-byte C, DLEQ on all
# or none. Such a group is checked and built column by column with C-level passes (map, join, set, min/max)
# instead of Python code per proof, which would cost more than the point check itself. Any group that does not
# pass every check goes proof by proof through ``_proof_v3``/``_proof_v4``, which name what is wrong, or accept
# the rarer valid forms (non-ASCII secrets, DLEQ on some proofs only). The fast path never accepts what those
# reject.


class _Group(NamedTuple):
    """A group's proofs as built by the fast path, with the columns ``_Proofs`` checks across groups."""

    proofs: list[Proof]
    secrets: list[str]
    points: list[bytes]


_LOWER_HEX = b"0123456789abcdef"
_SMALL_GROUP = 5  # below this, the fixed cost of the column passes exceeds the proof-by-proof path


def _types(values: list[Any]) -> set[type]:
    return set(map(type, values))


def _column(items: list[dict[Any, Any]], key: str) -> list[Any]:
    return list(map(dict.get, items, repeat(key, len(items))))


def _required(items: list[Any], key: str) -> list[Any] | None:
    """The key's value in every item, or None if an item lacks it or is no object (the proof-by-proof path
    names which). Decoded JSON and CBOR hold no mapping but dict, so every item is then a dict."""
    try:
        return list(map(itemgetter(key), items))
    except (KeyError, TypeError):
        return None


def _powers_of_two(amounts: list[Any]) -> bool:
    if _types(amounts) != {int}:  # exact type: bools are ints too
        return False
    distinct = set(amounts)  # a handful of denominations, however many proofs
    return min(distinct) > 0 and max(distinct) <= MAX_AMOUNT and set(map(int.bit_count, distinct)) == {1}


def _ascii_texts(values: list[Any], limit: int, empty_ok: bool) -> bool:
    """Whether every value is an ASCII string of at most ``limit`` characters (and not empty unless allowed)."""
    try:
        joined = "".join(values)  # refuses anything but strings; one flag then answers isascii for all
    except TypeError:
        return False
    lengths = set(map(len, values))
    return joined.isascii() and max(lengths) <= limit and (empty_ok or min(lengths) > 0)


def _hex_of_bytes(values: list[Any], size: int) -> list[str] | None:
    """V4: the values as hex if every one is a ``size``-byte string."""
    try:
        hexes = list(map(bytes.hex, values))  # refuses anything but bytes
    except TypeError:
        return None
    return hexes if set(map(len, values)) == {size} else None


def _lower_hex(values: list[Any], size: int) -> list[str] | None:
    """V3: the values in lowercase if every one is ``2 * size`` hex characters."""
    try:
        digits = "".join(values).encode("ascii")  # refuses anything but strings, and non-ASCII ones
    except (TypeError, UnicodeEncodeError):
        return None
    if set(map(len, values)) != {2 * size}:
        return None
    if not digits.translate(None, _LOWER_HEX):  # nothing but lowercase hex: the strings are kept as they are
        return values
    if digits.lower().translate(None, _LOWER_HEX):
        return None
    return list(map(str.lower, values))


def _fast_group(items: list[Any], fields: tuple[str, str, str, str, str], kids: list[str],
                from_hex: bool) -> _Group | None:
    """The group built if all its proofs have the usual form, else None. ``fields`` are the names of amount,
    secret, C, DLEQ and witness in this version; ``kids`` the (already valid) keyset id of each proof."""
    n = len(items)
    if n < _SMALL_GROUP:
        return None
    amount_key, secret_key, c_key, dleq_key, witness_key = fields
    amounts = _required(items, amount_key)
    if amounts is None or not _powers_of_two(amounts):
        return None
    secrets = _required(items, secret_key)
    if secrets is None or not _ascii_texts(secrets, MAX_SECRET_CHARS, empty_ok=False):
        return None
    witnesses = _column(items, witness_key)
    if witnesses.count(None) != n and not _ascii_texts(
        [w for w in witnesses if w is not None], MAX_WITNESS_CHARS, empty_ok=True
    ):
        return None
    cs = _required(items, c_key)
    c_hex = None if cs is None else _lower_hex(cs, 33) if from_hex else _hex_of_bytes(cs, 33)
    if c_hex is None:
        return None
    dleqs = _required(items, dleq_key)  # usually on every proof
    if dleqs is not None:
        dleqs = _fast_dleqs(dleqs, from_hex)
        if dleqs is None:
            return None
    elif _column(items, dleq_key).count(None) == n:
        dleqs = repeat(None)
    else:
        return None
    proofs = build_proofs(amounts, kids, secrets, c_hex, dleqs, witnesses)
    return _Group(proofs, secrets, list(map(bytes.fromhex, c_hex)) if from_hex else cs)


def _fast_dleqs(values: list[Any], from_hex: bool) -> list[DLEQ] | None:
    """DLEQ objects if every proof carries one with 32-byte e and s, and r on all of them or on none."""
    e, s = (_scalars(_required(values, key), from_hex) for key in ("e", "s"))
    if e is None or s is None:
        return None
    r_values = _required(values, "r")
    if r_values is None and _column(values, "r").count(None) == len(values):
        return build_dleqs(e, s, repeat(None))
    r = _scalars(r_values, from_hex)
    if r is None:
        return None
    return build_dleqs(e, s, r)


def _scalars(values: list[Any] | None, from_hex: bool) -> list[str] | None:
    if values is None:
        return None
    return _lower_hex(values, 32) if from_hex else _hex_of_bytes(values, 32)


def _add_group(proofs: _Proofs, fast: _Group | None, items: list[Any], slow: Any) -> None:
    """Add a group built by the fast path, or else proof by proof with ``slow(item, where)``."""
    if fast is not None:
        proofs.add_group(fast)
        return
    for item in items:
        proofs.add(slow(item, f"proof {len(proofs.proofs)}"))


# ---------------------------------------------------------------------------------------------------------
# V3

_V3_FIELDS = ("amount", "secret", "C", "dleq", "witness")


def _parse_v3(doc: Any) -> Token:
    doc = _object(doc, "V3 token")
    entries = _list(_require(doc, "token", "V3 token"), "V3 'token'")
    unit = _unit(doc.get("unit"), "V3 'unit'")
    memo = _memo(doc.get("memo"), "V3 'memo'")
    mint = ""
    proofs = _Proofs("C")
    for n, entry in enumerate(entries):
        where = f"token[{n}]"
        entry = _object(entry, where)
        entry_mint = _mint(_require(entry, "mint", where), f"{where}.mint")
        if mint and entry_mint != mint:
            raise _err(f"token mixes mints ({mint} and {entry_mint}); one mint per token", "multiple_mints")
        mint = entry_mint
        items = _list(_require(entry, "proofs", where), f"{where}.proofs")
        proofs.reserve(len(items))
        kids = _fast_v3_keyset_ids(items)
        fast = None if kids is None else _fast_group(items, _V3_FIELDS, kids, from_hex=True)
        _add_group(proofs, fast, items, _proof_v3)
    return Token(mint=mint, unit=unit, proofs=proofs.finish(), memo=memo)


def _fast_v3_keyset_ids(items: list[Any]) -> list[str] | None:
    """Each proof's normalized keyset id if all are valid (each distinct id checked once), else None."""
    if not items or _types(items) != {dict}:
        return None
    ids = _column(items, "id")
    try:
        normalized = {kid: _keyset_id_hex(kid, "keyset id") for kid in set(ids)}
    except (TokenError, TypeError):  # invalid or unhashable: the proof-by-proof path reports it
        return None
    return list(map(normalized.__getitem__, ids))


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

_V4_FIELDS = ("a", "s", "c", "d", "w")


def _parse_v4(doc: Any) -> Token:
    doc = _object(doc, "V4 token")
    if "u" not in doc:
        raise _err("V4 token has no unit ('u'), which is required", "missing_unit")
    mint = _mint(_require(doc, "m", "V4 token"), "V4 'm' (mint)")
    unit = _unit(doc["u"], "V4 'u' (unit)")
    memo = _memo(doc.get("d"), "V4 'd' (memo)")
    groups = _list(_require(doc, "t", "V4 token"), "V4 't'")
    proofs = _Proofs("'c'")
    for n, group in enumerate(groups):
        where = f"t[{n}]"
        group = _object(group, where)
        kid = _keyset_id_bytes(_require(group, "i", where), f"{where}.i (keyset id)")
        items = _list(_require(group, "p", where), f"{where}.p")
        proofs.reserve(len(items))
        fast = _fast_group(items, _V4_FIELDS, [kid] * len(items), from_hex=False)
        _add_group(proofs, fast, items, lambda item, where, kid=kid: _proof_v4(item, kid, where))
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


def make_token(mint: str, unit: str, proofs: list[Proof] | tuple[Proof, ...], memo: str | None = None) -> str | None:
    """A V4 token of ``proofs`` of one mint and unit; None for no proofs (there is no empty token)."""
    return serialize_v4(Token(mint=mint, unit=unit, proofs=tuple(proofs), memo=memo)) if proofs else None
