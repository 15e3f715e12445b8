"""Every method through the real plugin process, with the stand-in node and the reference mint on loopback."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from support.fakenode import FakeNode, Outcome
from support.invoices import make_invoice, make_offer
from support.pluginharness import PluginHarness, assert_clean

REDEMPTION_KEYS = {"id", "state", "unit", "amount", "value_msat", "amount_msat", "fee_msat", "payment_hash",
                   "destination_kind", "quote_id", "created_at", "updated_at", "error", "payment_preimage",
                   "change_token", "refund_token", "claim"}
NOTIFICATION_KEYS = {"id", "state", "old_state", "unit", "amount", "amount_msat", "payment_hash"}


def _start(h: PluginHarness, mint, **extra) -> PluginHarness:
    h.getmanifest()
    assert h.init({"hashpool-mint-url": mint.url, "hashpool-mint-key": mint.desk_key,
                   "hashpool-pool": [mint.pool], **extra}) is None
    return h


@pytest.fixture
def plugin(harness: PluginHarness, ehash_mint) -> PluginHarness:
    return _start(harness, ehash_mint)


def test_redeem_by_keyword_and_by_position(plugin: PluginHarness, ehash_mint, node: FakeNode) -> None:
    first, second = ehash_mint.issue_settled([64, 32])
    inv1, inv2 = make_invoice(10_000_000), make_invoice(5_000_000)

    by_name = plugin.call("hashpool-redeem", {"token": first, "invstring": inv1.bolt11}).ok()
    by_position = plugin.call("hashpool-redeem", [second, inv2.bolt11]).ok()

    for result, inv in ((by_name, inv1), (by_position, inv2)):
        assert set(result) <= REDEMPTION_KEYS
        assert result["state"] in ("paid", "settled")
        assert result["payment_hash"] == inv.payment_hash
        assert result["payment_preimage"] == inv.preimage
        assert result["amount_msat"] == inv.amount_msat
        assert result["change_token"].startswith("cashu")
        assert node.complete_count(inv.payment_hash) == 1
    assert by_name["amount"] == 64 and by_position["amount"] == 32


def test_amountless_invoice_pays_amount_msat_or_the_whole_value(plugin: PluginHarness, ehash_mint,
                                                                 node: FakeNode) -> None:
    given, whole = ehash_mint.issue_settled([16, 8])
    inv = make_invoice(None)
    paid = plugin.call("hashpool-redeem", {"token": given, "invstring": inv.bolt11, "amount_msat": "3000sat"}).ok()
    assert paid["amount_msat"] == 3_000_000 and paid["change_token"].startswith("cashu")
    assert node.complete_count(inv.payment_hash) == 1

    # No amount: the token's whole value is sent and the payee bears the routing fee; nothing comes back.
    inv2 = make_invoice(None)
    sent = plugin.call("hashpool-redeem", [whole, inv2.bolt11]).ok()
    assert sent["value_msat"] == 8_000_000
    assert sent["amount_msat"] + sent["fee_msat"] == 8_000_000
    assert "change_token" not in sent
    assert node.complete_count(inv2.payment_hash) == 1


def test_offers_are_paid_through_fetched_invoices(plugin: PluginHarness, ehash_mint, node: FakeNode) -> None:
    fixed, given, whole = ehash_mint.issue_settled([16, 16, 16])
    offer = make_offer(5_000_000)
    node.register_offer(offer)
    paid = plugin.call("hashpool-redeem", {"token": fixed, "invstring": offer.text, "payer_note": "gm"}).ok()
    assert paid["destination_kind"] == "bolt12_offer" and paid["amount_msat"] == 5_000_000
    assert node.complete_count(paid["payment_hash"]) == 1

    any_amount = make_offer(None)
    node.register_offer(any_amount)
    chosen = plugin.call("hashpool-redeem", [given, any_amount.text, 7_000_000]).ok()
    assert chosen["amount_msat"] == 7_000_000 and chosen["change_token"].startswith("cashu")

    # No amount named: the invoice is fetched for the whole value less the routing fee reserve (at most
    # hashpool-maxfee-msat, 50 000 msat by default).
    rest = plugin.call("hashpool-redeem", [whole, any_amount.text]).ok()
    assert 16_000_000 - 50_000 <= rest["amount_msat"] < 16_000_000
    assert "change_token" not in rest
    assert len({paid["payment_hash"], chosen["payment_hash"], rest["payment_hash"]}) == 3
    assert node.complete_count(rest["payment_hash"]) == 1


def test_quote_prices_the_token_and_checks_a_destination(plugin: PluginHarness, ehash_mint) -> None:
    token, _others = ehash_mint.issue_settled([8, 56], msat_per_unit=2_000_000)
    bare = plugin.call("hashpool-quote", [token]).ok()
    assert bare["amount"] == 8 and bare["value_msat"] == 16_000_000
    assert bare["expiry"] > time.time() and bare["rate"]["issued"] == 64
    again = plugin.call("hashpool-quote", [token]).ok()  # a look holds nothing at the mint
    assert again["value_msat"] == bare["value_msat"]
    assert "destination" not in bare

    small = plugin.call("hashpool-quote", {"token": token, "invstring": make_invoice(1_000_000).bolt11}).ok()
    assert small["destination"]["payable"] is True
    too_big = plugin.call("hashpool-quote", {"token": token, "invstring": make_invoice(40_000_000).bolt11}).ok()
    assert too_big["destination"]["payable"] is False and too_big["destination"]["reason"]


def test_status_listing_info_and_settle(plugin: PluginHarness, ehash_mint) -> None:
    (token,) = ehash_mint.issue_settled([64])
    done = plugin.call("hashpool-redeem", [token, make_invoice(2_000_000).bolt11]).ok()

    hidden = plugin.call("hashpool-status", {"id": done["id"]}).ok()
    assert hidden["id"] == done["id"] and "change_token" not in hidden and "claim" not in hidden
    shown = plugin.call("hashpool-status", {"claim": done["claim"]}).ok()
    assert shown["change_token"] == done["change_token"] and "claim" not in shown

    listed = plugin.call("hashpool-redemptions", {}).ok()["redemptions"]
    assert [r["id"] for r in listed] == [done["id"]]
    assert "cashu" not in json.dumps(listed)
    assert plugin.call("hashpool-redemptions", ["refunded"]).ok() == {"redemptions": []}

    info = plugin.call("hashpool-info").ok()
    assert info["mint"] == ehash_mint.url and info["pools"] == [ehash_mint.pool]
    assert info["mint_reachable"] is True
    assert ehash_mint.desk_key not in json.dumps(info)
    # settled right after paying: nothing held, one redemption paid
    assert info["custody"] == {} and info["paid"]["redemptions"] == 1
    assert info["paid"]["amount_msat"] == 2_000_000 and info["paid"]["value_msat"] == done["value_msat"]

    settled = plugin.call("hashpool-settle", {}).ok()
    assert set(settled) == {"settled", "waiting"}

    unknown = plugin.call("hashpool-status", {"id": "no-such-redemption"})
    assert unknown.error is not None and unknown.error["code"] == 3450


def test_desk_errors_keep_their_code_message_and_data(plugin: PluginHarness, ehash_mint) -> None:
    garbage = plugin.call("hashpool-redeem", {"token": "cashuBnot-a-token", "invstring": make_invoice().bolt11})
    assert garbage.error is not None and garbage.error["code"] == 3400
    assert set(garbage.error) <= {"code", "message", "data"} and garbage.error["message"]

    (token,) = ehash_mint.issue_settled([4])
    mainnet = make_invoice(1_000_000, network="bitcoin")
    wrong = plugin.call("hashpool-redeem", {"token": token, "invstring": mainnet.bolt11})
    assert wrong.error is not None and wrong.error["code"] == 3411


def test_setconfig_changes_the_limit_the_next_redemption_sees(plugin: PluginHarness, ehash_mint) -> None:
    (token,) = ehash_mint.issue_settled([64])
    assert plugin.setconfig("hashpool-max-msat", 1_000_000).ok() == {}
    assert plugin.call("hashpool-info").ok()["max_msat"] == 1_000_000
    over = plugin.call("hashpool-redeem", [token, make_invoice(2_000_000).bolt11])
    assert over.error is not None and over.error["code"] == 3421


def test_multi_pool_option_reaches_the_desk(harness: PluginHarness, ehash_mint) -> None:
    other = "03" + "bb" * 32
    _start(harness, ehash_mint, **{"hashpool-pool": [other, ehash_mint.pool]})
    assert harness.call("hashpool-info").ok()["pools"] == [other, ehash_mint.pool]


def test_notifications_follow_each_move_without_secrets(plugin: PluginHarness, ehash_mint) -> None:
    (token,) = ehash_mint.issue_settled([64])
    inv = make_invoice(3_000_000)
    done = plugin.call("hashpool-redeem", [token, inv.bolt11]).ok()

    events = [n["hashpool_redemption"] for n in plugin.custom("hashpool_redemption")]
    mine = [e for e in events if e["id"] == done["id"]]
    states = [e["state"] for e in mine]
    assert states == ["quoted", "custody", "paying", "paid", "settled"], states
    assert [e["old_state"] for e in mine] == [None, *states[:-1]]
    assert all(set(e) <= NOTIFICATION_KEYS for e in mine)
    assert mine[-1]["payment_hash"] == inv.payment_hash and mine[-1]["amount_msat"] == inv.amount_msat
    text = json.dumps(events)
    assert inv.preimage not in text and "cashu" not in text and ehash_mint.desk_key not in text


def test_sigkill_mid_payment_then_restart_pays_once(lightning_dir: Path, node: FakeNode, ehash_mint) -> None:
    (token,) = ehash_mint.issue_settled([64])
    inv = make_invoice(4_000_000)
    # The node takes a few seconds to answer xpay: the plugin dies while the payment is in flight.
    node.script(inv.payment_hash, Outcome(delay=3.0))

    first = _start(PluginHarness(lightning_dir, python=sys.executable).start(), ehash_mint)
    try:
        first.send("hashpool-redeem", {"token": token, "invstring": inv.bolt11})
        first.wait_for(lambda: node.payments(inv.payment_hash), 20, "the payment to start")
        first.kill()
    finally:
        first.close()

    second = _start(PluginHarness(lightning_dir, python=sys.executable).start(), ehash_mint)
    try:
        def finished():
            rows = second.call("hashpool-redemptions", {}).ok()["redemptions"]
            return rows if rows and rows[0]["state"] in ("paid", "settled", "refunded") else None

        (row,) = second.wait_for(finished, 40, "recovery to finish the redemption")
        assert row["state"] in ("paid", "settled")
        assert row["payment_hash"] == inv.payment_hash
        assert node.complete_count(inv.payment_hash) == 1
        assert len(node.payments(inv.payment_hash)) == 1  # never sent a second time
        again = second.call("hashpool-redeem", {"token": token, "invstring": make_invoice(1_000).bolt11})
        assert again.error is not None and again.error["code"] in (3407, 3408)  # the token is spent
    finally:
        second.close()
    assert_clean(first)
    assert_clean(second)


def test_only_the_claim_shows_change_and_refund_tokens(plugin: PluginHarness, ehash_mint, node: FakeNode) -> None:
    chosen = "c1" * 32
    paid_token, failed_token, other = ehash_mint.issue_settled([64, 64, 8])
    paid = plugin.call("hashpool-redeem", {"token": paid_token, "invstring": make_invoice(2_000_000).bolt11,
                                           "claim": chosen}).ok()
    assert paid["claim"] == chosen and paid["change_token"].startswith("cashu")

    failing = make_invoice(3_000_000)
    node.script(failing.payment_hash, Outcome.fail(205))
    refunded = plugin.call("hashpool-redeem", [failed_token, failing.bolt11]).ok()
    drawn = refunded["claim"]
    assert refunded["state"] == "refunded" and len(drawn) == 64 and drawn != chosen
    assert int(drawn, 16) >= 0 and drawn == drawn.lower()

    # The id alone: public fields only, whatever else is asked.
    for rec in (paid, refunded):
        public = plugin.call("hashpool-status", [rec["id"]]).ok()
        assert not {"change_token", "refund_token", "claim"} & set(public)
    assert plugin.call("hashpool-status", {"id": refunded["id"], "claim": drawn}).ok()["refund_token"] == \
        refunded["refund_token"]
    assert plugin.call("hashpool-status", [None, chosen]).ok()["change_token"] == paid["change_token"]

    # A claim of another redemption, or of none, is as unknown as a wrong id.
    for params in ({"id": paid["id"], "claim": drawn}, {"claim": "00" * 32}):
        reply = plugin.call("hashpool-status", params)
        assert reply.error is not None and reply.error["code"] == 3450, params
        assert "cashu" not in json.dumps(reply.error)

    # A claim is good for one redemption only, and the refusal holds nothing.
    again = plugin.call("hashpool-redeem", {"token": other, "invstring": make_invoice(1_000_000).bolt11,
                                            "claim": chosen})
    assert again.error is not None and again.error["code"] == -32602
    assert again.error["message"] == "claim already used"
    assert len(plugin.call("hashpool-redemptions", {}).ok()["redemptions"]) == 2

    # No notification, listing or log line carries a claim.
    text = json.dumps(plugin.notifications) + json.dumps(plugin.call("hashpool-redemptions", {}).ok())
    assert chosen not in text and drawn not in text


def test_an_error_after_the_redemption_began_carries_its_claim(plugin: PluginHarness, ehash_mint) -> None:
    (token,) = ehash_mint.issue_settled([64])
    # The mint's quote ends long before the 30 days hashpool-min-invoice-life now asks for: the redemption is
    # written down, priced, then rejected (3424, the quote expires too soon).
    assert plugin.setconfig("hashpool-min-invoice-life", 30 * 86_400).ok() == {}
    claim = "ab" * 32
    invoice = make_invoice(2_000_000, expiry=365 * 86_400)
    reply = plugin.call("hashpool-redeem", {"token": token, "invstring": invoice.bolt11, "claim": claim})
    assert reply.error is not None and reply.error["code"] == 3424, reply.error
    data = reply.error["data"]
    assert data["claim"] == claim
    rec = plugin.call("hashpool-status", {"id": data["id"], "claim": claim}).ok()
    assert rec["state"] == "rejected" and rec["error"]["code"] == 3424


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_token_over_the_mints_limit_wedges_nothing_across_a_restart(lightning_dir: Path, node: FakeNode,
                                                                      ehash_mint) -> None:
    from hashpool_cln.cashu.tokens import make_token, parse_token

    *ones, token = ehash_mint.issue_settled([1] * 1001 + [64])
    proofs = tuple(p for t in ones for p in parse_token(t).proofs)
    first = parse_token(ones[0])
    big = make_token(first.mint, first.unit, proofs)
    inv = make_invoice(4_000_000)
    node.script(inv.payment_hash, Outcome.PENDING_THEN_COMPLETE)

    one = _start(PluginHarness(lightning_dir, python=sys.executable).start(), ehash_mint)
    try:
        paying = one.call("hashpool-redeem", [token, inv.bolt11]).ok()
        assert paying["state"] == "paying"
        refused = one.call("hashpool-redeem", [big, make_invoice(1_000_000).bolt11])
        assert refused.error is not None and refused.error["code"] == 3409
        assert refused.error["data"] == {"proofs": 1001, "max_inputs": 1000}
        workers = _children(one.proc.pid)  # the large token was read in the worker process
        assert workers
        one.kill()
        deadline = time.monotonic() + 15
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(w) for w in workers), "a worker outlived the plugin"
    finally:
        one.close()

    node.resolve(inv.payment_hash)
    two = _start(PluginHarness(lightning_dir, python=sys.executable).start(), ehash_mint)
    try:
        again = two.call("hashpool-quote", [big])
        assert again.error is not None and again.error["code"] == 3409
        done = two.wait_for(lambda: two.call("hashpool-status", [paying["id"]]).ok()["state"] in ("paid", "settled"),
                            30, "the other redemption to be paid")
        assert done and node.complete_count(inv.payment_hash) == 1
        assert two.call("hashpool-info").ok()["redemptions"]
    finally:
        two.close()
    assert_clean(one)
    assert_clean(two)


def test_a_closed_stdin_closes_the_desk_as_a_shutdown_does(plugin: PluginHarness, ehash_mint,
                                                          lightning_dir: Path) -> None:
    """lightningd gone without a shutdown notification (its end of the pipe closed): the plugin closes its
    ledger itself and exits, rather than leaving the file to the interpreter's exit."""
    token = ehash_mint.issue_settled([16])[0]
    inv = make_invoice(4_000_000)
    assert plugin.call("hashpool-redeem", {"token": token, "invstring": inv.bolt11}).ok()["state"] == "settled"
    wal = lightning_dir / "hashpool" / "desk.sqlite3-wal"
    assert wal.exists()  # the ledger is open: its writes sit in the write-ahead log
    plugin.proc.stdin.close()  # type: ignore[union-attr]
    assert plugin.wait_exit(15) == 0
    assert not wal.exists(), "closed cleanly, sqlite folds the log into the file and removes it"
