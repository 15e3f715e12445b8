"""ClnNode.getinfo / decode / fetchinvoice against the stand-in node."""

from __future__ import annotations

import time

import pytest
from support.fakenode import FakeNode, Outcome
from support.invoices import PAYEE_ID, make_invoice, make_offer

from hashpool_cln.lightning.clnrpc import ClnNode, NodeProtocolError
from hashpool_cln.lightning.port import NodeError, NodeUnavailable


async def test_getinfo(node: FakeNode, cln: ClnNode) -> None:
    info = await cln.getinfo()
    assert info.id == node.id and len(info.id) == 66
    assert info.network == "regtest"
    assert info.blockheight == 500


async def test_decode_bolt11_with_amount(cln: ClnNode) -> None:
    inv = make_invoice(123_456, expiry=600, description="two coffees")
    d = await cln.decode(inv.bolt11)
    assert d.kind == "bolt11"
    assert d.invstring == inv.bolt11
    assert d.network == "regtest"
    assert d.amount_msat == 123_456
    assert d.payment_hash == inv.payment_hash
    assert d.payee == PAYEE_ID
    assert d.created_at == inv.created_at
    assert d.expires_at == inv.created_at + 600
    assert d.description == "two coffees"
    assert d.valid and not d.recurring and d.currency is None


async def test_decode_amountless_bolt11_and_uri_prefix(cln: ClnNode) -> None:
    inv = make_invoice(None)
    d = await cln.decode("lightning:" + inv.bolt11)
    assert d.amount_msat is None
    assert d.payment_hash == inv.payment_hash


@pytest.mark.parametrize(("network", "node_network", "expected"), [
    ("bitcoin", "regtest", "bitcoin"),
    ("signet", "regtest", "signet"),
    ("testnet", "regtest", "testnet"),
    ("testnet4", "testnet4", "testnet4"),  # "tb" is testnet4 for a testnet4 node
    ("testnet", "testnet", "testnet"),
])
async def test_decode_bolt11_network(tmp_path, network: str, node_network: str, expected: str) -> None:
    async with FakeNode(tmp_path / "rpc", network=node_network) as node:
        d = await ClnNode(node.rpc_path).decode(make_invoice(1000, network=network).bolt11)
    assert d.network == expected


async def test_decode_unparsable_is_node_error(cln: ClnNode) -> None:
    with pytest.raises(NodeError) as e:
        await cln.decode("lnbcrt1notaninvoice")
    assert e.value.method == "decode" and e.value.code == -32602


async def test_decode_other_types_refused(node: FakeNode, cln: ClnNode) -> None:
    node.script_method("decode", Outcome.reply({"type": "rune", "valid": True, "string": "x", "restrictions": []}))
    with pytest.raises(NodeError, match="not a BOLT11 invoice or BOLT12 offer/invoice but a rune") as e:
        await cln.decode("tU-RLjMiDpY2U0o3W1oFowar36RFGpWloPbW9-RuZdo9MyZpZD0wMjRiOWExZmE4ZTAw")
    assert e.value.code == -32602


@pytest.mark.parametrize("reply", [
    {"valid": True},  # no type
    {"type": "bolt11 invoice", "valid": True, "currency": "bcrt", "created_at": 1, "expiry": 60,
     "payee": PAYEE_ID, "payment_hash": "00" * 32, "amount_msat": "1000msat"},  # amount not an integer
    {"type": "bolt11 invoice", "valid": True, "currency": "bcrt", "created_at": 1, "expiry": 60,
     "payee": PAYEE_ID, "payment_hash": "zz" * 32},  # hash not hex
    {"type": "bolt11 invoice", "valid": "yes", "currency": "bcrt", "created_at": 1, "expiry": 60,
     "payee": PAYEE_ID, "payment_hash": "00" * 32},  # valid not a boolean
    {"type": "bolt12 offer", "valid": True, "offer_chains": "bitcoin"},
    [1, 2, 3],
])
async def test_decode_schema_violations_are_protocol_errors(node: FakeNode, cln: ClnNode, reply: object) -> None:
    node.script_method("decode", Outcome.reply(reply))
    with pytest.raises(NodeProtocolError, match="decode"):
        await cln.decode(make_invoice(1000).bolt11)


async def test_decode_offer(node: FakeNode, cln: ClnNode) -> None:
    expiry = int(time.time()) + 3600
    offer = make_offer(50_000, description="pool payouts", absolute_expiry=expiry)
    node.register_offer(offer)
    d = await cln.decode(offer.text)
    assert d.kind == "bolt12_offer"
    assert d.network == "regtest"
    assert d.amount_msat == 50_000
    assert d.payment_hash is None and d.created_at is None
    assert d.expires_at == expiry
    assert d.payee == PAYEE_ID
    assert d.description == "pool payouts"
    assert not d.recurring and d.currency is None and d.valid


async def test_decode_offer_recurring_fiat_and_chains(node: FakeNode, cln: ClnNode) -> None:
    recurring = make_offer(1000, recurrence=True)
    fiat = make_offer(250, currency="USD")
    mainnet = make_offer(None, chains=[])  # no offer_chains: bitcoin
    several = make_offer(1000, chains=["bitcoin", "regtest"])
    for o in (recurring, fiat, mainnet, several):
        node.register_offer(o)
    assert (await cln.decode(recurring.text)).recurring
    f = await cln.decode(fiat.text)
    assert f.currency == "USD" and f.amount_msat is None
    m = await cln.decode(mainnet.text)
    assert m.network == "bitcoin" and m.amount_msat is None
    await cln.getinfo()  # with several chains, the node's own is the one that matters
    assert (await cln.decode(several.text)).network == "regtest"


async def test_unregistered_offer_is_unparsable(cln: ClnNode) -> None:
    with pytest.raises(NodeError) as e:
        await cln.decode(make_offer(1000).text)
    assert e.value.code == -32602


async def test_fetchinvoice_and_decode_bolt12_invoice(node: FakeNode, cln: ClnNode) -> None:
    offer = make_offer(None)
    node.register_offer(offer)
    text = await cln.fetchinvoice(offer.text, 42_000, "for share 7")
    d = await cln.decode(text)
    assert d.kind == "bolt12_invoice"
    assert d.amount_msat == 42_000
    assert d.network == "regtest"
    assert d.payment_hash is not None and len(d.payment_hash) == 64
    assert d.created_at is not None and d.expires_at == d.created_at + 7200
    assert d.payee == PAYEE_ID
    assert ("fetchinvoice", {"offer": offer.text, "amount_msat": 42_000, "payer_note": "for share 7"}) \
        in node.requests


async def test_fetchinvoice_errors(node: FakeNode, cln: ClnNode) -> None:
    expired = make_offer(1000, absolute_expiry=int(time.time()) - 10)
    amountless = make_offer(None)
    node.register_offer(expired)
    node.register_offer(amountless)
    with pytest.raises(NodeError) as e:
        await cln.fetchinvoice(expired.text, None, None)
    assert e.value.code == 1002 and e.value.method == "fetchinvoice"
    with pytest.raises(NodeError) as e:
        await cln.fetchinvoice(amountless.text, None, None)
    assert e.value.code == -32602
    node.script_method("fetchinvoice", Outcome.error(1005, "Timeout waiting for response"))
    with pytest.raises(NodeError, match="Timeout waiting for response") as e:
        await cln.fetchinvoice(amountless.text, 1000, None)
    assert e.value.code == 1005


async def test_scripted_method_errors(node: FakeNode, cln: ClnNode) -> None:
    node.script_method("getinfo", Outcome.error(-1, "boom"), Outcome.DROP, Outcome.GARBAGE, Outcome.MALFORMED)
    with pytest.raises(NodeError) as e:
        await cln.getinfo()
    assert (e.value.method, e.value.code, e.value.message) == ("getinfo", -1, "boom")
    with pytest.raises(NodeUnavailable, match="getinfo: connection closed before an answer"):
        await cln.getinfo()
    with pytest.raises(NodeUnavailable, match="getinfo: connection closed after an incomplete or non-JSON answer"):
        await cln.getinfo()
    with pytest.raises(NodeProtocolError, match="getinfo: id is missing"):
        await cln.getinfo()
    assert (await cln.getinfo()).network == "regtest"
    assert node.calls["getinfo"] == 5


async def test_slow_answer_times_out(node: FakeNode) -> None:
    node.script_method("getinfo", Outcome.slow(2.0))
    with pytest.raises(NodeUnavailable, match=r"getinfo: no answer within 0.2 s; outcome unknown"):
        await ClnNode(node.rpc_path, timeout=0.2).getinfo()


async def test_a_connection_is_kept_for_the_next_call(node: FakeNode, cln: ClnNode) -> None:
    for _ in range(5):
        assert (await cln.getinfo()).network == "regtest"
    assert node.connections == 1


async def test_calls_in_flight_have_a_connection_each(node: FakeNode, cln: ClnNode) -> None:
    import asyncio

    node.script_method("getinfo", Outcome.slow(0.3), Outcome.slow(0.3))
    first, second = await asyncio.gather(cln.getinfo(), cln.getinfo())
    assert first.id == second.id == node.id
    assert node.connections == 2
    await cln.getinfo()  # one of the two kept ones
    assert node.connections == 2


async def test_a_burst_of_calls_leaves_its_connections_for_the_next_burst(node: FakeNode, cln: ClnNode) -> None:
    # Sixteen callers paying at once: the connections their calls opened all serve the next sixteen.
    import asyncio

    node.script_method("getinfo", *[Outcome.slow(0.3)] * 16)
    await asyncio.gather(*(cln.getinfo() for _ in range(16)))
    assert node.connections == 16
    node.script_method("getinfo", *[Outcome.slow(0.3)] * 16)
    await asyncio.gather(*(cln.getinfo() for _ in range(16)))
    assert node.connections == 16


async def test_a_call_that_gave_up_leaves_no_connection_behind(node: FakeNode) -> None:
    # Its late answer must never reach the next call: the connection is closed, not kept.
    cln = ClnNode(node.rpc_path, timeout=0.2)
    node.script_method("getinfo", Outcome.slow(0.5, Outcome.reply({"id": "late", "network": "bitcoin"})))
    with pytest.raises(NodeUnavailable, match="no answer within"):
        await cln.getinfo()
    cln.timeout = 5
    assert (await cln.getinfo()).network == "regtest"
    assert node.connections == 2


async def test_a_connection_the_node_closed_is_not_used_again(tmp_path) -> None:
    import asyncio

    path = tmp_path / "rpc"
    async with FakeNode(path) as node:
        cln = ClnNode(path, timeout=5)
        await cln.getinfo()
    async with FakeNode(path) as restarted:  # lightningd restarted: every old connection was closed
        await asyncio.sleep(0.05)
        assert (await cln.getinfo()).id == restarted.id
        assert restarted.connections == 1 and node.connections == 1
    cln.close()


async def test_error_answers_keep_the_connection(node: FakeNode, cln: ClnNode) -> None:
    node.script_method("getinfo", Outcome.error(-1, "boom"))
    with pytest.raises(NodeError):
        await cln.getinfo()
    await cln.getinfo()
    assert node.connections == 1


async def test_a_dropped_connection_is_not_kept(node: FakeNode, cln: ClnNode) -> None:
    node.script_method("getinfo", Outcome.DROP)
    with pytest.raises(NodeUnavailable):
        await cln.getinfo()
    await cln.getinfo()
    assert node.connections == 2


async def test_socket_missing(tmp_path) -> None:
    with pytest.raises(NodeUnavailable, match="does not exist"):
        await ClnNode(tmp_path / "nothing-here").getinfo()


async def test_connection_refused(tmp_path) -> None:
    import socket

    path = tmp_path / "rpc"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))  # bound but never listening: connect() is refused
    try:
        with pytest.raises(NodeUnavailable, match="refused"):
            await ClnNode(path).getinfo()
    finally:
        sock.close()


async def test_long_socket_path(tmp_path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    async with FakeNode(deep / "lightning-rpc") as node:
        assert len(str(node.rpc_path)) > 108
        assert (await ClnNode(node.rpc_path).getinfo()).id == node.id


async def test_positional_params_and_unknown_method(node: FakeNode, cln: ClnNode) -> None:
    from hashpool_cln.lightning import jsonrpc

    inv = make_invoice(5000)
    decoded = await jsonrpc.call(str(node.rpc_path), "decode", [inv.bolt11], timeout=5)
    assert decoded["payment_hash"] == inv.payment_hash
    with pytest.raises(NodeError) as e:
        await cln.call("no-such-method")
    assert e.value.code == -32601


def test_thread_mode_serves_blocking_pyln_client(tmp_path) -> None:
    """A client outside the test's loop (here pyln's blocking LightningRpc) sees CLN's wire shapes."""
    from pyln.client import LightningRpc

    node = FakeNode(tmp_path / "lightning-rpc").start_in_thread()
    try:
        rpc = LightningRpc(str(node.rpc_path))
        assert rpc.getinfo()["id"] == node.id
        inv = make_invoice(2000)
        assert rpc.decode(inv.bolt11)["amount_msat"] == 2000
        assert rpc.call("xpay", {"invstring": inv.bolt11})["payment_preimage"] == inv.preimage
        assert node.complete_count(inv.payment_hash) == 1
    finally:
        node.stop_thread()
    assert not node.rpc_path.exists()
