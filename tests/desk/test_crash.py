"""The crash matrix: the desk dies right before and right after every state transition; a fresh desk on the
same ledger recovers; then every token is paid, refunded or untouched — exactly one — and no invoice is paid
twice. How the desk is killed: ``support.crash``.
"""

from __future__ import annotations

import time

import pytest
from support.crash import Crasher, assert_invariant, expire_first_melt
from support.ehash import running_ehash
from support.fakenode import Outcome
from support.invoices import make_invoice, make_offer

from hashpool_cln.cashu import crypto
from hashpool_cln.cashu.tokens import parse_token
from hashpool_cln.desk.desk import Crash
from hashpool_cln.desk.errors import DeskError
from hashpool_cln.mintclient import MintClient

SUCCESS = ["->quoted", "quoted->custody", "custody->paying", "paying->paid", "paid->settled"]
# scenario -> the transitions it passes through
SCENARIOS: dict[str, list[str]] = {
    "success": SUCCESS,
    "payment_fails": ["paying->refunded"],
    "too_small": ["->rejected"],
    "mint_refuses_swap": ["quoted->rejected"],
    "invoice_expires_in_custody": ["custody->refunded"],
    # The melt quote is asked after custody (before:custody->paying in "success" is a quote answered but not yet
    # committed); a quote the mint refuses there refunds the custody proofs.
    "mint_refuses_quote": ["custody->refunded"],
    "bad_signatures": ["quoted->refunded"],
    # An amountless offer paid its whole value: the invoice is fetched before the ledger knows the redemption.
    "offer_whole_value": SUCCESS,
    "offer_whole_value_fails": ["paying->refunded"],
    # The mint refuses the first settlement (20007): a new quote is written down, then melted against.
    "settle_quote_expired": ["requote", "paid->settled"],
    # Routing uses part of the reserve: the rest goes back with the change as the payment is recorded, and the
    # quote is settled for the units kept (a crash before settled: the melt went through, its answer was lost).
    "reserve_returned": ["paying->paid", "paid->settled"],
    # The same at a mint that cannot settle a quote for fewer units: the units kept are re-quoted first.
    "reserve_returned_requote": ["paying->paid", "requote", "paid->settled"],
}
RESERVE_SCENARIOS = ("reserve_returned", "reserve_returned_requote")
OFFER_SCENARIOS = ("offer_whole_value", "offer_whole_value_fails")
POINTS = [(scenario, f"{when}:{move}") for scenario, moves in SCENARIOS.items()
          for move in moves for when in ("before", "after")]


@pytest.fixture
async def ehash(request, tmp_path):
    """The desks' mint (tests/desk/conftest.py), without partial melts for the scenario that needs a mint without."""
    partial = request.node.callspec.params["scenario"] != "reserve_returned_requote"
    async with running_ehash(tmp_path, partial_melt=partial) as env:
        yield env


@pytest.mark.parametrize(("scenario", "point"), POINTS, ids=[f"{s}-{p}" for s, p in POINTS])
async def test_crash_then_recover(scenario, point, make_desk, ehash, node, tmp_path):
    skew = {"seconds": 0}

    def skew_clock(at: str) -> None:
        if scenario == "invoice_expires_in_custody" and at == "after:quoted->custody":
            skew["seconds"] = 3_400  # the invoice (3600 s) now has 200 s left, below the 300 s the desk needs

    # reserve_returned: 5 % of 100 000 msat, 5 units bought for routing of which a 2 500 msat fee uses 3
    config = make_desk.config(min_invoice_life=300 if scenario == "invoice_expires_in_custody" else 60,
                              maxfee_ppm=50_000 if scenario in RESERVE_SCENARIOS else 10_000)
    crasher = Crasher(point, skew_clock)
    mint = MintClient(ehash.url, desk_key=ehash.desk_key, timeout=2)
    if scenario == "settle_quote_expired":
        expire_first_melt(mint)
    desk = await crasher.desk(config, node, ehash, mint=mint, clock=lambda: time.time() + skew["seconds"])

    amount = 500
    invoice = make_invoice(100_000, expiry=3_600)
    destination = invoice.bolt11
    if scenario in OFFER_SCENARIOS:
        offer = make_offer(None)
        node.register_offer(offer)
        destination = offer.text
    token = await ehash.token(50 if scenario == "too_small" else amount)
    ys = [crypto.proof_y(p.secret) for p in parse_token(token).proofs]
    if scenario == "payment_fails":
        node.script(invoice.payment_hash, Outcome.fail(205))
    if scenario == "offer_whole_value_fails":
        node.fee_msat = 10_000  # above the 1 % reserve the offer's invoice leaves: xpay refuses the route
    if scenario in RESERVE_SCENARIOS:
        node.fee_msat = 2_500
    if scenario == "mint_refuses_quote":
        ehash.proxy.fault("/v1/melt/quote/ehash", "status500")
    if scenario == "mint_refuses_swap":
        ehash.proxy.fault("/v1/swap", "status500")
    if scenario == "bad_signatures":
        ehash.proxy.fault("/v1/swap", "bad_dleq")
        ehash.proxy.fault("/v1/restore", "bad_dleq")

    crashed = False
    try:
        await desk.redeem(token, destination)
    except Crash:
        crashed = True
    except DeskError:
        pass  # a refusal: the crash point lies on this refusal's path
    assert crashed, f"the flow never reached {point}"
    await crasher.bury()

    # A fresh desk, same ledger and seed, healthy mint and node, and a clock past every retry window.
    recovered = await make_desk(clock=lambda: time.time() + skew["seconds"] + 100)
    await assert_invariant(recovered, ehash, node, ys)
    if scenario in RESERVE_SCENARIOS:
        # computed alike whether the payment was recorded before the crash or recovered from the node's record
        (rec,) = await recovered.store.list(limit=10)
        assert rec["fee_msat"] == 2_500 and rec["returned_units"] == 2 and rec["quote_units"] == 103
        # the mint was paid for the units kept at 1 sat a unit, and the epoch's budget grew by that alone
        quote = await ehash.client.get_melt_quote_ehash(rec["quote_id"])
        assert quote.amount_msat == rec["quote_amount_msat"] == 103_000
        (epoch,) = [e for e in await ehash.client.epochs() if e.unit == rec["unit"]]
        assert epoch.redeemed_msat == 103_000
        assert parse_token(rec["change_token"]).amount == amount - 105 + 2

