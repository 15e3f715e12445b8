"""A miner's cashu-ts wallet cashes ehash out at the desk: the tokens cashu-ts sends (plain, and P2PK-locked to
the desk's key) are bought and paid, and the change the desk hands back is a token cashu-ts receives.

One settled epoch (1 sat a unit, an input fee) behind the desk's mint proxy, one node stand-in, one desk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import pytest_asyncio
from support.ehash import RATE_MSAT, DeskFactory, EhashMint, running_ehash
from support.fakenode import FakeNode, Outcome
from support.invoices import make_invoice

from hashpool_cln.cashu import conditions
from hashpool_cln.cashu.tokens import make_token, parse_token
from hashpool_cln.desk.desk import Desk
from interop.harness import FEE_PPK, CashuTs, fee

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Cashout:
    ehash: EhashMint
    node: FakeNode
    desk: Desk
    wallet: CashuTs
    purse: list[dict[str, Any]] = field(default_factory=list)  # what cashu-ts holds, as it gave it back

    async def fill(self) -> None:
        """cashu-ts receives the whole bank of the settled epoch (less the input fee)."""
        bank, self.ehash.bank = self.ehash.bank, []
        token = make_token(self.ehash.url, self.ehash.unit, bank)
        answer = await self.wallet.ok("receive", token=token)
        assert sum(p["amount"] for p in answer["proofs"]) == sum(p.amount for p in bank) - fee(len(bank))
        self.purse = answer["proofs"]

    async def send(self, amount: int, **options: Any) -> dict[str, Any]:
        """cashu-ts sends ``amount`` out of its purse and keeps the rest, through a swap at the mint (its offline
        exact-match send, which it picks when the coins allow, would leave the DLEQ proofs out: a test below covers
        such tokens on purpose rather than by chance)."""
        sent = await self.wallet.ok("send", proofs=self.purse, amount=amount, swap=True, **options)
        self.purse = sent["keep"]
        return sent


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cashout(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cashout]:
    tmp = tmp_path_factory.mktemp("cashout")
    async with running_ehash(tmp, input_fee_ppk=FEE_PPK) as ehash:
        node = FakeNode(tmp / "lightning-rpc")
        await node.start()
        desks = DeskFactory(tmp, ehash, node)
        try:
            cashout = Cashout(ehash, node, await desks(), CashuTs(ehash.url, ehash.unit))
            await cashout.fill()
            yield cashout
        finally:
            await desks.close_all()
            await node.stop()


async def test_cashu_ts_derives_the_ids_of_both_epochs_keysets(cashout: Cashout) -> None:
    """The settled epoch's keyset and the one the reward opened: each id is derived and checked by cashu-ts."""
    seen = {}
    for unit in (cashout.ehash.unit, cashout.ehash.open_unit):
        answer = await CashuTs(cashout.ehash.url, unit).ok("keysets")
        assert [k["unit"] for k in answer["keysets"]] == [unit]
        (keyset,) = answer["keysets"]
        assert keyset["derived_id"] == keyset["id"] and keyset["verified"] and not keyset["tampered_verified"]
        seen[unit] = keyset["id"]
    mint_keysets = {k.unit: k.id for k in await cashout.ehash.client.keysets()}
    assert seen == {unit: mint_keysets[unit] for unit in seen} and len(set(seen.values())) == 2


async def _redeem_and_take_the_change(cashout: Cashout, token: str) -> dict:
    invoice = make_invoice(200_000)
    out = await cashout.desk.redeem(token, invoice.bolt11)
    assert out["state"] == "settled" and out["payment_preimage"] == invoice.preimage
    assert cashout.node.complete_count(invoice.payment_hash) == 1
    assert set(await cashout.ehash.states(token)) == {"SPENT"}
    # the change the desk gives back is a token a real wallet takes
    await _take_back(cashout, out["change_token"])
    return out


async def _take_back(cashout: Cashout, token: str) -> None:
    """cashu-ts receives a token the desk handed back (change or refund)."""
    back = parse_token(token)
    assert back.unit == cashout.ehash.unit and back.amount > 0
    taken = await cashout.wallet.ok("receive", token=token)
    assert sum(p["amount"] for p in taken["proofs"]) == back.amount - fee(len(back.proofs))
    assert set(await cashout.ehash.states(token)) == {"SPENT"}


async def test_a_token_sent_by_cashu_ts_is_paid_out(cashout: Cashout) -> None:
    sent = await cashout.send(300, include_fees=True)
    assert sum(p["amount"] for p in sent["send"]) == 300 + fee(len(sent["send"]))
    out = await _redeem_and_take_the_change(cashout, sent["token"])
    # 200 000 msat and its 1 % routing reserve bought at 1 sat a unit (with an input fee on the desk's outputs
    # the unused reserve stays bought: the desk does not split fee-bearing custody proofs to hand it back)
    assert out["amount_msat"] == 200_000 and out["value_msat"] == 202 * RATE_MSAT


async def test_a_cashu_ts_token_without_dleq_proofs_is_paid_out(cashout: Cashout) -> None:
    # What cashu-ts's exact-match send (or its encoder's removeDleq) hands over: the custody swap proves the proofs.
    sent = await cashout.send(300, include_fees=True)
    bare = [replace(p, dleq=None) for p in parse_token(sent["token"]).proofs]
    out = await _redeem_and_take_the_change(cashout, make_token(cashout.ehash.url, cashout.ehash.unit, bare))
    assert out["state"] in ("paid", "settled") and out["amount_msat"] == 200_000


async def test_a_token_cashu_ts_locked_to_the_desk_is_paid_out(cashout: Cashout) -> None:
    sent = await cashout.send(300, pubkey=cashout.desk.p2pk_pubkey)
    locked = parse_token(sent["token"]).proofs
    assert all(conditions.p2pk_lock(conditions.classify(p.secret)).pubkeys == (cashout.desk.p2pk_pubkey,)
               for p in locked)
    await _redeem_and_take_the_change(cashout, sent["token"])


async def test_a_failed_payment_refunds_to_cashu_ts(cashout: Cashout) -> None:
    sent = await cashout.send(250)
    invoice = make_invoice(100_000)
    cashout.node.script(invoice.payment_hash, Outcome.fail(205))
    out = await cashout.desk.redeem(sent["token"], invoice.bolt11)
    assert out["state"] == "refunded" and cashout.node.complete_count(invoice.payment_hash) == 0
    assert set(await cashout.ehash.states(sent["token"])) == {"SPENT"}  # the desk took custody, then gave back
    for token in (out["refund_token"], out["change_token"]):
        await _take_back(cashout, token)
