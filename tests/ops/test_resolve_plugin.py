"""hashpool-resolve through the real plugin process: declared, schema-checked, each decision and each refusal
answered with its code, and nothing paid."""

from __future__ import annotations

import pytest
from support.fakenode import FakeNode, Outcome
from support.invoices import make_invoice
from support.pluginharness import PluginHarness

ALREADY_PAID = Outcome.error(219, "Already paid this invoice successfully")


@pytest.fixture
def plugin(start_plugin, plugin_node: FakeNode) -> PluginHarness:
    # Every xpay answers "already paid" (also the desk's own re-sends while it waits): each redemption is held.
    plugin_node.script_method("xpay", *[ALREADY_PAID] * 200)
    return start_plugin()


def test_the_method_is_declared_with_its_usage(plugin: PluginHarness) -> None:
    manifest = plugin.getmanifest()
    (method,) = [m for m in manifest["rpcmethods"] if m["name"] == "hashpool-resolve"]
    assert method["usage"].startswith("id decision reason [who] [preimage]")


def test_each_decision_and_each_refusal(plugin: PluginHarness, plugin_mint, plugin_node: FakeNode) -> None:
    first, second = plugin_mint.issue_settled([64, 64])
    inv1, inv2 = make_invoice(10_000_000), make_invoice(10_000_000)
    held1 = plugin.call("hashpool-redeem", [first, inv1.bolt11]).ok()
    held2 = plugin.call("hashpool-redeem", [second, inv2.bolt11]).ok()
    assert held1["state"] == held2["state"] == "paying"
    assert held1["error"]["code"] == 3441

    refusals = [
        ({"id": held1["id"], "decision": "paid"}, -32602),  # no reason
        ({"id": held1["id"], "decision": "maybe", "reason": "x"}, -32602),
        ({"id": held1["id"], "decision": "refund", "reason": "x", "preimage": inv1.preimage}, -32602),
        ({"id": held1["id"], "decision": "refund", "reason": "x", "color": "red"}, -32602),
        ({"id": "nope", "decision": "refund", "reason": "x"}, 3450),
        ({"id": held1["id"], "decision": "paid", "reason": "no preimage known"}, 3452),
        ({"id": held1["id"], "decision": "paid", "reason": "wrong", "preimage": "11" * 32}, 3452),
    ]
    for params, code in refusals:
        reply = plugin.call("hashpool-resolve", params)
        assert reply.error is not None and reply.error["code"] == code, (params, reply.error)

    paid = plugin.call("hashpool-resolve", [held1["id"], "paid", "payee confirmed", "carol", inv1.preimage]).ok()
    assert paid["state"] == "settled" and paid["payment_preimage"] == inv1.preimage
    assert paid["resolution"] == {"decision": "paid", "by": "carol", "at": paid["resolution"]["at"],
                                  "reason": "payee confirmed"}
    refunded = plugin.call("hashpool-resolve", {"id": held2["id"], "decision": "refund",
                                                 "reason": "nothing of ours was paid"}).ok()
    assert refunded["state"] == "refunded" and refunded["resolution"]["by"] == "operator"
    assert "refund_token" not in refunded and "change_token" not in refunded

    for done in (paid, refunded):
        again = plugin.call("hashpool-resolve", {"id": done["id"], "decision": "refund", "reason": "again"})
        assert again.error["code"] == 3451 and again.error["data"]["state"] == done["state"]
    assert plugin_node.complete_count(inv1.payment_hash) == 0 and plugin_node.complete_count(inv2.payment_hash) == 0
    listed = {r["id"]: r["state"] for r in plugin.call("hashpool-redemptions", {}).ok()["redemptions"]}
    assert listed == {held1["id"]: "settled", held2["id"]: "refunded"}
