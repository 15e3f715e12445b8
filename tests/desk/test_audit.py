"""The money paths under concurrency, odd inputs and a mint that lies: each case here once lost a token, paid
without a settleable quote, or answered a caller with an internal error."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace

import pytest
from support.crash import Crasher, expire_first_melt
from support.ehash import BANK_EXPONENT
from support.fakenode import Outcome
from support.invoices import make_invoice, make_offer

from hashpool_cln.cashu.models import Proof
from hashpool_cln.cashu.tokens import parse_token
from hashpool_cln.desk.desk import Crash
from hashpool_cln.desk.errors import Code, DeskError
from hashpool_cln.desk.recovery import reconcile
from hashpool_cln.lightning.clnrpc import ClnNode
from hashpool_cln.lightning.port import NodeError
from hashpool_cln.mintclient import MintUnavailable

MELT_QUOTE_TTL = 600  # the reference mint's default (support.refmint.mint_config keeps it)


async def test_reconcile_during_create_leaves_the_live_redemption_alone(desk, ehash, node):
    # The plugin's watcher reconciles every few seconds while redeems run. Its turn can come while the ledger
    # commits a new redemption, before the live call has marked it as its own: it must not take it over.
    real_create = desk.store.create

    async def create(*args, **kwargs):
        rec = await real_create(*args, **kwargs)
        await reconcile(desk)
        return rec

    desk.store.create = create
    token = await ehash.token(500)
    inv = make_invoice(100_000)
    out = await desk.redeem(token, inv.bolt11)
    assert out["state"] == "settled" and node.complete_count(inv.payment_hash) == 1
    assert set(await ehash.states(token)) == {"SPENT"}
    assert desk.drivers() == 0


async def test_settle_and_reconcile_at_once_melt_one_redemption_once(desk, ehash, node):
    ehash.proxy.fault("/v1/melt/ehash", "status500")  # the settlement after the payment fails: left paid
    out = await desk.redeem(await ehash.token(300), make_invoice(50_000).bolt11)
    assert out["state"] == "paid"
    settled, _ = await asyncio.gather(desk.settle(), reconcile(desk))
    rec = await desk.store.get(out["id"])
    assert str(rec.state) == "settled"
    assert ehash.proxy.seen["/v1/melt/ehash"] == 1, "two settlements of one redemption raced at the mint"
    assert settled["waiting"] == []


async def test_no_payment_on_a_quote_that_expires_before_the_payment_can_end(make_desk, ehash, node):
    # Custody is taken with the quote nearly gone (a slow swap, a restart): a payment that runs its whole
    # retry window would end after the quote, and the mint may then refuse the settlement while the sats
    # have left the node. The desk refunds instead.
    skew = {"seconds": 0}

    def hook(at: str) -> None:
        if at == "after:quoted->custody":
            skew["seconds"] = MELT_QUOTE_TTL - 10

    desk = await make_desk(retry_for=30, crash_hook=hook, clock=lambda: time.time() + skew["seconds"])
    token = await ehash.token(500)
    inv = make_invoice(100_000, expiry=3_600)
    out = await desk.redeem(token, inv.bolt11)
    assert out["state"] == "refunded" and node.attempts == []
    returned = parse_token(out["refund_token"]).amount + parse_token(out["change_token"]).amount
    assert returned == 500
    assert set(await ehash.states(out["refund_token"])) == {"UNSPENT"}


async def test_an_overflowing_maxfee_is_a_clear_refusal(desk, ehash, node):
    token = await ehash.token(200)
    with pytest.raises(DeskError) as e:
        await desk.redeem(token, make_invoice(100_000).bolt11, maxfee_msat=2**64)
    assert e.value.code is Code.FEE_TOO_HIGH
    assert set(await ehash.states(token)) == {"UNSPENT"}
    assert await desk.redemptions() == []


async def test_restore_answering_other_amounts_hands_back_what_the_mint_signed(desk, ehash, node):
    # The swap's answer is lost twice; restore then answers for our blinded messages but with other
    # amounts. Nothing may be paid against that, and the redemption may not stay stuck either: the caller
    # gets back what the mint signed.
    mint = desk.mint
    real_restore = mint.restore
    _lose_swap_answers(mint)

    async def restore(outputs):
        known, signatures = await real_restore(outputs)
        # Swap the amounts of the first two pairs, consistently on both sides (what a confused mint might do).
        a, b = signatures[0].amount, signatures[1].amount
        assert a != b
        known = [replace(known[0], amount=b), replace(known[1], amount=a), *known[2:]]
        signatures = [replace(signatures[0], amount=b), replace(signatures[1], amount=a), *signatures[2:]]
        return known, signatures

    mint.restore = restore
    token = await ehash.token(500)
    inv = make_invoice(100_000)
    out = await desk.redeem(token, inv.bolt11)
    assert out["state"] == "refunded" and node.attempts == []
    assert out["error"]["code"] == int(Code.MINT_REFUSED)
    assert parse_token(out["refund_token"]).amount == 500


async def test_a_partial_restore_is_never_taken_for_an_untouched_or_foreign_spent_token(desk, ehash, node):
    # Restore knows some of our outputs: our swap spent the token, so "rejected" (untouched, or spent
    # elsewhere) would leave the caller with nothing. The redemption waits for the operator instead.
    mint = desk.mint
    real_restore = mint.restore
    real_swap = _lose_swap_answers(mint)

    async def restore(outputs):
        known, signatures = await real_restore(outputs)
        return known[:1], signatures[:1]

    mint.restore = restore
    token = await ehash.token(500)
    with pytest.raises(DeskError) as e:
        await desk.redeem(token, make_invoice(100_000).bolt11)
    assert e.value.code is Code.MINT_REFUSED
    rec = await desk.store.get(e.value.data["id"])
    assert str(rec.state) == "quoted" and node.attempts == []
    # With a mint that answers fully again, recovery finishes it.
    mint.swap, mint.restore = real_swap, real_restore
    await reconcile(desk)
    assert str((await desk.store.get(rec.id)).state) == "settled"


async def test_a_failing_event_callback_logs_its_class_only(desk, ehash, node, caplog):
    # A callback's exception may quote what it was handling; the log gets its class name, at info, no traceback.
    def callback(rid, old, new, fields):
        raise ValueError("leaky detail cashuB-not-for-the-log")

    desk.on_event(callback)
    with caplog.at_level("DEBUG", logger="hashpool_cln.desk"):
        out = await desk.redeem(await ehash.token(100), make_invoice(10_000).bolt11)
    assert out["state"] == "settled"
    failed = [r for r in caplog.records if "callback" in r.getMessage()]
    assert failed and all(r.levelname == "INFO" and r.exc_info is None for r in failed)
    assert "leaky detail" not in caplog.text and "ValueError" in caplog.text


def test_a_seed_write_cut_short_leaves_no_unreadable_seed(tmp_path, monkeypatch):
    # The process dies after creating the seed file and before writing it: the next start must not find an
    # empty "seed" it can never read (the desk would never start again), nor any seed but a whole one.
    import os
    import stat

    from hashpool_cln.desk import wallet

    path = str(tmp_path / "desk.seed")
    real_fdopen = os.fdopen

    class Dies:
        def __init__(self, fd, *a, **kw):
            self.f = real_fdopen(fd, *a, **kw)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            raise SystemExit("killed mid-write")

    monkeypatch.setattr(wallet.os, "fdopen", Dies)
    with pytest.raises(SystemExit):
        wallet.load_or_create_seed(path)
    monkeypatch.undo()
    seed = wallet.load_or_create_seed(path)
    assert len(seed) == wallet.SEED_BYTES and wallet.load_or_create_seed(path) == seed
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.parametrize(("offer_msat", "amount_msat"), [(None, 60_000), (60_000, None)],
                         ids=["amountless-offer-with-amount", "offer-over-the-limit"])
async def test_an_offer_over_the_limit_never_reaches_the_node(make_desk, ehash, node, offer_msat, amount_msat):
    # The amount is the desk's to check: an invoice request for more than the desk pays is refused before any
    # fetchinvoice leaves the node (asking the offer's node for an invoice it will never pay).
    desk = await make_desk(max_msat=50_000)
    offer = make_offer(offer_msat)
    node.register_offer(offer)
    token = await ehash.token(500)
    with pytest.raises(DeskError) as e:
        await desk.redeem(token, offer.text, amount_msat=amount_msat)
    assert e.value.code is Code.OVER_LIMIT
    quoted = await desk.quote(token, offer.text, amount_msat=amount_msat)
    assert quoted["destination"]["code"] == int(Code.OVER_LIMIT)
    assert node.calls["fetchinvoice"] == 0
    assert set(await ehash.states(token)) == {"UNSPENT"} and await desk.redemptions() == []


async def test_already_paid_with_no_payment_listed_is_never_refunded(make_desk, ehash, node):
    # xpay's 219 means the node holds a completed payment of this hash, whatever listpays shows: the redemption
    # stays paying, and no later "failed" reading may refund it.
    desk = await make_desk()
    token = await ehash.token(500)
    inv = make_invoice(100_000)
    node.script_method("xpay", Outcome.error(219, "Already paid this invoice successfully"))
    out = await desk.redeem(token, inv.bolt11)
    assert out["state"] == "paying" and "refund_token" not in out
    assert (await desk.payment_status(inv.payment_hash)).status == "unknown"
    assert "already paid" in out["error"]["message"]
    # Past every retry window the resent payment fails for good: still not refunded.
    node.script(inv.payment_hash, Outcome.fail(205), Outcome.fail(205))
    later = await make_desk(clock=lambda: time.time() + 30)
    await reconcile(later)
    await reconcile(later)
    rec = await later.store.get(out["id"])
    assert str(rec.state) == "paying" and rec["refund_token"] is None
    assert (await later.payment_status(inv.payment_hash)).status == "failed"


async def test_already_paid_then_found_complete_is_paid(desk, ehash, node):
    inv = make_invoice(100_000)
    node.script_method("xpay", Outcome.error(219, "Already paid this invoice successfully"))
    out = await desk.redeem(await ehash.token(500), inv.bolt11)
    assert out["state"] == "paying"
    await reconcile(desk)  # the node now has the payment (the resent call finds it, or completes it)
    rec = await desk.store.get(out["id"])
    assert str(rec.state) == "settled" and node.complete_count(inv.payment_hash) == 1


# --- an invoice paid on this node by someone else (the operator by hand, say) -----------------------------------


async def pay_by_hand(node, invoice: str, **kw) -> None:
    """The operator pays ``invoice`` from the same node, under a label of their own."""
    await ClnNode(node.rpc_path).xpay(invoice, amount_msat=None, maxfee_msat=5_000, retry_for=5, label="by hand",
                                      **kw)


@pytest.mark.parametrize("how", ["complete", "pending"])
async def test_an_invoice_already_paid_on_the_node_is_refused_before_custody(desk, ehash, node, how):
    inv = make_invoice(100_000)
    if how == "pending":
        node.script(inv.payment_hash, Outcome.PENDING_THEN_COMPLETE)
        with pytest.raises(NodeError):
            await pay_by_hand(node, inv.bolt11)
    else:
        await pay_by_hand(node, inv.bolt11)
    token = await ehash.token(500)
    with pytest.raises(DeskError) as e:
        await desk.redeem(token, inv.bolt11)
    assert e.value.code is Code.DESTINATION_IN_USE and how in e.value.message
    assert set(await ehash.states(token)) == {"UNSPENT"} and await desk.redemptions() == []
    assert len(node.payments(inv.payment_hash)) == 1


async def held_for_the_operator(desk, node, redemption_id: str, payment_hash: str) -> None:
    """Paid by someone else: the redemption neither took that payment as its own nor refunded, and stays so."""
    for _ in range(2):
        await reconcile(desk)
        rec = await desk.store.get(redemption_id)
        assert str(rec.state) == "paying" and rec["preimage"] is None and rec["refund_token"] is None
        assert "by hand" in rec["error"] and "operator" in rec["error"]
    assert node.complete_count(payment_hash) == 1
    assert [a.label for a in node.payments(payment_hash)] == ["by hand"], "the desk paid too"


async def test_paid_by_hand_after_intake_is_not_taken_as_the_redemptions_payment(desk, ehash, node):
    inv = make_invoice(100_000)
    real_create = desk.store.create

    async def create(*args, **kwargs):  # the invoice is paid by hand right after the desk's check
        rec = await real_create(*args, **kwargs)
        await pay_by_hand(node, inv.bolt11)
        return rec

    desk.store.create = create
    out = await desk.redeem(await ehash.token(500), inv.bolt11)
    assert out["state"] == "paying" and "payment_preimage" not in out
    await held_for_the_operator(desk, node, out["id"], inv.payment_hash)


async def test_paid_by_hand_while_the_desk_calls_xpay_is_not_its_payment(desk, ehash, node):
    # The hand payment lands between the desk's last look and its own xpay, which then answers 219.
    inv = make_invoice(100_000)
    real_xpay = desk.node.xpay

    async def xpay(invstring, **kw):
        await pay_by_hand(node, invstring)
        return await real_xpay(invstring, **kw)

    desk.node.xpay = xpay
    out = await desk.redeem(await ehash.token(500), inv.bolt11)
    assert out["state"] == "paying"
    desk.node.xpay = real_xpay
    await held_for_the_operator(desk, node, out["id"], inv.payment_hash)


async def test_paid_by_hand_while_the_desk_was_down_is_not_taken_on_recovery(make_desk, ehash, node):
    inv = make_invoice(100_000)
    token = await ehash.token(500)
    crasher = Crasher("after:custody->paying")
    desk = await crasher.desk(make_desk.config(), node, ehash)
    with pytest.raises(Crash):
        await desk.redeem(token, inv.bolt11)
    await crasher.bury()
    await pay_by_hand(node, inv.bolt11)
    recovered = await make_desk(clock=lambda: time.time() + 100)
    (rec,) = await recovered.store.list(limit=10)
    await held_for_the_operator(recovered, node, rec.id, inv.payment_hash)


# --- settling after the mint let the quote go ----------------------------------------------------------------


async def test_a_settlement_refused_for_an_expired_quote_is_requoted(desk, ehash, node):
    node.fee_msat = 1_000  # routing uses the whole reserve: the units kept are the units quoted
    asked = expire_first_melt(desk.mint)
    out = await desk.redeem(await ehash.token(500), make_invoice(100_000).bolt11)
    assert out["state"] == "settled"
    rec = await desk.store.get(out["id"])
    old, new = asked
    assert rec["quote_id"] == new != old and rec["quote_units"] == 101  # the same units: 100 sat + 1 % reserve
    assert (await ehash.client.get_melt_quote_ehash(new)).state == "PAID"
    assert (await ehash.client.get_melt_quote_ehash(old)).state == "EXPIRED"  # released: its budget is free
    custody = [Proof.from_dict(json.loads(p)) for p in await desk.store.custody(rec.id)]
    assert set(await ehash.states(custody)) == {"SPENT"}


async def test_a_requote_refused_for_budget_waits_and_settles_later(desk, ehash, node):
    # Someone else's quotes hold all of the epoch's budget the desk's own quote leaves: the new quote is refused
    # (51002) and the redemption stays paid, its quote unchanged; a later settle goes through.
    await ehash.client.melt_quote_ehash(ehash.unit, (1 << BANK_EXPONENT) - 101)
    node.fee_msat = 1_000  # routing uses the whole reserve: the units kept are the units quoted
    asked = expire_first_melt(desk.mint)
    out = await desk.redeem(await ehash.token(500), make_invoice(100_000).bolt11)
    assert out["state"] == "paid" and out["quote_id"] == asked[0]
    assert out["error"]["code"] == int(Code.EPOCH_BUDGET_EXHAUSTED) and "budget" in out["error"]["message"]
    assert await desk.settle() == {"settled": [out["id"]], "waiting": []}
    rec = await desk.store.get(out["id"])
    assert (await ehash.client.get_melt_quote_ehash(rec["quote_id"])).state == "PAID"


def _lose_swap_answers(mint):
    """The mint carries out every swap, but its answer never arrives; returns the real swap."""
    real_swap = mint.swap

    async def swap(inputs, outputs):
        await real_swap(inputs, outputs)
        raise MintUnavailable("swap: the answer was lost")

    mint.swap = swap
    return real_swap
