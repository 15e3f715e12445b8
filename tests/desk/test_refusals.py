"""Refusals: bad tokens before any network call, policy limits, and mint faults that lose nothing."""

from __future__ import annotations

import asyncio
import json
import secrets

import pytest
from coincurve import PrivateKey
from support.invoices import make_invoice, make_offer

from hashpool_cln.cashu.amounts import split_amount
from hashpool_cln.cashu.tokens import make_token, parse_token
from hashpool_cln.desk.errors import Code, DeskError


async def refused(coro) -> DeskError:
    with pytest.raises(DeskError) as e:
        await coro
    return e.value


def p2pk_secret(pubkey: str) -> str:
    return json.dumps(["P2PK", {"nonce": secrets.token_hex(16), "data": pubkey, "tags": []}])


def htlc_secret() -> str:
    return json.dumps(["HTLC", {"nonce": secrets.token_hex(16), "data": secrets.token_hex(32), "tags": []}])


# --- tokens refused before any swap or payment ----------------------------------------------------------------


async def _assert_no_swap_no_node(ehash, node):
    assert ehash.proxy.seen["/v1/swap"] == 0
    assert ehash.proxy.seen["/v1/melt/quote/ehash"] == 0
    assert sum(node.calls.values()) == node.calls["getinfo"], node.calls


async def test_wrong_mint(desk, ehash, node):
    token = await ehash.token(100, mint="http://127.0.0.1:1")
    err = await refused(desk.redeem(token, make_invoice(10_000).bolt11))
    assert err.code is Code.UNKNOWN_MINT
    await _assert_no_swap_no_node(ehash, node)


async def test_wrong_pool(make_desk, ehash, node):
    desk = await make_desk(pools=["02" + "33" * 32])
    err = await refused(desk.redeem(await ehash.token(100), make_invoice(10_000).bolt11))
    assert err.code is Code.UNIT_NOT_ALLOWED
    await _assert_no_swap_no_node(ehash, node)


async def test_unsettled_epoch(desk, ehash, node):
    proofs = await ehash.issue(6)  # a share of the epoch still open
    token = make_token(ehash.url, ehash.open_unit, proofs)
    err = await refused(desk.redeem(token, make_invoice(10_000).bolt11))
    assert err.code is Code.EPOCH_NOT_REDEEMABLE and err.data["epoch_state"] == "open"
    await _assert_no_swap_no_node(ehash, node)


async def test_expired_keyset(desk, ehash, node):
    ehash.proxy.fault("/v1/keysets", "expired_keyset")
    err = await refused(desk.redeem(await ehash.token(100), make_invoice(10_000).bolt11))
    assert err.code is Code.KEYSET_REFUSED
    await _assert_no_swap_no_node(ehash, node)


async def test_p2pk_to_a_foreign_key(desk, ehash, node):
    foreign = PrivateKey().public_key.format().hex()
    token = await ehash.token(100, secret_for=lambda _a: p2pk_secret(foreign))
    err = await refused(desk.redeem(token, make_invoice(10_000).bolt11))
    assert err.code is Code.CONDITION_REFUSED
    await _assert_no_swap_no_node(ehash, node)


async def test_htlc(desk, ehash, node):
    token = await ehash.token(100, secret_for=lambda _a: htlc_secret())
    err = await refused(desk.redeem(token, make_invoice(10_000).bolt11))
    assert err.code is Code.CONDITION_REFUSED
    await _assert_no_swap_no_node(ehash, node)


async def test_a_wrong_dleq_on_a_genuine_proof_is_not_the_desks_concern(desk, ehash, node):
    # The swap proves the proofs: a DLEQ proof is the wallet's check, and a wrong one on a genuine proof does not
    # stop the redemption (a forged proof fails at the swap: test_hostile).
    token = parse_token(await ehash.token(100))
    bad = token.proofs[0]
    bad = type(bad)(bad.amount, bad.id, bad.secret, bad.C, dleq=type(bad.dleq)(bad.dleq.e, bad.dleq.e, bad.dleq.r))
    odd = make_token(token.mint, token.unit, (bad, *token.proofs[1:]))
    assert (await desk.redeem(odd, make_invoice(10_000).bolt11))["state"] == "settled"


async def test_garbage_token(desk, ehash, node):
    err = await refused(desk.redeem("cashuBnotatoken", make_invoice(10_000).bolt11))
    assert err.code is Code.INVALID_TOKEN
    await _assert_no_swap_no_node(ehash, node)


async def test_p2pk_to_the_desk_key_is_accepted(desk, ehash, node):
    token = await ehash.token(200, secret_for=lambda _a: p2pk_secret(desk.p2pk_pubkey))
    out = await desk.redeem(token, make_invoice(10_000).bolt11)
    assert out["state"] == "settled"


# --- policy ----------------------------------------------------------------------------------------------------


async def test_over_the_per_redemption_maximum(make_desk, ehash, node):
    desk = await make_desk(max_msat=50_000)
    err = await refused(desk.redeem(await ehash.token(200), make_invoice(60_000).bolt11))
    assert err.code is Code.OVER_LIMIT
    assert ehash.proxy.seen["/v1/swap"] == 0


async def test_epoch_budget_at_the_desk(make_desk, ehash, node):
    desk = await make_desk(epoch_budget_msat=150_000)
    first = await desk.redeem(await ehash.token(200), make_invoice(100_000).bolt11)
    assert first["state"] == "settled"
    token = await ehash.token(200)
    err = await refused(desk.redeem(token, make_invoice(100_000).bolt11))
    assert err.code is Code.EPOCH_BUDGET_EXHAUSTED
    assert set(await ehash.states(token)) == {"UNSPENT"}
    assert (await desk.status(err.data["id"]))["state"] == "rejected"


async def test_fee_cap(desk, ehash, node):
    err = await refused(desk.redeem(await ehash.token(200), make_invoice(100_000).bolt11, maxfee_msat=1_001))
    assert err.code is Code.FEE_TOO_HIGH


async def test_expiring_invoice(desk, ehash, node):
    err = await refused(desk.redeem(await ehash.token(200), make_invoice(10_000, expiry=30).bolt11))
    assert err.code is Code.DESTINATION_EXPIRED


async def test_wrong_network(desk, ehash, node):
    err = await refused(desk.redeem(await ehash.token(200), make_invoice(10_000, network="bitcoin").bolt11))
    assert err.code is Code.WRONG_NETWORK


async def test_recurring_offer(desk, ehash, node):
    offer = make_offer(10_000, recurrence=True)
    node.register_offer(offer)
    err = await refused(desk.redeem(await ehash.token(200), offer.text))
    assert err.code is Code.DESTINATION_UNSUPPORTED
    assert node.calls["fetchinvoice"] == 0


async def test_fiat_offer(desk, ehash, node):
    offer = make_offer(1_000, currency="USD")
    node.register_offer(offer)
    err = await refused(desk.redeem(await ehash.token(200), offer.text))
    assert err.code is Code.DESTINATION_UNSUPPORTED
    assert node.calls["fetchinvoice"] == 0


async def test_token_worth_less_than_the_payment(desk, ehash, node):
    token = await ehash.token(50)
    err = await refused(desk.redeem(token, make_invoice(100_000).bolt11))
    assert err.code is Code.INSUFFICIENT_VALUE
    assert set(await ehash.states(token)) == {"UNSPENT"}


# --- mint faults: a clear error, nothing lost ------------------------------------------------------------------


async def _nothing_lost(desk, ehash, node, token, err, invoice):
    """The caller's token is untouched, or it was paid, or a refund token was given; never lost."""
    assert node.complete_count(invoice.payment_hash) <= 1
    states = set(await ehash.states(token))
    rid = err.data.get("id")
    if rid is None:
        assert states == {"UNSPENT"}
        return
    rec = await desk.status(rid, err.data["claim"])
    if rec["state"] == "rejected":
        assert states == {"UNSPENT"}
    elif rec["state"] == "refunded":
        assert set(await ehash.states(rec["refund_token"])) == {"UNSPENT"}
    else:
        # Waiting for the mint: recovery decides (see below). In custody (the quote's answer never came), the
        # next round asks again under the same reference and pays.
        assert rec["state"] in ("quoted", "custody"), rec
        if rec["state"] == "custody":
            from hashpool_cln.desk.recovery import reconcile

            await reconcile(desk)
            assert (await desk.status(rid))["state"] == "settled"
            assert node.complete_count(invoice.payment_hash) == 1


@pytest.mark.parametrize("where", ["/v1/keysets", "/v1/ehash/epochs", "/v1/melt/quote/ehash", "/v1/swap"])
async def test_mint_down(desk, ehash, node, where):
    token = await ehash.token(200)
    inv = make_invoice(10_000)
    desk.catalog.clear()
    ehash.proxy.fault(where, "drop_before", times=2)
    err = await refused(desk.redeem(token, inv.bolt11))
    assert err.code in (Code.MINT_UNAVAILABLE, Code.MINT_REFUSED)
    await _nothing_lost(desk, ehash, node, token, err, inv)


async def test_swap_answer_lost_is_recovered_by_replay(desk, ehash, node):
    ehash.proxy.fault("/v1/swap", "drop_after")
    inv = make_invoice(10_000)
    out = await desk.redeem(await ehash.token(200), inv.bolt11)
    assert out["state"] == "settled" and ehash.proxy.seen["/v1/swap"] == 2


async def test_swap_answers_lost_twice_are_recovered_by_restore(desk, ehash, node):
    ehash.proxy.fault("/v1/swap", "drop_after", times=2)
    inv = make_invoice(10_000)
    out = await desk.redeem(await ehash.token(200), inv.bolt11)
    assert out["state"] == "settled" and ehash.proxy.seen["/v1/restore"] == 1
    assert set(await ehash.states(out["change_token"])) == {"UNSPENT"}


async def test_mint_slow_past_timeout_then_recovered(make_desk, ehash, node):
    from hashpool_cln.desk.recovery import reconcile
    desk = await make_desk(mint_timeout=1.0)
    token = await ehash.token(200)
    inv = make_invoice(10_000)
    ehash.proxy.fault("/v1/swap", "slow", times=2, seconds=1.5)
    ehash.proxy.fault("/v1/restore", "slow", seconds=1.5)
    err = await refused(desk.redeem(token, inv.bolt11))
    assert err.code is Code.MINT_UNAVAILABLE and err.data["state"] == "quoted"
    assert (await desk.status(err.data["id"]))["state"] == "quoted"
    await asyncio.sleep(2)  # the slow requests reach the mint after all
    await reconcile(desk)  # the mint is healthy again: restore finds the outputs
    rec = await desk.status(err.data["id"], err.data["claim"])
    assert rec["state"] == "settled" and node.complete_count(inv.payment_hash) == 1


async def test_mint_500_on_swap_rejects_untouched(desk, ehash, node):
    token = await ehash.token(200)
    inv = make_invoice(10_000)
    ehash.proxy.fault("/v1/swap", "status500")
    err = await refused(desk.redeem(token, inv.bolt11))
    assert err.code is Code.MINT_REFUSED
    assert set(await ehash.states(token)) == {"UNSPENT"}
    assert (await desk.status(err.data["id"]))["state"] == "rejected"


async def test_mint_garbage_after_swap_recovers(desk, ehash, node):
    ehash.proxy.fault("/v1/swap", "garbage_after", times=2)
    inv = make_invoice(10_000)
    out = await desk.redeem(await ehash.token(200), inv.bolt11)
    assert out["state"] == "settled"


async def test_bad_dleq_everywhere_refunds(desk, ehash, node):
    token = await ehash.token(200)
    inv = make_invoice(10_000)
    ehash.proxy.fault("/v1/swap", "bad_dleq")
    ehash.proxy.fault("/v1/restore", "bad_dleq")
    out = await desk.redeem(token, inv.bolt11)
    assert out["state"] == "refunded" and node.complete_count(inv.payment_hash) == 0
    refund = parse_token(out["refund_token"])
    assert refund.amount == 200 and set(await ehash.states(out["refund_token"])) == {"UNSPENT"}


async def test_keys_not_matching_their_id(desk, ehash, node):
    token = await ehash.token(200)
    desk.mint._keys.clear()
    ehash.proxy.fault("/v1/keys/", "bad_keys")
    err = await refused(desk.redeem(token, make_invoice(10_000).bolt11))
    assert err.code is Code.MINT_REFUSED
    assert set(await ehash.states(token)) == {"UNSPENT"} and ehash.proxy.seen["/v1/swap"] == 0


def test_split_is_what_the_tests_assume():
    assert split_amount(200) == [8, 64, 128]
