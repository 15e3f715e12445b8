"""cashu-ts 4.8 as a real wallet against the reference mint: an ehash unit with an input fee, keysets and their
ids, receive and send, DLEQ, checkstate, restore from a seed, P2PK both ways, the mint's error codes, and
issuance as upstream Hashpool speaks it (the ``ehash`` method, NUT-20 locks, NUT-29 batches, the signed lookup).

Each answer from cashu-ts is checked against the mint's own records (its sqlite file) or by spending the
proofs cashu-ts produced with this project's code, so a wallet and a mint that only agree with themselves fail.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from coincurve import PrivateKey
from support.refmint import ys

from hashpool_cln.cashu import conditions, crypto, nut13
from hashpool_cln.cashu.amounts import split_amount
from hashpool_cln.cashu.keysets import verify_keyset_id
from hashpool_cln.cashu.models import DLEQ, Proof, Token
from hashpool_cln.cashu.tokens import parse_token, resolve_short_ids, serialize_v3, serialize_v4
from hashpool_cln.refmint.miner import blind_outputs
from interop.harness import FEE_PPK, CashuTs, Mint, fee, p2pk_secret

pytestmark = pytest.mark.asyncio(loop_scope="module")


def total(proofs: list[dict[str, Any]] | list[Proof]) -> int:
    return sum(p["amount"] if isinstance(p, dict) else p.amount for p in proofs)


def as_proofs(entries: list[dict[str, Any]]) -> list[Proof]:
    return [Proof.from_dict(e) for e in entries]


def token_of(mint: Mint, proofs: list[Proof], encode: Callable[[Token], str] = serialize_v4) -> str:
    """A token made by this project's encoder (V4 unless told), for cashu-ts to decode."""
    return encode(Token(mint=mint.handle.url, unit=mint.unit, proofs=tuple(proofs)))


async def spend_here(mint: Mint, proofs: list[Proof]) -> list[Proof]:
    """Spend ``proofs`` with this project's client code; the mint's answer proves they were real."""
    out = await mint.handle.swap(proofs)
    assert mint.state.spent(ys(proofs)) == [True] * len(proofs)
    return out


# ---------------------------------------------------------------- keysets


async def test_keysets_and_ids_as_cashu_ts_derives_them(mint: Mint, wallet: CashuTs) -> None:
    answer = await wallet.ok("keysets")
    recorded = mint.state.keysets()
    ours = {kid: rec for kid, rec in recorded.items() if rec[0] == mint.unit}
    assert ours and {k["id"] for k in answer["keysets"]} == set(ours)
    for ks in answer["keysets"]:
        unit, ppk, keys = ours[ks["id"]]
        assert ks["derived_id"] == ks["id"] and ks["verified"] is True
        assert ks["tampered_verified"] is False
        assert ks["unit"] == unit and ks["input_fee_ppk"] == ppk == FEE_PPK
        assert sorted(map(int, ks["amounts"])) == sorted(map(int, keys))
        # and this project derives the same id from the same record
        verify_keyset_id(ks["id"], {int(a): k for a, k in keys.items()}, unit, None, input_fee_ppk=ppk)
    assert answer["wallet_keyset"] in ours and answer["wallet_fee_ppk"] == FEE_PPK


# ---------------------------------------------------------------- receive, send, DLEQ, checkstate


@pytest.mark.parametrize("encode", [serialize_v4, serialize_v3], ids=["cashuB", "cashuA"])
async def test_receive_pays_the_input_fee_and_spends_the_token(mint: Mint, wallet: CashuTs,
                                                               encode: Callable[[Token], str]) -> None:
    proofs = await mint.handle.issue(5, 2)  # two proofs of 32
    answer = await wallet.ok("receive", token=token_of(mint, proofs, encode))
    received = as_proofs(answer["proofs"])
    assert answer["fee"] == fee(2) == 1
    assert total(received) == 64 - fee(2)
    assert mint.state.spent(ys(proofs)) == [True, True]
    assert mint.state.spent(ys(received)) == [False] * len(received)
    # every proof cashu-ts unblinded carries a DLEQ this project's code accepts, and spends at the mint
    for p in received:
        assert p.dleq is not None and p.dleq.r is not None
        A = crypto.point(mint.state.keysets()[p.id][2][str(p.amount)])
        assert crypto.dleq_verify_proof(p.secret.encode(), crypto.point(p.C), crypto.scalar(p.dleq.r),
                                        bytes.fromhex(p.dleq.e), bytes.fromhex(p.dleq.s), A)
    await spend_here(mint, received)


async def test_send_swaps_and_the_sender_covers_the_receivers_fee(mint: Mint, wallet: CashuTs) -> None:
    proofs = await mint.handle.issue(6)  # one proof of 64
    answer = await wallet.ok("send", proofs=[p.to_dict() for p in proofs], amount=20, include_fees=True)
    send, keep = as_proofs(answer["send"]), as_proofs(answer["keep"])
    assert total(send) == 20 + fee(len(send))
    assert total(send) + total(keep) == 64 - fee(1)
    assert mint.state.spent(ys(proofs)) == [True]
    token = parse_token(answer["token"])  # cashu-ts's V4 encoding, short keyset ids and all
    token = resolve_short_ids(token, mint.state.keysets())
    assert token.unit == mint.unit and token.mint == mint.handle.url
    assert sorted(p.C for p in token.proofs) == sorted(p.C for p in send)
    received = await spend_here(mint, list(token.proofs))
    assert total(received) == 20  # the receiver nets exactly the amount sent
    await spend_here(mint, keep)


async def test_dleq_verified_by_cashu_ts(mint: Mint, wallet: CashuTs) -> None:
    proofs = await mint.handle.issue(3, 2)
    assert all(p.dleq is not None for p in proofs)
    good = (await wallet.ok("dleq", proofs=[p.to_dict() for p in proofs]))["valid"]
    assert good == [True, True]
    forged = [replace(p, dleq=DLEQ(e=p.dleq.s, s=p.dleq.e, r=p.dleq.r)) for p in proofs if p.dleq is not None]
    bad = (await wallet.ok("dleq", proofs=[p.to_dict() for p in forged]))["valid"]
    assert bad == [False, False]
    # a wallet that requires DLEQ refuses the forged token before asking the mint anything
    error = await wallet.refused("receive", token=token_of(mint, forged), require_dleq=True)
    assert "dleq" in error["message"].lower()
    assert mint.state.spent(ys(proofs)) == [False, False]


async def test_checkstate_matches_the_mints_spent_set(mint: Mint, wallet: CashuTs) -> None:
    proofs = await mint.handle.issue(2, 4)
    await mint.handle.swap(proofs[:2])
    answer = await wallet.ok("checkstate", proofs=[p.to_dict() for p in proofs])
    assert [s["Y"] for s in answer["states"]] == ys(proofs)
    assert [s["state"] == "SPENT" for s in answer["states"]] == mint.state.spent(ys(proofs)) == [True, True,
                                                                                                  False, False]


# ---------------------------------------------------------------- restore (NUT-09 + NUT-13)


async def test_restore_from_the_seed_alone(mint: Mint, wallet: CashuTs) -> None:
    seed = os.urandom(64)
    proofs = await mint.handle.issue(4, 3)  # three proofs of 16: cashu-ts receives 47 into deterministic outputs
    answer = await wallet.ok("restore", seed=seed.hex(), proofs=[p.to_dict() for p in proofs])
    received = as_proofs(answer["received"])
    assert total(received) == 48 - fee(3)
    # cashu-ts's NUT-13 secrets are the ones this project derives from the same seed and counters
    (reserved,) = answer["reserved"]
    kid, counters = reserved["keyset"], range(reserved["start"], reserved["start"] + reserved["count"])
    derived = [nut13.derive_secret(seed, kid, c) for c in counters]
    assert sorted(p.secret for p in received) == sorted(secret for secret, _ in derived)
    # and the mint signed exactly the outputs those secrets blind to
    assert mint.state.signed([crypto.blind(secret.encode(), r)[0].format().hex() for secret, r in derived]) == [
        True] * len(derived)
    restored = as_proofs(answer["restored"])
    assert sorted((p.secret, p.C, p.amount) for p in restored) == sorted((p.secret, p.C, p.amount) for p in received)
    assert answer["last_counter"] == reserved["start"] + reserved["count"] - 1
    await spend_here(mint, restored)


# ---------------------------------------------------------------- P2PK (NUT-11) both ways


async def test_p2pk_locked_by_cashu_ts_is_verified_by_the_mint(mint: Mint, wallet: CashuTs) -> None:
    key = PrivateKey()
    pubkey = key.public_key.format().hex()
    proofs = await mint.handle.issue(5)
    sent = await wallet.ok("send", proofs=[p.to_dict() for p in proofs], amount=8, pubkey=pubkey)
    locked = as_proofs(sent["send"])
    for p in locked:  # cashu-ts's lock, read by this project's conditions module
        lock = conditions.p2pk_lock(conditions.classify(p.secret))
        assert lock.pubkeys == (pubkey,) and lock.sigflag == conditions.SIG_INPUTS
        conditions.require_spendable(p, [pubkey])
    # without the key's signature the mint refuses; a wrong key is refused too
    answer = await mint.handle.call("POST", "/v1/swap", {
        "inputs": [p.to_dict() for p in locked],
        "outputs": [o.to_dict() for o in blind_outputs(locked[0].id, split_amount(total(locked) - fee(len(locked))))
                    .outputs]})
    assert answer.status == 400 and answer.code == 10001
    error = await wallet.refused("receive", token=sent["token"], privkey=PrivateKey().secret.hex())
    assert (error["name"], error["status"], error["code"]) == ("MintOperationError", 400, 10001)
    assert mint.state.spent(ys(locked)) == [False] * len(locked)
    # cashu-ts signs with the right key, the mint checks the signature and records the witness
    received = await wallet.ok("receive", token=sent["token"], privkey=key.secret.hex())
    assert total(received["proofs"]) == total(locked) - fee(len(locked))
    assert mint.state.spent(ys(locked)) == [True] * len(locked)


async def test_p2pk_locked_by_cashu_ts_is_spent_with_a_signature_made_here(mint: Mint, wallet: CashuTs) -> None:
    key = PrivateKey()
    proofs = await mint.handle.issue(5)
    sent = await wallet.ok("send", proofs=[p.to_dict() for p in proofs], amount=12,
                           pubkey=key.public_key.format().hex())
    locked = as_proofs(sent["send"])
    signed = [conditions.sign_p2pk(p, key) for p in locked]
    assert all(conditions.verify_p2pk_witness(p) for p in signed)
    await spend_here(mint, signed)


async def test_p2pk_locked_here_is_spent_by_cashu_ts(mint: Mint, wallet: CashuTs) -> None:
    key = PrivateKey()
    pubkey = key.public_key.format().hex()
    secrets = [p2pk_secret(pubkey) for _ in range(3)]
    for s in secrets:
        assert conditions.p2pk_lock(conditions.classify(s)).pubkeys == (pubkey,)
    plain = await mint.handle.issue(5)  # 32: pays 1 of fee, 31 = 16 + 8 + 4 + 2 + 1 of which 3 get the lock
    locked = (await mint.handle.swap(plain, amounts=[16, 8, 4, 2, 1], secrets=secrets))[:3]
    assert [p.secret for p in locked] == secrets
    error = await wallet.refused("receive", token=token_of(mint, locked))  # no key: the mint refuses
    assert (error["name"], error["status"], error["code"]) == ("MintOperationError", 400, 10001)
    assert mint.state.spent(ys(locked)) == [False] * 3
    answer = await wallet.ok("receive", token=token_of(mint, locked), privkey=key.secret.hex())
    assert total(answer["proofs"]) == 28 - fee(3)
    assert mint.state.spent(ys(locked)) == [True] * 3


# ---------------------------------------------------------------- the mint's errors, as cashu-ts sees them


async def _spent_token(mint: Mint) -> tuple[list[Proof], str]:
    proofs = await mint.handle.issue(3)
    await mint.handle.swap(proofs)
    return proofs, token_of(mint, proofs)


async def test_a_spent_token_is_refused_with_its_code(mint: Mint, wallet: CashuTs) -> None:
    _, token = await _spent_token(mint)
    error = await wallet.refused("receive", token=token)
    assert (error["name"], error["status"], error["code"]) == ("MintOperationError", 400, 11001)


async def test_an_unbalanced_swap_is_refused_with_its_code(mint: Mint, wallet: CashuTs) -> None:
    proofs = await mint.handle.issue(4)  # 16, the input fee unpaid
    outputs = blind_outputs(proofs[0].id, [16]).outputs
    error = await wallet.refused("request", call="swap", body={"inputs": [p.to_dict() for p in proofs],
                                                               "outputs": [o.to_dict() for o in outputs]})
    assert (error["status"], error["code"]) == (400, 11005)
    assert mint.state.spent(ys(proofs)) == [False]


async def test_outputs_signed_before_are_refused_with_their_code(mint: Mint, wallet: CashuTs) -> None:
    first, second = await mint.handle.issue(3, 2)
    blinded = blind_outputs(first.id, [4, 2, 1])
    await mint.handle.ok("POST", "/v1/swap", {"inputs": [first.to_dict()],
                                              "outputs": [o.to_dict() for o in blinded.outputs]})
    error = await wallet.refused("request", call="swap", body={"inputs": [second.to_dict()],
                                                               "outputs": [o.to_dict() for o in blinded.outputs]})
    assert (error["status"], error["code"]) == (400, 11003)
    assert mint.state.spent(ys([second])) == [False]


async def test_an_unknown_keyset_is_refused_with_its_code(wallet: CashuTs) -> None:
    error = await wallet.refused("request", call="keys", keyset_id="00ffffffffffffff")
    assert (error["name"], error["status"], error["code"]) == ("MintOperationError", 400, 12001)


async def test_an_unknown_quote_is_refused_with_its_code(wallet: CashuTs) -> None:
    error = await wallet.refused("request", call="check_mint_quote", method="ehash", quote="no-such-quote")
    assert (error["name"], error["status"], error["code"]) == ("MintOperationError", 400, 51000)


# ---------------------------------------------------------------- issuance: the ehash method, NUT-20, NUT-29


def nut20_fallbacks(answer: dict[str, Any]) -> list[str]:
    """cashu-ts's warnings that it fell back to the legacy NUT-20 message after the mint refused the current one."""
    return [w for w in answer["warnings"] if "NUT-20" in w]


async def test_cashu_ts_mints_an_ehash_quote_locked_to_its_key(mint: Mint, wallet: CashuTs) -> None:
    key = PrivateKey()
    quote = await mint.handle.ehash_quote(5, key)
    assert quote["state"] == "PAID" and quote["unit"] == mint.unit and quote["pubkey"] == key.public_key.format().hex()
    answer = await wallet.ok("mint", method="ehash", privkey=key.secret.hex(), quotes=[quote])
    assert nut20_fallbacks(answer) == []  # the current NUT-20 message, accepted first time
    proofs = as_proofs(answer["proofs"])
    assert total(proofs) == quote["amount"] == 32
    assert mint.state.issued([quote["quote"]]) == [True]
    assert mint.state.spent(ys(proofs)) == [False] * len(proofs)
    again = await wallet.refused("mint", method="ehash", privkey=key.secret.hex(), quotes=[quote])
    assert (again["status"], again["code"]) == (400, 20002)  # issued already
    await spend_here(mint, proofs)


async def test_cashu_ts_mints_ehash_quotes_in_one_nut29_batch(mint: Mint, wallet: CashuTs) -> None:
    key = PrivateKey()
    quotes = [await mint.handle.ehash_quote(lz, key) for lz in (4, 2, 0)]
    ids = [q["quote"] for q in quotes]
    answer = await wallet.ok("mint", method="ehash", privkey=key.secret.hex(), quotes=quotes)
    assert [c["quote"] for c in answer["checked"]] == ids and {c["state"] for c in answer["checked"]} == {"PAID"}
    assert nut20_fallbacks(answer) == []
    proofs = as_proofs(answer["proofs"])
    assert total(proofs) == 16 + 4 + 1
    assert mint.state.issued(ids) == [True] * 3
    again = await wallet.refused("mint", method="ehash", privkey=key.secret.hex(), quotes=quotes)
    assert (again["status"], again["code"]) == (400, 20002)
    await spend_here(mint, proofs)


async def test_a_batch_holding_another_miners_quote_is_refused_whole(mint: Mint, wallet: CashuTs) -> None:
    mine, theirs = PrivateKey(), PrivateKey()
    quotes = [await mint.handle.ehash_quote(3, mine), await mint.handle.ehash_quote(3, theirs)]
    # cashu-ts will not sign a quote whose key it lacks; told that the other miner's quote is locked to its own
    # key, it signs both with that key and the mint must catch the lie
    claimed = [quotes[0], {**quotes[1], "pubkey": quotes[0]["pubkey"]}]
    error = await wallet.refused("mint", method="ehash", privkey=mine.secret.hex(), quotes=claimed)
    assert (error["name"], error["status"], error["code"]) == ("MintOperationError", 400, 20008)
    assert mint.state.issued([q["quote"] for q in quotes]) == [False, False]
    # the miner's own quote still mints on its own
    answer = await wallet.ok("mint", method="ehash", privkey=mine.secret.hex(), quotes=quotes[:1])
    assert total(answer["proofs"]) == 8


def key_pair(key: PrivateKey) -> dict[str, str]:
    return {"privkey": key.secret.hex(), "pubkey": key.public_key.format().hex()}


async def test_a_miner_finds_its_quotes_by_key_and_mints_them_in_one_batch(mint: Mint, wallet: CashuTs) -> None:
    miner, other = PrivateKey(), PrivateKey()
    ours = [await mint.handle.ehash_quote(lz, miner) for lz in (3, 1, 2)]
    theirs = await mint.handle.ehash_quote(4, other)
    answer = await wallet.ok("sweep", keys=[key_pair(miner)], replay=True)
    assert answer["max_age"] == (await mint.handle.ok("GET", "/v1/info"))["nuts"]["XX"]["max_age"]
    assert answer["found"] == [q["quote"] for q in ours]  # oldest first, nobody else's
    # the same signed lookup again is a replay
    assert (answer["replay"]["status"], answer["replay"]["code"]) == (400, 51008)
    assert total(answer["proofs"]) == 8 + 2 + 4
    assert mint.state.issued([q["quote"] for q in ours] + [theirs["quote"]]) == [True, True, True, False]
    # minted quotes are no longer listed: the next sweep finds nothing new
    assert (await wallet.ok("sweep", keys=[key_pair(miner)]))["found"] == []
    await spend_here(mint, as_proofs(answer["proofs"]))


async def test_a_lookup_signed_for_another_mint_is_refused(mint: Mint, wallet: CashuTs) -> None:
    miner = PrivateKey()
    await mint.handle.ehash_quote(2, miner)
    error = await wallet.refused("sweep", keys=[key_pair(miner)], mint_pubkey=PrivateKey().public_key.format().hex())
    assert (error["status"], error["code"]) == (400, 20008)
