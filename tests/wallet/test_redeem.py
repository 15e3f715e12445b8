"""The wallet redeems at the real desk (the plugin process) over BOLT8 + commando: BOLT11 and BOLT12, change and
refund swapped back in, a lost answer resolved with the claim, and refusals (desk and rune) leaving the proofs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from support.fakenode import Outcome
from support.invoices import make_invoice, make_offer
from wallet.conftest import NO_QUOTE_RUNE, QUOTE_ONLY_RUNE, RATED_RUNE, WALLET_RUNE, Crash, FaultyMint, PoolNode

from hashpool_cln.cashu.tokens import parse_token
from hashpool_cln.mintclient import MintClient
from hashpool_cln.wallet.commando import NodeAddress
from hashpool_cln.wallet.errors import Code, WalletError
from hashpool_cln.wallet.redeem import CommandoDesk, autopay, redeem, resolve_open
from hashpool_cln.wallet.seed import WalletKeys, new_mnemonic
from hashpool_cln.wallet.store import WalletStore
from hashpool_cln.wallet.wallet import Wallet

Scenario = Callable[[Wallet, CommandoDesk], Awaitable[Any]]


def _run(pool: PoolNode, tmp_path: Path, scenario: Scenario, *, rune: str = WALLET_RUNE,
         amounts: tuple[int, ...] = (64,), mint_class: type[MintClient] = MintClient) -> Any:
    tokens = pool.mint.issue_settled(list(amounts))  # 1000 sat a unit

    async def main() -> Any:
        keys = WalletKeys(new_mnemonic())
        store = await WalletStore.open(tmp_path / "wallet.sqlite3")
        wallet = Wallet(store, keys, mint_class(pool.mint.url))
        desk = CommandoDesk(NodeAddress.parse(pool.commando.address), keys.node_key, rune, timeout=30)
        try:
            for token in tokens:
                await wallet.receive(token)
            return await scenario(wallet, desk)
        finally:
            desk.close()
            await wallet.mint.close()
            await store.close()

    return asyncio.run(main())


async def _spendable(wallet: Wallet) -> int:
    return sum(b.unspent for b in await wallet.balance())


async def _pending(wallet: Wallet) -> int:
    return sum(b.pending for b in await wallet.balance())


def test_redeem_a_bolt11_invoice_and_take_the_change_back(pool_node: PoolNode, tmp_path: Path) -> None:
    invoice = make_invoice(20_000_000)

    async def scenario(wallet: Wallet, desk: CommandoDesk) -> Any:
        result = await redeem(wallet, desk, invoice.bolt11)
        assert result["state"] in ("paid", "settled") and result["payment_preimage"] == invoice.preimage
        assert "claim" not in result and "change_token" not in result  # never shown by the wallet
        (row,) = await wallet.store.redemptions()
        assert len(row["claim"]) == 64 and row["taken"] == 1
        # 64 units at 1000 sat: 20 units paid plus the routing-fee reserve used; the rest came back as change.
        left = await _spendable(wallet)
        assert 64 - 21 <= left <= 64 - 20 and await _pending(wallet) == 0
        return result

    _run(pool_node, tmp_path, scenario)
    assert pool_node.lightning.complete_count(invoice.payment_hash) == 1
    assert pool_node.commando.peers  # it came over BOLT8
    # Quoted first (nothing committed), so only the proofs the payment needs go into custody.
    assert [c["method"] for c in pool_node.commando.commands] == ["hashpool-quote", "hashpool-redeem"]


def test_a_rune_rate_between_quote_and_redeem_is_waited_out(pool_node: PoolNode, tmp_path: Path) -> None:
    invoice = make_invoice(20_000_000)

    async def scenario(wallet: Wallet, desk: CommandoDesk) -> Any:
        return await redeem(wallet, desk, invoice.bolt11)

    assert _run(pool_node, tmp_path, scenario, rune=RATED_RUNE)["state"] in ("paid", "settled")
    assert pool_node.lightning.complete_count(invoice.payment_hash) == 1
    # hashpool-redeem came too soon after hashpool-quote, was refused unrun, and went again.
    assert pool_node.commando.too_soon >= 1
    assert [c["method"] for c in pool_node.commando.commands][-1] == "hashpool-redeem"
    assert {c["method"] for c in pool_node.commando.commands} == {"hashpool-quote", "hashpool-redeem"}


def test_only_the_proofs_the_payment_needs_go_to_the_desk(pool_node: PoolNode, tmp_path: Path) -> None:
    invoice = make_invoice(20_000_000)  # 20 units and the fee reserve

    async def scenario(wallet: Wallet, desk: CommandoDesk) -> Any:
        assert sorted(p.proof.amount for p in await wallet.store.proofs(state="unspent")) == [16, 32, 64]
        result = await redeem(wallet, desk, invoice.bolt11)
        assert result["state"] in ("paid", "settled")
        assert 112 - 21 <= await _spendable(wallet) <= 112 - 20

    _run(pool_node, tmp_path, scenario, amounts=(64, 32, 16))
    (sent,) = [c for c in pool_node.commando.commands if c["method"] == "hashpool-redeem"]
    assert parse_token(sent["params"]["token"]).amount == 64  # the 32 and the 16 never left the wallet


def test_a_rune_without_quote_sends_the_whole_epoch(pool_node: PoolNode, tmp_path: Path) -> None:
    async def scenario(wallet: Wallet, desk: CommandoDesk) -> Any:
        result = await redeem(wallet, desk, make_invoice(20_000_000).bolt11)
        assert result["state"] in ("paid", "settled")

    _run(pool_node, tmp_path, scenario, rune=NO_QUOTE_RUNE, amounts=(64, 32))
    (sent,) = [c for c in pool_node.commando.commands if c["method"] == "hashpool-redeem"]
    assert parse_token(sent["params"]["token"]).amount == 96


def test_redeem_a_bolt12_offer(pool_node: PoolNode, tmp_path: Path) -> None:
    offer = make_offer(None)
    pool_node.lightning.register_offer(offer)

    async def scenario(wallet: Wallet, desk: CommandoDesk) -> Any:
        result = await redeem(wallet, desk, offer.text, amount_msat=10_000_000)
        assert result["state"] in ("paid", "settled") and result["amount_msat"] == 10_000_000
        assert len(result["payment_preimage"]) == 64
        assert 64 - 11 <= await _spendable(wallet) <= 64 - 10

    _run(pool_node, tmp_path, scenario)


def test_redeem_to_a_bip353_name(pool_node: PoolNode, tmp_path: Path) -> None:
    offer = make_offer(None)
    pool_node.lightning.register_offer(offer)
    pool_node.lightning.register_name("miner@pool.example", {"offer": offer.text})

    async def scenario(wallet: Wallet, desk: CommandoDesk) -> Any:
        result = await redeem(wallet, desk, "₿miner@pool.example", amount_msat=3_000_000)
        assert result["state"] in ("paid", "settled") and result["amount_msat"] == 3_000_000
        assert result["destination"] == "₿miner@pool.example"

    _run(pool_node, tmp_path, scenario)


def test_a_failed_payment_comes_back_as_a_refund(pool_node: PoolNode, tmp_path: Path) -> None:
    failing = make_invoice(5_000_000)
    pool_node.lightning.script(failing.payment_hash, Outcome.fail(205))

    async def scenario(wallet: Wallet, desk: CommandoDesk) -> Any:
        result = await redeem(wallet, desk, failing.bolt11)
        assert result["state"] == "refunded" and result["error_code"] == 3440
        assert await _spendable(wallet) == 64 and await _pending(wallet) == 0

    _run(pool_node, tmp_path, scenario)


def test_a_lost_answer_is_resolved_with_the_claim(pool_node: PoolNode, tmp_path: Path) -> None:
    invoice = make_invoice(8_000_000)
    pool_node.commando.drop, pool_node.commando.drop_method = 1, "hashpool-redeem"  # paid, then the line drops

    async def scenario(wallet: Wallet, desk: CommandoDesk) -> Any:
        result = await redeem(wallet, desk, invoice.bolt11)
        assert result["state"] in ("paid", "settled") and result["payment_preimage"] == invoice.preimage
        assert 64 - 9 <= await _spendable(wallet) <= 64 - 8

    _run(pool_node, tmp_path, scenario)
    assert [c["method"] for c in pool_node.commando.commands] == ["hashpool-quote", "hashpool-redeem",
                                                                 "hashpool-status"]
    assert "claim" in pool_node.commando.commands[2]["params"]
    assert pool_node.lightning.complete_count(invoice.payment_hash) == 1


def test_a_lost_answer_with_the_node_gone_keeps_the_proofs_pending(pool_node: PoolNode, tmp_path: Path) -> None:
    invoice = make_invoice(8_000_000)
    pool_node.commando.drop, pool_node.commando.drop_method = 1, "hashpool-redeem"
    pool_node.commando.offline_after_drop = True  # the desk pays, the reply is lost, then the node is unreachable

    async def scenario(wallet: Wallet, desk: CommandoDesk) -> Any:
        with pytest.raises(WalletError) as unknown:
            await redeem(wallet, desk, invoice.bolt11)
        assert unknown.value.code == Code.OUTCOME_UNKNOWN
        assert await resolve_open(wallet, desk) == []  # still no answer: nothing is decided
        (row,) = await wallet.store.redemptions()
        assert row["state"] == "unknown" and await _pending(wallet) == 64 and await _spendable(wallet) == 0
        pool_node.commando.offline = False  # the node is back
        (done,) = await resolve_open(wallet, desk)
        assert done["state"] in ("paid", "settled") and done["payment_preimage"] == invoice.preimage
        assert 64 - 9 <= await _spendable(wallet) <= 64 - 8 and await _pending(wallet) == 0

    _run(pool_node, tmp_path, scenario)
    assert pool_node.lightning.complete_count(invoice.payment_hash) == 1


def test_a_crash_before_the_answer_is_finished_at_the_next_run(pool_node: PoolNode, tmp_path: Path) -> None:
    invoice = make_invoice(8_000_000)

    class Dies(BaseException):
        pass

    async def scenario(wallet: Wallet, desk: CommandoDesk) -> Any:
        real_call = desk.call

        async def call_then_die(method: str, params: dict[str, Any]) -> Any:
            answer = await real_call(method, params)
            if method == "hashpool-redeem":
                raise Dies()
            return answer

        desk.call = call_then_die  # type: ignore[method-assign]
        with pytest.raises(Dies):
            await redeem(wallet, desk, invoice.bolt11)
        assert await _pending(wallet) == 64  # the proofs wait, claim written
        desk.call = real_call  # type: ignore[method-assign]
        (done,) = await resolve_open(wallet, desk)  # what the next command does first
        assert done["state"] in ("paid", "settled")
        assert 64 - 9 <= await _spendable(wallet) <= 64 - 8 and await _pending(wallet) == 0

    _run(pool_node, tmp_path, scenario)
    assert pool_node.lightning.complete_count(invoice.payment_hash) == 1


def test_a_crash_before_the_call_leaves_the_proofs_to_the_next_run(pool_node: PoolNode, tmp_path: Path) -> None:
    class Dies(BaseException):
        pass

    async def scenario(wallet: Wallet, desk: CommandoDesk) -> Any:
        real_call = desk.call

        async def die(method: str, params: dict[str, Any]) -> Any:
            if method == "hashpool-redeem":
                raise Dies()
            return await real_call(method, params)

        desk.call = die  # type: ignore[method-assign]
        with pytest.raises(Dies):
            await redeem(wallet, desk, make_invoice(1_000_000).bolt11)
        assert await _pending(wallet) == 64  # claim written, proofs held: then the process died
        desk.call = real_call  # type: ignore[method-assign]
        assert await resolve_open(wallet, desk) == []  # the desk never heard of the claim
        assert await _spendable(wallet) == 64 and await _pending(wallet) == 0
        (row,) = await wallet.store.redemptions()
        assert row["state"] == "not_received"

    _run(pool_node, tmp_path, scenario)
    assert [c["method"] for c in pool_node.commando.commands] == ["hashpool-quote", "hashpool-status"]


def test_a_crash_while_swapping_the_change_back_is_finished_next_time(pool_node: PoolNode, tmp_path: Path) -> None:
    invoice = make_invoice(10_000_000)

    async def scenario(wallet: Wallet, desk: CommandoDesk) -> Any:
        wallet.mint.fault = ("/v1/swap", "after")  # the change's swap goes through, then the process dies
        with pytest.raises(Crash):
            await redeem(wallet, desk, invoice.bolt11)
        reopened = Wallet(wallet.store, wallet.keys, MintClient(pool_node.mint.url))
        try:
            await reopened.recover()  # what opening the wallet does
            await resolve_open(reopened, desk)
            (row,) = await reopened.store.redemptions()
            assert row["state"] in ("paid", "settled") and row["taken"] == 1
            assert 64 - 11 <= await _spendable(reopened) <= 64 - 10 and await _pending(reopened) == 0
        finally:
            await reopened.mint.close()

    _run(pool_node, tmp_path, scenario, mint_class=FaultyMint)
    assert pool_node.lightning.complete_count(invoice.payment_hash) == 1


def test_a_desk_refusal_leaves_the_proofs_with_its_code(pool_node: PoolNode, tmp_path: Path) -> None:
    expired = make_invoice(1_000_000, expiry=1)

    async def scenario(wallet: Wallet, desk: CommandoDesk) -> Any:
        await asyncio.sleep(1.1)
        with pytest.raises(WalletError) as refused:
            await redeem(wallet, desk, expired.bolt11)
        assert refused.value.code == 3412  # the desk's DESTINATION_EXPIRED, passed through
        assert await _spendable(wallet) == 64 and await _pending(wallet) == 0

    _run(pool_node, tmp_path, scenario)


def test_a_rune_that_does_not_allow_redeem_is_refused(pool_node: PoolNode, tmp_path: Path) -> None:
    async def scenario(wallet: Wallet, desk: CommandoDesk) -> Any:
        with pytest.raises(WalletError) as refused:
            await redeem(wallet, desk, make_invoice(1_000_000).bolt11)
        assert refused.value.code == 0x4C51
        assert await _spendable(wallet) == 64

    _run(pool_node, tmp_path, scenario, rune=QUOTE_ONLY_RUNE)


def test_autopay_redeems_each_settled_epoch_to_an_offer(pool_node: PoolNode, tmp_path: Path) -> None:
    offer = make_offer(None)
    pool_node.lightning.register_offer(offer)

    async def scenario(wallet: Wallet, desk: CommandoDesk) -> Any:
        assert await autopay(wallet, desk, offer.text, min_msat=100_000_000) == []  # 64 000 sat is below the floor
        paid = await autopay(wallet, desk, offer.text, min_msat=10_000)
        assert [p["state"] in ("paid", "settled") for p in paid] == [True]
        assert await _spendable(wallet) == 0 and await autopay(wallet, desk, offer.text) == []
        with pytest.raises(WalletError) as once_only:
            await autopay(wallet, desk, make_invoice(1_000_000).bolt11)
        assert once_only.value.code == Code.BAD_DESTINATION

    _run(pool_node, tmp_path, scenario)


def test_no_settled_ehash_is_nothing_to_do(pool_node: PoolNode, tmp_path: Path) -> None:
    async def scenario(wallet: Wallet, desk: CommandoDesk) -> Any:
        with pytest.raises(WalletError) as err:
            await redeem(wallet, desk, make_invoice(1_000_000).bolt11, amount_msat=1_000_000_000)
        assert err.value.code == Code.INSUFFICIENT_FUNDS

    _run(pool_node, tmp_path, scenario)
