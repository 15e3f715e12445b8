"""The plugin inside a real lightningd paying a second node over a real channel, with the reference mint."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest

_MISSING = [b for b in ("lightningd", "bitcoind") if shutil.which(b) is None]
if _MISSING:
    pytest.skip(f"{' and '.join(_MISSING)} not on PATH", allow_module_level=True)

from support.pluginharness import PLUGIN, EhashMint  # noqa: E402

HOLD_PLUGIN = Path(__file__).parent / "plugins" / "hold_payments.py"


@pytest.fixture
def mint(tmp_path: Path):
    m = EhashMint(tmp_path / "mint").start()
    yield m
    m.stop()


def _plugin_opts(mint: EhashMint) -> dict:
    return {"plugin": str(PLUGIN), "hashpool-mint-url": mint.url, "hashpool-mint-key": mint.desk_key,
            "hashpool-pool": mint.pool}


def _pair(node_factory, mint, payee_opts=None):
    l1, l2 = node_factory.line_graph(2, opts=[_plugin_opts(mint), payee_opts or {}], wait_for_announce=True)
    return l1, l2


def test_bolt11_with_amount(node_factory, mint) -> None:
    l1, l2 = _pair(node_factory, mint)
    (token,) = mint.issue_settled([64], msat_per_unit=1_000_000)
    inv = l2.rpc.invoice(10_000_000, "hp-1", "ehash")
    out = l1.rpc.call("hashpool-redeem", {"token": token, "invstring": inv["bolt11"]})
    assert out["state"] in ("paid", "settled")
    assert l2.rpc.listinvoices("hp-1")["invoices"][0]["status"] == "paid"
    assert out["change_token"].startswith("cashu")


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
    l1, _l2 = _pair(node_factory, mint)
    stranger = node_factory.get_node()  # no channel to it: no route
    (token,) = mint.issue_settled([32], msat_per_unit=1_000_000)
    inv = stranger.rpc.invoice(3_000_000, "hp-x", "unreachable")
    with pytest.raises(Exception) as failure:
        l1.rpc.call("hashpool-redeem", {"token": token, "invstring": inv["bolt11"]})
    error = failure.value.error
    assert error["code"] == 3440 and "Traceback" not in str(error)
    row = l1.rpc.call("hashpool-redemptions", {"state": "refunded"})["redemptions"][0]
    refund = l1.rpc.call("hashpool-status", {"id": row["id"], "reveal_tokens": True})["refund_token"]
    # The refund is real ehash: the desk buys it back for a payment that can be routed.
    l2_inv = _l2.rpc.invoice(1_000_000, "hp-refund", "refund works")
    assert l1.rpc.call("hashpool-redeem", {"token": refund, "invstring": l2_inv["bolt11"]})["state"] in (
        "paid", "settled")


def test_plugin_killed_while_htlc_held_recovers_and_pays_once(node_factory, mint, executor) -> None:
    l1, l2 = _pair(node_factory, mint, payee_opts={"plugin": str(HOLD_PLUGIN)})
    (token,) = mint.issue_settled([64], msat_per_unit=1_000_000)
    inv = l2.rpc.invoice(6_000_000, "hp-held", "held")
    executor.submit(l1.rpc.call, "hashpool-redeem", {"token": token, "invstring": inv["bolt11"]})
    l2.daemon.wait_for_log("holding payment hp-held")

    pid = _plugin_pid(l1)
    os.kill(pid, signal.SIGKILL)
    l1.daemon.wait_for_log("hashpool-redeem.py.*exited|Killing plugin|plugin-hashpool-redeem.py: .*")
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
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if any(part.endswith(b"hashpool-redeem.py") for part in cmd) and cwd.startswith(node.daemon.lightning_dir):
            return int(entry)
    raise AssertionError("the plugin process was not found")
