"""The payment hash a BOLT11 invoice names, read the way BOLT #11 tells a reader to, for binding a melt quote.

The mint needs one field of an invoice: its payment hash (``p``). The invoice must still be one: a valid bech32
checksum, a human-readable part ``ln`` + currency + optional amount, a timestamp, tagged fields that fit, a payment
hash and a payment secret, a description or its hash, and a signature by the payee (``n`` when given, otherwise
one a key can be recovered from). Fields the mint does not use are skipped, as BOLT #11 asks of unknown ones.

Read word by word with integers: the ``bolt11`` package builds a bit string per 5-bit word and costs ~3 ms an
invoice, more than anything else in a melt quote.
"""

from __future__ import annotations

import re

from coincurve import PublicKey
from coincurve.ecdsa import cdata_to_der, deserialize_recoverable, recoverable_convert

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_WORD = {c: i for i, c in enumerate(_CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_PRINTABLE = re.compile(r"[!-~]*")  # bech32 allows US-ASCII 33 to 126
_HRP = re.compile(r"ln(bcrt|bc|tbs|tb)(\w+)?")
_AMOUNT = re.compile(r"\d+[pnum]?")
_SIGNATURE_WORDS = 104  # 65 bytes: r, s and the recovery id
_TIMESTAMP_WORDS = 7


class InvoiceError(ValueError):
    """The text is not a BOLT11 invoice a payment could be bound to."""


def payment_hash(invoice: str) -> str:
    """The invoice's payment hash (64 lowercase hex); InvoiceError if it is no well-formed, signed BOLT11."""
    hrp, words = _bech32(invoice.lower())
    match = _HRP.match(hrp)
    if match is None or (match.group(2) is not None and not _AMOUNT.fullmatch(match.group(2))):
        raise InvoiceError("the human-readable part is not ln + a currency + an amount")
    if len(words) < _SIGNATURE_WORDS + _TIMESTAMP_WORDS:
        raise InvoiceError("too short for a timestamp and a signature")
    fields = words[:-_SIGNATURE_WORDS]
    tags = _tags(fields)
    for needed in "ps":
        if needed not in tags:
            raise InvoiceError(f"no {needed!r} field of 52 words")
    if ("d" in tags) == ("h" in tags):
        raise InvoiceError("an invoice has a description or a description hash, one of them")
    _check_signature(hrp, fields, _to_bytes(words[-_SIGNATURE_WORDS:]), tags.get("n"))
    return tags["p"].hex()


def _bech32(text: str) -> tuple[str, list[int]]:
    """The human-readable part and the data words (checksum removed) of a bech32 string."""
    if not _PRINTABLE.fullmatch(text):
        raise InvoiceError("not a bech32 string")
    pos = text.rfind("1")
    if pos < 1 or pos > 83 or pos + 7 > len(text):
        raise InvoiceError("not a bech32 string")
    hrp = text[:pos]
    try:
        words = [_WORD[c] for c in text[pos + 1:]]
    except KeyError:
        raise InvoiceError("not a bech32 string") from None
    if _polymod([ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + words) != 1:
        raise InvoiceError("bad bech32 checksum")
    return hrp, words[:-6]


def _shifted_out(top: int) -> int:
    """What BCH's generator adds for the 5 bits ``top`` shifted out of the checksum."""
    value = 0
    for i, g in enumerate(_GENERATOR):
        if top >> i & 1:
            value ^= g
    return value


_SHIFTED_OUT = tuple(_shifted_out(top) for top in range(32))


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        chk = (chk & 0x1FFFFFF) << 5 ^ v ^ _SHIFTED_OUT[chk >> 25]
    return chk


def _tags(fields: list[int]) -> dict[str, bytes]:
    """The first ``p``, ``s`` (52 words), ``n`` (53 words) and ``d`` or ``h`` (a 52-word hash) of the tagged
    fields after the timestamp, as bytes; every other field skipped."""
    tags: dict[str, bytes] = {}
    pos, end = _TIMESTAMP_WORDS, len(fields)
    while pos < end:
        if pos + 3 > end:
            raise InvoiceError("a tagged field runs past the end")
        tag, length = _CHARSET[fields[pos]], fields[pos + 1] * 32 + fields[pos + 2]
        data = fields[pos + 3:pos + 3 + length]
        if len(data) != length:
            raise InvoiceError("a tagged field runs past the end")
        pos += 3 + length
        if tag in tags or (tag in "dh" and ("d" in tags or "h" in tags)):
            continue
        if (tag in "psh" and length == 52) or (tag == "n" and length == 53):
            tags[tag] = _to_bytes(data)
        elif tag == "d":
            try:
                _to_bytes(data).decode("utf-8")
            except UnicodeDecodeError:
                raise InvoiceError("the description is not UTF-8") from None
            tags[tag] = b""
    return tags


def _to_int(words: list[int]) -> tuple[int, int]:
    """5-bit words as one big-endian integer, and its width in bits."""
    value = 0
    for w in words:
        value = value << 5 | w
    return value, 5 * len(words)


def _to_bytes(words: list[int]) -> bytes:
    """5-bit words as bytes, the last partial byte dropped (BOLT #11's fields pad to whole words, not bytes)."""
    value, bits = _to_int(words)
    return (value >> bits % 8).to_bytes(bits // 8, "big")


def _signing_bytes(words: list[int]) -> bytes:
    """The words as bytes, the last byte padded with zero bits (what the signature covers after the prefix)."""
    value, bits = _to_int(words)
    pad = -bits % 8
    return (value << pad).to_bytes((bits + pad) // 8, "big")


def _check_signature(hrp: str, fields: list[int], signature: bytes, payee: bytes | None) -> None:
    message = hrp.encode("ascii") + _signing_bytes(fields)
    try:
        if payee is None:
            PublicKey.from_signature_and_message(signature, message)
        else:
            der = cdata_to_der(recoverable_convert(deserialize_recoverable(signature)))
            if not PublicKey(payee).verify(der, message):
                raise InvoiceError("the signature is not the payee's")
    except InvoiceError:
        raise
    except Exception:
        raise InvoiceError("the signature is invalid") from None
