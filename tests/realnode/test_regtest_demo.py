"""The end-to-end demo as a test: a fresh regtest stack, ehash from shares, a reward, and redemptions into the
miner's BOLT11 invoice and BOLT12 offer through the pool node's plugin. Skips where the binaries are missing."""

from __future__ import annotations

import hashlib

import pytest

from hashpool_cln.regtest import demo, preflight
from hashpool_cln.regtest.layout import Layout
from hashpool_cln.regtest.stack import Stack

FOUND = preflight.check()
PROBLEMS = preflight.problems_report(FOUND)
pytestmark = [pytest.mark.realnode, pytest.mark.skipif(PROBLEMS is not None, reason=str(PROBLEMS))]


@pytest.fixture
def stack(tmp_path):
    stack = Stack(Layout(tmp_path / "regtest"), {f.tool.name: str(f.path) for f in FOUND})
    yield stack
    stack.down()
    assert all(pid is None for pid in stack.running().values())


def test_demo_redeems_ehash_into_an_invoice_and_an_offer(stack):
    lines: list[str] = []
    result = demo.run(stack, lines.append)
    receipts = result.receipts
    # The miner's wallet over commando into the offer, then the operator's lightning-cli into the invoice.
    assert [r.kind for r in receipts] == ["BOLT12", "BOLT11"]
    for receipt, amount in zip(receipts, (demo.OFFER_MSAT, demo.INVOICE_MSAT)):
        r = receipt.result
        assert r["state"] in ("paid", "settled"), r
        assert r["amount_msat"] == amount and r["fee_msat"] == 0  # a direct channel: no routing fee
        assert hashlib.sha256(bytes.fromhex(r["payment_preimage"])).hexdigest() == r["payment_hash"]
    assert receipts[1].result["change_token"].startswith("cashuB")  # the operator's change
    assert "change_token" not in receipts[0].result  # the wallet swapped its change back in
    paid = {p["payment_hash"]: p for p in stack.node("miner").listinvoices()["invoices"] if p["status"] == "paid"}
    assert {r.result["payment_hash"] for r in receipts} <= set(paid)
    paid_msat = demo.INVOICE_MSAT + demo.OFFER_MSAT
    delta = {n: result.after[n]["channel_msat"] - result.before[n]["channel_msat"] for n in ("pool", "miner")}
    assert delta == {"pool": -paid_msat, "miner": paid_msat}
    assert any("wallet sweep:" in line for line in lines) and any("balances after:" in line for line in lines)
    (held,) = demo.wallet_balance(stack, demo.wallet_keys(stack))
    assert held["unspent"] > 0 and held["pending"] == 0  # the change is back in the wallet, spendable


def test_up_is_idempotent_and_down_stops_everything(stack):
    stack.up()
    first = stack.running()
    channel = stack.channel()
    stack.up()
    assert stack.running() == first and all(first.values())
    assert stack.channel()["channel_id"] == channel["channel_id"]
