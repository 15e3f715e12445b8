"""A melt for fewer units than its quote (docs/ehash-mint-api.md, 5.2): the quote is settled for the units melted,
at their price, and the rest of its budget is free at once; every refusal of a whole melt still holds."""

from __future__ import annotations

import hashlib
import os

from support.refmint import ys

from hashpool_cln.ehash import quote_amount_msat

# Two shares of 16 units settled with 1 000 000 msat: 31 250 msat a unit.
REWARD_MSAT = 1_000_000


def _payment() -> dict[str, str]:
    preimage = os.urandom(32)
    return {"payment_hash": hashlib.sha256(preimage).hexdigest(), "preimage": preimage.hex()}


async def _setup(mint, amounts=(16, 8, 8)):
    """A settled epoch of 32 units, split into ``amounts``."""
    unit, proofs = await mint.settled_epoch(REWARD_MSAT, 4, count=2)
    return unit, await mint.swap(proofs, list(amounts))


def _quote(mint, unit: str, amount: int):
    return mint.call("POST", "/v1/melt/quote/ehash", {"unit": unit, "amount": amount}, role="desk")


def _melt(mint, quote: str, inputs, amount=None, payment=None):
    body = {"quote": quote, "inputs": [p.to_dict() for p in inputs], "payment": payment or _payment()}
    if amount is not None:
        body["amount"] = amount
    return mint.call("POST", "/v1/melt/ehash", body, role="desk")


async def _redeemed(mint, unit: str) -> int:
    epochs = (await mint.ok("GET", "/v1/ehash/epochs"))["epochs"]
    return next(e["redeemed_msat"] for e in epochs if e["unit"] == unit)


async def _states(mint, proofs) -> set[str]:
    return {s["state"] for s in (await mint.ok("POST", "/v1/checkstate", {"Ys": ys(proofs)}))["states"]}


async def test_a_partial_melt_pays_the_units_melted_and_frees_the_rest_of_the_budget(refmint) -> None:
    unit, (p16, p8, p8b) = await _setup(refmint)
    whole = (await _quote(refmint, unit, 32)).body
    assert whole["amount_msat"] == REWARD_MSAT
    blocked = await _quote(refmint, unit, 8)
    assert (blocked.status, blocked.code) == (400, 51002), blocked  # the whole budget is held

    payment = _payment()
    paid = await _melt(refmint, whole["quote"], [p16, p8], amount=24, payment=payment)
    assert paid.status == 200, paid
    price = quote_amount_msat(24, REWARD_MSAT, 32)
    assert paid.body["state"] == "PAID" and paid.body["amount"] == 24 and paid.body["amount_msat"] == price == 750_000
    assert paid.body["payment_preimage"] == payment["preimage"]
    assert await refmint.ok("GET", f"/v1/melt/quote/ehash/{whole['quote']}", role="desk") == {
        k: v for k, v in paid.body.items() if k != "change"}
    assert await _redeemed(refmint, unit) == 750_000
    assert await _states(refmint, [p16, p8]) == {"SPENT"} and await _states(refmint, [p8b]) == {"UNSPENT"}

    # The 8 units not melted are free again: a quote for them fits now, one unit more does not.
    rest = await _quote(refmint, unit, 8)
    assert rest.status == 200 and rest.body["amount_msat"] == 250_000, rest
    over = await _quote(refmint, unit, 1)
    assert (over.status, over.code) == (400, 51002), over

    # The same melt again (its answer lost): the quote is PAID once, nothing more is burned or counted.
    replay = await _melt(refmint, whole["quote"], [p16, p8], amount=24, payment=payment)
    assert (replay.status, replay.code) == (400, 20006), replay
    assert await _redeemed(refmint, unit) == 750_000
    again = await refmint.ok("GET", f"/v1/melt/quote/ehash/{whole['quote']}", role="desk")
    assert again["state"] == "PAID" and again["amount"] == 24 and again["amount_msat"] == 750_000


async def test_a_partial_melt_keeps_every_refusal_and_burns_nothing_refused(refmint) -> None:
    unit, (p16, p8, p8b) = await _setup(refmint)
    quote = (await _quote(refmint, unit, 24)).body["quote"]
    refusals = [
        ([p16, p8, p8b], 32, 11005),  # more than the quote
        ([p16, p8], 16, 11005),  # inputs worth other than the amount named
        ([p16], 24, 11005),
        ([p16], 0, 11005),
    ]
    for inputs, amount, code in refusals:
        answer = await _melt(refmint, quote, inputs, amount=amount)
        assert (answer.status, answer.code) == (400, code), (amount, answer)
    for bad in (-1, "16", True, 1.5, 2 ** 64):
        answer = await _melt(refmint, quote, [p16], amount=bad)
        assert (answer.status, answer.code) == (400, 0), (bad, answer)
    wrong_proof = {"payment_hash": "00" * 32, "preimage": "11" * 32}
    answer = await _melt(refmint, quote, [p16], amount=16, payment=wrong_proof)
    assert (answer.status, answer.code) == (400, 51003), answer
    assert await _states(refmint, [p16, p8, p8b]) == {"UNSPENT"} and await _redeemed(refmint, unit) == 0

    # A released quote is never melted, partly or not.
    await refmint.ok("POST", "/v1/melt/quote/ehash/release", {"quote": quote}, role="desk")
    answer = await _melt(refmint, quote, [p16], amount=16)
    assert (answer.status, answer.code) == (400, 20007), answer

    # A paid quote is not melted a second time for its other units.
    second = (await _quote(refmint, unit, 24)).body["quote"]
    assert (await _melt(refmint, second, [p16], amount=16)).status == 200
    answer = await _melt(refmint, second, [p8], amount=8)
    assert (answer.status, answer.code) == (400, 20006), answer
    assert await _states(refmint, [p8, p8b]) == {"UNSPENT"}
    assert await _redeemed(refmint, unit) == 500_000


async def test_a_melt_without_an_amount_is_still_for_the_whole_quote(refmint) -> None:
    unit, (p16, p8, _) = await _setup(refmint)
    quote = (await _quote(refmint, unit, 24)).body["quote"]
    short = await _melt(refmint, quote, [p16])
    assert (short.status, short.code) == (400, 11005), short
    whole = await _melt(refmint, quote, [p16, p8], amount=24)
    assert whole.status == 200 and whole.body["amount"] == 24 and whole.body["amount_msat"] == 750_000


async def test_info_says_whether_the_mint_serves_partial_melts(refmint_factory) -> None:
    serving = await refmint_factory()
    assert (await serving.ok("GET", "/v1/info"))["ehash"]["partial_melt"] is True
    async with serving.client() as client:
        assert await client.partial_melt() is True

    plain = await refmint_factory(partial_melt=False)
    assert (await plain.ok("GET", "/v1/info"))["ehash"]["partial_melt"] is False
    async with plain.client() as client:
        assert await client.partial_melt() is False
    # Such a mint reads a melt as one for the whole quote, as a mint that never heard of ``amount`` would.
    unit, (p16, _, _) = await _setup(plain)
    quote = (await _quote(plain, unit, 24)).body["quote"]
    answer = await _melt(plain, quote, [p16], amount=16)
    assert (answer.status, answer.code) == (400, 11005), answer
    assert await _states(plain, [p16]) == {"UNSPENT"}
