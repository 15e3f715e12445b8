"""BIP353 names as destinations, end to end: real ehash from the reference mint, the name resolved by the node
stand-in's fetchbip353, its offer's invoice fetched, persisted and paid through ClnNode; the refusals; the crash
points of a name's redemption; the ledger column that keeps the name."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import pytest
from support.crash import Crasher, assert_invariant
from support.ehash import RATE_MSAT
from support.fakenode import Outcome
from support.invoices import make_invoice, make_offer

from hashpool_cln.cashu import crypto
from hashpool_cln.cashu.tokens import parse_token
from hashpool_cln.desk.desk import Crash, Desk
from hashpool_cln.desk.errors import Code, DeskError
from hashpool_cln.desk.store import MIGRATIONS, Store

ONCHAIN = {"onchain": "bc1qztwy6xen3zdtt7z0vrgapmjtfz8acjkfp5fp7l"}


def named_offer(node, address: str = "alice@example.com", amount_msat: int | None = 20_000,
                fixed_msat: int | None = None, *before: dict[str, Any]):
    offer = make_offer(amount_msat)
    node.register_offer(offer)
    instruction: dict[str, Any] = {"offer": offer.text}
    if fixed_msat is not None:
        instruction["offchain_amount_msat"] = fixed_msat
    node.register_name(address, *before, instruction)
    return offer


async def refused(desk: Desk, token: str, invstring: str, code: Code, **kw: Any) -> DeskError:
    with pytest.raises(DeskError) as e:
        await desk.redeem(token, invstring, **kw)
    assert e.value.code is code, e.value.message
    return e.value


async def untouched(desk: Desk, ehash, node, token: str) -> None:
    """Nothing happened: the token is unspent, the ledger empty, nothing paid or fetched."""
    assert set(await ehash.states(token)) == {"UNSPENT"}
    assert await desk.store.list(limit=10) == []
    assert node.attempts == [] and node.calls["fetchinvoice"] == 0


# ------------------------------------------------------------------------------------------ paying a name

async def test_name_with_prefix_resolves_fetches_persists_and_pays_the_offer(desk, ehash, node):
    offer = named_offer(node, "alice@example.com", 20_000)
    token = await ehash.token(100)
    out = await desk.redeem(token, " ₿alice@example.com ", payer_note="thanks")
    assert out["state"] == "settled" and out["destination_kind"] == "bolt12_offer"
    assert out["bip353"] == "₿alice@example.com" and out["amount_msat"] == 20_000
    assert node.complete_count(out["payment_hash"]) == 1
    # asked without the ₿; the invoice request names where the offer came from, as BOLT12 requires
    assert ("fetchbip353", {"address": "alice@example.com"}) in node.requests
    fetch = [p for m, p in node.requests if m == "fetchinvoice"]
    assert fetch == [{"offer": offer.text, "payer_note": "thanks", "bip353": "alice@example.com"}]
    rec = await desk.store.get(out["id"])
    assert rec["destination"] == offer.text and rec["bip353"] == "₿alice@example.com"
    assert rec["invoice"] == node.attempts[0].invstring and rec["payment_hash"] == out["payment_hash"]
    assert (await desk.status(out["id"]))["bip353"] == "₿alice@example.com"
    (listed,) = await desk.redemptions()
    assert listed["bip353"] == "₿alice@example.com" and "change_token" not in listed
    # 20 000 + 1 % reserve = 20.2 sat -> 21 units bought; routing cost 0, so only the payment's 20 are kept
    assert parse_token(out["change_token"]).amount == 100 - 20


async def test_name_without_prefix_and_with_dotted_user(desk, ehash, node):
    named_offer(node, "send.some@satsto.me", 10_000)
    out = await desk.redeem(await ehash.token(100), "send.some@satsto.me")
    assert out["state"] == "settled" and out["bip353"] == "send.some@satsto.me"


async def test_name_is_case_insensitive_and_kept_as_given(desk, ehash, node):
    named_offer(node, "alice@example.com", 10_000)
    out = await desk.redeem(await ehash.token(100), "₿Alice@Example.COM")
    assert out["state"] == "settled" and out["bip353"] == "₿Alice@Example.COM"


async def test_amountless_offer_with_fixed_instruction_amount_is_asked_for_that_amount(desk, ehash, node):
    named_offer(node, "alice@example.com", None, 30_000)
    token = await ehash.token(100)
    out = await desk.redeem(token, "alice@example.com")
    assert out["state"] == "settled" and out["amount_msat"] == 30_000
    assert [p.get("amount_msat") for m, p in node.requests if m == "fetchinvoice"] == [30_000]
    # 30 000 + 300 reserve = 31 units (ceil) bought; routing cost 0, so only the payment's 30 are kept
    assert parse_token(out["change_token"]).amount == 100 - 30
    assert node.calls["xpay"] == 1 and node.calls["sendamount"] == 0


async def test_fixed_amount_equal_to_the_offers_own_is_accepted(desk, ehash, node):
    named_offer(node, "alice@example.com", 30_000, 30_000)
    out = await desk.redeem(await ehash.token(100), "alice@example.com", amount_msat=30_000)
    assert out["state"] == "settled" and out["amount_msat"] == 30_000


async def test_amountless_offer_without_fixed_amount_takes_the_callers_amount(desk, ehash, node):
    named_offer(node, "alice@example.com", None)
    out = await desk.redeem(await ehash.token(100), "alice@example.com", amount_msat=40_000)
    assert out["state"] == "settled" and out["amount_msat"] == 40_000


async def test_amountless_offer_without_any_amount_pays_the_whole_value_less_the_reserve(desk, ehash, node):
    named_offer(node, "alice@example.com", None)
    token = await ehash.token(300)
    out = await desk.redeem(token, "alice@example.com")
    assert out["state"] == "settled" and out["value_msat"] == 300 * RATE_MSAT
    assert out["amount_msat"] == 297_000 and "change_token" not in out
    assert set(await ehash.states(token)) == {"SPENT"}


async def test_first_offer_is_taken_and_onchain_instructions_skipped(desk, ehash, node):
    first = make_offer(10_000)
    second = make_offer(50_000)
    node.register_offer(first)
    node.register_offer(second)
    node.register_name("alice@example.com", ONCHAIN, {"offer": first.text}, {"offer": second.text})
    out = await desk.redeem(await ehash.token(100), "alice@example.com")
    assert out["state"] == "settled" and out["amount_msat"] == 10_000
    assert (await desk.store.get(out["id"]))["destination"] == first.text


async def test_quote_of_a_name_shows_its_offers_payment(desk, ehash, node):
    named_offer(node, "alice@example.com", None, 30_000)
    q = await desk.quote(await ehash.token(100), "₿alice@example.com")
    dest = q["destination"]
    assert dest["kind"] == "bolt12_offer" and dest["payable"] is True and dest["amount_msat"] == 30_000
    assert dest["units_needed"] == 31


async def test_plain_offers_and_invoices_keep_no_name(desk, ehash, node):
    inv = make_invoice(10_000)
    out = await desk.redeem(await ehash.token(100), inv.bolt11)
    assert "bip353" not in out and (await desk.store.get(out["id"]))["bip353"] is None
    assert node.calls["fetchbip353"] == 0


# ---------------------------------------------------------------------------------------------- refusals

async def test_onchain_only_name_is_refused(desk, ehash, node):
    node.register_name("alice@example.com", ONCHAIN, {**ONCHAIN, "onchain_amount_sat": 5})
    token = await ehash.token(100)
    e = await refused(desk, token, "alice@example.com", Code.INVALID_DESTINATION)
    assert "no BOLT12 offer" in e.message and "on-chain" in e.message
    await untouched(desk, ehash, node, token)


async def test_node_without_fetchbip353_says_which_plugin_is_missing(desk, ehash, node):
    node.bip353 = False
    token = await ehash.token(100)
    e = await refused(desk, token, "₿alice@example.com", Code.DESTINATION_UNSUPPORTED)
    assert "cln-bip353" in e.message and "fetchbip353" in e.message and e.data["node_error"] == -32601
    await untouched(desk, ehash, node, token)


@pytest.mark.parametrize(("message", "code"), [
    ('failed to fetch payment instructions: HrnResolutionError("No validated TXT record found")',
     Code.INVALID_DESTINATION),
    ("payment instructions did not contain valid methods", Code.INVALID_DESTINATION),
    ("bip353 dnssec proof not found", Code.INVALID_DESTINATION),
    ('failed to fetch payment instructions: HrnResolutionError("DNSSEC signatures were invalid")',
     Code.INVALID_DESTINATION),
    ("failed to fetch payment instructions: InstructionsExpired", Code.INVALID_DESTINATION),
    ("failed to fetch payment instructions: WrongNetwork", Code.WRONG_NETWORK),
    ("Not supported: amount is for non-Bitcoin currency", Code.DESTINATION_UNSUPPORTED),
    ('failed to fetch payment instructions: HrnResolutionError("DNS Request to dns.google failed")',
     Code.OFFER_UNREACHABLE),
    ('failed to fetch payment instructions: HrnResolutionError("Failed to fetch LN-Address initial well-known '
     'endpoint")', Code.OFFER_UNREACHABLE),
    ("something nobody has seen before", Code.OFFER_UNREACHABLE),
], ids=["no-record", "no-methods", "no-proof", "bad-dnssec", "expired", "wrong-network", "fiat", "dns-down",
        "lnurl-fallback-down", "unknown"])
async def test_lookup_failures_map_to_codes(desk, ehash, node, message, code):
    node.fail_name("alice@example.com", message)
    token = await ehash.token(100)
    e = await refused(desk, token, "alice@example.com", code)
    assert e.data["node_error"] == -32700 and e.data["node_message"] == message
    await untouched(desk, ehash, node, token)


async def test_unknown_name_does_not_resolve(desk, ehash, node):
    token = await ehash.token(100)
    e = await refused(desk, token, "nobody@example.com", Code.INVALID_DESTINATION)
    assert "nobody@example.com" in e.message
    await untouched(desk, ehash, node, token)


async def test_node_not_answering_the_lookup(desk, ehash, node):
    node.script_method("fetchbip353", Outcome.DROP)
    token = await ehash.token(100)
    await refused(desk, token, "alice@example.com", Code.NODE_UNAVAILABLE)
    await untouched(desk, ehash, node, token)


async def test_name_resolving_to_a_bolt11_invoice_is_refused(desk, ehash, node):
    node.register_name("alice@example.com", {"offer": make_invoice(10_000).bolt11})
    token = await ehash.token(100)
    e = await refused(desk, token, "alice@example.com", Code.INVALID_DESTINATION)
    assert "other than a BOLT12 offer" in e.message
    await untouched(desk, ehash, node, token)


async def test_instructions_and_offer_disagreeing_on_the_amount_are_refused(desk, ehash, node):
    named_offer(node, "alice@example.com", 20_000, 25_000)
    token = await ehash.token(100)
    e = await refused(desk, token, "alice@example.com", Code.INVALID_DESTINATION)
    assert e.data == {"instructions_msat": 25_000, "offer_msat": 20_000}
    await untouched(desk, ehash, node, token)


async def test_caller_amount_differing_from_the_fixed_amount_is_refused(desk, ehash, node):
    named_offer(node, "alice@example.com", None, 30_000)
    token = await ehash.token(100)
    e = await refused(desk, token, "alice@example.com", Code.INVALID_PARAMS, amount_msat=31_000)
    assert e.data == {"amount_msat": 31_000, "destination_msat": 30_000}
    await untouched(desk, ehash, node, token)


async def test_recurring_offer_behind_a_name_is_refused_like_any(desk, ehash, node):
    offer = make_offer(10_000, recurrence=True)
    node.register_offer(offer)
    node.register_name("alice@example.com", {"offer": offer.text})
    token = await ehash.token(100)
    await refused(desk, token, "alice@example.com", Code.DESTINATION_UNSUPPORTED)
    await untouched(desk, ehash, node, token)


LONG = "a" * 63
MALFORMED = {
    "empty-user": "@example.com",
    "empty-domain": "alice@",
    "prefix-only": "₿",
    "prefix-and-at": "₿@",
    "double-prefix": "₿₿alice@example.com",
    "two-ats": "alice@bob@example.com",
    "doubled-at": "alice@@example.com",
    "space": "alice@exa mple.com",
    "leading-dot-domain": "alice@.example.com",
    "trailing-dot-domain": "alice@example.com.",
    "doubled-dot": "alice@example..com",
    "leading-dot-user": ".alice@example.com",
    "non-ascii-user": "ålice@example.com",
    "non-ascii-domain": "alice@exämple.com",
    "bang": "alice!@example.com",
    "plus": "alice+tips@example.com",
    "slash": "alice@example.com/pay",
    "label-over-63": f"{'a' * 64}@example.com",
    "domain-label-over-63": f"alice@{'b' * 64}.com",
    "name-over-255": f"{LONG}.{LONG}@{LONG}.{LONG}.com",
    "lightning-prefix": "lightning:alice@example.com",
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_names_are_refused_before_any_node_call(desk, ehash, node, text):
    token = await ehash.token(100)
    before = node.calls.copy()
    e = await refused(desk, token, text, Code.INVALID_DESTINATION)
    assert e.message.startswith("not a BIP353 name")
    assert node.calls == before, "the node was asked about a malformed name"
    await untouched(desk, ehash, node, token)


async def test_longest_valid_name_is_accepted(desk, ehash, node):
    # 255 octets exactly in wire form: user.user._bitcoin-payment.domain.
    domain = f"{LONG}.{LONG}.{'c' * 58}"
    address = f"{'u' * 44}@{domain}"
    assert sum(len(label) + 1 for label in [*address.replace("@", ".user._bitcoin-payment.").split(".")]) + 1 == 255
    named_offer(node, address, 10_000)
    out = await desk.redeem(await ehash.token(100), address)
    assert out["state"] == "settled"
    e = await refused(desk, await ehash.token(100), "u" + address, Code.INVALID_DESTINATION)
    assert "too long" in e.message


async def test_punycode_and_underscores_are_accepted(desk, ehash, node):
    named_offer(node, "xn--80ak6aa92e@dnssec_proof_tests.xn--p1ai", 10_000)
    out = await desk.redeem(await ehash.token(100), "₿xn--80ak6aa92e@dnssec_proof_tests.xn--p1ai")
    assert out["state"] == "settled"


# ------------------------------------------------------------------------------------------- crash points

# A name's redemption is an offer's after the lookup: it passes the same transitions, with the name persisted.
CRASH_POINTS = [f"{when}:{move}" for move in ("->quoted", "quoted->custody", "custody->paying",
                                              "paying->paid", "paid->settled") for when in ("before", "after")]
FAIL_POINTS = ["before:paying->refunded", "after:paying->refunded"]


@pytest.mark.parametrize("point", CRASH_POINTS + FAIL_POINTS)
async def test_crash_then_recover(point, make_desk, ehash, node):
    offer = named_offer(node, "alice@example.com", None, 30_000)
    if point in FAIL_POINTS:
        node.fee_msat = 10_000  # above the 300 msat reserve: xpay finds no route cheap enough
    crasher = Crasher(point)
    desk = await crasher.desk(make_desk.config(), node, ehash)
    token = await ehash.token(100)
    ys = [crypto.proof_y(p.secret) for p in parse_token(token).proofs]
    with pytest.raises(Crash):
        await desk.redeem(token, "₿alice@example.com")
    await crasher.bury()

    recovered = await make_desk(clock=lambda: time.time() + 100)
    await assert_invariant(recovered, ehash, node, ys)
    records = await recovered.store.list(limit=10)
    if records:  # the name survives the crash with the redemption
        assert records[0]["bip353"] == "₿alice@example.com" and records[0]["destination"] == offer.text
        assert (await recovered.status(records[0].id))["bip353"] == "₿alice@example.com"
    assert node.calls["fetchbip353"] == 1, "recovery must not resolve the name again"


# ------------------------------------------------------------------------------------------------ ledger

async def test_a_ledger_from_before_names_gains_the_column(tmp_path):
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(MIGRATIONS[0])
    old.execute("INSERT INTO redemptions (id, state, mint, unit, amount, dest_kind, destination, created_at, "
                "updated_at) VALUES ('r1', 'settled', 'http://m', 'u', 8, 'bolt11', 'lnbc1', 1, 1)")
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()
    store = await Store.open(str(path))
    try:
        rec = await store.get("r1")
        assert rec["bip353"] is None and rec["destination"] == "lnbc1"
        assert await store.pragma("user_version") == len(MIGRATIONS)
    finally:
        await store.close()
