"""The plugin inside a real lightningd paying a second node over a real channel, with the reference mint."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

_MISSING = [b for b in ("lightningd", "bitcoind") if shutil.which(b) is None]
if _MISSING:
    pytest.skip(f"{' and '.join(_MISSING)} not on PATH", allow_module_level=True)

from support.pluginharness import PLUGIN, ThreadedMint  # noqa: E402

HOLD_PLUGIN = Path(__file__).parent / "plugins" / "hold_payments.py"



def _plugin_opts(mint: ThreadedMint) -> dict:
    return {"plugin": str(PLUGIN), "hashpool-mint-url": mint.url, "hashpool-mint-key": mint.desk_key,
            "hashpool-pool": mint.pool}


def _pair(node_factory, mint, payee_opts=None):
    l1, l2 = node_factory.line_graph(2, opts=[_plugin_opts(mint), payee_opts or {}], wait_for_announce=True)
    return l1, l2


def test_bolt11_with_amount(node_factory, mint) -> None:
    l1, l2 = _pair(node_factory, mint)
    token, _others = mint.issue_settled([64, 64], msat_per_unit=1_000_000)
    inv = l2.rpc.invoice(10_000_000, "hp-1", "ehash")

    quoted = l1.rpc.call("hashpool-quote", {"token": token, "invstring": inv["bolt11"]})
    assert quoted["value_msat"] == 64_000_000 and quoted["destination"]["payable"] is True

    out = l1.rpc.call("hashpool-redeem", {"token": token, "invstring": inv["bolt11"]})
    assert out["state"] in ("paid", "settled") and out["amount_msat"] == 10_000_000
    paid = l2.rpc.listinvoices("hp-1")["invoices"][0]
    assert paid["status"] == "paid" and paid["payment_preimage"] == out["payment_preimage"]
    assert out["change_token"].startswith("cashu")
    pays = l1.rpc.listpays(inv["bolt11"])["pays"]
    assert [p["status"] for p in pays] == ["complete"]

    # Every other method, through lightningd (pyln-testing checks each answer against doc/schemas).
    assert l1.rpc.call("hashpool-status", [out["id"]])["state"] == out["state"]
    assert [r["id"] for r in l1.rpc.call("hashpool-redemptions", {"limit": 5})["redemptions"]] == [out["id"]]
    assert set(l1.rpc.call("hashpool-settle", {})) == {"settled", "waiting"}
    info = l1.rpc.call("hashpool-info")
    assert info["mint_reachable"] is True and info["network"] == "regtest" and info["pools"] == [mint.pool]

    # Dynamic options through lightningd's setconfig; the mint key stays out of listconfigs.
    l1.rpc.setconfig("hashpool-max-msat", 5_000_000)
    assert l1.rpc.call("hashpool-info")["max_msat"] == 5_000_000
    assert l1.rpc.listconfigs("hashpool-max-msat")["configs"]["hashpool-max-msat"]["value_int"] == 5_000_000
    assert mint.desk_key not in json.dumps(l1.rpc.listconfigs())
    help_text = l1.rpc.help("hashpool-redeem")["help"][0]["command"]
    assert help_text.startswith("hashpool-redeem token invstring [amount_msat]")


def test_bolt11_amountless(node_factory, mint) -> None:
    l1, l2 = _pair(node_factory, mint)
    (token,) = mint.issue_settled([16], msat_per_unit=1_000_000)
    inv = l2.rpc.invoice("any", "hp-any", "ehash")
    out = l1.rpc.call("hashpool-redeem", {"token": token, "invstring": inv["bolt11"], "amount_msat": 5_000_000})
    assert out["amount_msat"] == 5_000_000
    paid = l2.rpc.listinvoices("hp-any")["invoices"][0]
    assert paid["status"] == "paid" and paid["amount_received_msat"] >= 5_000_000


def test_bolt12_offer(node_factory, mint) -> None:
    l1, l2 = _pair(node_factory, mint)
    (token,) = mint.issue_settled([32], msat_per_unit=1_000_000)
    offer = l2.rpc.offer(7_000_000, "ehash offer")
    out = l1.rpc.call("hashpool-redeem", {"token": token, "invstring": offer["bolt12"], "payer_note": "gm"})
    assert out["state"] in ("paid", "settled") and out["destination_kind"] == "bolt12_offer"
    assert l2.rpc.listoffers(offer["offer_id"])["offers"][0]["used"] is True


def test_unreachable_payee_is_refunded(node_factory, mint) -> None:
    l1, l2 = _pair(node_factory, mint)
    stranger = node_factory.get_node()  # no channel to it: no route
    (token,) = mint.issue_settled([32], msat_per_unit=1_000_000)
    inv = stranger.rpc.invoice(3_000_000, "hp-x", "unreachable")
    out = l1.rpc.call("hashpool-redeem", {"token": token, "invstring": inv["bolt11"]})
    assert out["state"] == "refunded" and out["error"]["code"] == 3440
    assert "payment_preimage" not in out
    # The units the payment would have used come back as a refund; the rest was change from the start.
    assert out["refund_token"].startswith("cashu") and out["change_token"].startswith("cashu")
    assert stranger.rpc.listinvoices("hp-x")["invoices"][0]["status"] == "unpaid"

    listed = l1.rpc.call("hashpool-redemptions", {"state": "refunded"})["redemptions"]
    assert [r["id"] for r in listed] == [out["id"]]
    shown = l1.rpc.call("hashpool-status", {"id": out["id"], "claim": out["claim"]})
    assert shown["refund_token"] == out["refund_token"]
    # The refund is real ehash: the desk buys it back for a payment that can be routed.
    l2_inv = l2.rpc.invoice(1_000_000, "hp-refund", "refund works")
    again = l1.rpc.call("hashpool-redeem", {"token": out["refund_token"], "invstring": l2_inv["bolt11"]})
    assert again["state"] in ("paid", "settled")
    assert l2.rpc.listinvoices("hp-refund")["invoices"][0]["status"] == "paid"


def test_plugin_killed_while_htlc_held_recovers_and_pays_once(node_factory, mint, executor) -> None:
    l1, l2 = _pair(node_factory, mint, payee_opts={"plugin": str(HOLD_PLUGIN)})
    (token,) = mint.issue_settled([64], msat_per_unit=1_000_000)
    inv = l2.rpc.invoice(6_000_000, "hp-held", "held")
    executor.submit(l1.rpc.call, "hashpool-redeem", {"token": token, "invstring": inv["bolt11"]})
    l2.daemon.wait_for_log("holding payment hp-held")

    pid = _plugin_pid(l1)
    os.kill(pid, signal.SIGKILL)
    l1.daemon.wait_for_log(r"plugin-hashpool-redeem.py: Killing plugin: exited during normal operation")
    l1.rpc.plugin_start(str(PLUGIN), **{k: v for k, v in _plugin_opts(mint).items() if k != "plugin"})

    (Path(l2.daemon.lightning_dir) / "regtest" / "release").touch()
    deadline = time.time() + 60
    while time.time() < deadline:
        rows = l1.rpc.call("hashpool-redemptions", {})["redemptions"]
        if rows and rows[0]["state"] in ("paid", "settled", "refunded"):
            break
        time.sleep(1)
    assert rows[0]["state"] in ("paid", "settled")
    assert l2.rpc.listinvoices("hp-held")["invoices"][0]["status"] == "paid"
    assert len([p for p in l1.rpc.listpays(inv["bolt11"])["pays"] if p["status"] == "complete"]) == 1


def _plugin_pid(node) -> int:
    """The pid of our plugin process among lightningd's children (lightningd's own command line names the plugin
    too, in --plugin=)."""
    parent = node.daemon.proc.pid
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and str(PLUGIN).encode() in cmd:
            return int(entry)
    raise AssertionError("the plugin process was not found")
