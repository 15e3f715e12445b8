import sys, time, json
from support.fakenode import FakeNode, Outcome
from support.invoices import make_invoice
from support.pluginharness import PluginHarness

def _start(h, mint):
    h.getmanifest()
    assert h.init({"hashpool-mint-url": mint.url, "hashpool-mint-key": mint.desk_key, "hashpool-pool": [mint.pool]}) is None
    return h

def test_dbg(lightning_dir, node, ehash_mint):
    (token,) = ehash_mint.issue_settled([64])
    inv = make_invoice(4_000_000)
    node.script(inv.payment_hash, Outcome(delay=3.0))
    first = _start(PluginHarness(lightning_dir, python=sys.executable).start(), ehash_mint)
    first.send("hashpool-redeem", {"token": token, "invstring": inv.bolt11})
    first.wait_for(lambda: node.payments(inv.payment_hash), 20, "start")
    first.kill(); first.close()
    print("attempts", [(a.status) for a in node.payments(inv.payment_hash)])
    second = _start(PluginHarness(lightning_dir, python=sys.executable).start(), ehash_mint)
    for i in range(8):
        time.sleep(1)
        print(i, json.dumps(second.call("hashpool-redemptions", {}).ok()), [(a.status) for a in node.payments(inv.payment_hash)])
    print(second.logs())
    second.close()
