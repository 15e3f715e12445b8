"""The wallet against the reference mint on loopback: receive, balance, send with pending proofs, restore from the
mnemonic alone, and a crash before and after every request it makes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from wallet.conftest import Crash, FaultyMint, issued_token, unit_of

from hashpool_cln.cashu.tokens import make_token, parse_token
from hashpool_cln.wallet.errors import Code, WalletError
from hashpool_cln.wallet.seed import new_mnemonic


async def _units(wallet) -> dict[str, tuple[int, int]]:
    return {b.unit: (b.unspent, b.pending) for b in await wallet.balance()}


async def test_receive_then_balance_prices_only_settled_epochs(refmint, open_wallet, mnemonic, tmp_path) -> None:
    wallet = await open_wallet(refmint.url, mnemonic)
    token, unit = await issued_token(refmint, 5, count=3)  # 3 shares of 32 units
    assert await wallet.receive(token) == 96
    (open_balance,) = await wallet.balance()
    assert (open_balance.unit, open_balance.unspent, open_balance.state) == (unit, 96, "open")
    assert open_balance.value_msat is None

    await refmint.reward(96_000_000)  # 1 sat a unit, no pool fee
    (settled,) = await wallet.balance()
    assert settled.state == "settled" and settled.value_msat == 96_000_000
    # The token's proofs were swapped away: the mint says they are spent, so nobody else can use them.
    with pytest.raises(WalletError) as again:
        await wallet.receive(token)
    assert again.value.code == Code.MINT_REFUSED and again.value.data["mint_code"] == 11001
    assert stat.S_IMODE(os.stat(tmp_path / "wallet.sqlite3").st_mode) == 0o600


async def test_send_keeps_proofs_pending_until_the_receiver_swaps_them(refmint, open_wallet, mnemonic) -> None:
    alice = await open_wallet(refmint.url, mnemonic, "alice")
    bob = await open_wallet(refmint.url, new_mnemonic(), "bob")
    token, unit = await issued_token(refmint, 6)  # 64 units
    await alice.receive(token)

    sent = await alice.send(20, unit)  # needs a swap: 64 -> 16+4 to send, 32+8+4 change
    decoded = parse_token(sent)
    assert decoded.amount == 20 and decoded.unit == unit and sent.startswith("cashuB")
    assert await _units(alice) == {unit: (44, 20)}
    exact = await alice.send(32, unit)  # a proof of exactly 32 is there: no swap
    assert parse_token(exact).amount == 32
    assert await _units(alice) == {unit: (12, 52)}

    assert [s["state"] for s in await alice.check_sends()] == ["pending", "pending"]
    assert await bob.receive(sent) == 20
    assert [s["state"] for s in await alice.check_sends()] == ["spent", "pending"]
    assert await _units(alice) == {unit: (12, 32)}

    # Taking back a token nobody swapped: it is ours again, the send marked reclaimed.
    assert await alice.receive(exact) == 32
    assert await _units(alice) == {unit: (44, 0)}
    assert [s["state"] for s in await alice.store.sends()] == ["spent", "reclaimed"]

    with pytest.raises(WalletError) as poor:
        await alice.send(45, unit)
    assert poor.value.code == Code.INSUFFICIENT_FUNDS


async def test_restore_from_the_mnemonic_alone(refmint, open_wallet, mnemonic) -> None:
    wallet = await open_wallet(refmint.url, mnemonic, "first")
    first, unit = await issued_token(refmint, 4, count=2)
    await wallet.receive(first)
    await wallet.send(8, unit)  # a swap: its outputs are deterministic too
    await refmint.reward(1_000_000)  # a new epoch, a new keyset
    second, unit2 = await issued_token(refmint, 3)
    await wallet.receive(second)
    expected = await _units(wallet)

    fresh = await open_wallet(refmint.url, mnemonic, "restored")
    found = await fresh.restore()
    # Every unspent proof comes back, the sent-but-unclaimed ones too (they are still unspent at the mint).
    assert found == {unit: 32, unit2: 8}
    assert {u: a + b for u, (a, b) in expected.items()} == {u: a for u, (a, _) in (await _units(fresh)).items()}
    # Counters moved past what was found: the next outputs are new ones, not reused.
    token, _ = await issued_token(refmint, 2, count=1)
    sent_after = await open_wallet(refmint.url, mnemonic, "restored2")
    await sent_after.restore()
    assert await sent_after.receive(token) == 4


@pytest.mark.parametrize("when", ["before", "after", "lost"])
async def test_a_crash_around_a_swap_loses_nothing_and_mints_nothing_twice(refmint, open_wallet, mnemonic,
                                                                          when) -> None:
    wallet = await open_wallet(refmint.url, mnemonic, mint_class=FaultyMint)
    token, unit = await issued_token(refmint, 5)
    await wallet.receive(token)
    wallet.mint.fault = ("/v1/swap", when)
    if when == "lost":
        # The answer is lost but the request is replayed: the mint refuses the replay, restore finds the proofs.
        sent = await wallet.send(12, unit)
        assert parse_token(sent).amount == 12
        assert await _units(wallet) == {unit: (20, 12)}
        return
    with pytest.raises(Crash):
        await wallet.send(12, unit)
    reopened = await open_wallet(refmint.url, mnemonic)  # same file, as the next run of the program
    assert await _units(reopened) == {unit: (32, 0)}  # recovery ran at open: all back, spendable
    proofs = [p.proof for p in await reopened.store.proofs(state="unspent")]
    states = await reopened.mint.checkstate([p.y for p in await reopened.store.proofs(state="unspent")])
    assert all(s.state == "UNSPENT" for s in states) and sum(p.amount for p in proofs) == 32
    assert parse_token(await reopened.send(12, unit)).amount == 12


@pytest.mark.parametrize("when", ["before", "after"])
async def test_a_crash_while_receiving_keeps_the_token_or_its_proofs(refmint, open_wallet, mnemonic, when) -> None:
    wallet = await open_wallet(refmint.url, mnemonic, mint_class=FaultyMint)
    token, unit = await issued_token(refmint, 4)
    wallet.mint.fault = ("/v1/swap", when)
    with pytest.raises(Crash):
        await wallet.receive(token)
    reopened = await open_wallet(refmint.url, mnemonic)
    if when == "before":
        assert await _units(reopened) == {}  # nothing happened: the token is still good
        assert await reopened.receive(token) == 16
    else:
        assert await _units(reopened) == {unit: (16, 0)}  # it happened: restore of the same outputs found it


async def test_refusals_are_coded(refmint, refmint_factory, open_wallet, mnemonic) -> None:
    wallet = await open_wallet(refmint.url, mnemonic)
    other = await refmint_factory()
    proofs = await other.issue(2)
    for text, code in (("cashuBnonsense", Code.BAD_TOKEN), ("hello", Code.BAD_TOKEN),
                       (make_token(other.url, await unit_of(other, proofs), proofs), Code.WRONG_MINT)):
        with pytest.raises(WalletError) as err:
            await wallet.receive(text)
        assert err.value.code == code
    with pytest.raises(WalletError) as bad:
        await wallet.send(0, "hash")
    assert bad.value.code == Code.BAD_AMOUNT


def test_the_database_refuses_a_newer_schema(tmp_path: Path) -> None:
    import asyncio
    import sqlite3

    from hashpool_cln.wallet.store import MIGRATIONS, WalletStore

    path = tmp_path / "w.sqlite3"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="newer"):
        asyncio.run(WalletStore.open(path))


async def test_two_commands_never_take_the_same_proofs(refmint, open_wallet, mnemonic) -> None:
    import asyncio

    first = await open_wallet(refmint.url, mnemonic, "shared")
    second = await open_wallet(refmint.url, mnemonic, "shared")  # another process on the same file
    token, unit = await issued_token(refmint, 6)  # one proof of 64
    await first.receive(token)
    outcomes = await asyncio.gather(first.send(10, unit), second.send(20, unit), return_exceptions=True)
    sent = [o for o in outcomes if isinstance(o, str)]
    busy = [o for o in outcomes if isinstance(o, WalletError)]
    # Whichever came second found the proof taken: busy, or nothing left to spend; never the same proof twice.
    assert len(sent) == 1 and len(busy) == 1 and busy[0].code in (Code.BUSY, Code.INSUFFICIENT_FUNDS)
    amount = parse_token(sent[0]).amount
    assert await _units(first) == {unit: (64 - amount, amount)}
    # At the database: a second operation on proofs an open one holds is refused.
    (held,) = [p.y for p in await first.store.proofs(state="unspent")][:1]
    await first.store.begin_operation("op-a", "swap", "00" * 8, [1], inputs=[held])
    with pytest.raises(WalletError) as taken:
        await second.store.begin_operation("op-b", "swap", "00" * 8, [1], inputs=[held])
    assert taken.value.code == Code.BUSY


async def test_an_unusable_change_token_is_recorded_not_retried_forever(refmint, open_wallet, mnemonic) -> None:
    from hashpool_cln.wallet.redeem import settle, take_tokens

    wallet = await open_wallet(refmint.url, mnemonic)
    token, unit = await issued_token(refmint, 4)
    await wallet.receive(token)
    held = await wallet.store.proofs(state="unspent")
    claim = "cd" * 32
    await wallet.store.begin_redemption(claim, "lnbcrt1...", unit, 16, [p.y for p in held])
    await refmint.swap([p.proof for p in held])  # the desk's custody swap
    # A desk answer is untrusted input: here its change token is garbage.
    done = await settle(wallet, claim, {"id": "r1", "state": "settled", "change_token": "cashuBgarbage"})
    assert done["state"] == "settled" and done["taken"] == 2 and "token" in done["error"]
    await take_tokens(wallet, claim)  # later commands do not stumble on it again
    assert await _units(wallet) == {}  # the proofs went to the desk, which says it paid
