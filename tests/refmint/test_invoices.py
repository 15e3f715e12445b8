"""The mint's BOLT11 reader against the ``bolt11`` package: real invoices (signed by ``bolt11.encode``), and
invoices damaged word by word and re-checksummed so that the damage reaches the fields, not only the checksum."""

from __future__ import annotations

import hashlib
import random
import secrets

import bech32
import bolt11
import pytest
from bitstring import ReadError
from bolt11.models.tags import TagChar, Tags
from coincurve import PrivateKey
from support.invoices import PAYEE_KEY, make_invoice

from hashpool_cln.refmint.invoices import InvoiceError, payment_hash

HRPS = ("lnbc", "lnbcrt", "lntb", "lntbs", "lnbc10u", "lnbc2500m", "lnbc1p", "lnbc10p", "lnbc1x", "lnxx", "bc",
        "lnbcrt1000n", "lnbc0")


def _invoice(rng: random.Random) -> str:
    tags = Tags()
    tags.add(TagChar.payment_hash, rng.randbytes(32).hex())
    tags.add(TagChar.payment_secret, rng.randbytes(32).hex())
    if rng.random() < 0.5:
        tags.add(TagChar.description, "".join(rng.choice("abc é₿") for _ in range(rng.randrange(0, 40))))
    else:
        tags.add(TagChar.description_hash, rng.randbytes(32).hex())
    tags.add(TagChar.expire_time, rng.randrange(1, 1 << 20))
    tags.add(TagChar.min_final_cltv_expiry, rng.randrange(1, 500))
    keep_payee = rng.random() < 0.5
    if keep_payee:
        tags.add(TagChar.payee, PrivateKey.from_hex(PAYEE_KEY).public_key.format().hex())
    amount = rng.choice((None, 1, 1000, 123_456_789, 10**11))
    inv = bolt11.Bolt11(currency=rng.choice(("bc", "tb", "bcrt", "tbs")), date=rng.randrange(1, 1 << 34),
                        tags=tags, amount_msat=bolt11.MilliSatoshi(amount) if amount else None)
    return bolt11.encode(inv, PAYEE_KEY, keep_payee=keep_payee)


def _damaged(rng: random.Random, text: str) -> str:
    hrp, words = bech32.bech32_decode(text)
    assert hrp is not None and words is not None
    kind = rng.randrange(6)
    if kind == 0:
        words[rng.randrange(len(words))] = rng.randrange(32)
    elif kind == 1:
        del words[rng.randrange(len(words))]
    elif kind == 2:
        words.insert(rng.randrange(len(words)), rng.randrange(32))
    elif kind == 3:
        words = words[:rng.randrange(len(words))]
    elif kind == 4:
        hrp = rng.choice(HRPS)
    else:
        i = rng.randrange(len(text))
        return text[:i] + rng.choice("qpzry9x8gf2tvdw0s3jn54khce6mua7l1") + text[i + 1:]
    return bech32.bech32_encode(hrp, words)


def _reference(text: str) -> str | Exception:
    try:
        return bolt11.decode(text).payment_hash
    except Exception as exc:  # any refusal of the reference decoder is an outcome to compare
        return exc


def test_real_invoices_name_their_payment_hash() -> None:
    for amount in (None, 1, 1000, 100_000_000):
        for network in ("bitcoin", "testnet", "signet", "regtest"):
            inv = make_invoice(amount, network=network)
            assert payment_hash(inv.bolt11) == inv.payment_hash == bolt11.decode(inv.bolt11).payment_hash
            assert payment_hash(inv.bolt11.upper()) == inv.payment_hash


def test_agrees_with_the_bolt11_package_on_whole_and_damaged_invoices() -> None:
    rng = random.Random(1311)
    accepted = refused = 0
    for _ in range(300):
        text = _invoice(rng)
        assert payment_hash(text) == bolt11.decode(text).payment_hash
        for _ in range(4):
            damaged = _damaged(rng, text)
            expected = _reference(damaged)
            try:
                got: str | Exception = payment_hash(damaged)
            except InvoiceError as exc:
                got = exc
            if isinstance(expected, str):
                assert got == expected, damaged  # every invoice the package reads is read alike
                accepted += 1
            elif isinstance(got, str):
                # Read here, refused there: only for a field the mint skips (expiry, CLTV, fallback, features,
                # route hints) that the package fails to parse; never the checksum, prefix, hash or signature.
                assert not isinstance(expected, (bolt11.exceptions.Bolt11Exception, ReadError)), (damaged, expected)
                assert got == _first_p(damaged)
                accepted += 1
            else:
                refused += 1
    assert accepted > 100 and refused > 300  # the damage reached both outcomes


def _first_p(text: str) -> str:
    """The first 52-word ``p`` field, found by the package's bech32 reader and a plain walk of the fields."""
    _, words = bech32.bech32_decode(text.lower())
    fields, pos = words[:-104], 7
    while pos < len(fields):
        tag, length = fields[pos], fields[pos + 1] * 32 + fields[pos + 2]
        if tag == 1 and length == 52:
            value = int("".join(f"{w:05b}" for w in fields[pos + 3:pos + 55]), 2) >> 4
            return value.to_bytes(32, "big").hex()
        pos += 3 + length
    raise AssertionError("no p field")


@pytest.mark.parametrize("text", [
    "", "lnbc1", "ln", "lnbcrt1" + "q" * 200, "lnbc1qqqqqqqqqqqqqqqqqqqqqqq", "lnbc\x001qqqqqq",
    "lno1" + "q" * 100, "lnbcrt1ä" + "q" * 120,
])
def test_garbage_is_refused(text: str) -> None:
    with pytest.raises(InvoiceError):
        payment_hash(text)


def test_a_signature_by_another_key_than_the_payee_named_is_refused() -> None:
    tags = Tags()
    tags.add(TagChar.payment_hash, secrets.token_hex(32))
    tags.add(TagChar.payment_secret, secrets.token_hex(32))
    tags.add(TagChar.description, "x")
    tags.add(TagChar.payee, "02" + hashlib.sha256(b"not the signer").hexdigest())
    inv = bolt11.Bolt11(currency="bcrt", date=1_700_000_000, tags=tags)
    text = bolt11.encode(inv, PAYEE_KEY, keep_payee=True)
    with pytest.raises(InvoiceError):
        payment_hash(text)
    with pytest.raises(bolt11.exceptions.Bolt11Exception):
        bolt11.decode(text)


def _words(data: bytes) -> list[int]:
    value, bits = int.from_bytes(data, "big"), 8 * len(data)
    count = -(-bits // 5)
    value <<= 5 * count - bits
    return [value >> 5 * (count - 1 - i) & 31 for i in range(count)]


def _field(tag: str, words: list[int]) -> list[int]:
    return [bech32.CHARSET.index(tag), len(words) >> 5, len(words) & 31, *words]


def _signed(hrp: str, fields: list[int]) -> str:
    """An invoice of ``fields`` (after a timestamp) signed by the test payee, as BOLT #11 signs it."""
    words = _words((1_700_000_000).to_bytes(5, "big"))[1:] + fields  # 35 bits of timestamp: 7 words
    bits = 5 * len(words)
    value = int("".join(f"{w:05b}" for w in words), 2) << (-bits % 8)
    message = hrp.encode() + value.to_bytes((bits + 7) // 8, "big")
    signature = PrivateKey.from_hex(PAYEE_KEY).sign_recoverable(message)
    return bech32.bech32_encode(hrp, words + _words(signature))


@pytest.mark.parametrize("first_length", [51, 53, 0])
def test_a_payment_hash_field_of_another_length_is_skipped(first_length: int) -> None:
    wanted = secrets.token_bytes(32)
    common = _field("s", _words(secrets.token_bytes(32))) + _field("d", _words(b"x"))
    odd = _field("p", [7] * first_length)
    text = _signed("lnbcrt", odd + _field("p", _words(wanted)) + _field("p", _words(bytes(32))) + common)
    assert payment_hash(text) == wanted.hex() == bolt11.decode(text).payment_hash  # the first of 52 words
    alone = _signed("lnbcrt", odd + common)
    with pytest.raises(InvoiceError):
        payment_hash(alone)
    with pytest.raises(bolt11.exceptions.Bolt11Exception):
        bolt11.decode(alone)
