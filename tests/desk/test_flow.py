"""End to end: real ehash from the reference mint, paid through ClnNode to the node stand-in."""

from __future__ import annotations

from support.invoices import make_invoice

from hashpool_cln.cashu.tokens import parse_token

from .conftest import RATE_MSAT


async def test_bolt11_with_amount_pays_returns_change_and_settles(desk, ehash, node):
    token = await ehash.token(1_000)
    inv = make_invoice(100_000)
    out = await desk.redeem(token, inv.bolt11)
    assert out["state"] == "settled"
    assert out["payment_preimage"] == inv.preimage
    assert out["amount_msat"] == 100_000 and out["fee_msat"] == 0
    assert node.complete_count(inv.payment_hash) == 1
    # 100 000 msat + 1 % fee reserve = 101 000 msat = 101 units at 1 sat a unit
    assert out["value_msat"] == 101 * RATE_MSAT
    change = parse_token(out["change_token"])
    assert change.amount == 1_000 - 101
    assert set(await ehash.states(out["change_token"])) == {"UNSPENT"}
    assert set(await ehash.states(token)) == {"SPENT"}
    quote = await ehash.client.get_melt_quote_ehash(out["quote_id"])
    assert quote.state == "PAID" and quote.amount == 101
