"""Contract between the mint and the desk: the limits in /v1/info, melt quotes named by a reference (a lost
answer is recovered by asking again, the budget is held once), and the early release of a quote's budget."""

from __future__ import annotations

import asyncio
import hashlib
import os

from hashpool_cln.mintclient import MintError, MintLimits


async def _settled(mint, reward_msat: int = 1_000_000):
    """A settled epoch of 32 units worth ``reward_msat`` (31_250 msat a unit at the default)."""
    return await mint.settled_epoch(reward_msat, 4, count=2)


def _quote(mint, unit: str, amount: int, reference: str | None = None, **extra):
    body = {"unit": unit, "amount": amount, **extra}
    if reference is not None:
        body["reference"] = reference
    return mint.call("POST", "/v1/melt/quote/ehash", body, role="desk")


async def test_info_says_the_per_request_limits(refmint_factory) -> None:
    default = await refmint_factory()
    assert (await default.ok("GET", "/v1/info"))["limits"] == {"max_inputs": 1000, "max_outputs": 1000}
    small = await refmint_factory(max_inputs=7, max_outputs=9)
    assert (await small.ok("GET", "/v1/info"))["limits"] == {"max_inputs": 7, "max_outputs": 9}
    async with small.client() as client:
        assert await client.limits() == MintLimits(max_inputs=7, max_outputs=9)


async def test_a_replayed_reference_gives_the_same_quote_and_holds_the_budget_once(refmint) -> None:
    unit, _ = await _settled(refmint)
    first = await _quote(refmint, unit, 20, "redemption-1")
    assert first.status == 200 and first.body["reference"] == "redemption-1", first
    again = await _quote(refmint, unit, 20, "redemption-1")
    assert again.status == 200 and again.body == first.body
    # The budget (1_000_000 msat) holds the 20 units once: 12 more units (375_000 msat) still fit.
    assert first.body["amount_msat"] == 625_000
    rest = await _quote(refmint, unit, 12, "redemption-2")
    assert rest.status == 200, rest
    over = await _quote(refmint, unit, 1, "redemption-3")
    assert (over.status, over.code) == (400, 51002), over
    # Concurrent replays of one new reference are one quote as well.
    await refmint.ok("POST", "/v1/melt/quote/ehash/release", {"quote": rest.body["quote"]}, role="desk")
    answers = await asyncio.gather(*(_quote(refmint, unit, 12, "redemption-4") for _ in range(8)))
    assert {a.status for a in answers} == {200} and len({a.body["quote"] for a in answers}) == 1


async def test_a_reference_with_another_unit_or_amount_is_refused(refmint) -> None:
    unit, _ = await _settled(refmint)
    await refmint.ok("POST", "/v1/melt/quote/ehash", {"unit": unit, "amount": 4, "reference": "r"}, role="desk")
    other_amount = await _quote(refmint, unit, 5, "r")
    assert (other_amount.status, other_amount.code) == (400, 51006), other_amount
    other_unit = await _quote(refmint, "hash_" + "02" * 33 + "_9", 4, "r")
    assert (other_unit.status, other_unit.code) == (400, 51006), other_unit
    for bad in ("", "x" * 65, "a b", "é", "../x", 7):
        answer = await _quote(refmint, unit, 4, bad)  # type: ignore[arg-type]
        assert (answer.status, answer.code) == (400, 0), (bad, answer)


async def test_a_released_quote_frees_its_budget_and_cannot_be_melted(refmint) -> None:
    unit, proofs = await _settled(refmint)
    whole = await refmint.ok("POST", "/v1/melt/quote/ehash", {"unit": unit, "amount": 32, "reference": "a"},
                             role="desk")
    assert (await _quote(refmint, unit, 1)).code == 51002  # the whole budget is held
    released = await refmint.ok("POST", "/v1/melt/quote/ehash/release", {"quote": whole["quote"]}, role="desk")
    assert released["state"] == "EXPIRED" and released["quote"] == whole["quote"]
    assert await refmint.ok("GET", f"/v1/melt/quote/ehash/{whole['quote']}", role="desk") == released
    again = await refmint.ok("POST", "/v1/melt/quote/ehash/release", {"quote": whole["quote"]}, role="desk")
    assert again == released  # idempotent
    # The same reference still names the released quote; the budget is free for another one.
    assert (await _quote(refmint, unit, 32, "a")).body == released
    fresh = await refmint.ok("POST", "/v1/melt/quote/ehash", {"unit": unit, "amount": 32, "reference": "b"},
                             role="desk")
    # A released quote is not honoured at melt even though its price would fit the budget again.
    await refmint.ok("POST", "/v1/melt/quote/ehash/release", {"quote": fresh["quote"]}, role="desk")
    preimage = os.urandom(32)
    payment = {"payment_hash": hashlib.sha256(preimage).hexdigest(), "preimage": preimage.hex()}
    melt = await refmint.call("POST", "/v1/melt/ehash", {"quote": whole["quote"], "payment": payment,
                                                        "inputs": [p.to_dict() for p in proofs]}, role="desk")
    assert (melt.status, melt.code) == (400, 20007), melt


async def test_a_paid_quote_cannot_be_released(refmint) -> None:
    unit, proofs = await _settled(refmint)
    q = await refmint.ok("POST", "/v1/melt/quote/ehash", {"unit": unit, "amount": 32, "reference": "p"}, role="desk")
    preimage = os.urandom(32)
    payment = {"payment_hash": hashlib.sha256(preimage).hexdigest(), "preimage": preimage.hex()}
    await refmint.ok("POST", "/v1/melt/ehash", {"quote": q["quote"], "payment": payment,
                                               "inputs": [p.to_dict() for p in proofs]}, role="desk")
    answer = await refmint.call("POST", "/v1/melt/quote/ehash/release", {"quote": q["quote"]}, role="desk")
    assert (answer.status, answer.code) == (400, 20006), answer
    assert (await refmint.ok("GET", f"/v1/melt/quote/ehash/{q['quote']}", role="desk"))["state"] == "PAID"
    replay = await _quote(refmint, unit, 32, "p")  # the reference still answers the paid quote
    assert replay.status == 200 and replay.body["state"] == "PAID" and replay.body["quote"] == q["quote"]


async def test_release_needs_the_desk_key_and_a_known_quote(refmint) -> None:
    unit, _ = await _settled(refmint)
    q = await refmint.ok("POST", "/v1/melt/quote/ehash", {"unit": unit, "amount": 2}, role="desk")
    no_key = await refmint.call("POST", "/v1/melt/quote/ehash/release", {"quote": q["quote"]})
    assert (no_key.status, no_key.code) == (401, 30001)
    pool = await refmint.call("POST", "/v1/melt/quote/ehash/release", {"quote": q["quote"]}, role="pool")
    assert (pool.status, pool.code) == (401, 30002)
    unknown = await refmint.call("POST", "/v1/melt/quote/ehash/release", {"quote": "nope"}, role="desk")
    assert (unknown.status, unknown.code) == (400, 51000)
    assert (await refmint.ok("GET", f"/v1/melt/quote/ehash/{q['quote']}", role="desk"))["state"] == "UNPAID"


async def test_mint_client_reference_release_and_limits(refmint) -> None:
    unit, _ = await _settled(refmint)
    async with refmint.client() as client:
        assert await client.limits() == MintLimits(1000, 1000)
        first = await client.melt_quote_ehash(unit, 32, reference="rid-7")
        assert first.reference == "rid-7" and first.state == "UNPAID"
        assert await client.melt_quote_ehash(unit, 32, reference="rid-7") == first
        released = await client.release_melt_quote_ehash(first.quote)
        assert released.state == "EXPIRED" and released.quote == first.quote
        assert (await client.release_melt_quote_ehash(first.quote)).state == "EXPIRED"
        second = await client.melt_quote_ehash(unit, 32, reference="rid-8")  # the budget is free again
        assert second.quote != first.quote
        try:
            await client.melt_quote_ehash(unit, 31, reference="rid-8")
        except MintError as exc:
            assert exc.code == 51006
        else:
            raise AssertionError("a reference reused for another amount must be refused")


async def test_settlement_speaks_cdks_custom_melt_shapes(refmint) -> None:
    """CDK mounts /v1/melt/quote/{method} and /v1/melt/{method} for custom methods: our bodies and answers are a
    superset of its MeltQuoteCustomRequest / MeltQuoteCustomResponse and MeltRequest."""
    from support.invoices import make_invoice

    unit, proofs = await _settled(refmint)
    invoice = make_invoice(1_000_000)
    body = {"method": "ehash", "request": invoice.bolt11, "unit": unit, "amount": 32}
    quote = await refmint.ok("POST", "/v1/melt/quote/ehash", body, role="desk")
    assert quote["method"] == "ehash" and quote["fee_reserve"] == 0 and quote["request"] == invoice.bolt11
    assert quote["state"] == "UNPAID" and quote["amount"] == 32 and quote["unit"] == unit
    assert "payment_preimage" not in quote
    other = await refmint.call("POST", "/v1/melt/quote/ehash", {**body, "method": "bolt11"}, role="desk")
    assert (other.status, other.code) == (400, 0), other
    melt = {"quote": quote["quote"], "inputs": [p.to_dict() for p in proofs], "outputs": [],
            "payment": {"payment_hash": invoice.payment_hash, "preimage": invoice.preimage}}
    paid = await refmint.ok("POST", "/v1/melt/ehash", melt, role="desk")
    assert paid["state"] == "PAID" and paid["payment_preimage"] == invoice.preimage and paid["change"] == []
    shown = await refmint.ok("GET", f"/v1/melt/quote/ehash/{quote['quote']}", role="desk")
    assert shown["payment_preimage"] == invoice.preimage and shown["request"] == invoice.bolt11
    # an empty request (CDK's body always has one) binds nothing
    unit2, _ = await _settled(refmint)
    blank = await refmint.ok("POST", "/v1/melt/quote/ehash", {**body, "unit": unit2, "request": ""}, role="desk")
    assert "request" not in blank


async def test_a_bolt11_request_binds_the_quote_to_its_payment_hash(refmint) -> None:
    """The payment hash the mint reads from the invoice is the one the melt must prove; an invoice that does not
    read (here one character changed, so its checksum fails) is refused with the reason."""
    from support.invoices import make_invoice

    unit, proofs = await _settled(refmint)
    invoice = make_invoice(1_000_000)
    flipped = invoice.bolt11[:-3] + ("q" if invoice.bolt11[-3] != "q" else "p") + invoice.bolt11[-2:]
    bad = await refmint.call("POST", "/v1/melt/quote/ehash", {"request": flipped, "unit": unit, "amount": 32},
                             role="desk")
    assert (bad.status, bad.code) == (400, 0) and "checksum" in bad.body["detail"], bad
    quote = await refmint.ok("POST", "/v1/melt/quote/ehash", {"request": invoice.bolt11, "unit": unit, "amount": 32},
                             role="desk")
    other = make_invoice(1_000_000)
    melt = {"quote": quote["quote"], "inputs": [p.to_dict() for p in proofs],
            "payment": {"payment_hash": other.payment_hash, "preimage": other.preimage}}
    refused = await refmint.call("POST", "/v1/melt/ehash", melt, role="desk")
    assert (refused.status, refused.code) == (400, 51003), refused
    melt["payment"] = {"payment_hash": invoice.payment_hash, "preimage": invoice.preimage}
    assert (await refmint.ok("POST", "/v1/melt/ehash", melt, role="desk"))["state"] == "PAID"
