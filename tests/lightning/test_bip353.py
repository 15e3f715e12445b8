"""ClnNode.fetchbip353 against the stand-in node: the answers of CLN's fetchbip353 schema, its failures, and
answers that break the schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.fakenode import FakeNode, Outcome
from support.invoices import make_offer

from hashpool_cln.lightning.clnrpc import ClnNode, NodeProtocolError
from hashpool_cln.lightning.port import NodeError, NodeUnavailable, PaymentInstruction

PROOF = "0473656e64" * 8


async def test_instructions_in_order_with_amounts_and_descriptions(node: FakeNode, cln: ClnNode) -> None:
    offer = make_offer(None)
    node.register_name("alice@example.com",
                       {"onchain": "bc1qztwy6xen3zdtt7z0vrgapmjtfz8acjkfp5fp7l", "onchain_amount_sat": 21,
                        "description": "tips"},
                       {"offer": offer.text, "offchain_amount_msat": 21_000, "description": "tips"})
    got = await cln.fetchbip353("alice@example.com")
    assert got == [
        PaymentInstruction(onchain="bc1qztwy6xen3zdtt7z0vrgapmjtfz8acjkfp5fp7l", onchain_amount_sat=21,
                           description="tips"),
        PaymentInstruction(offer=offer.text, offchain_amount_msat=21_000, description="tips"),
    ]
    assert node.requests[-1] == ("fetchbip353", {"address": "alice@example.com"})


async def test_the_schema_example_parses(cln: ClnNode, node: FakeNode) -> None:
    # doc/schemas/fetchbip353.json's example answer (v26.06), offer shortened
    node.script_method("fetchbip353", Outcome.reply({
        "instructions": [{"onchain": "bc1qztwy6xen3zdtt7z0vrgapmjtfz8acjkfp5fp7l"}, {"offer": "lno1zr5qyugqgskrk70k"}],
        "proof": "0473656e64" + "00" * 20}))
    got = await cln.fetchbip353("send.some@satsto.me")
    assert [i.offer for i in got] == [None, "lno1zr5qyugqgskrk70k"]
    assert got[0].onchain == "bc1qztwy6xen3zdtt7z0vrgapmjtfz8acjkfp5fp7l"


async def test_plugin_failure_is_a_node_error_with_its_message(node: FakeNode, cln: ClnNode) -> None:
    node.fail_name("bob@example.com", 'failed to fetch payment instructions: HrnResolutionError("DNS Request to '
                                      'dns.google failed")')
    with pytest.raises(NodeError) as e:
        await cln.fetchbip353("bob@example.com")
    assert e.value.code == -32700 and e.value.method == "fetchbip353" and "dns.google" in e.value.message


async def test_a_node_without_the_plugin_answers_unknown_command(tmp_path: Path) -> None:
    async with FakeNode(tmp_path / "rpc", bip353=False) as bare:
        with pytest.raises(NodeError) as e:
            await ClnNode(bare.rpc_path, timeout=5).fetchbip353("alice@example.com")
    assert e.value.code == -32601 and "Unknown command" in e.value.message


def _instr(**fields: Any) -> dict[str, Any]:
    return {"proof": PROOF, "instructions": [fields]}


@pytest.mark.parametrize("answer", [
    pytest.param([], id="not-an-object"),
    pytest.param({"instructions": [{"offer": "lno1abc"}]}, id="no-proof"),
    pytest.param({"proof": PROOF}, id="no-instructions"),
    pytest.param({"proof": "", "instructions": []}, id="empty-proof"),
    pytest.param({"proof": "xyz0", "instructions": []}, id="proof-not-hex"),
    pytest.param({"proof": "abc", "instructions": []}, id="proof-odd-length"),
    pytest.param({"proof": 12, "instructions": []}, id="proof-not-a-string"),
    pytest.param({"proof": PROOF, "instructions": {"offer": "lno1abc"}}, id="instructions-not-a-list"),
    pytest.param({"proof": PROOF, "instructions": ["lno1abc"]}, id="instruction-not-an-object"),
    pytest.param({"proof": PROOF, "instructions": [], "extra": 1}, id="unknown-top-level-field"),
    pytest.param(_instr(offer="lno1abc", bolt11="lnbc1"), id="unknown-instruction-field"),
    pytest.param(_instr(description="nothing to pay"), id="neither-offer-nor-onchain"),
    pytest.param(_instr(offer="lno1abc", onchain="bc1q"), id="both-offer-and-onchain"),
    pytest.param(_instr(offer=""), id="empty-offer"),
    pytest.param(_instr(offer=5), id="offer-not-a-string"),
    pytest.param(_instr(offer="lno1abc", offchain_amount_msat="1000msat"), id="amount-as-string"),
    pytest.param(_instr(offer="lno1abc", offchain_amount_msat=-1), id="negative-amount"),
    pytest.param(_instr(offer="lno1abc", offchain_amount_msat=True), id="amount-bool"),
    pytest.param(_instr(offer="lno1abc", offchain_amount_msat=2**64), id="amount-over-u64"),
    pytest.param(_instr(offer="lno1abc", onchain_amount_sat=5), id="sat-amount-on-an-offer"),
    pytest.param(_instr(onchain="bc1q", offchain_amount_msat=5), id="msat-amount-on-an-address"),
    pytest.param(_instr(offer="lno1abc", description=7), id="description-not-a-string"),
])
async def test_answers_breaking_the_schema_are_protocol_errors(node: FakeNode, cln: ClnNode, answer: Any) -> None:
    node.script_method("fetchbip353", Outcome.reply(answer))
    with pytest.raises(NodeProtocolError, match="fetchbip353"):
        await cln.fetchbip353("alice@example.com")


async def test_lost_connection_is_unknown(node: FakeNode, cln: ClnNode) -> None:
    node.script_method("fetchbip353", Outcome.DROP)
    with pytest.raises(NodeUnavailable):
        await cln.fetchbip353("alice@example.com")


async def test_fetchinvoice_passes_the_name_for_the_invoice_request(node: FakeNode, cln: ClnNode) -> None:
    offer = make_offer(5_000)
    node.register_offer(offer)
    invoice = await cln.fetchinvoice(offer.text, None, None, bip353="alice@example.com")
    assert node.requests[-1] == ("fetchinvoice", {"offer": offer.text, "bip353": "alice@example.com"})
    decoded = await cln.call("decode", {"string": invoice})
    assert decoded["invreq_bip_353_name"] == {"name": "alice", "domain": "example.com"}
    await cln.fetchinvoice(offer.text, None, None)
    assert "bip353" not in node.requests[-1][1]
