"""hashpool-resolve on the desk: each decision on each kind of held redemption, and each refusal."""

from __future__ import annotations

import hashlib
import os

import pytest
from support.fakenode import Outcome
from support.invoices import make_invoice

from hashpool_cln.cashu.tokens import parse_token
from hashpool_cln.desk.desk import LABEL_PREFIX
from hashpool_cln.desk.errors import Code, DeskError
from hashpool_cln.desk.recovery import reconcile
from hashpool_cln.lightning.clnrpc import ClnNode

ALREADY_PAID = Outcome.error(219, "Already paid this invoice successfully")


async def pay_from_node(node, invoice: str, label: str) -> None:
    await ClnNode(node.rpc_path).xpay(invoice, amount_msat=None, maxfee_msat=5_000, retry_for=5, label=label)


async def held_by_hand(desk, ehash, node, msat: int = 100_000):
    """A redemption whose invoice was paid from the node by hand right after intake: held for the operator."""
    inv = make_invoice(msat)
    real_create = desk.store.create

    async def create(*args, **kwargs):
        rec = await real_create(*args, **kwargs)
        await pay_from_node(node, inv.bolt11, "by hand")
        return rec

    desk.store.create = create
    try:
        token = await ehash.token(500)
        out = await desk.redeem(token, inv.bolt11)
    finally:
        desk.store.create = real_create
    assert out["state"] == "paying" and out["error"]["code"] == int(Code.PAYMENT_PENDING)
    return out, inv, token


async def held_already_paid(desk, ehash, node, msat: int = 100_000):
    """A redemption whose xpay answered 219 while the node lists no payment: held for the operator."""
    inv = make_invoice(msat)
    node.script_method("xpay", ALREADY_PAID)
    token = await ehash.token(500)
    out = await desk.redeem(token, inv.bolt11)
    assert out["state"] == "paying" and "already paid" in out["error"]["message"]
    return out, inv, token


async def test_paid_takes_the_hand_payment_as_the_redemptions_and_settles(make_desk, ehash, node):
    desk = await make_desk()
    out, inv, _ = await held_by_hand(desk, ehash, node)
    decided = await desk.resolve(out["id"], "paid", "the operator paid it by hand for the miner", who="alice")
    assert decided["state"] == "settled"
    assert decided["payment_preimage"] == inv.preimage and decided["amount_msat"] == inv.amount_msat
    assert decided["resolution"]["decision"] == "paid" and decided["resolution"]["by"] == "alice"
    assert decided["resolution"]["reason"] == "the operator paid it by hand for the miner"
    assert abs(decided["resolution"]["at"] - desk.now()) <= 2
    assert "refund_token" not in decided and "change_token" not in decided and "error" not in decided
    assert [a.label for a in node.payments(inv.payment_hash)] == ["by hand"], "the desk paid too"
    quote = await desk.mint.get_melt_quote_ehash(decided["quote_id"])
    assert quote.state == "PAID"
    # The decision is in the ledger, with the move: a restarted desk reads the same.
    again = await make_desk()
    rec = await again.store.get(out["id"])
    assert (rec["resolved_decision"], rec["resolved_by"]) == ("paid", "alice")
    assert rec["resolved_at"] == decided["resolution"]["at"]


async def test_refund_hands_the_custody_back_and_pays_nothing(make_desk, ehash, node):
    desk = await make_desk()
    out, inv, token = await held_by_hand(desk, ehash, node)
    decided = await desk.resolve(out["id"], "refund", "the hand payment was for another order")
    assert decided["state"] == "refunded" and decided["resolution"]["by"] == "operator"
    assert "refund_token" not in decided  # only the caller reads it (hashpool-status)
    rec = await desk.store.get(out["id"])
    refund = parse_token(rec["refund_token"])
    change = parse_token(rec["change_token"])
    assert refund.amount + change.amount == parse_token(token).amount
    assert set(await ehash.states(rec["refund_token"])) == {"UNSPENT"}
    assert set(await ehash.states(token)) == {"SPENT"}
    assert rec["preimage"] is None and node.complete_count(inv.payment_hash) == 1
    # Recovery never comes back to it: it is final.
    await reconcile(desk)
    assert str((await desk.store.get(out["id"])).state) == "refunded"
    assert [a.label for a in node.payments(inv.payment_hash)] == ["by hand"]


async def test_paid_with_no_payment_listed_needs_the_matching_preimage(make_desk, ehash, node):
    desk = await make_desk()
    out, inv, _ = await held_already_paid(desk, ehash, node)
    with pytest.raises(DeskError) as none_given:
        await desk.resolve(out["id"], "paid", "the payee confirmed")
    assert none_given.value.code is Code.DECISION_REFUSED and "preimage" in none_given.value.message
    wrong = os.urandom(32).hex()
    with pytest.raises(DeskError) as mismatch:
        await desk.resolve(out["id"], "paid", "the payee confirmed", preimage=wrong)
    assert mismatch.value.code is Code.DECISION_REFUSED
    rec = await desk.store.get(out["id"])
    assert str(rec.state) == "paying" and rec["resolved_decision"] is None, "a refusal wrote something"
    decided = await desk.resolve(out["id"], "paid", "the payee sent the preimage", preimage=inv.preimage.upper())
    assert decided["state"] == "settled" and decided["payment_preimage"] == inv.preimage
    assert hashlib.sha256(bytes.fromhex(decided["payment_preimage"])).hexdigest() == inv.payment_hash
    assert node.complete_count(inv.payment_hash) == 0, "nothing was paid"


async def test_refund_after_already_paid_with_no_payment_listed(make_desk, ehash, node):
    desk = await make_desk()
    out, inv, _ = await held_already_paid(desk, ehash, node)
    decided = await desk.resolve(out["id"], "refund", "no payment of ours exists", who="bob")
    assert decided["state"] == "refunded" and decided["resolution"]["decision"] == "refund"
    assert set(await ehash.states((await desk.store.get(out["id"]))["refund_token"])) == {"UNSPENT"}
    assert node.payments(inv.payment_hash) == []


async def test_refund_is_refused_once_the_redemptions_own_payment_completed(make_desk, ehash, node):
    desk = await make_desk()
    out, inv, _ = await held_already_paid(desk, ehash, node)
    await pay_from_node(node, inv.bolt11, LABEL_PREFIX + out["id"])  # the node now lists our own payment
    with pytest.raises(DeskError) as e:
        await desk.resolve(out["id"], "refund", "I think nothing was paid")
    assert e.value.code is Code.DECISION_REFUSED and "own payment" in e.value.message
    rec = await desk.store.get(out["id"])
    assert str(rec.state) == "paying" and rec["refund_token"] is None
    decided = await desk.resolve(out["id"], "paid", "it was ours after all")
    assert decided["state"] == "settled" and decided["payment_preimage"] == inv.preimage


async def test_refund_is_refused_while_a_payment_is_in_flight(make_desk, ehash, node):
    desk = await make_desk()
    out, inv, _ = await held_already_paid(desk, ehash, node)
    node.script(inv.payment_hash, Outcome.PENDING_THEN_COMPLETE)
    with pytest.raises(Exception):  # noqa: B017  (the hand payment's call answers before it ends)
        await pay_from_node(node, inv.bolt11, "by hand")
    assert (await ClnNode(node.rpc_path).payment_status(inv.payment_hash)).status == "pending"
    with pytest.raises(DeskError) as e:
        await desk.resolve(out["id"], "refund", "nothing paid")
    assert e.value.code is Code.DECISION_REFUSED and "in flight" in e.value.message
    assert str((await desk.store.get(out["id"])).state) == "paying"


async def test_a_redemption_is_decided_once(make_desk, ehash, node):
    desk = await make_desk()
    out, _, _ = await held_by_hand(desk, ehash, node)
    await desk.resolve(out["id"], "paid", "by hand for the miner")
    for decision in ("paid", "refund"):
        with pytest.raises(DeskError) as e:
            await desk.resolve(out["id"], decision, "again")
        assert e.value.code is Code.NOT_HELD and e.value.data["state"] == "settled"
    rec = await desk.store.get(out["id"])
    assert rec["resolved_decision"] == "paid" and rec["refund_token"] is None


async def test_redemptions_not_held_are_refused_in_every_state(make_desk, ehash, node):
    desk = await make_desk()
    settled = await desk.redeem(await ehash.token(500), make_invoice(100_000).bolt11)
    assert settled["state"] == "settled"
    node.script_method("xpay", Outcome.fail(205))
    refunded = await desk.redeem(await ehash.token(500), make_invoice(100_000).bolt11)
    assert refunded["state"] == "refunded"
    inv = make_invoice(100_000)
    node.script(inv.payment_hash, Outcome.PENDING_THEN_COMPLETE)
    paying = await desk.redeem(await ehash.token(500), inv.bolt11)
    assert paying["state"] == "paying"  # in flight, not held: the node, not the operator, decides
    for out in (settled, refunded, paying):
        for decision in ("paid", "refund"):
            with pytest.raises(DeskError) as e:
                await desk.resolve(out["id"], decision, "testing", preimage=None)
            assert e.value.code is Code.NOT_HELD and e.value.data["state"] == out["state"]
    assert node.complete_count(inv.payment_hash) == 0
    with pytest.raises(DeskError) as unknown:
        await desk.resolve("no-such-id", "refund", "testing")
    assert unknown.value.code is Code.UNKNOWN_REDEMPTION


@pytest.mark.parametrize(("decision", "reason", "who", "preimage", "needle"), [
    ("settle", "why", None, None, "decision"),
    ("refund", "", None, None, "reason"),
    ("refund", "   ", None, None, "reason"),
    ("refund", "x" * 501, None, None, "reason"),
    ("refund", 7, None, None, "reason"),
    ("refund", "why", "", None, "who"),
    ("refund", "why", "w" * 65, None, "who"),
    ("refund", "why", None, "00" * 32, "preimage"),
    ("paid", "why", None, "zz" * 32, "preimage"),
    ("paid", "why", None, "00" * 31, "preimage"),
])
async def test_bad_parameters_are_refused_before_anything_is_read(make_desk, ehash, node, decision, reason, who,
                                                                  preimage, needle):
    desk = await make_desk()
    out, _, _ = await held_by_hand(desk, ehash, node)
    with pytest.raises(DeskError) as e:
        await desk.resolve(out["id"], decision, reason, who=who, preimage=preimage)
    assert e.value.code is Code.INVALID_PARAMS and needle in e.value.message
    rec = await desk.store.get(out["id"])
    assert str(rec.state) == "paying" and rec["resolved_decision"] is None


async def test_nothing_is_decided_while_the_node_cannot_say_what_it_knows(make_desk, ehash, node):
    desk = await make_desk()
    out, _, _ = await held_by_hand(desk, ehash, node)
    node.script_method("listpays", Outcome.DROP)
    with pytest.raises(DeskError) as e:
        await desk.resolve(out["id"], "refund", "nothing paid")
    assert e.value.code is Code.NODE_UNAVAILABLE
    rec = await desk.store.get(out["id"])
    assert str(rec.state) == "paying" and rec["resolved_decision"] is None and rec["refund_token"] is None
    decided = await desk.resolve(out["id"], "refund", "nothing paid")  # the node answers again
    assert decided["state"] == "refunded"
