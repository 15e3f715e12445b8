"""Issuance as upstream Hashpool speaks it: CDK's custom method ``ehash`` (NUT-20 locked quotes, the header hash
in internal byte order), NUT-29 batch check and batch mint, and the signed lookup of quotes by key."""

from __future__ import annotations

import hashlib
import os
import time

from coincurve import PrivateKey
from support.refmint import MintHandle

from hashpool_cln.cashu.amounts import split_amount
from hashpool_cln.cashu.crypto import verify_schnorr
from hashpool_cln.cashu.lookup import lookup_digest, sign_lookup
from hashpool_cln.cashu.models import BlindedMessage
from hashpool_cln.cashu.nut20 import quote_message, quote_message_v1, sign_quote
from hashpool_cln.refmint.errors import MintError
from hashpool_cln.refmint.lookup import NonceBook
from hashpool_cln.refmint.miner import blind_outputs
from hashpool_cln.refmint.shares import random_share_hash

# Bitcoin's genesis block header (80 bytes): version, previous hash, merkle root, time, bits, nonce.
GENESIS_HEADER = bytes.fromhex(
    "01000000" + "00" * 32 + "3ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a"
    + "29ab5f49" + "ffff001d" + "1dac2b7c")
GENESIS_DISPLAY = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"


def _sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


async def _expect(answer, status: int, code: int) -> None:
    assert (answer.status, answer.code) == (status, code), answer
    assert isinstance(answer.body["detail"], str), answer


async def _mint_body(mint: MintHandle, quotes: list[dict], keys: list[PrivateKey | None], *, less: int = 0,
                     **extra) -> tuple:
    """A NUT-29 batch body for ``quotes`` (signed by ``keys``, None for unlocked), outputs of their epoch
    worth their sum (less ``less``)."""
    kid = await mint.keyset_id(quotes[0]["unit"])
    blinded = blind_outputs(kid, split_amount(sum(q["amount"] for q in quotes) - less))
    sigs = [None if k is None else sign_quote(k, q["quote"], blinded.outputs) for q, k in zip(quotes, keys)]
    body = {"quotes": [q["quote"] for q in quotes], "outputs": [o.to_dict() for o in blinded.outputs],
            "signatures": sigs, **extra}
    return body, blinded


async def test_the_genesis_header_hash_in_upstreams_byte_order(refmint_factory) -> None:
    mint = await refmint_factory(min_difficulty=32)
    internal = _sha256d(GENESIS_HEADER)
    assert internal[::-1].hex() == GENESIS_DISPLAY  # what explorers show is the reversed SHA256d output
    key = PrivateKey()
    body = {"amount": 2048, "unit": "hash", "pubkey": key.public_key.format().hex(), "header_hash": internal.hex()}
    quote = await mint.ok("POST", "/v1/mint/quote/ehash", body, role="pool")
    # 43 leading zero bits in the hash read as a number; 2^(43 - 32) units
    assert quote["amount"] == 2048 and quote["request"] == internal.hex() == quote["header_hash"]
    assert quote["method"] == "ehash" and quote["state"] == "PAID" and quote["amount_paid"] == 2048
    assert quote["pubkey"] == body["pubkey"] and quote["amount_issued"] == 0
    # the pool finds the share by its hash in either byte order
    for given in (internal.hex(), GENESIS_DISPLAY):
        found = await mint.ok("GET", f"/v1/mint/quote/ehash/by_hash/{given}", role="pool")
        assert found["quote"] == quote["quote"]
        await _expect(await mint.call("GET", f"/v1/mint/quote/ehash/by_hash/{given}"), 401, 30001)
    # the same share in display order through the older route is the same share: quoted once
    again = await mint.call("POST", "/v1/mint/quote/mining_share", {"header_hash": GENESIS_DISPLAY}, role="pool")
    await _expect(again, 400, 51004)
    # read in the wrong order, the genesis hash has 1 leading zero bit: below the minimum
    wrong = await mint.call("POST", "/v1/mint/quote/ehash", {**body, "header_hash": GENESIS_DISPLAY}, role="pool")
    await _expect(wrong, 400, 11006)


async def test_ehash_quotes_are_locked_and_speak_cdks_body(refmint) -> None:
    key = PrivateKey()
    pub = key.public_key.format().hex()
    share = random_share_hash(4)[::-1].hex()
    unlocked = await refmint.call("POST", "/v1/mint/quote/ehash", {"unit": "hash", "header_hash": share}, role="pool")
    await _expect(unlocked, 400, 20009)
    wrong_amount = {"unit": "hash", "header_hash": share, "pubkey": pub, "amount": 17}
    await _expect(await refmint.call("POST", "/v1/mint/quote/ehash", wrong_amount, role="pool"), 400, 11006)
    other_unit = {"unit": "sat", "header_hash": share, "pubkey": pub}
    await _expect(await refmint.call("POST", "/v1/mint/quote/ehash", other_unit, role="pool"), 400, 11013)
    await _expect(await refmint.call("POST", "/v1/mint/quote/ehash", {"unit": "hash", "header_hash": share,
                                                                      "pubkey": pub}), 401, 30001)
    # cdk-ehash's README nests the hash in "extra"; the open epoch's own unit is accepted as well
    open_unit = (await refmint.ok("GET", "/v1/info"))["ehash"]["open_unit"]
    nested = await refmint.ok("POST", "/v1/mint/quote/ehash", {"unit": open_unit, "pubkey": pub, "amount": 16,
                                                               "extra": {"header_hash": share}}, role="pool")
    assert nested["amount"] == 16 and nested["unit"] == open_unit and nested["request"] == share
    assert await refmint.ok("GET", f"/v1/mint/quote/ehash/{nested['quote']}") == nested
    assert (await refmint.ok("GET", f"/v1/mint/quote/mining_share/{nested['quote']}"))["quote"] == nested["quote"]


async def test_minting_a_locked_quote_needs_its_keys_signature(refmint) -> None:
    key, other = PrivateKey(), PrivateKey()
    quote = await refmint.ehash_quote(3, key)
    kid = await refmint.keyset_id(quote["unit"])
    blinded = blind_outputs(kid, [8])
    body = {"quote": quote["quote"], "outputs": [o.to_dict() for o in blinded.outputs]}
    await _expect(await refmint.call("POST", "/v1/mint/ehash", body), 400, 20008)
    forged = {**body, "signature": sign_quote(other, quote["quote"], blinded.outputs)}
    await _expect(await refmint.call("POST", "/v1/mint/ehash", forged), 400, 20008)
    # CDK's domain-separated NUT-20 message is accepted as well as NUT-20's plain one
    v1 = key.sign_schnorr(quote_message_v1(quote["quote"], blinded.outputs), os.urandom(32)).hex()
    answer = await refmint.ok("POST", "/v1/mint/ehash", {**body, "signature": v1})
    proofs = await refmint.unblind(blinded, answer["signatures"])
    assert sum(p.amount for p in proofs) == 8
    issued = await refmint.ok("GET", f"/v1/mint/quote/ehash/{quote['quote']}")
    assert issued["state"] == "ISSUED" and issued["amount_issued"] == 8 and issued["updated_at"] >= issued["created_at"]
    again = await refmint.call("POST", "/v1/mint/ehash", {**body, "signature": sign_quote(key, quote["quote"],
                                                                                          blinded.outputs)})
    await _expect(again, 400, 20002)


async def test_batch_check_and_batch_mint(refmint) -> None:
    key, other = PrivateKey(), PrivateKey()
    quotes = [await refmint.ehash_quote(n, key) for n in (0, 1, 2, 3, 4, 5, 6, 7)]  # 255 units
    foreign = await refmint.ehash_quote(2, other)
    ids = [q["quote"] for q in quotes]
    checked = await refmint.ok("POST", "/v1/mint/quote/ehash/check", {"quotes": list(reversed(ids))})
    assert isinstance(checked, list) and [q["quote"] for q in checked] == list(reversed(ids))
    assert {q["state"] for q in checked} == {"PAID"}
    await _expect(await refmint.call("POST", "/v1/mint/quote/ehash/check", {"quotes": ids + ids[:1]}), 400, 11016)
    await _expect(await refmint.call("POST", "/v1/mint/quote/ehash/check", {"quotes": [*ids, "nope"]}), 400, 51000)
    await _expect(await refmint.call("POST", "/v1/mint/quote/ehash/check", {"quotes": ["q"] * 101}), 400, 11017)
    await _expect(await refmint.call("POST", "/v1/mint/quote/ehash/check", {"quotes": []}), 400, 0)

    # a quote of another key in the batch, signed with this key: the whole batch is refused
    body, _ = await _mint_body(refmint, [*quotes, foreign], [key] * 9)
    await _expect(await refmint.call("POST", "/v1/mint/ehash/batch", body), 400, 20008)
    # amounts that do not match the quotes, outputs that do not add up, signatures that do not pair
    body, _ = await _mint_body(refmint, quotes, [key] * 8, quote_amounts=[1] * 8)
    await _expect(await refmint.call("POST", "/v1/mint/ehash/batch", body), 400, 11005)
    body, _ = await _mint_body(refmint, quotes, [key] * 8, less=1)
    await _expect(await refmint.call("POST", "/v1/mint/ehash/batch", body), 400, 11005)
    body, _ = await _mint_body(refmint, quotes, [key] * 8)
    await _expect(await refmint.call("POST", "/v1/mint/ehash/batch", {**body, "signatures": body["signatures"][1:]}),
                  400, 20008)
    states = await refmint.ok("POST", "/v1/mint/quote/ehash/check", {"quotes": [*ids, foreign["quote"]]})
    assert {q["state"] for q in states} == {"PAID"}  # nothing of the refused batches was minted

    body, blinded = await _mint_body(refmint, quotes, [key] * 8,
                                     quote_amounts=[q["amount"] for q in quotes])
    answer = await refmint.ok("POST", "/v1/mint/ehash/batch", body)
    assert len(answer["signatures"]) == len(body["outputs"])
    proofs = await refmint.unblind(blinded, answer["signatures"])
    assert sum(p.amount for p in proofs) == 255
    states = await refmint.ok("POST", "/v1/mint/quote/ehash/check", {"quotes": ids})
    assert {q["state"] for q in states} == {"ISSUED"}
    await _expect(await refmint.call("POST", "/v1/mint/ehash/batch", body), 400, 20002)
    epoch = (await refmint.ok("GET", "/v1/ehash/epochs"))["epochs"][-1]
    assert (epoch["issued"], epoch["minted"]) == (259, 255)  # priced over every quote, the foreign one too


async def test_a_batch_mixes_unlocked_quotes_only_with_null_signatures(refmint) -> None:
    key = PrivateKey()
    locked = await refmint.ehash_quote(2, key)
    unlocked = await refmint.share_quote(3)
    body, _ = await _mint_body(refmint, [locked, unlocked], [key, key])
    await _expect(await refmint.call("POST", "/v1/mint/ehash/batch", body), 400, 20008)
    body, blinded = await _mint_body(refmint, [locked, unlocked], [key, None])
    answer = await refmint.ok("POST", "/v1/mint/mining_share/batch", body)  # the older name, the same method
    assert sum(p.amount for p in await refmint.unblind(blinded, answer["signatures"])) == 12


async def test_signed_lookup_by_key(refmint) -> None:
    key, other = PrivateKey(), PrivateKey()
    mine = [await refmint.ehash_quote(n, key) for n in (1, 2, 3)]
    theirs = await refmint.ehash_quote(1, other)
    info = await refmint.ok("GET", "/v1/info")
    assert info["nuts"]["XX"] == {"supported": True, "max_age": 300}
    assert info["nuts"]["29"]["max_batch_size"] == 100 and "ehash" in info["nuts"]["29"]["methods"]

    for path in ("/v1/mint/quote/ehash/pubkey", "/v1/mint/quote/pubkey"):
        found = await refmint.ok("POST", path, await refmint.lookup_body([key]))
        assert [q["quote"] for q in found["quotes"]] == [q["quote"] for q in mine]
    both = await refmint.ok("POST", "/v1/mint/quote/pubkey", await refmint.lookup_body([key, other]))
    assert {q["quote"] for q in both["quotes"]} == {q["quote"] for q in [*mine, theirs]}

    # wrong key: a signature by another key than the one named
    body = await refmint.lookup_body([key])
    forged = {**body, "pubkey_signatures": (await refmint.lookup_body([other], nonce=body["nonce"],
                                                                     timestamp=body["timestamp"]))["pubkey_signatures"]}
    await _expect(await refmint.call("POST", "/v1/mint/quote/pubkey", forged), 400, 20008)
    # another mint's pubkey in the signed message
    elsewhere = await refmint.lookup_body([key], mint_pubkey=PrivateKey().public_key.format().hex())
    await _expect(await refmint.call("POST", "/v1/mint/quote/pubkey", elsewhere), 400, 20008)
    # stale and future timestamps
    now = int(time.time())
    for ts in (now - 302, now + 302):
        await _expect(await refmint.call("POST", "/v1/mint/quote/pubkey", await refmint.lookup_body(
            [key], timestamp=ts)), 400, 51007)
    # a replayed request (same nonce), even after the answer was given
    once = await refmint.lookup_body([key])
    assert (await refmint.call("POST", "/v1/mint/quote/pubkey", once)).status == 200
    await _expect(await refmint.call("POST", "/v1/mint/quote/ehash/pubkey", once), 400, 51008)
    # the signature commits to the nonce and the timestamp
    tampered = {**(await refmint.lookup_body([key])), "nonce": os.urandom(16).hex()}
    await _expect(await refmint.call("POST", "/v1/mint/quote/pubkey", tampered), 400, 20008)
    moved = await refmint.lookup_body([key])
    await _expect(await refmint.call("POST", "/v1/mint/quote/pubkey", {**moved, "timestamp": moved["timestamp"] + 1}),
                  400, 20008)
    # bounded: at most 50 keys; nonce of 16 bytes hex; keys must be points
    many = await refmint.lookup_body([PrivateKey() for _ in range(51)])
    await _expect(await refmint.call("POST", "/v1/mint/quote/pubkey", many), 400, 11017)
    await _expect(await refmint.call("POST", "/v1/mint/quote/pubkey", await refmint.lookup_body(
        [key], nonce="ab" * 8 + "zz")), 400, 0)
    await _expect(await refmint.call("POST", "/v1/mint/quote/pubkey", {**(await refmint.lookup_body([key])),
                                                                       "pubkeys": ["02" + "00" * 32]}), 400, 20009)
    # minted quotes drop out of the lookup
    body, _ = await _mint_body(refmint, mine[:2], [key, key])
    await refmint.ok("POST", "/v1/mint/ehash/batch", body)
    left = await refmint.ok("POST", "/v1/mint/quote/pubkey", await refmint.lookup_body([key]))
    assert [q["quote"] for q in left["quotes"]] == [mine[2]["quote"]]


def test_a_request_signed_before_the_mint_started_is_stale() -> None:
    book = NonceBook(max_age=300, started_at=1_000)
    book.check_fresh("ab" * 16, 1_000, 1_010)
    try:
        book.check_fresh("cd" * 16, 999, 1_010)  # within max_age, but older than this process
    except MintError as exc:
        assert exc.code == 51007
    else:
        raise AssertionError("a request older than the process must be stale")
    book.remember("ab" * 16, 1_000, 1_010)
    try:
        book.check_fresh("ab" * 16, 1_005, 1_010)
    except MintError as exc:
        assert exc.code == 51008
    else:
        raise AssertionError("a nonce is good once")


def test_the_signed_messages_byte_for_byte() -> None:
    """Vectors for other implementations: the lookup preimage of the draft NUT (e799ab4) and CDK's
    domain-separated NUT-20 message, rebuilt here by hand from their specifications."""
    mint = PrivateKey(bytes.fromhex("00" * 31 + "01")).public_key.format().hex()
    owner = PrivateKey(bytes.fromhex("00" * 31 + "02"))
    nonce, timestamp = "0f" * 16, 1788825600
    preimage = ("Cashu_MintQuoteLookup_v1"
                "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
                "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5"
                "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f" "1788825600")
    digest = lookup_digest(mint.upper(), owner.public_key.format().hex(), nonce, timestamp)
    assert digest == hashlib.sha256(preimage.encode()).digest()
    assert verify_schnorr(owner.public_key.format().hex(), digest, sign_lookup(owner, mint, nonce, timestamp))

    b_ = "02" + "ab" * 32
    outputs = [BlindedMessage(amount=300, id="00" * 8, B_=b_)]
    framed = (b"Cashu_MintQuoteSig_v1" + (4).to_bytes(4, "big") + b"q-id"
              + (2).to_bytes(4, "big") + bytes([0x01, 0x2c]) + (33).to_bytes(4, "big") + bytes.fromhex(b_))
    assert quote_message_v1("q-id", outputs) == hashlib.sha256(framed).digest()
    assert quote_message("q-id", outputs) == hashlib.sha256(("q-id" + b_).encode()).digest()
