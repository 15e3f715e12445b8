"""What one redemption costs the ledger, the node and the mint: counted, so that a step added to the path shows."""

from __future__ import annotations

import re

import pytest
from support.invoices import make_invoice

# One commit per step: written down and priced (new → quoted at once), custody, paying, paid.
PAID_COMMITS = 4
# Settling a fixed-amount payment whose fee reserve went back, at a mint that settles a quote for fewer units
# than quoted: the move to settled alone. At one that cannot: the reserve's quote released and forgotten, the
# new quote asked and recorded, its answer, and the move to settled.
SETTLE_COMMITS = {True: 1, False: 4}
SETTLE_REQUESTS = {
    True: {"/v1/swap": 1, "/v1/melt/quote/ehash": 1, "/v1/melt/ehash": 1},
    # The first quote's state read before it is released: a lost partial melt may have paid it already.
    False: {"/v1/swap": 1, "/v1/melt/quote/ehash": 2, "/v1/melt/quote/ehash/{quote}": 1,
            "/v1/melt/quote/ehash/release": 1, "/v1/melt/ehash": 1},
}


async def _redeem_counting(desk, ehash, node) -> tuple[dict, int, dict, dict]:
    token = await ehash.token(2_048)
    inv = make_invoice(1_000_000)
    await desk.redeem(await ehash.token(64), make_invoice(10_000).bolt11)  # the mint's catalog, read once
    node.calls.clear()
    ehash.proxy.seen.clear()
    commits = desk.store.commits
    out = await desk.redeem(token, inv.bolt11)
    return out, desk.store.commits - commits, dict(node.calls), dict(ehash.proxy.seen)


async def test_a_redemption_commits_once_per_transition_and_asks_the_node_three_times(make_desk, ehash, node):
    desk = await make_desk(settle="batch")
    out, commits, calls, seen = await _redeem_counting(desk, ehash, node)
    assert out["state"] == "paid"
    assert commits == PAID_COMMITS
    # decode, one look at the payment hash (a fresh invoice has no parts: listpays is not asked), the payment
    assert calls == {"decode": 1, "listsendpays": 1, "xpay": 1}
    assert seen == {"/v1/swap": 1, "/v1/melt/quote/ehash": 1}


@pytest.mark.parametrize("ehash", [True, False], indirect=True, ids=["partial-melt", "whole-melts"])
async def test_settling_now_adds_the_settlement_s_commits_only(make_desk, ehash, node):
    partial_melt = await ehash.client.partial_melt()
    desk = await make_desk()
    out, commits, calls, seen = await _redeem_counting(desk, ehash, node)
    rec = await desk.store.get(out["id"])
    quote = await ehash.client.get_melt_quote_ehash(rec["quote_id"])
    assert out["state"] == "settled"
    assert commits == PAID_COMMITS + SETTLE_COMMITS[partial_melt]
    assert calls == {"decode": 1, "listsendpays": 1, "xpay": 1}
    assert {re.sub(r"/[0-9a-f]{32}$", "/{quote}", path): n for path, n in seen.items()} == SETTLE_REQUESTS[partial_melt]
    # Part of the reserve went back, and the mint was paid for the units kept, at their price (1 sat a unit).
    assert rec["returned_units"] > 0
    # 1 000 sat with a 1 % reserve bought 1 010 units.
    assert quote.state == "PAID" and quote.amount == rec["quote_units"] == 1_010 - rec["returned_units"]
    assert quote.amount_msat == rec["quote_amount_msat"] == quote.amount * 1_000


async def test_a_hash_with_parts_is_looked_up_in_listpays_too(desk, ehash, node):
    """A hash the node has sent parts for is looked at twice: listpays says whether ``pay`` still retries them."""
    inv = make_invoice(100_000)
    first = await desk.redeem(await ehash.token(1_000), inv.bolt11)
    assert first["state"] == "settled"
    node.calls.clear()
    status = await desk.payment_status(inv.payment_hash)
    assert status is not None and status.status == "complete" and status.preimage == inv.preimage
    assert node.calls == {"listsendpays": 1, "listpays": 1}


async def test_a_partial_melt_whose_answer_was_lost_settles_on_the_next_try(make_desk, ehash, node):
    """The mint settled the quote for the units kept, the answer never came: the redemption stays paid, and the
    next settlement sends the same melt, which the quote's PAID state answers."""
    desk = await make_desk()
    await desk.redeem(await ehash.token(64), make_invoice(10_000).bolt11)  # the mint's catalog, read once
    ehash.proxy.fault("/v1/melt/ehash", "drop_after", times=2)  # the desk's melt, and its one retry if any
    out = await desk.redeem(await ehash.token(2_048), make_invoice(1_000_000).bolt11)
    assert out["state"] == "paid"
    rec = await desk.store.get(out["id"])
    quote = await ehash.client.get_melt_quote_ehash(rec["quote_id"])
    assert quote.state == "PAID" and quote.amount == 1_010 - rec["returned_units"] < rec["quote_units"]
    ehash.proxy.faults.clear()
    ehash.proxy.seen.clear()
    assert (await desk.settle())["settled"] == [out["id"]]
    rec = await desk.store.get(out["id"])
    assert rec["quote_units"] == quote.amount and rec["quote_amount_msat"] == quote.amount_msat
    # the same melt, answered "already paid", then the quote's state: no release, no new quote
    assert dict(ehash.proxy.seen) == {"/v1/melt/ehash": 1, f"/v1/melt/quote/ehash/{quote.quote}": 1}



async def test_a_lost_partial_melt_settles_after_the_mint_stops_serving_them(make_desk, ehash, node):
    """The partial melt went through and its answer was lost; then the mint restarts without partial melts and the
    desk with it. The quote is already PAID for the units kept: that settles the redemption, with no release and
    no new quote asked for proofs the mint has already taken."""
    from dataclasses import replace

    desk = await make_desk()
    await desk.redeem(await ehash.token(64), make_invoice(10_000).bolt11)
    ehash.proxy.fault("/v1/melt/ehash", "drop_after", times=2)
    out = await desk.redeem(await ehash.token(2_048), make_invoice(1_000_000).bolt11)
    assert out["state"] == "paid"
    quote = await ehash.client.get_melt_quote_ehash((await desk.store.get(out["id"]))["quote_id"])
    assert quote.state == "PAID"
    ledger = ehash.mint.ledger
    ledger.config = replace(ledger.config, partial_melt=False)
    ehash.proxy.faults.clear()
    ehash.proxy.seen.clear()
    again = await make_desk()  # a fresh desk reads the mint's info anew; its recovery settles what is paid
    rec = await again.store.get(out["id"])
    assert rec["state"] == "settled"
    assert rec["quote_units"] == quote.amount and rec["quote_amount_msat"] == quote.amount_msat
    assert not [path for path in ehash.proxy.seen if "release" in path or path == "/v1/melt/quote/ehash"]
