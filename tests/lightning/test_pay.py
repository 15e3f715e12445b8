"""ClnNode.xpay / sendamount / payment_status against every scripted behaviour of the stand-in."""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest
from support.fakenode import FakeNode, Outcome
from support.invoices import make_invoice, make_offer

from hashpool_cln.lightning.clnrpc import ClnNode, NodeProtocolError, _Bad, _merge_status
from hashpool_cln.lightning.port import NodeError, NodeUnavailable, Payment


async def pay(cln: ClnNode, invstring: str, *, amount_msat: int | None = None, maxfee_msat: int = 5000,
              retry_for: int = 30) -> Payment:
    return await cln.xpay(invstring, amount_msat=amount_msat, maxfee_msat=maxfee_msat, retry_for=retry_for,
                          label="redemption r1")


async def settles_to(cln: ClnNode, payment_hash: str, status: str, within: float = 5.0) -> Payment:
    deadline = time.monotonic() + within
    while (p := await cln.payment_status(payment_hash)).status != status:
        if time.monotonic() > deadline:
            pytest.fail(f"payment {payment_hash} still {p.status!r}, expected {status!r}")
        await asyncio.sleep(0.02)
    return p


async def test_xpay_success(node: FakeNode, cln: ClnNode) -> None:
    inv = make_invoice(100_000)
    node.fee_msat = 12
    p = await pay(cln, inv.bolt11, maxfee_msat=50)
    assert p == Payment(status="complete", payment_hash=inv.payment_hash, preimage=inv.preimage,
                        amount_msat=100_000, amount_sent_msat=100_012, label="redemption r1")
    assert hashlib.sha256(bytes.fromhex(p.preimage or "")).hexdigest() == inv.payment_hash
    assert ("xpay", {"invstring": inv.bolt11, "maxfee": 50, "retry_for": 30, "label": "redemption r1"}) \
        in node.requests
    status = await cln.payment_status(inv.payment_hash)
    assert status == p
    assert node.complete_count(inv.payment_hash) == 1


async def test_second_xpay_answers_already_paid(node: FakeNode, cln: ClnNode) -> None:
    inv = make_invoice(1000)
    await pay(cln, inv.bolt11)
    with pytest.raises(NodeError) as e:
        await pay(cln, inv.bolt11)
    assert e.value.code == 219 and e.value.method == "xpay"
    assert node.complete_count(inv.payment_hash) == 1


async def test_scripted_already_paid(node: FakeNode, cln: ClnNode) -> None:
    inv = make_invoice(1000)
    node.script(inv.payment_hash, Outcome.ALREADY_PAID)
    with pytest.raises(NodeError) as e:
        await pay(cln, inv.bolt11)
    assert e.value.code == 219
    status = await cln.payment_status(inv.payment_hash)
    assert status.status == "complete" and status.preimage == inv.preimage
    assert node.complete_count(inv.payment_hash) == 1


async def test_concurrent_payment_answers_minus_3(node: FakeNode, cln: ClnNode) -> None:
    inv = make_invoice(1000)
    node.script(inv.payment_hash, Outcome.CONCURRENT)
    with pytest.raises(NodeError) as e:
        await pay(cln, inv.bolt11)
    assert e.value.code == -3
    assert (await cln.payment_status(inv.payment_hash)).status == "pending"
    with pytest.raises(NodeError) as e:  # still in flight: still -3, nothing new sent
        await pay(cln, inv.bolt11)
    assert e.value.code == -3
    assert node.resolve(inv.payment_hash) == 1
    assert (await cln.payment_status(inv.payment_hash)).preimage == inv.preimage
    assert len(node.payments(inv.payment_hash)) == 1


@pytest.mark.parametrize("code", [203, 205, 206, 207, 209, 210])
async def test_definitive_failures(node: FakeNode, cln: ClnNode, code: int) -> None:
    inv = make_invoice(1000)
    node.script(inv.payment_hash, Outcome.fail(code))
    with pytest.raises(NodeError) as e:
        await pay(cln, inv.bolt11)
    assert e.value.code == code
    assert await cln.payment_status(inv.payment_hash) == Payment(status="failed", payment_hash=inv.payment_hash)
    # A retry after a definitive failure may pay.
    assert (await pay(cln, inv.bolt11)).status == "complete"
    assert node.complete_count(inv.payment_hash) == 1


async def test_pending_then_complete(node: FakeNode, cln: ClnNode) -> None:
    inv = make_invoice(1000)
    node.script(inv.payment_hash, Outcome.PENDING_THEN_COMPLETE)
    with pytest.raises(NodeError) as e:
        await pay(cln, inv.bolt11)
    assert e.value.code == 209
    assert (await cln.payment_status(inv.payment_hash)).status == "pending"
    node.resolve(inv.payment_hash)
    p = await cln.payment_status(inv.payment_hash)
    assert p.status == "complete" and p.preimage == inv.preimage and p.amount_msat == 1000


async def test_pending_then_failed_on_its_own(node: FakeNode, cln: ClnNode) -> None:
    inv = make_invoice(1000)
    node.script(inv.payment_hash, Outcome.PENDING_THEN_FAILED.settling_after(0.1))
    with pytest.raises(NodeError):
        await pay(cln, inv.bolt11)
    assert (await cln.payment_status(inv.payment_hash)).status == "pending"
    await settles_to(cln, inv.payment_hash, "failed")
    assert node.complete_count(inv.payment_hash) == 0


@pytest.mark.parametrize(("outcome", "final"), [(Outcome.DROP_THEN_COMPLETE, "complete"),
                                                 (Outcome.DROP_THEN_FAILED, "failed")])
async def test_connection_dropped_mid_payment(node: FakeNode, cln: ClnNode, outcome: Outcome, final: str) -> None:
    inv = make_invoice(1000)
    node.script(inv.payment_hash, outcome)
    with pytest.raises(NodeUnavailable, match="xpay: connection closed before an answer arrived; outcome unknown"):
        await pay(cln, inv.bolt11)
    assert (await cln.payment_status(inv.payment_hash)).status == final


async def test_slow_payment_past_the_deadline(node: FakeNode) -> None:
    inv = make_invoice(1000)
    node.script(inv.payment_hash, Outcome.slow(0.6))
    cln = ClnNode(node.rpc_path, timeout=5, pay_grace=0.1)
    with pytest.raises(NodeUnavailable, match=r"xpay: no answer within 0.1 s"):
        await pay(cln, inv.bolt11, retry_for=0)
    assert (await cln.payment_status(inv.payment_hash)).status == "pending"
    p = await settles_to(cln, inv.payment_hash, "complete")
    assert p.preimage == inv.preimage


async def test_slow_payment_does_not_block_other_calls(node: FakeNode, cln: ClnNode) -> None:
    inv = make_invoice(1000)
    node.script(inv.payment_hash, Outcome.slow(1.0))
    paying = asyncio.create_task(pay(cln, inv.bolt11))
    await asyncio.sleep(0.05)
    assert (await cln.getinfo()).network == "regtest"
    assert not paying.done()
    assert (await paying).status == "complete"


async def test_malformed_success_answer(node: FakeNode, cln: ClnNode) -> None:
    inv = make_invoice(1000)
    node.script(inv.payment_hash, Outcome.MALFORMED)
    with pytest.raises(NodeProtocolError, match="xpay succeeded but its answer is unreadable") as e:
        await pay(cln, inv.bolt11)
    assert isinstance(e.value, NodeUnavailable)  # the desk treats it as "outcome unknown"
    assert (await cln.payment_status(inv.payment_hash)).status == "complete"


async def test_natural_refusals(node: FakeNode, cln: ClnNode) -> None:
    expired = make_invoice(1000, created_at=int(time.time()) - 7200, expiry=60)
    with pytest.raises(NodeError) as e:
        await pay(cln, expired.bolt11)
    assert e.value.code == 207
    node.fee_msat = 100
    costly = make_invoice(1000)
    with pytest.raises(NodeError) as e:
        await pay(cln, costly.bolt11, maxfee_msat=99)
    assert e.value.code == 206
    mainnet = make_invoice(1000, network="bitcoin")
    with pytest.raises(NodeError) as e:
        await pay(cln, mainnet.bolt11)
    assert e.value.code == -32602
    unknown = make_invoice(1000, payable=False)
    with pytest.raises(NodeError) as e:
        await pay(cln, unknown.bolt11)
    assert e.value.code == 203
    node.spendable_msat = 500
    with pytest.raises(NodeError) as e:
        await pay(cln, make_invoice(1000).bolt11, maxfee_msat=1000)
    assert e.value.code == 205
    assert all(a.status != "complete" for a in node.attempts)


async def test_amountless_invoice(node: FakeNode, cln: ClnNode) -> None:
    inv = make_invoice(None)
    with pytest.raises(NodeError) as e:
        await pay(cln, inv.bolt11)
    assert e.value.code == -32602
    p = await pay(cln, inv.bolt11, amount_msat=7777)
    assert p.amount_msat == 7777 and p.amount_sent_msat == 7777


async def test_sendamount_payee_bears_the_fee(node: FakeNode, cln: ClnNode) -> None:
    node.fee_msat = 25
    inv = make_invoice(None)
    p = await cln.sendamount(inv.bolt11, amount_msat=10_000, maxfee_msat=100, retry_for=10, label="r2")
    assert p.amount_sent_msat == 10_000 and p.amount_msat == 9_975
    assert p.payment_hash == inv.payment_hash
    assert node.requests[-1] == ("sendamount", {"invstring": inv.bolt11, "amount_msat": 10_000, "maxfee": 100,
                                                "retry_for": 10, "label": "r2"})
    with pytest.raises(NodeError):  # an invoice with an amount is xpay's
        await cln.sendamount(make_invoice(5000).bolt11, amount_msat=5000, maxfee_msat=10, retry_for=10, label="x")


async def test_xpay_to_offer(node: FakeNode, cln: ClnNode) -> None:
    offer = make_offer(3000)
    node.register_offer(offer)
    p = await pay(cln, offer.text)
    assert p.status == "complete" and p.amount_msat == 3000
    assert p.payment_hash is not None
    status = await cln.payment_status(p.payment_hash)
    assert status.preimage == p.preimage
    assert (await cln.call("listpays", {"payment_hash": p.payment_hash}))["pays"][0]["bolt12"].startswith("lni1")


async def test_script_by_invstring_and_default(node: FakeNode, cln: ClnNode) -> None:
    offer = make_offer(3000)
    node.register_offer(offer)
    node.script(offer.text, Outcome.fail(205))
    with pytest.raises(NodeError) as e:
        await pay(cln, offer.text)
    assert e.value.code == 205
    node.default = Outcome.fail(210)
    with pytest.raises(NodeError) as e:
        await pay(cln, make_invoice(1000).bolt11)
    assert e.value.code == 210


async def test_unknown_payment(cln: ClnNode) -> None:
    h = "ab" * 32
    assert await cln.payment_status(h) == Payment(status="unknown", payment_hash=h)


async def test_listpays_with_string_amounts_is_refused(node: FakeNode, cln: ClnNode) -> None:
    inv = make_invoice(1000)
    await pay(cln, inv.bolt11)
    node.script_method("listpays", Outcome.reply({"pays": [{
        "payment_hash": inv.payment_hash, "status": "complete", "created_at": 1, "created_index": 1,
        "preimage": inv.preimage, "amount_msat": "1000msat", "amount_sent_msat": "1000msat"}]}))
    with pytest.raises(NodeProtocolError, match="amount_msat is not a non-negative integer"):
        await cln.payment_status(inv.payment_hash)


H = "cd" * 32
P = "ef" * 32


def part(status: str, groupid: int, sent: int, **extra: object) -> dict[str, object]:
    return {"payment_hash": H, "status": status, "groupid": groupid, "amount_msat": sent - 1,
            "amount_sent_msat": sent, **extra}


def test_merge_complete_from_sendpays_only() -> None:
    parts = [part("failed", 1, 500, label="mine"), part("complete", 2, 300, payment_preimage=P, label="theirs"),
             part("complete", 2, 200, payment_preimage=P, label="theirs")]
    assert _merge_status(H, [], parts) == Payment(status="complete", payment_hash=H, preimage=P,
                                                  amount_msat=498, amount_sent_msat=500, label="theirs")


async def test_the_label_of_the_completed_payment_is_reported(node: FakeNode, cln: ClnNode) -> None:
    # A first attempt under one label fails, a second under another completes: the complete one's label counts.
    inv = make_invoice(1000)
    node.script(inv.payment_hash, Outcome.fail(205))
    with pytest.raises(NodeError):
        await pay(cln, inv.bolt11)
    await cln.xpay(inv.bolt11, amount_msat=None, maxfee_msat=5000, retry_for=30, label="by hand")
    status = await cln.payment_status(inv.payment_hash)
    assert status.status == "complete" and status.label == "by hand"
    assert [a.label for a in node.payments(inv.payment_hash)] == ["redemption r1", "by hand"]
    unlabelled = make_invoice(2000)
    await cln.xpay(unlabelled.bolt11, amount_msat=None, maxfee_msat=5000, retry_for=30, label="x")
    node.attempts[-1].label = None  # paid by a command that took no label
    assert (await cln.payment_status(unlabelled.payment_hash)).label is None


def test_merge_precedence() -> None:
    assert _merge_status(H, [{"payment_hash": H, "status": "failed"}], [part("pending", 2, 10)]).status == "pending"
    assert _merge_status(H, [], [part("failed", 1, 10), part("failed", 2, 10)]).status == "failed"
    with pytest.raises(_Bad, match="another payment hash"):
        _merge_status(H, [{"payment_hash": "00" * 32, "status": "failed"}], [])
    with pytest.raises(_Bad, match="unknown payment status"):
        _merge_status(H, [{"payment_hash": H, "status": "weird"}], [])


async def test_instant_mode(tmp_path) -> None:
    """The benchmark's node: decodes are cached, no request log grows, payments complete at once."""
    async with FakeNode(tmp_path / "rpc", instant=True) as node:
        cln = ClnNode(node.rpc_path)
        invoices = [make_invoice(1000 + i) for i in range(5)]
        for inv in invoices:
            assert (await cln.decode(inv.bolt11)).amount_msat == inv.amount_msat
            assert (await pay(cln, inv.bolt11)).preimage == inv.preimage
        assert len(node._decoded) == 5
        assert node.requests == [] and node.calls["xpay"] == 5
        assert all(node.complete_count(inv.payment_hash) == 1 for inv in invoices)
