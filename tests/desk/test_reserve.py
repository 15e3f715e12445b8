"""The routing fee reserve of a fixed-amount payment: bought, and what routing leaves of it handed back to the
caller in the change token, exact to the unit; the mint burns only the units the payment used."""

from __future__ import annotations

import json

import pytest
from support.ehash import BANK_EXPONENT, RATE_MSAT
from support.fakenode import Outcome
from support.invoices import make_invoice, make_offer

from hashpool_cln.cashu.amounts import is_power_of_two, pick_exact
from hashpool_cln.cashu.models import Proof
from hashpool_cln.cashu.tokens import parse_token
from hashpool_cln.desk import wallet
from hashpool_cln.desk.errors import Code

# 200 000 msat at 5 %: a 10 000 msat reserve, 10 units at 1 sat a unit; 210 units bought of a 500-unit token.
AMOUNT = 200_000
PPM = 50_000


async def _custody(desk, rid: str, state: str | None = None) -> list[Proof]:
    return [Proof.from_dict(json.loads(p)) for p in await desk.store.custody(rid, state)]


def test_every_part_of_a_reserve_is_an_exact_sum_of_its_outputs():
    for units in range(300):
        amounts = wallet.reserve_amounts(units)
        assert sum(amounts) == units and all(is_power_of_two(a) for a in amounts)
        for target in range(units + 1):
            assert sum(amounts[i] for i in pick_exact(amounts, target)) == target
    assert wallet.reserve_amounts(10) == [1, 1, 2, 2, 4]
    with pytest.raises(ValueError):
        pick_exact([1, 4], 2)


@pytest.mark.parametrize(("fee_msat", "kept"), [(0, 200), (3_500, 204), (10_000, 210)],
                         ids=["no-fee", "part-of-the-reserve", "whole-reserve"])
async def test_the_unused_reserve_comes_back_in_the_change_token(make_desk, ehash, node, fee_msat, kept):
    desk = await make_desk(maxfee_ppm=PPM)
    node.fee_msat = fee_msat
    token = await ehash.token(500)
    first_quotes = []
    real_quote = desk.mint.melt_quote_ehash

    async def quote(unit, amount, request=None, **kw):
        q = await real_quote(unit, amount, request, **kw)
        first_quotes.append(q)
        return q

    desk.mint.melt_quote_ehash = quote
    out = await desk.redeem(token, make_invoice(AMOUNT).bolt11)
    assert out["state"] == "settled" and out["fee_msat"] == fee_msat and out["amount_msat"] == AMOUNT
    returned = 210 - kept  # the units of the amount plus the fee actually paid are kept: ceil(203.5) = 204
    rec = await desk.store.get(out["id"])
    assert rec["reserve_amounts"] == "[1, 1, 2, 2, 4]" and rec["payment_units"] == 200
    assert (rec["returned_units"] or 0) == returned
    assert parse_token(out["change_token"]).amount == 500 - kept
    assert set(await ehash.states(out["change_token"])) == {"UNSPENT"}
    # the mint's final quote is for exactly the units kept, and custody spent exactly those
    final = await ehash.client.get_melt_quote_ehash(out["quote_id"])
    assert final.state == "PAID" and final.amount == kept and out["value_msat"] == kept * RATE_MSAT
    spent = await _custody(desk, out["id"], "spent")
    assert sum(p.amount for p in spent) == kept and set(await ehash.states(spent)) == {"SPENT"}
    back = await _custody(desk, out["id"], "returned")
    assert sum(p.amount for p in back) == returned
    assert {p.secret for p in back} <= {p.secret for p in parse_token(out["change_token"]).proofs}
    # one quote for all 210 units, settled by the mint (it serves partial melts) for the units kept alone
    assert [q.amount for q in first_quotes] == [210] and first_quotes[0].quote == out["quote_id"]
    assert (await desk.info())["custody"] == {}


@pytest.mark.parametrize("kind", ["caller-amount", "offer"])
async def test_other_fixed_amounts_get_the_unused_reserve_back(make_desk, ehash, node, kind):
    desk = await make_desk(maxfee_ppm=PPM)
    node.fee_msat = 3_500
    if kind == "offer":
        offer = make_offer(AMOUNT)
        node.register_offer(offer)
        out = await desk.redeem(await ehash.token(500), offer.text)
    else:
        out = await desk.redeem(await ehash.token(500), make_invoice(None).bolt11, amount_msat=AMOUNT)
    assert out["state"] == "settled" and out["amount_msat"] == AMOUNT and out["fee_msat"] == 3_500
    assert parse_token(out["change_token"]).amount == 500 - 204
    assert (await ehash.client.get_melt_quote_ehash(out["quote_id"])).amount == 204


async def test_a_failed_payment_still_refunds_everything(make_desk, ehash, node):
    desk = await make_desk(maxfee_ppm=PPM)
    inv = make_invoice(AMOUNT)
    node.script(inv.payment_hash, Outcome.fail(205))
    token = await ehash.token(500)
    out = await desk.redeem(token, inv.bolt11)
    assert out["state"] == "refunded" and node.complete_count(inv.payment_hash) == 0
    refund, change = parse_token(out["refund_token"]), parse_token(out["change_token"])
    assert refund.amount == 210 and change.amount == 290
    assert set(await ehash.states(out["refund_token"])) == {"UNSPENT"}
    rec = await desk.store.get(out["id"])
    assert rec["returned_units"] is None and rec["quote_units"] == 210


async def test_quote_says_who_keeps_the_unused_reserve(desk, ehash, node):
    token = await ehash.token(500)
    fixed = (await desk.quote(token, make_invoice(100_000).bolt11))["destination"]
    assert fixed["unused_fee_reserve"] == "caller" and fixed["cost_msat"] == 101 * RATE_MSAT
    offer = make_offer(None)
    node.register_offer(offer)
    whole = (await desk.quote(token, offer.text))["destination"]
    assert whole["unused_fee_reserve"] == "desk"


@pytest.mark.parametrize("ehash", [True, False], indirect=True, ids=["partial-melt", "whole-melts"])
async def test_the_kept_units_settle_while_others_hold_the_rest_of_the_budget(make_desk, ehash, node):
    # Someone else's quote holds all of the epoch's budget but the desk's 210 units. A mint with partial melts
    # settles the first quote for the 200 kept; at one without, the first quote can never be melted once 10 units
    # went back, so it is released first, and the quote for the 200 kept fits.
    other = await ehash.client.melt_quote_ehash(ehash.unit, (1 << BANK_EXPONENT) - 210)
    desk = await make_desk(maxfee_ppm=PPM)
    out = await desk.redeem(await ehash.token(500), make_invoice(AMOUNT).bolt11)
    assert out["state"] == "settled" and parse_token(out["change_token"]).amount == 300
    assert (await ehash.client.get_melt_quote_ehash(out["quote_id"])).amount == 200
    assert (await ehash.client.get_melt_quote_ehash(other.quote)).state == "UNPAID"
    assert await desk.store.quotes_to_release() == []


@pytest.mark.parametrize("ehash", [False], indirect=True, ids=["whole-melts"])
async def test_a_quote_for_the_kept_units_refused_for_budget_leaves_it_paid(make_desk, ehash, node):
    # The budget the released quote gave back is taken by someone else before the desk asks again: the caller
    # already holds the returned units; settlement waits, and goes through once the budget is free again.
    await ehash.client.melt_quote_ehash(ehash.unit, (1 << BANK_EXPONENT) - 210)
    desk = await make_desk(maxfee_ppm=PPM)
    real_release = desk.mint.release_melt_quote_ehash
    taken = []

    async def release_then_lose_the_room(quote_id):
        q = await real_release(quote_id)
        if not taken:
            taken.append(await ehash.client.melt_quote_ehash(ehash.unit, 205))
        return q

    desk.mint.release_melt_quote_ehash = release_then_lose_the_room
    out = await desk.redeem(await ehash.token(500), make_invoice(AMOUNT).bolt11)
    assert out["state"] == "paid" and parse_token(out["change_token"]).amount == 300
    assert out["error"]["code"] == int(Code.EPOCH_BUDGET_EXHAUSTED) and "budget" in out["error"]["message"]
    rec = await desk.store.get(out["id"])
    assert rec["quote_units"] == 210 and rec["returned_units"] == 10
    assert sum(p.amount for p in await _custody(desk, out["id"], "held")) == 200
    assert await desk.settle() == {"settled": [], "waiting": [out["id"]]}
    assert set(await ehash.states(await _custody(desk, out["id"], "held"))) == {"UNSPENT"}
    await ehash.client.release_melt_quote_ehash(taken[0].quote)
    assert await desk.settle() == {"settled": [out["id"]], "waiting": []}
