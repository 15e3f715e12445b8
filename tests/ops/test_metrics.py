"""Prometheus metrics: the option's address rules, and the figures scraped over HTTP from the real plugin process
after a redemption and after a refund."""

from __future__ import annotations

import re
import socket
import sys
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.fakenode import FakeNode, Outcome
from support.invoices import make_invoice
from support.pluginharness import PluginHarness

from hashpool_cln.desk.states import State
from hashpool_cln.plugin.metrics import PHASES, Address, parse_address, resolve
from hashpool_cln.plugin.options import OptionError


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:9750", Address("127.0.0.1", 9750)),
    ("127.0.0.2:0", Address("127.0.0.2", 0)),
    ("localhost:9750", Address("localhost", 9750)),
    ("[::1]:9750", Address("::1", 9750)),
])
def test_loopback_addresses_are_accepted(text: str, expected: Address) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["0.0.0.0:9750", "10.1.2.3:9750", "[::]:9750", "metrics.example:9750"])
def test_other_hosts_need_the_public_option(text: str) -> None:
    with pytest.raises(OptionError, match="hashpool-metrics-public"):
        parse_address(text)
    assert parse_address(text, public=True).port == 9750
    assert resolve({"hashpool-metrics": text, "hashpool-metrics-public": "true"}).port == 9750
    with pytest.raises(OptionError):
        resolve({"hashpool-metrics": text, "hashpool-metrics-public": False})


@pytest.mark.parametrize("text", ["9750", "127.0.0.1", "127.0.0.1:", ":9750", "127.0.0.1:65536", "127.0.0.1:x",
                                  "127.0.0.1:-1", 9750])
def test_malformed_addresses_are_refused(text) -> None:
    with pytest.raises(OptionError, match="hashpool-metrics"):
        parse_address(text)


def test_metrics_are_off_unless_asked_for() -> None:
    assert resolve({}) is None and resolve({"hashpool-metrics": None}) is None
    with pytest.raises(OptionError):
        resolve({"hashpool-metrics": "127.0.0.1:9750", "hashpool-metrics-public": "maybe"})


def test_a_public_address_without_the_option_disables_the_plugin(plugin_dir, plugin_node, plugin_mint) -> None:
    h = PluginHarness(plugin_dir, python=sys.executable).start()
    try:
        h.getmanifest()
        answer = h.init({"hashpool-mint-url": plugin_mint.url, "hashpool-pool": [plugin_mint.pool],
                         "hashpool-metrics": "0.0.0.0:9750"})
        assert "not a loopback address" in answer["disable"]
    finally:
        h.close()


# --- scraped from the plugin process ----------------------------------------------------------------------------


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=")  # the text exposition format
        text = resp.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def label_values(samples) -> set[str]:
    return {v for _, labels in samples for k, v in labels if k != "le"}


def serve(start_plugin) -> tuple[PluginHarness, str]:
    h = start_plugin(**{"hashpool-metrics": "127.0.0.1:0"})
    line = h.wait_log("metrics served on")
    url = re.search(r"http://\S+", line).group(0)
    h.wait_for(lambda: value(scrape(url), "hashpool_mint_probe_seconds_count") >= 1, 30, "the desk and a probe")
    return h, url


@pytest.fixture
def served(start_plugin) -> tuple[PluginHarness, str]:
    return serve(start_plugin)


def test_metrics_after_a_redemption_and_after_a_refund(served, plugin_mint, plugin_node: FakeNode) -> None:
    h, url = served
    plugin_node.fee_msat = 2_000
    paid_token, refunded_token = plugin_mint.issue_settled([64, 32])
    inv = make_invoice(10_000_000)
    paid = h.call("hashpool-redeem", [paid_token, inv.bolt11]).ok()
    assert paid["state"] == "settled" and paid["fee_msat"] == 2_000

    after_pay = scrape(url)
    assert value(after_pay, "hashpool_redemptions", state="settled") == 1
    assert all(value(after_pay, "hashpool_redemptions", state=s.value) == 0 for s in State if s is not State.SETTLED)
    assert value(after_pay, "hashpool_paid_redemptions_total") == 1
    assert value(after_pay, "hashpool_paid_msat_total") == 10_000_000
    assert value(after_pay, "hashpool_paid_fees_msat_total") == 2_000
    assert value(after_pay, "hashpool_paid_value_msat_total") == paid["value_msat"]
    assert value(after_pay, "hashpool_payments_in_flight") == 0
    assert value(after_pay, "hashpool_redemption_outcomes_total", outcome="paid") == 1
    assert value(after_pay, "hashpool_redemption_outcomes_total", outcome="settled") == 1
    assert value(after_pay, "hashpool_redemption_outcomes_total", outcome="refunded") == 0
    for phase in PHASES:
        assert value(after_pay, "hashpool_phase_seconds_count", phase=phase) == 1, phase
        assert value(after_pay, "hashpool_phase_seconds_sum", phase=phase) > 0, phase
    assert not [k for k in after_pay if k[0].startswith("hashpool_custody_")], "settled: nothing held"
    assert value(after_pay, "hashpool_mint_up") == 1
    assert value(after_pay, "hashpool_mint_probe_seconds_count") >= 1
    assert value(after_pay, "hashpool_recovery_runs_total") >= 1
    assert value(after_pay, "hashpool_desk_seconds_total", category="mint") > 0

    plugin_node.script_method("xpay", Outcome.fail(205))
    refunded = h.call("hashpool-redeem", [refunded_token, make_invoice(5_000_000).bolt11]).ok()
    assert refunded["state"] == "refunded" and refunded["error"]["code"] == 3440
    after_refund = scrape(url)
    assert value(after_refund, "hashpool_redemptions", state="refunded") == 1
    assert value(after_refund, "hashpool_redemptions", state="settled") == 1
    assert value(after_refund, "hashpool_redemption_outcomes_total", outcome="refunded") == 1
    assert value(after_refund, "hashpool_redemption_errors_total", code="3440") == 1
    assert value(after_refund, "hashpool_paid_redemptions_total") == 1
    assert value(after_refund, "hashpool_paid_msat_total") == 10_000_000
    assert value(after_refund, "hashpool_phase_seconds_count", phase="pay") == 2
    assert value(after_refund, "hashpool_phase_seconds_count", phase="settle") == 1
    assert value(after_refund, "hashpool_phase_seconds_count", phase="intake") == 2

    # No id, token, payment hash or invoice in any label: only states, outcomes, phases, codes, units, categories.
    allowed = {s.value for s in State} | set(PHASES) | {"3440", "crypto", "sqlite", "mint", "node"}
    leaked = label_values(after_refund) - allowed
    assert leaked == set(), leaked
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    for secret in (paid["id"], paid["payment_hash"], inv.preimage, paid_token[:40], refunded_token[:40]):
        assert secret not in text


def test_custody_held_while_a_payment_is_in_flight_then_recovery(start_plugin, plugin_mint,
                                                                 plugin_node: FakeNode) -> None:
    h, url = serve(start_plugin)
    (token,) = plugin_mint.issue_settled([64])
    inv = make_invoice(10_000_000)
    plugin_node.script(inv.payment_hash, Outcome.PENDING_THEN_COMPLETE)
    out = h.call("hashpool-redeem", [token, inv.bolt11]).ok()
    assert out["state"] == "paying"
    held = scrape(url)
    assert value(held, "hashpool_payments_in_flight") == 1
    assert value(held, "hashpool_redemptions", state="paying") == 1
    units = value(held, "hashpool_custody_units", unit=out["unit"])
    assert 10 <= units < 64  # what the payment and its reserve need; the rest went back as change
    assert value(held, "hashpool_custody_redemptions", unit=out["unit"]) == 1
    assert value(held, "hashpool_custody_proofs", unit=out["unit"]) >= 1
    plugin_node.resolve(inv.payment_hash, "complete")
    # The payment ends while the plugin is down: the recovery at the next start finishes the redemption.
    h.shutdown()
    assert h.wait_exit() == 0
    _, url = serve(start_plugin)
    done = scrape(url)
    assert value(done, "hashpool_redemptions", state="settled") == 1
    assert value(done, "hashpool_payments_in_flight") == 0
    assert value(done, "hashpool_recovery_runs_total") >= 1
    assert value(done, "hashpool_recovery_moves_total", state="paid") == 1
    assert value(done, "hashpool_recovery_moves_total", state="settled") == 1
    assert value(done, "hashpool_redemption_outcomes_total", outcome="paid") == 1  # counted by this process
    assert value(done, "hashpool_paid_msat_total") == 10_000_000  # from the ledger
    assert not [k for k in done if k[0].startswith("hashpool_custody_")]


def test_a_taken_port_leaves_the_desk_running_without_metrics(start_plugin) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        h = start_plugin(**{"hashpool-metrics": f"127.0.0.1:{port}"})
        assert "metrics not served on" in h.wait_log("metrics not served")
        assert h.call("hashpool-info").ok()["mint_reachable"] is True
