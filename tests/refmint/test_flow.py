"""The whole life of ehash at the reference mint, over HTTP: issue, swap, check, restore, quote, melt."""

from __future__ import annotations

import hashlib
import os

from support.refmint import ys

from hashpool_cln.cashu.amounts import split_amount
from hashpool_cln.ehash import net_reward_msat, quote_amount_msat
from hashpool_cln.refmint.miner import blind_outputs


async def test_issue_swap_checkstate_restore_quote_melt(refmint) -> None:
    proofs = await refmint.issue(5, count=3)  # 3 shares of 2^5 units
    assert sum(p.amount for p in proofs) == 96
    unit = (await refmint.ok("GET", "/v1/ehash/epochs"))["epochs"][0]["unit"]
    kid = await refmint.keyset_id(unit)
    assert all(p.id == kid for p in proofs)

    # swap into fresh outputs
    blinded = blind_outputs(kid, [64, 16, 8, 8])
    answer = await refmint.ok("POST", "/v1/swap", {"inputs": [p.to_dict() for p in proofs],
                                                   "outputs": [o.to_dict() for o in blinded.outputs]})
    assert all(s["dleq"]["e"] and s["dleq"]["s"] for s in answer["signatures"])
    fresh = await refmint.unblind(blinded, answer["signatures"])

    states = (await refmint.ok("POST", "/v1/checkstate", {"Ys": ys(proofs) + ys(fresh)}))["states"]
    assert [s["state"] for s in states] == ["SPENT"] * len(proofs) + ["UNSPENT"] * len(fresh)
    assert [s["Y"] for s in states] == ys(proofs) + ys(fresh)

    # restore answers exactly the outputs it signed, in request order, with the same signatures
    unknown = blind_outputs(kid, [1])
    restored = await refmint.ok("POST", "/v1/restore", {"outputs": [o.to_dict() for o in
                                                                    [*unknown.outputs, *blinded.outputs]]})
    assert [o["B_"] for o in restored["outputs"]] == [o.B_ for o in blinded.outputs]
    assert [s["C_"] for s in restored["signatures"]] == [s["C_"] for s in answer["signatures"]]

    # settle the epoch: 96 units issued, reward 1_000_000 msat, pool fee 0
    epochs = await refmint.reward(1_000_000)
    settled, opened = epochs[0], epochs[-1]
    assert settled["unit"] == unit and settled["state"] == "settled" and settled["issued"] == 96
    assert opened["state"] == "open" and opened["height"] == 1 and opened["unit"] != unit

    quote = await refmint.ok("POST", "/v1/melt/quote/ehash", {"unit": unit, "amount": 24}, role="desk")
    expected = quote_amount_msat(24, net_reward_msat(1_000_000, 0), 96)
    assert quote["amount_msat"] == expected == 250_000 and quote["state"] == "UNPAID" and quote["amount"] == 24
    assert await refmint.ok("GET", f"/v1/melt/quote/ehash/{quote['quote']}", role="desk") == quote

    preimage = os.urandom(32)
    payment = {"payment_hash": hashlib.sha256(preimage).hexdigest(), "preimage": preimage.hex()}
    inputs = [p for p in fresh if p.amount in (16, 8)]
    assert sum(p.amount for p in inputs) == 32
    parts = (await refmint.swap(inputs, [16, 8, 8]))[:2]  # exactly the 24 units the quote names
    paid = await refmint.ok("POST", "/v1/melt/ehash", {"quote": quote["quote"], "inputs": [p.to_dict() for p in parts],
                                                       "payment": payment}, role="desk")
    assert paid["state"] == "PAID" and paid["amount_msat"] == 250_000
    states = (await refmint.ok("POST", "/v1/checkstate", {"Ys": ys(parts)}))["states"]
    assert {s["state"] for s in states} == {"SPENT"}

    epoch = next(e for e in (await refmint.ok("GET", "/v1/ehash/epochs"))["epochs"] if e["unit"] == unit)
    assert epoch["redeemed_msat"] == 250_000 and epoch["block_hash"] and epoch["redeem_until"] > 0
    info = await refmint.ok("GET", "/v1/info")
    assert {"method": "ehash", "unit": unit} in info["nuts"]["5"]["methods"]
    assert [(m["method"], m["unit"]) for m in info["nuts"]["4"]["methods"]] == [
        ("ehash", opened["unit"]), ("mining_share", opened["unit"])]
    for nut in ("7", "9", "12", "20"):
        assert info["nuts"][nut]["supported"] is True


async def test_keys_verify_against_ids_and_split(refmint) -> None:
    async with refmint.client() as client:
        for meta in await client.keysets():
            keyset = await client.keys(meta.id)  # MintClient checks the v2 id against keys and unit
            assert keyset.id.startswith("01") and len(keyset.keys) == 63
    keys = (await refmint.ok("GET", "/v1/keys"))["keysets"]
    assert len(keys) == 1 and set(keys[0]["keys"]) == {str(1 << i) for i in range(63)}
    assert split_amount(96) == [32, 64]


async def test_locked_share_quote_lookup_and_signature(refmint) -> None:
    from coincurve import PrivateKey

    key = PrivateKey()
    pub = key.public_key.format().hex()
    quote = await refmint.share_quote(3, pubkey=pub)
    assert quote["pubkey"] == pub and quote["state"] == "PAID" and quote["amount"] == 8
    by_hash = await refmint.ok("GET", f"/v1/mint/quote/mining_share/by_hash/{quote['header_hash']}", role="pool")
    assert by_hash["quote"] == quote["quote"]
    # the open listing by key is gone: wallets use the signed lookup (tests/refmint/test_ehash_method.py)
    assert (await refmint.call("GET", f"/v1/mint/quote/mining_share/by_pubkey/{pub}")).status == 404
    proofs = await refmint.mint_quote(quote, lock_key=key)
    assert sum(p.amount for p in proofs) == 8
    again = await refmint.ok("GET", f"/v1/mint/quote/mining_share/{quote['quote']}")
    assert again["state"] == "ISSUED" and again["amount_issued"] == 8


async def test_each_epoch_keeps_the_pool_fee_it_closed_with(tmp_path) -> None:
    from support.refmint import mint_config, start_mint
    first = await start_mint(mint_config(tmp_path / "mint", pool_fee_ppm=20_000))
    try:
        unit_a, _ = await first.handle.settled_epoch(1_000_000, 4)
    finally:
        await first.stop()
    second = await start_mint(mint_config(tmp_path / "mint", pool_fee_ppm=50_000))  # the pool raised its fee
    try:
        mint = second.handle
        mint.heights = [1]  # the first mint's reward was at height 1: the chain goes on from there
        unit_b, _ = await mint.settled_epoch(1_000_000, 4)
        epochs = {e["unit"]: e for e in (await mint.ok("GET", "/v1/ehash/epochs"))["epochs"]}
        assert epochs[unit_a]["net_reward_msat"] == net_reward_msat(1_000_000, 20_000) == 980_000
        assert epochs[unit_b]["net_reward_msat"] == 950_000
        assert (await mint.ok("GET", "/v1/info"))["ehash"]["pool_fee_ppm"] == 50_000
        quote = await mint.ok("POST", "/v1/melt/quote/ehash", {"unit": unit_a, "amount": 16}, role="desk")
        assert quote["amount_msat"] == 980_000  # the old epoch is still quoted at its own fee
        async with mint.client() as client:
            parsed = {e.unit: e for e in await client.epochs()}
        assert parsed[unit_a].net_reward_msat == 980_000 and parsed[unit_b].net_reward_msat == 950_000
    finally:
        await second.stop()


def test_an_epoch_without_net_reward_still_parses() -> None:
    from hashpool_cln.ehash import Epoch
    old = {"unit": "hash", "pool": "", "height": 0, "block_hash": None, "state": "settled", "issued": 4,
           "reward_msat": 1_000, "redeemed_msat": 0, "redeem_until": None, "keysets": ["00ab"]}
    epoch = Epoch.from_dict(old)
    assert epoch.net_reward_msat is None and epoch.to_dict() == old
    assert Epoch.from_dict({**old, "net_reward_msat": 990}).net_reward_msat == 990


async def test_restore_takes_outputs_of_any_amount_and_answers_by_b(refmint) -> None:
    """NUT-09: a wallet restoring from its seed does not know the amounts (cashu-ts sends 0): the mint matches on
    ``B_`` and answers what it signed."""
    proofs = await refmint.issue(4)
    kid = proofs[0].id
    blinded = blind_outputs(kid, [8, 4, 2, 2])
    signed = await refmint.ok("POST", "/v1/swap", {"inputs": [p.to_dict() for p in proofs],
                                                  "outputs": [o.to_dict() for o in blinded.outputs]})
    blank = [{**o.to_dict(), "amount": 0} for o in blinded.outputs]
    restored = await refmint.ok("POST", "/v1/restore", {"outputs": [blank[1], blank[0], blank[3]]})
    assert [(o["B_"], o["amount"], o["id"]) for o in restored["outputs"]] == [
        (blinded.outputs[i].B_, blinded.outputs[i].amount, kid) for i in (1, 0, 3)]
    assert [s["C_"] for s in restored["signatures"]] == [signed["signatures"][i]["C_"] for i in (1, 0, 3)]
    async with refmint.client() as client:
        from hashpool_cln.cashu.models import BlindedMessage
        found, sigs = await client.restore([BlindedMessage(0, kid, o.B_) for o in blinded.outputs])
        assert [o.amount for o in found] == [8, 4, 2, 2]
        again = await client.unblind_signatures(found, blinded.secrets, blinded.rs, sigs)
        assert sum(p.amount for p in again) == 16
    for bad in (-1, 1 << 64, "0"):
        answer = await refmint.call("POST", "/v1/restore", {"outputs": [{**blank[0], "amount": bad}]})
        assert (answer.status, answer.code) == (400, 0), answer


async def test_a_large_swap_is_proved_in_slices_with_every_fault_found(refmint) -> None:
    """Inputs beyond ``SPREAD_INPUTS`` are hashed and proved one slice per core: a fault in any slice refuses the
    whole swap and spends nothing, and a duplicate across two slices is found."""
    from dataclasses import replace

    from hashpool_cln.refmint.ledger import SPREAD_INPUTS

    proofs = await refmint.swap(await refmint.issue(9), [1] * 300 + split_amount(212))  # 2^9 units
    assert len(proofs) > SPREAD_INPUTS
    large = proofs[:300]
    kid = large[0].id

    async def refused(inputs) -> int:
        blinded = blind_outputs(kid, split_amount(sum(p.amount for p in inputs)))
        answer = await refmint.call("POST", "/v1/swap", {"inputs": [p.to_dict() for p in inputs],
                                                         "outputs": [o.to_dict() for o in blinded.outputs]})
        assert answer.status == 400, answer
        return answer.code

    forged = list(large)
    forged[-7] = replace(forged[-7], C=large[3].C)  # a real point, not this secret's signature, in the last slice
    assert await refused(forged) == 10001
    assert await refused([*large[:-1], large[0]]) == 11007  # the first slice's proof again, in the last
    states = (await refmint.ok("POST", "/v1/checkstate", {"Ys": ys(large)}))["states"]
    assert {s["state"] for s in states} == {"UNSPENT"}  # nothing of a refused swap was spent

    fresh = await refmint.swap(large)
    assert sum(p.amount for p in fresh) == 300
    states = (await refmint.ok("POST", "/v1/checkstate", {"Ys": ys(large)}))["states"]
    assert {s["state"] for s in states} == {"SPENT"}
