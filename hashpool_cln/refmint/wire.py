"""Reading request bodies into wire objects: every wrong type or shape becomes a 400 with a precise detail."""

from __future__ import annotations

import re
from typing import Any

from hashpool_cln.cashu.models import BlindedMessage, Proof
from hashpool_cln.refmint.errors import Code, MintError, malformed
from hashpool_cln.text import is_hex

MAX_WIRE_AMOUNT = 1 << 64
MAX_SECRET_CHARS = 2048
MAX_WITNESS_CHARS = 16384
_KEYSET_ID = re.compile(r"(00[0-9a-f]{14})|(01[0-9a-f]{64})")


def obj(value: Any, where: str = "request body") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise malformed(f"{where} must be a JSON object")
    return value


def field(d: dict[str, Any], key: str, where: str = "request") -> Any:
    if key not in d:
        raise malformed(f"{where}: missing field '{key}'")
    return d[key]


def string(value: Any, where: str, max_chars: int = 1024) -> str:
    if not isinstance(value, str):
        raise malformed(f"{where} must be a string")
    if len(value) > max_chars:
        raise malformed(f"{where} is longer than {max_chars} characters")
    return value


def opt_string(value: Any, where: str, max_chars: int = 1024) -> str | None:
    return None if value is None else string(value, where, max_chars)


def integer(value: Any, where: str, lo: int | None = None, hi: int | None = None) -> int:
    """A JSON integer (never a boolean), within ``[lo, hi]`` when given."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise malformed(f"{where} must be an integer")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise malformed(f"{where} must be an integer in [{lo}, {hi}]")
    return value


def hexstr(value: Any, where: str, chars: int) -> str:
    text = string(value, where, chars)
    if not is_hex(text, chars):
        raise malformed(f"{where} must be {chars} hex characters")
    return text.lower()


def amount(value: Any, where: str) -> int:
    n = integer(value, where)
    if not 0 < n < MAX_WIRE_AMOUNT:
        raise malformed(f"{where} must be a positive integer below 2^64")
    return n


def keyset_id(value: Any, where: str) -> str:
    text = string(value, where, 66)
    if not _KEYSET_ID.fullmatch(text):
        raise malformed(f"{where} is not a keyset id")
    return text


def items(value: Any, where: str, limit: int, code: Code) -> list[Any]:
    if not isinstance(value, list):
        raise malformed(f"{where} must be a list")
    if len(value) > limit:
        raise MintError(code, f"too many {where}: {len(value)} > {limit}")
    return value


def proof(value: Any, where: str) -> Proof:
    d = obj(value, where)
    witness = d.get("witness")
    if witness is not None:
        witness = string(witness, f"{where}.witness", MAX_WITNESS_CHARS)
    return Proof(
        amount=amount(field(d, "amount", where), f"{where}.amount"),
        id=keyset_id(field(d, "id", where), f"{where}.id"),
        secret=string(field(d, "secret", where), f"{where}.secret", MAX_SECRET_CHARS),
        C=hexstr(field(d, "C", where), f"{where}.C", 66),
        witness=witness,
    )


def output(value: Any, where: str, *, any_amount: bool = False) -> BlindedMessage:
    """A BlindedMessage; with ``any_amount`` (restore, NUT-09 matches on ``B_``) its amount may be any in
    [0, 2^64), as wallets send 0 there."""
    d = obj(value, where)
    raw = field(d, "amount", where)
    if any_amount:
        n = integer(raw, f"{where}.amount", 0, MAX_WIRE_AMOUNT - 1)
    else:
        n = amount(raw, f"{where}.amount")
    return BlindedMessage(amount=n, id=keyset_id(field(d, "id", where), f"{where}.id"),
                          B_=hexstr(field(d, "B_", where), f"{where}.B_", 66))


def proofs(d: dict[str, Any], key: str, limit: int) -> list[Proof]:
    return [proof(v, f"{key}[{i}]") for i, v in enumerate(items(field(d, key), key, limit, Code.TOO_MANY_INPUTS))]


def outputs(d: dict[str, Any], key: str, limit: int, *, any_amount: bool = False) -> list[BlindedMessage]:
    return [output(v, f"{key}[{i}]", any_amount=any_amount)
            for i, v in enumerate(items(field(d, key), key, limit, Code.TOO_MANY_OUTPUTS))]
