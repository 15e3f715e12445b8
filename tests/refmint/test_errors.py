"""Every refusal of the reference mint, provoked over HTTP, with its status and NUT (or ehash) error code."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3

import pytest
from coincurve import PrivateKey
from support.refmint import ys

from hashpool_cln.cashu.models import Proof
from hashpool_cln.refmint.miner import blind_outputs
from hashpool_cln.refmint.shares import random_share_hash


def _swap_body(inputs, outputs) -> dict:
    return {"inputs": [p.to_dict() for p in inputs], "outputs": [o.to_dict() for o in outputs]}


async def _expect(answer, status: int, code: int, fragment: str = "") -> None:
    assert (answer.status, answer.code) == (status, code), answer
    assert isinstance(answer.body["detail"], str) and fragment in answer.body["detail"], answer


async def test_swap_refusals(refmint) -> None:
    proofs = await refmint.issue(4, count=2)  # 2 x 16
    kid = proofs[0].id
    out32 = blind_outputs(kid, [32]).outputs

    # 11007 duplicate inputs, 11008 duplicate outputs
    await _expect(await refmint.call("POST", "/v1/swap", _swap_body([proofs[0], proofs[0]], out32)), 400, 11007)
    dup = blind_outputs(kid, [16]).outputs
    await _expect(await refmint.call("POST", "/v1/swap", _swap_body(proofs, dup + dup)), 400, 11008)
    # 11005 unbalanced
    await _expect(await refmint.call("POST", "/v1/swap", _swap_body(proofs, blind_outputs(kid, [16]).outputs)),
                  400, 11005, "must equal")
    # 12001 unknown keyset (inputs and outputs)
    ghost = "01" + "ab" * 32
    bad_in = Proof(16, ghost, proofs[0].secret, proofs[0].C)
    await _expect(await refmint.call("POST", "/v1/swap", _swap_body([bad_in, proofs[1]], out32)), 400, 12001)
    await _expect(await refmint.call("POST", "/v1/swap", _swap_body(proofs, blind_outputs(ghost, [32]).outputs)),
                  400, 12001)
    # 10001 bad signature, amount not matching the signature, C not a point
    forged = Proof(16, kid, proofs[0].secret, PrivateKey().public_key.format().hex())
    await _expect(await refmint.call("POST", "/v1/swap", _swap_body([forged, proofs[1]], out32)), 400, 10001)
    inflated = Proof(32, kid, proofs[0].secret, proofs[0].C)
    await _expect(await refmint.call("POST", "/v1/swap", _swap_body([inflated, proofs[1]],
                                                                    blind_outputs(kid, [32, 16]).outputs)), 400, 10001)
    off_curve = Proof(16, kid, proofs[0].secret, "02" + "00" * 32)
    await _expect(await refmint.call("POST", "/v1/swap", _swap_body([off_curve, proofs[1]], out32)), 400, 10001)
    # 10001 an unsupported spending condition (HTLC) is refused, not ignored
    # (the secret is not the proof's, so it would fail anyway; the condition is checked after the signature)

    # nothing above spent anything
    states = (await refmint.ok("POST", "/v1/checkstate", {"Ys": ys(proofs)}))["states"]
    assert {s["state"] for s in states} == {"UNSPENT"}

    # 11001 spent, 11003 outputs already signed
    done = blind_outputs(kid, [32]).outputs
    assert (await refmint.call("POST", "/v1/swap", _swap_body(proofs, done))).status == 200
    await _expect(await refmint.call("POST", "/v1/swap", _swap_body(proofs, blind_outputs(kid, [32]).outputs)),
                  400, 11001, "spent")
    other = await refmint.issue(5)
    await _expect(await refmint.call("POST", "/v1/swap", _swap_body(other, done)), 400, 11003)
    states = (await refmint.ok("POST", "/v1/checkstate", {"Ys": ys(other)}))["states"]
    assert {s["state"] for s in states} == {"UNSPENT"}  # the refused swap rolled back entirely


async def test_unit_and_keyset_refusals(refmint_factory) -> None:
    mint = await refmint_factory(redeem_window=0)  # a settled epoch closes at once: its keyset goes inactive
    old = await mint.issue(3)
    await mint.reward(1_000)
    new = await mint.issue(3)
    old_kid, new_kid = old[0].id, new[0].id
    assert old_kid != new_kid
    epochs = (await mint.ok("GET", "/v1/ehash/epochs"))["epochs"]
    assert [e["state"] for e in epochs] == ["retired", "open"]
    keysets = {k["id"]: k["active"] for k in (await mint.ok("GET", "/v1/keysets"))["keysets"]}
    assert keysets == {old_kid: False, new_kid: True}

    # 11010 inputs of one unit, outputs of another
    await _expect(await mint.call("POST", "/v1/swap", _swap_body(new, blind_outputs(old_kid, [8]).outputs)), 400, 12002)
    await _expect(await mint.call("POST", "/v1/swap", _swap_body(old, blind_outputs(new_kid, [8]).outputs)), 400, 11010)
    # 11009 inputs of several units
    await _expect(await mint.call("POST", "/v1/swap", _swap_body(old + new, blind_outputs(new_kid, [16]).outputs)),
                  400, 11009)
    # an inactive keyset's proofs can still be spent into nothing only if balanced: here 12002 for its outputs
    # 11013 melt quote for a unit that is no epoch of this mint
    await _expect(await mint.call("POST", "/v1/melt/quote/ehash", {"unit": "sat", "amount": 1}, role="desk"),
                  400, 11013)
    # 51001 melt quote for an epoch that is not settled (open / closed)
    for unit, state in ((epochs[1]["unit"], "open"), (epochs[0]["unit"], "retired")):
        await _expect(await mint.call("POST", "/v1/melt/quote/ehash", {"unit": unit, "amount": 1}, role="desk"),
                      400, 51001, state)
    # /v1/keys/{id}: unknown keyset 12001 (NUT-00: 400 with the code)
    await _expect(await mint.call("GET", "/v1/keys/01" + "cd" * 32), 400, 12001)


async def test_limits_and_malformed_requests(refmint_factory) -> None:
    mint = await refmint_factory(max_inputs=2, max_outputs=2, max_body=4096)
    proofs = await mint.issue(2, count=3)
    kid = proofs[0].id
    await _expect(await mint.call("POST", "/v1/swap", _swap_body(proofs, blind_outputs(kid, [8, 4]).outputs)),
                  400, 11014)
    await _expect(await mint.call("POST", "/v1/swap", _swap_body(proofs[:2], blind_outputs(kid, [2, 2, 4]).outputs)),
                  400, 11015)
    for raw, fragment in ((b"{not json", "not valid JSON"), (b"[]", "JSON object"), (b"", "not valid JSON")):
        await _expect(await mint.call("POST", "/v1/swap", raw=raw), 400, 0, fragment)
    bad_bodies = [
        ({"inputs": "x", "outputs": []}, "inputs must be a list"),
        ({"outputs": []}, "missing field 'inputs'"),
        ({"inputs": [{"amount": "1", "id": kid, "secret": "s", "C": "02" + "11" * 32}], "outputs": []},
         "inputs[0].amount must be an integer"),
        ({"inputs": [{"amount": True, "id": kid, "secret": "s", "C": "02" + "11" * 32}], "outputs": []},
         "inputs[0].amount must be an integer"),
        ({"inputs": [{"amount": 1, "id": kid, "secret": 5, "C": "02" + "11" * 32}], "outputs": []},
         "inputs[0].secret must be a string"),
        ({"inputs": [{"amount": 1, "id": kid, "secret": "s", "C": "zz"}], "outputs": []}, "inputs[0].C must be"),
        ({"inputs": [], "outputs": [{"amount": -1, "id": kid, "B_": "02" + "11" * 32}]}, "outputs[0].amount"),
        ({"inputs": [], "outputs": [{"amount": 1, "id": "nope", "B_": "02" + "11" * 32}]}, "not a keyset id"),
        ({"inputs": [], "outputs": []}, "inputs must not be empty"),
    ]
    for body, fragment in bad_bodies:
        await _expect(await mint.call("POST", "/v1/swap", body), 400, 0, fragment)
    await _expect(await mint.call("POST", "/v1/checkstate", {"Ys": ["xyz"]}), 400, 0, "Ys[0]")
    big = await mint.call("POST", "/v1/swap", raw=b'{"inputs": "' + b"a" * 8000 + b'"}')
    assert big.status == 413 and big.code == 0 and "too large" in big.body["detail"]
    assert (await mint.call("GET", "/v1/nothing")).status == 404
    wrong_method = await mint.call("GET", "/v1/swap")
    assert wrong_method.status == 405 and isinstance(wrong_method.body, dict)
    # an output B_ that is not a point: a clear 400, never a 500
    not_point = {"amount": 4, "id": kid, "B_": "02" + "00" * 32}
    await _expect(await mint.call("POST", "/v1/swap", {"inputs": [proofs[0].to_dict()], "outputs": [not_point]}),
                  400, 0, "B_")


async def test_auth_refusals(refmint) -> None:
    body = {"header_hash": random_share_hash(3).hex()}
    await _expect(await refmint.call("POST", "/v1/mint/quote/mining_share", body), 401, 30001)
    await _expect(await refmint.call("POST", "/v1/mint/quote/mining_share", body, role="desk"), 401, 30002)
    await _expect(await refmint.call("POST", "/v1/melt/quote/ehash", {"unit": "x", "amount": 1}), 401, 30001)
    await _expect(await refmint.call("POST", "/v1/melt/quote/ehash", {"unit": "x", "amount": 1}, role="pool"),
                  401, 30002)
    await _expect(await refmint.call("POST", "/v1/admin/reward", {"height": 1, "block_hash": "00" * 32,
                                                                  "reward_msat": 1}, role="desk"), 401, 30002)
    # an unlocked quote is looked up by share hash only by the pool
    quote = await refmint.share_quote(2)
    path = f"/v1/mint/quote/mining_share/by_hash/{quote['header_hash']}"
    await _expect(await refmint.call("GET", path), 401, 30001)
    assert (await refmint.ok("GET", path, role="pool"))["quote"] == quote["quote"]


async def test_share_issuance_refusals(refmint_factory) -> None:
    mint = await refmint_factory(min_difficulty=8)
    # 11006 below the minimum difficulty
    await _expect(await mint.call("POST", "/v1/mint/quote/mining_share",
                                  {"header_hash": random_share_hash(7).hex()}, role="pool"), 400, 11006, "minimum")
    quote = await mint.share_quote(10)
    assert quote["amount"] == 4  # 2^(10 - 8)
    # 51004 the same share twice
    await _expect(await mint.call("POST", "/v1/mint/quote/mining_share",
                                  {"header_hash": quote["header_hash"]}, role="pool"), 400, 51004)
    # 20009 invalid pubkey
    await _expect(await mint.call("POST", "/v1/mint/quote/mining_share",
                                  {"header_hash": random_share_hash(9).hex(), "pubkey": "02" + "00" * 32},
                                  role="pool"), 400, 20009)
    kid = await mint.keyset_id(quote["unit"])
    # 11005 outputs not equal to the quote amount; 51000 unknown quote
    await _expect(await mint.call("POST", "/v1/mint/mining_share",
                                  {"quote": quote["quote"], "outputs": [o.to_dict() for o in
                                                                        blind_outputs(kid, [2]).outputs]}), 400, 11005)
    await _expect(await mint.call("POST", "/v1/mint/mining_share", {"quote": "nope", "outputs": []}), 400, 51000)
    await _expect(await mint.call("GET", "/v1/mint/quote/mining_share/nope"), 400, 51000)
    # 20002 a quote mints once
    await mint.mint_quote(quote)
    await _expect(await mint.call("POST", "/v1/mint/mining_share",
                                  {"quote": quote["quote"], "outputs": [o.to_dict() for o in
                                                                        blind_outputs(kid, [4]).outputs]}), 400, 20002)
    # 20008 a locked quote needs a valid signature
    key = PrivateKey()
    locked = await mint.share_quote(9, pubkey=key.public_key.format().hex())
    outs = [o.to_dict() for o in blind_outputs(kid, [2]).outputs]
    await _expect(await mint.call("POST", "/v1/mint/mining_share", {"quote": locked["quote"], "outputs": outs}),
                  400, 20008)
    from hashpool_cln.cashu.nut20 import sign_quote
    wrong = sign_quote(PrivateKey(), locked["quote"], blind_outputs(kid, [2]).outputs)
    await _expect(await mint.call("POST", "/v1/mint/mining_share",
                                  {"quote": locked["quote"], "outputs": outs, "signature": wrong}), 400, 20008)
    assert sum(p.amount for p in await mint.mint_quote(locked, lock_key=key)) == 2
    # a quote made before its epoch closed still mints after: the epoch's price counted it when it was made
    late = await mint.share_quote(9)
    await mint.reward(5_000)
    assert sum(p.amount for p in await mint.mint_quote(late)) == 2


async def test_a_quote_of_a_retired_epoch_is_expired(refmint_factory) -> None:
    mint = await refmint_factory(redeem_window=1)
    quote = await mint.share_quote(1)
    kid = await mint.keyset_id(quote["unit"])
    await mint.reward(5_000)
    shown = await mint.ok("GET", f"/v1/mint/quote/ehash/{quote['quote']}")
    assert shown["expiry"] is not None and shown["state"] == "PAID"
    await asyncio.sleep(2.1)  # the redeem window (1 s) is over: the epoch is retired, its keyset signs no more
    outs = [o.to_dict() for o in blind_outputs(kid, [2]).outputs]
    await _expect(await mint.call("POST", "/v1/mint/mining_share", {"quote": quote["quote"], "outputs": outs}),
                  400, 20007)


async def test_melt_refusals(refmint_factory) -> None:
    mint = await refmint_factory(melt_quote_ttl=0, pool_fee_ppm=10_000)
    unit, proofs = await mint.settled_epoch(1_000_000, 4, count=2)  # 32 units, net 990_000 msat
    q = lambda amount: mint.call("POST", "/v1/melt/quote/ehash", {"unit": unit, "amount": amount}, role="desk")  # noqa: E731
    # 51002 over budget; 11006 zero or worth nothing
    await _expect(await q(33), 400, 51002, "budget")
    await _expect(await q(0), 400, 11006)
    # the quote with ttl 0 is born expired; an expired quote frees its budget ...
    first = (await q(32)).body
    assert first["state"] == "EXPIRED" and first["amount_msat"] == 990_000
    second = (await q(32)).body
    assert second["amount_msat"] == 990_000
    preimage = os.urandom(32)
    payment = {"payment_hash": hashlib.sha256(preimage).hexdigest(), "preimage": preimage.hex()}
    melt = lambda quote, inputs, pay=payment: mint.call("POST", "/v1/melt/ehash", {  # noqa: E731
        "quote": quote, "inputs": [p.to_dict() for p in inputs], "payment": pay}, role="desk")
    # 51003 preimage not matching; 51000 unknown quote; 11005 wrong amount
    await _expect(await melt(first["quote"], proofs, {"payment_hash": "00" * 32, "preimage": preimage.hex()}),
                  400, 51003)
    await _expect(await melt("nope", proofs), 400, 51000)
    await _expect(await melt(first["quote"], proofs[:1]), 400, 11005)
    # ... and an expired quote is honoured while the budget still holds it: second one melts first
    paid = await melt(second["quote"], proofs)
    assert paid.status == 200 and paid.body["state"] == "PAID", paid
    # 20006 paid already; 20007 expired and the budget no longer holds it
    await _expect(await melt(second["quote"], proofs), 400, 20006)
    more = await mint.issue(0)  # an open-epoch proof: wrong unit
    await _expect(await melt(first["quote"], more), 400, 11010)
    others = (await mint.call("POST", "/v1/melt/quote/ehash", {"unit": unit, "amount": 1}, role="desk"))
    await _expect(others, 400, 51002)
    await _expect(await melt(first["quote"], proofs), 400, 20007)  # budget gone (checked before the spend)


async def test_pending_while_another_request_holds_proofs(refmint_factory) -> None:
    mint = await refmint_factory(pending_wait=0.2)
    proofs = await mint.issue(3)
    other = await mint.issue(3)
    kid = proofs[0].id
    outs = blind_outputs(kid, [8]).outputs
    blocker = sqlite3.connect(mint.data_dir / "mint.sqlite3", timeout=0.1)
    blocker.isolation_level = None
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database: the first swap waits for it
    try:
        first = asyncio.ensure_future(mint.call("POST", "/v1/swap", _swap_body(proofs, outs)))
        for _ in range(100):
            states = (await mint.ok("POST", "/v1/checkstate", {"Ys": ys(proofs)}))["states"]
            if states[0]["state"] == "PENDING":
                break
            await asyncio.sleep(0.02)
        assert states[0]["state"] == "PENDING"
        await _expect(await mint.call("POST", "/v1/swap", _swap_body(proofs, blind_outputs(kid, [8]).outputs)),
                      400, 11002)
        await _expect(await mint.call("POST", "/v1/swap", _swap_body(other, outs)), 400, 11004)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert (await first).status == 200
    states = (await mint.ok("POST", "/v1/checkstate", {"Ys": ys(proofs)}))["states"]
    assert states[0]["state"] == "SPENT"


async def test_chain_event_refusals(refmint_factory) -> None:
    mint = await refmint_factory(final_confirmations=3)
    await mint.issue(2)
    block = os.urandom(32).hex()
    epochs = await mint.reward(1_000, block_hash=block, confirmations=1)
    assert epochs[0]["state"] == "maturing"
    # the same block again with another reward: 51005
    await _expect(await mint.call("POST", "/v1/admin/reward", {"height": 1, "block_hash": block, "reward_msat": 2},
                                  role="pool"), 400, 51005)
    # below the open epoch's height: 51005
    await _expect(await mint.call("POST", "/v1/admin/reward", {"height": 0, "block_hash": "11" * 32,
                                                               "reward_msat": 2}, role="pool"), 400, 51005)
    confirmed = await mint.ok("POST", "/v1/admin/confirm", {"block_hash": block, "confirmations": 3}, role="pool")
    assert confirmed["epochs"][0]["state"] == "settled"
    # a final reward cannot be dissolved; an unknown one neither
    await _expect(await mint.call("POST", "/v1/admin/dissolve", {"block_hash": block}, role="pool"), 400, 51005)
    await _expect(await mint.call("POST", "/v1/admin/dissolve", {"block_hash": "22" * 32}, role="pool"), 400, 51005)
    await _expect(await mint.call("POST", "/v1/admin/reward", {"height": "1", "block_hash": "22" * 32,
                                                               "reward_msat": 2}, role="pool"), 400, 0, "height")


@pytest.mark.parametrize("path", ["/v1/melt/quote/ehash/nope"])
async def test_unknown_melt_quote(refmint, path) -> None:
    await _expect(await refmint.call("GET", path, role="desk"), 400, 51000)


async def test_out_of_range_numbers_and_lone_surrogates_are_coded_refusals(refmint) -> None:
    """Issue 9: confirmations of 2^63 and more, and text with lone surrogates, were answered with HTTP 500."""
    for path, body in (("/v1/admin/confirm", {"block_hash": "11" * 32, "confirmations": 2**63}),
                       ("/v1/admin/reward", {"height": 1, "block_hash": "11" * 32, "reward_msat": 1,
                                             "confirmations": 2**64}),
                       ("/v1/admin/reward", {"height": 2**70, "block_hash": "11" * 32, "reward_msat": 1}),
                       ("/v1/admin/reward", {"height": 1, "block_hash": "11" * 32, "reward_msat": -1})):
        await _expect(await refmint.call("POST", path, body, role="pool"), 400, 0)
    proofs = await refmint.issue(2)
    kid = proofs[0].id
    lone = '"\\ud800"'
    secret_body = json.dumps({"inputs": [{**proofs[0].to_dict(), "secret": "S"}],
                              "outputs": [o.to_dict() for o in blind_outputs(kid, [4]).outputs]})
    for path, raw, role in (
            ("/v1/swap", secret_body.replace('"S"', lone), None),
            ("/v1/melt/quote/ehash", '{"unit": "u", "amount": 1, "request": ' + lone + '}', "desk"),
            ("/v1/mint/mining_share", '{"quote": ' + lone + ', "outputs": []}', None),
            ("/v1/mint/quote/ehash/check", '{"quotes": [' + lone + ']}', None),
            ("/v1/melt/quote/ehash/release", '{"quote": ' + lone + '}', "desk")):
        answer = await refmint.call("POST", path, raw=raw.encode(), role=role)
        await _expect(answer, 400, 0, "surrogate")
    for path in ("/v1/mint/quote/ehash/%ED%A0%80", "/v1/keys/%ED%A0%80"):
        assert (await refmint.call("GET", path)).status == 400
    states = (await refmint.ok("POST", "/v1/checkstate", {"Ys": ys(proofs)}))["states"]
    assert {s["state"] for s in states} == {"UNSPENT"}
