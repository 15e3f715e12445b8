"""The crash matrix: the desk dies right before and right after every state transition; a fresh desk on the
same ledger recovers; then every token is paid, refunded or untouched — exactly one — and no invoice is paid
twice.

The crash is honest: at the chosen point the hook cuts the desk off from its ledger, the mint and the node
(any later use raises) and raises a BaseException that nothing in the desk catches; the ledger file is left as
the dead process left it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from support.fakenode import Outcome
from support.invoices import make_invoice, make_offer

from hashpool_cln.cashu import crypto
from hashpool_cln.cashu.models import Proof
from hashpool_cln.cashu.tokens import parse_token
from hashpool_cln.desk.desk import Crash, Desk
from hashpool_cln.desk.errors import DeskError
from hashpool_cln.desk.states import State
from hashpool_cln.desk.store import Store
from hashpool_cln.lightning.clnrpc import ClnNode
from hashpool_cln.mintclient import MintClient

SUCCESS = ["->new", "new->quoted", "quoted->custody", "custody->paying", "paying->paid", "paid->settled"]
# scenario -> the transitions it passes through
SCENARIOS: dict[str, list[str]] = {
    "success": SUCCESS,
    "payment_fails": ["paying->refunded"],
    "too_small": ["new->rejected"],
    "mint_refuses_swap": ["quoted->rejected"],
    "invoice_expires_in_custody": ["custody->refunded"],
    "bad_signatures": ["quoted->refunded"],
    # An amountless offer paid its whole value: the invoice is fetched before the ledger knows the redemption.
    "offer_whole_value": SUCCESS,
    "offer_whole_value_fails": ["paying->refunded"],
}
OFFER_SCENARIOS = ("offer_whole_value", "offer_whole_value_fails")
POINTS = [(scenario, f"{when}:{move}") for scenario, moves in SCENARIOS.items()
          for move in moves for when in ("before", "after")]


class Gate:
    dead = False


class Gated:
    """Forwards to ``inner`` until the gate closes; after that every call is refused, as in a dead process."""

    def __init__(self, inner: Any, gate: Gate) -> None:
        self._inner, self._gate = inner, gate

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        async def call(*args: Any, **kw: Any) -> Any:
            if self._gate.dead:
                raise Crash("used after the crash")
            return await attr(*args, **kw)
        return call


class DeadDb:
    def __getattr__(self, name: str) -> Any:
        raise Crash("the ledger was used after the crash")


@pytest.mark.parametrize(("scenario", "point"), POINTS, ids=[f"{s}-{p}" for s, p in POINTS])
async def test_crash_then_recover(scenario, point, make_desk, ehash, node, tmp_path):
    gate = Gate()
    skew = {"seconds": 0}
    desk_ref: dict[str, Desk] = {}
    real_db: list[Any] = []

    def hook(at: str) -> None:
        if scenario == "invoice_expires_in_custody" and at == "after:quoted->custody":
            skew["seconds"] = 3_400  # the invoice (3600 s) now has 200 s left, below the 300 s the desk needs
        if at == point:
            gate.dead = True
            store = desk_ref["desk"]._store
            real_db.append(store._db)
            store._db = DeadDb()
            raise Crash(at)

    config = make_desk.config(min_invoice_life=300 if scenario == "invoice_expires_in_custody" else 60)
    mint = MintClient(ehash.url, desk_key=ehash.desk_key, timeout=2)
    desk = Desk(config, Gated(ClnNode(node.rpc_path, timeout=5, pay_grace=5), gate), Gated(mint, gate),
                crash_hook=hook, clock=lambda: time.time() + skew["seconds"])
    desk_ref["desk"] = desk
    await desk.start()

    amount = 500
    invoice = make_invoice(100_000, expiry=3_600)
    destination = invoice.bolt11
    if scenario in OFFER_SCENARIOS:
        offer = make_offer(None)
        node.register_offer(offer)
        destination = offer.text
    token = await ehash.token(50 if scenario == "too_small" else amount)
    ys = [crypto.proof_y(p.secret) for p in parse_token(token).proofs]
    if scenario == "payment_fails":
        node.script(invoice.payment_hash, Outcome.fail(205))
    if scenario == "offer_whole_value_fails":
        node.fee_msat = 10_000  # above the 1 % reserve the offer's invoice leaves: xpay refuses the route
    if scenario == "mint_refuses_swap":
        ehash.proxy.fault("/v1/swap", "status500")
    if scenario == "bad_signatures":
        ehash.proxy.fault("/v1/swap", "bad_dleq")
        ehash.proxy.fault("/v1/restore", "bad_dleq")

    crashed = False
    try:
        await desk.redeem(token, destination)
    except Crash:
        crashed = True
    except DeskError:
        pass  # a refusal: the crash point lies on this refusal's path
    assert crashed, f"the flow never reached {point}"
    for db in real_db:
        await db.close()
    await mint.close()

    # A fresh desk, same ledger and seed, healthy mint and node, and a clock past every retry window.
    recovered = await make_desk(clock=lambda: time.time() + skew["seconds"] + 100)
    await _assert_invariant(recovered, ehash, node, ys)


async def _assert_invariant(desk: Desk, ehash, node, ys: list[str]) -> None:
    records = await desk.store.list(limit=10)
    states = [s.state for s in await ehash.client.checkstate(ys)]
    if not records:  # died before the ledger knew anything: nothing may have happened
        assert set(states) == {"UNSPENT"} and node.attempts == []
        return
    assert len(records) == 1
    rec = records[0]
    assert {a.payment_hash for a in node.attempts} <= {rec["payment_hash"]}, "a payment the ledger never knew"
    paid = node.complete_count(rec["payment_hash"])
    assert paid <= 1, "an invoice was paid twice"
    assert rec.state in (State.SETTLED, State.REFUNDED, State.REJECTED), f"left in {rec.state}"
    if rec.state is State.SETTLED:
        assert paid == 1 and set(states) == {"SPENT"}
        custody = [Proof.from_dict(json.loads(p)) for p in await desk.store.custody(rec.id)]
        assert set(await ehash.states(custody)) == {"SPENT"}
        assert (await ehash.client.get_melt_quote_ehash(rec["quote_id"])).state == "PAID"
        if rec["change_token"]:
            assert set(await ehash.states(rec["change_token"])) == {"UNSPENT"}
    elif rec.state is State.REFUNDED:
        assert paid == 0 and set(states) == {"SPENT"}
        assert set(await ehash.states(rec["refund_token"])) == {"UNSPENT"}
        returned = parse_token(rec["refund_token"]).amount
        returned += parse_token(rec["change_token"]).amount if rec["change_token"] else 0
        assert returned == rec["amount"] - (rec["swap_fee"] or 0)
    else:
        assert paid == 0 and set(states) == {"UNSPENT"}, "rejected, yet the token is not untouched"
    # the ledger releases claims of released redemptions only
    reopened = desk.store
    assert isinstance(reopened, Store)
