"""Crashing a desk for real at a chosen point, and the invariant a recovered desk must leave behind.

The crash is honest: at the chosen point the hook cuts the desk off from its ledger, the mint and the node
(any later use raises) and raises a BaseException that nothing in the desk catches; the ledger file is left as
the dead process left it.

    crasher = Crasher("after:custody->paying")
    desk = await crasher.desk(make_desk.config(), node, ehash)
    with pytest.raises(Crash):
        await desk.redeem(token, invoice)
    await crasher.bury()
    recovered = await make_desk()                        # same ledger and seed
    await assert_invariant(recovered, ehash, node, ys)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hashpool_cln.cashu.models import Proof
from hashpool_cln.cashu.tokens import parse_token
from hashpool_cln.desk.config import DeskConfig
from hashpool_cln.desk.desk import Crash, Desk
from hashpool_cln.desk.states import State
from hashpool_cln.lightning.clnrpc import ClnNode
from hashpool_cln.mintclient import MintClient, MintError

NUT_QUOTE_EXPIRED = 20007


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


class Crasher:
    """A desk's crash hook that kills it at ``point``; ``on_point(at)`` sees every point first (to skew a
    clock, say)."""

    def __init__(self, point: str, on_point: Callable[[str], None] | None = None) -> None:
        self.point = point
        self.on_point = on_point
        self.gate = Gate()
        self.mint: MintClient | None = None
        self._desk: Desk | None = None
        self._dead_dbs: list[Any] = []

    def __call__(self, at: str) -> None:
        if self.on_point is not None:
            self.on_point(at)
        if at != self.point:
            return
        assert self._desk is not None and self._desk._store is not None
        self.gate.dead = True
        store = self._desk._store
        self._dead_dbs += [store._db] if store._reads_db is store._db else [store._db, store._reads_db]
        store._db = store._reads_db = DeadDb()
        raise Crash(at)

    async def desk(self, config: DeskConfig, node: Any, ehash: Any, *, mint: MintClient | None = None,
                   clock: Callable[[], float] | None = None) -> Desk:
        """A started desk on ``config`` whose node and mint die with it (``mint``: a client to use instead of a
        fresh one, e.g. with a method replaced)."""
        self.mint = mint or MintClient(ehash.url, desk_key=ehash.desk_key, timeout=2)
        kw: dict[str, Any] = {} if clock is None else {"clock": clock}
        self._desk = Desk(config, Gated(ClnNode(node.rpc_path, timeout=5, pay_grace=5), self.gate),
                          Gated(self.mint, self.gate), crash_hook=self, **kw)
        await self._desk.start()
        return self._desk

    async def bury(self) -> None:
        """Release what the dead desk held (its ledger connection, its mint session), changing nothing."""
        for db in self._dead_dbs:
            db.close()
        if self.mint is not None:
            await self.mint.close()


async def assert_invariant(desk: Desk, ehash: Any, node: Any, ys: list[str]) -> None:
    """The one redemption of the token with Ys ``ys`` ended paid and settled, refunded or rejected — exactly one
    of them, with the mint and the node agreeing — and its invoice was paid at most once."""
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
    # No quote the desk asked for still holds budget (its answer lost in the crash included): all released.
    assert await desk.store.quotes_to_release() == [], "a quote the desk no longer needs was not released"
    if rec.state is not State.SETTLED and rec["quote_id"]:
        assert (await ehash.client.get_melt_quote_ehash(rec["quote_id"])).state == "EXPIRED"
    if rec.state is State.SETTLED:
        assert paid == 1 and set(states) == {"SPENT"}
        spent = await _custody(desk, rec.id, "spent")
        returned = await _custody(desk, rec.id, "returned")
        assert set(await ehash.states(spent)) == {"SPENT"}
        quote = await ehash.client.get_melt_quote_ehash(rec["quote_id"])
        assert quote.state == "PAID"
        # The mint burnt what custody spent (no more: outputs with an input fee carry it on top).
        if rec["reserve_amounts"]:
            assert quote.amount == sum(p.amount for p in spent) == rec["quote_units"]
        else:
            assert quote.amount <= sum(p.amount for p in spent)
        # The unused fee reserve went back in the change token: unspent, and every unit accounted for.
        assert sum(p.amount for p in returned) == (rec["returned_units"] or 0)
        change = parse_token(rec["change_token"]).proofs if rec["change_token"] else ()
        assert {p.secret for p in returned} <= {p.secret for p in change}
        if change:
            assert set(await ehash.states(rec["change_token"])) == {"UNSPENT"}
        assert sum(p.amount for p in change) + sum(p.amount for p in spent) == rec["amount"] - (rec["swap_fee"] or 0)
    elif rec.state is State.REFUNDED:
        assert paid == 0 and set(states) == {"SPENT"}
        assert set(await ehash.states(rec["refund_token"])) == {"UNSPENT"}
        returned = parse_token(rec["refund_token"]).amount
        returned += parse_token(rec["change_token"]).amount if rec["change_token"] else 0
        assert returned == rec["amount"] - (rec["swap_fee"] or 0)
    else:
        assert paid == 0 and set(states) == {"UNSPENT"}, "rejected, yet the token is not untouched"


async def _custody(desk: Desk, redemption_id: str, state: str) -> list[Proof]:
    return [Proof.from_dict(json.loads(p)) for p in await desk.store.custody(redemption_id, state)]


def expire_first_melt(mint: MintClient) -> list[str]:
    """The mint refuses ``mint``'s next settlement with 20007, as when a melt quote expired and its budget went
    to others; returns the quote ids melts were asked for, in order."""
    real_melt = mint.melt_ehash
    asked: list[str] = []

    async def melt(quote_id: str, *args: Any, **kw: Any) -> Any:
        asked.append(quote_id)
        if len(asked) == 1:
            raise MintError(400, NUT_QUOTE_EXPIRED, "quote expired")
        return await real_melt(quote_id, *args, **kw)

    mint.melt_ehash = melt  # type: ignore[method-assign]
    return asked
