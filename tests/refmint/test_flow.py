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
    assert info["nuts"]["4"]["methods"] == [{"method": "mining_share", "unit": opened["unit"]}]
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
    by_hash = await refmint.ok("GET", f"/v1/mint/quote/mining_share/by_hash/{quote['header_hash']}")
    assert by_hash["quote"] == quote["quote"]
    listed = await refmint.ok("GET", f"/v1/mint/quote/mining_share/by_pubkey/{pub}")
    assert [q["quote"] for q in listed["quotes"]] == [quote["quote"]]
    proofs = await refmint.mint_quote(quote, lock_key=key)
    assert sum(p.amount for p in proofs) == 8
    again = await refmint.ok("GET", f"/v1/mint/quote/mining_share/{quote['quote']}")
    assert again["state"] == "ISSUED" and again["amount_issued"] == 8
