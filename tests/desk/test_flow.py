"""End to end: real ehash from the reference mint, paid through ClnNode to the node stand-in."""

from __future__ import annotations

import json
import time

import pytest
from support.ehash import RATE_MSAT
from support.invoices import make_invoice

from hashpool_cln.cashu import crypto
from hashpool_cln.cashu.tokens import parse_token
from hashpool_cln.desk.errors import Code
from hashpool_cln.desk.states import State
from hashpool_cln.desk.store import Store


async def test_bolt11_with_amount_pays_returns_change_and_settles(desk, ehash, node):
    token = await ehash.token(1_000)
    inv = make_invoice(100_000)
    out = await desk.redeem(token, inv.bolt11)
    assert out["state"] == "settled"
    assert out["payment_preimage"] == inv.preimage
    assert out["amount_msat"] == 100_000 and out["fee_msat"] == 0
    assert node.complete_count(inv.payment_hash) == 1
    # 100 000 msat + 1 % fee reserve = 101 000 msat = 101 units at 1 sat a unit bought; routing cost 0, so the
    # reserve's unit comes back with the change and the mint burns the 100 the payment used
    assert out["value_msat"] == 100 * RATE_MSAT
    change = parse_token(out["change_token"])
    assert change.amount == 1_000 - 100
    assert set(await ehash.states(out["change_token"])) == {"UNSPENT"}
    assert set(await ehash.states(token)) == {"SPENT"}
    quote = await ehash.client.get_melt_quote_ehash(out["quote_id"])
    assert quote.state == "PAID" and quote.amount == 100


async def test_amountless_bolt11_with_caller_amount(desk, ehash, node):
    token = await ehash.token(500)
    inv = make_invoice(None)
    out = await desk.redeem(token, inv.bolt11, amount_msat=50_000)
    assert out["state"] == "settled" and out["amount_msat"] == 50_000
    assert node.complete_count(inv.payment_hash) == 1
    # 50 000 + 500 reserve = 51 units (ceil) bought; routing cost 0: the payment's 50 are kept
    assert parse_token(out["change_token"]).amount == 500 - 50


async def test_amountless_bolt11_without_amount_sends_the_whole_value(desk, ehash, node):
    node.fee_msat = 700
    token = await ehash.token(300)
    inv = make_invoice(None)
    out = await desk.redeem(token, inv.bolt11)
    assert out["state"] == "settled"
    assert out["value_msat"] == 300 * RATE_MSAT
    # sendamount: the payee bears the routing fee
    assert out["amount_msat"] == 300 * RATE_MSAT - 700 and out["fee_msat"] == 700
    assert "change_token" not in out
    assert node.calls["sendamount"] == 1 and node.calls["xpay"] == 0


async def test_bolt12_offer_fetches_persists_and_pays_the_invoice(desk, ehash, node):
    from support.invoices import make_offer
    offer = make_offer(20_000)
    node.register_offer(offer)
    token = await ehash.token(100)
    out = await desk.redeem(token, offer.text, payer_note="thanks")
    assert out["state"] == "settled" and out["destination_kind"] == "bolt12_offer"
    assert node.calls["fetchinvoice"] == 1
    assert node.complete_count(out["payment_hash"]) == 1
    rec = await desk.store.get(out["id"])
    assert rec["invoice"].startswith("lni") and rec["destination"] == offer.text


async def test_amountless_offer_without_amount_pays_the_whole_value_less_the_reserve(desk, ehash, node):
    from support.invoices import make_offer
    node.fee_msat = 700
    offer = make_offer(None)
    node.register_offer(offer)
    token = await ehash.token(300)
    out = await desk.redeem(token, offer.text)
    assert out["state"] == "settled" and out["destination_kind"] == "bolt12_offer"
    # every unit is bought; the invoice asks for the value less the 1 % reserve, which xpay may spend on fees
    assert out["value_msat"] == 300 * RATE_MSAT
    assert out["amount_msat"] == 297_000 and out["fee_msat"] == 700
    assert "change_token" not in out
    assert node.calls["fetchinvoice"] == 1 and node.calls["xpay"] == 1 and node.calls["sendamount"] == 0
    (attempt,) = node.attempts
    assert attempt.payment_hash == out["payment_hash"] and attempt.kind == "bolt12"
    rec = await desk.store.get(out["id"])
    assert rec["invoice"] == attempt.invstring and rec["destination"] == offer.text
    assert rec["maxfee_msat"] == 3_000 and rec["pay_method"] == "xpay" and rec["pay_amount_msat"] is None
    assert set(await ehash.states(token)) == {"SPENT"}


async def test_amountless_offer_whole_value_honours_the_callers_maxfee(desk, ehash, node):
    from support.invoices import make_offer
    offer = make_offer(None)
    node.register_offer(offer)
    out = await desk.redeem(await ehash.token(300), offer.text, maxfee_msat=1_000)
    assert out["state"] == "settled" and out["amount_msat"] == 299_000
    assert (await desk.store.get(out["id"]))["maxfee_msat"] == 1_000


async def test_amountless_offer_whole_value_fee_above_the_reserve_refunds(desk, ehash, node):
    from support.invoices import make_offer
    node.fee_msat = 3_001  # one msat more than the reserve
    offer = make_offer(None)
    node.register_offer(offer)
    token = await ehash.token(300)
    out = await desk.redeem(token, offer.text)
    assert out["state"] == "refunded" and node.complete_count(out["payment_hash"]) == 0
    status = await desk.status(claim=out["claim"])
    assert parse_token(status["refund_token"]).amount == 300
    assert set(await ehash.states(status["refund_token"])) == {"UNSPENT"}


async def test_quote_of_an_amountless_offer_shows_what_the_payee_gets(desk, ehash, node):
    from support.invoices import make_offer
    offer = make_offer(None)
    node.register_offer(offer)
    q = await desk.quote(await ehash.token(300), offer.text)
    dest = q["destination"]
    assert dest["payable"] is True and dest["kind"] == "bolt12_offer"
    assert dest["amount_msat"] == 297_000 and dest["fee_reserve_msat"] == 3_000 and dest["units_needed"] == 300
    assert dest["cost_msat"] == 300 * RATE_MSAT and dest["unused_fee_reserve"] == "desk"
    bolt11 = (await desk.quote(await ehash.token(300), make_invoice(None).bolt11))["destination"]
    assert bolt11["amount_msat"] == 300 * RATE_MSAT and bolt11["unused_fee_reserve"] == "payee"
    assert await desk.redemptions() == []


async def test_definitive_failure_refunds_the_custody_proofs(desk, ehash, node):
    from support.fakenode import Outcome
    token = await ehash.token(400)
    inv = make_invoice(100_000)
    node.script(inv.payment_hash, Outcome.fail(205))
    out = await desk.redeem(token, inv.bolt11)
    assert out["state"] == "refunded"
    assert out["error"]["code"] == 3440
    assert node.complete_count(inv.payment_hash) == 0
    refund, change = parse_token(out["refund_token"]), parse_token(out["change_token"])
    assert refund.amount + change.amount == 400
    assert set(await ehash.states(out["refund_token"])) == {"UNSPENT"}
    assert set(await ehash.states(out["change_token"])) == {"UNSPENT"}
    status = await desk.status(out["id"])
    assert "refund_token" not in status and status["state"] == "refunded"
    assert (await desk.status(out["id"], out["claim"]))["refund_token"] == out["refund_token"]
    # the released invoice may be tried again by another redemption
    out2 = await desk.redeem(await ehash.token(400), inv.bolt11)
    assert out2["state"] == "settled" and node.complete_count(inv.payment_hash) == 1


async def test_batched_settlement(make_desk, ehash, node):
    desk = await make_desk(settle="batch")
    inv = make_invoice(30_000)
    out = await desk.redeem(await ehash.token(100), inv.bolt11)
    assert out["state"] == "paid"
    assert set(await ehash.states(await _custody(desk, out["id"]))) == {"UNSPENT"}
    custody = await _custody(desk, out["id"], "held")
    # 30 000 + 300 reserve = 31 units bought; routing cost 0: the reserve's unit went back with the change
    assert sum(p.amount for p in custody) == 30
    info = await desk.info()
    assert info["custody"] == {ehash.unit: {"units": sum(p.amount for p in custody), "proofs": len(custody),
                                            "redemptions": 1}}
    assert info["paid"] == {"redemptions": 1, "value_msat": out["value_msat"], "amount_msat": 30_000,
                            "fee_msat": out["fee_msat"]}
    result = await desk.settle()
    assert result["settled"] == [out["id"]]
    assert (await desk.status(out["id"]))["state"] == "settled"
    info = await desk.info()
    assert info["custody"] == {} and info["paid"]["redemptions"] == 1
    assert set(await ehash.states(custody)) == {"SPENT"}
    quote = await ehash.client.get_melt_quote_ehash((await desk.status(out["id"]))["quote_id"])
    assert quote.state == "PAID" and quote.amount == 30


async def _custody(desk, rid, state=None):
    import json

    from hashpool_cln.cashu.models import Proof
    return [Proof.from_dict(json.loads(p)) for p in await desk.store.custody(rid, state)]


async def test_two_concurrent_redeems_of_one_token_pay_once(desk, ehash, node):
    import asyncio

    from hashpool_cln.desk.errors import DeskError
    token = await ehash.token(500)
    a, b = make_invoice(100_000), make_invoice(100_000)
    results = await asyncio.gather(desk.redeem(token, a.bolt11), desk.redeem(token, b.bolt11),
                                   return_exceptions=True)
    ok = [r for r in results if isinstance(r, dict)]
    errors = [r for r in results if isinstance(r, DeskError)]
    assert len(ok) == 1 and len(errors) == 1, results
    assert errors[0].code == 3408  # TOKEN_IN_USE
    assert node.complete_count(a.payment_hash) + node.complete_count(b.payment_hash) == 1


async def test_one_invoice_offered_by_two_redemptions_is_paid_once(desk, ehash, node):
    import asyncio

    from hashpool_cln.desk.errors import DeskError
    inv = make_invoice(100_000)
    t1, t2 = await ehash.token(500), await ehash.token(500)
    results = await asyncio.gather(desk.redeem(t1, inv.bolt11), desk.redeem(t2, inv.bolt11),
                                   return_exceptions=True)
    ok = [r for r in results if isinstance(r, dict)]
    errors = [r for r in results if isinstance(r, DeskError)]
    assert len(ok) == 1 and len(errors) == 1, results
    assert errors[0].code == 3415  # DESTINATION_IN_USE
    assert node.complete_count(inv.payment_hash) == 1
    # and once paid, never again
    try:
        await desk.redeem(await ehash.token(500), inv.bolt11)
        raise AssertionError("a paid invoice was accepted again")
    except DeskError as e:
        assert e.code == 3415
    assert node.complete_count(inv.payment_hash) == 1


async def test_pending_then_complete(desk, ehash, node):
    from support.fakenode import Outcome

    from hashpool_cln.desk.recovery import reconcile
    inv = make_invoice(100_000)
    node.script(inv.payment_hash, Outcome.PENDING_THEN_COMPLETE)
    out = await desk.redeem(await ehash.token(500), inv.bolt11)
    assert out["state"] == "paying" and desk.in_flight() == 1
    assert "refund_token" not in out
    node.resolve(inv.payment_hash)
    await reconcile(desk)
    done = await desk.status(out["id"])
    assert done["state"] == "settled" and done["payment_preimage"] == inv.preimage
    assert desk.in_flight() == 0 and node.complete_count(inv.payment_hash) == 1


async def test_pending_then_failed_refunds(desk, ehash, node):
    from support.fakenode import Outcome

    from hashpool_cln.desk.recovery import reconcile
    inv = make_invoice(100_000)
    node.script(inv.payment_hash, Outcome.PENDING_THEN_FAILED)
    token = await ehash.token(500)
    out = await desk.redeem(token, inv.bolt11)
    assert out["state"] == "paying"
    await reconcile(desk)  # still pending: nothing may change
    assert (await desk.status(out["id"]))["state"] == "paying"
    node.resolve(inv.payment_hash)
    await reconcile(desk)  # failed, but the node's retry window is not over: a crashed payer may still retry
    assert (await desk.status(out["id"]))["state"] == "paying"
    desk._clock = lambda: time.time() + desk.config.retry_for + desk.config.payment_grace + 1
    await reconcile(desk)
    done = await desk.status(out["id"], out["claim"])
    assert done["state"] == "refunded" and node.complete_count(inv.payment_hash) == 0
    assert set(await ehash.states(done["refund_token"])) == {"UNSPENT"}


async def test_lost_node_answer_stays_paying_until_the_node_says(desk, ehash, node):
    from support.fakenode import Outcome

    from hashpool_cln.desk.recovery import reconcile
    inv = make_invoice(100_000)
    node.script(inv.payment_hash, Outcome.DROP_THEN_COMPLETE)
    out = await desk.redeem(await ehash.token(500), inv.bolt11)
    assert out["state"] in ("paying",)
    await reconcile(desk)
    assert (await desk.status(out["id"]))["state"] == "settled"
    assert node.complete_count(inv.payment_hash) == 1


async def test_quote_prices_without_committing(desk, ehash, node):
    token = await ehash.token(1_000)
    inv = make_invoice(100_000)
    q = await desk.quote(token, inv.bolt11)
    assert q["value_msat"] == 1_000 * RATE_MSAT and q["amount"] == 1_000
    assert q["destination"]["payable"] is True and q["destination"]["units_needed"] == 101
    assert q["destination"]["fee_reserve_msat"] == 1_000
    # the payment costs at most 101 units; what routing leaves of the reserve goes back to the caller
    assert q["destination"]["cost_msat"] == 101 * RATE_MSAT and q["destination"]["unused_fee_reserve"] == "caller"
    assert set(await ehash.states(token)) == {"UNSPENT"}
    assert await desk.redemptions() == []
    small = await desk.quote(await ehash.token(50), inv.bolt11)
    assert small["destination"]["payable"] is False


async def test_quotes_hold_no_budget_at_the_mint(desk, ehash):
    # A token worth the epoch's whole reward: a mint quote for it would hold the whole budget until it expired,
    # so a second look (or anyone else's redemption) would be refused while the first quote lived.
    from support.ehash import BANK_EXPONENT
    token = await ehash.token(1 << BANK_EXPONENT)
    first = await desk.quote(token)
    second = await desk.quote(token)
    assert first["value_msat"] == second["value_msat"] == (1 << BANK_EXPONENT) * RATE_MSAT
    assert first["rate"]["unredeemed_msat"] == (1 << BANK_EXPONENT) * RATE_MSAT
    assert first["expiry"] > time.time()
    quote = await ehash.client.melt_quote_ehash(ehash.unit, 1 << BANK_EXPONENT)
    assert quote.amount_msat == first["value_msat"]


async def test_events_carry_no_secrets(make_desk, ehash, node):
    desk = await make_desk()
    events = []
    desk.on_event(lambda rid, old, new, fields: events.append((old, new, fields)))
    inv = make_invoice(10_000)
    out = await desk.redeem(await ehash.token(100), inv.bolt11)
    assert [(o, n) for o, n, _ in events] == [("", "quoted"), ("quoted", "custody"),
                                              ("custody", "paying"), ("paying", "paid"), ("paid", "settled")]
    blob = repr(events)
    assert inv.preimage not in blob and out["change_token"] not in blob and "token" not in blob
    listed = await desk.redemptions()
    assert listed[0]["id"] == out["id"] and "change_token" not in listed[0]
    assert all("payment_preimage" not in fields for _, _, fields in events)


async def test_the_epochs_own_net_reward_prices_it_not_the_fee_of_the_day(make_desk, ehash, node):
    # The operator's fallback fee (for mints that publish no net reward) is wrong on purpose: 50 %.
    desk = await make_desk(pool_fee_ppm=500_000)
    node.fee_msat = 1_000  # routing takes the whole reserve: all 101 units bought are used
    out = await desk.redeem(await ehash.token(200), make_invoice(100_000).bolt11)
    assert out["state"] == "settled" and out["value_msat"] == 101 * RATE_MSAT


async def test_without_a_published_net_reward_the_fallback_fee_prices_the_epoch(make_desk, ehash, node):
    from hashpool_cln.desk.errors import Code
    ehash.proxy.fault("/v1/ehash/epochs", "old_epochs", times=5)
    desk = await make_desk(pool_fee_ppm=500_000)
    token = await ehash.token(200)
    assert (await desk.quote(token))["value_msat"] == 200 * RATE_MSAT // 2  # priced at the fallback fee
    inv = make_invoice(10_000)
    out = await desk.redeem(token, inv.bolt11)
    # The mint's quote comes after custody: at another fee than the epoch's it is refused, and the custody
    # proofs go back to the caller, with nothing paid.
    assert out["state"] == "refunded" and out["error"]["code"] == Code.RATE_REFUSED
    assert node.complete_count(inv.payment_hash) == 0
    assert set(await ehash.states(out["refund_token"])) == {"UNSPENT"}
    assert set(await ehash.states(token)) == {"SPENT"}


async def test_the_claim_alone_opens_the_tokens(desk, ehash, node):
    from hashpool_cln.desk import claims
    from hashpool_cln.desk.errors import Code, DeskError

    out = await desk.redeem(await ehash.token(400), make_invoice(100_000).bolt11)
    claim = out["claim"]
    assert claims.check(claim) == claim and out["change_token"]
    rec = await desk.store.get(out["id"])
    assert rec["claim_hash"] == claims.digest(claim) and claim not in json.dumps(rec.fields)
    assert "change_token" not in await desk.status(out["id"])
    assert (await desk.status(claim=claim))["change_token"] == out["change_token"]
    for kwargs, code in (({}, Code.INVALID_PARAMS), ({"claim": claim.upper()}, Code.INVALID_PARAMS),
                         ({"redemption_id": "x" * 32, "claim": claim}, Code.UNKNOWN_REDEMPTION),
                         ({"claim": "0" * 64}, Code.UNKNOWN_REDEMPTION)):
        with pytest.raises(DeskError) as e:
            await desk.status(**kwargs)
        assert e.value.code is code, kwargs
    with pytest.raises(DeskError) as e:
        await desk.redeem(await ehash.token(400), make_invoice(100_000).bolt11, claim=claim)
    assert e.value.code is Code.INVALID_PARAMS and e.value.message == "claim already used"


async def test_a_new_redemption_left_by_an_earlier_version_is_rejected_and_its_token_kept(make_desk, ehash, node):
    """Earlier versions wrote a redemption ``new`` (its claims only) and priced it in a second commit: a ledger
    that died between the two holds one. The next start rejects it, and the token stays its owner's."""
    token = await ehash.token(500)
    invoice = make_invoice(100_000)
    proofs = parse_token(token).proofs
    store = await Store.open(make_desk.config().db_path)
    try:
        await store.create({"id": "r-old", "mint": ehash.url, "unit": ehash.unit, "amount": 500, "dest_kind": "bolt11",
                            "destination": invoice.bolt11, "invoice": invoice.bolt11,
                            "payment_hash": invoice.payment_hash, "pay_method": "xpay"},
                           [(crypto.proof_y(p.secret), json.dumps(p.to_dict())) for p in proofs], invoice.payment_hash)
    finally:
        await store.close()

    desk = await make_desk()  # starts: recovery runs
    rec = await desk.store.get("r-old")
    assert rec.state is State.REJECTED and rec["error_code"] == int(Code.NOT_READY)
    assert set(await ehash.states(token)) == {"UNSPENT"}
    assert node.attempts == []
    out = await desk.redeem(token, invoice.bolt11)  # the claims were released with it
    assert out["state"] == "settled"
