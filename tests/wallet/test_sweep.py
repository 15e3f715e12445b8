"""Sweeping share quotes by key from the reference mint: many quotes in NUT-29 batches, only the wallet's own, a
crash or a lost answer around every batch, and restore of swept ehash from the mnemonic alone."""

from __future__ import annotations

import asyncio

import pytest
from coincurve import PrivateKey
from wallet.conftest import Crash, FaultyMint

from hashpool_cln.mintclient import MintError
from hashpool_cln.wallet.issuance import Issuance
from hashpool_cln.wallet.sweep import sweep


async def _quotes(refmint, key: PrivateKey, count: int, leading_zeros: int = 3) -> list[dict]:
    return [await refmint.ehash_quote(leading_zeros, key) for _ in range(count)]


async def _states(refmint, quotes: list[dict]) -> list[str]:
    return [(await refmint.ok("GET", f"/v1/mint/quote/ehash/{q['quote']}"))["state"] for q in quotes]


async def test_many_quotes_are_swept_in_batches(refmint, open_wallet, mnemonic) -> None:
    wallet = await open_wallet(refmint.url, mnemonic)
    mine = await _quotes(refmint, wallet.keys.lock_key, 120)  # 8 units each
    theirs = await _quotes(refmint, PrivateKey(), 5)
    seen: list[tuple[int, int]] = []
    result = await sweep(wallet, Issuance(wallet.mint), batch_size=50, progress=lambda d, t: seen.append((d, t)))
    assert (result.found, result.minted, result.batches) == (120, 120, 3)
    assert seen == [(0, 120), (50, 120), (100, 120), (120, 120)]
    (balance,) = await wallet.balance()
    assert balance.unspent == 960 and result.units == {balance.unit: 960}
    assert set(await _states(refmint, mine)) == {"ISSUED"} and set(await _states(refmint, theirs)) == {"PAID"}
    again = await sweep(wallet, Issuance(wallet.mint))
    assert (again.found, again.minted) == (0, 0)
    counts = await wallet.store.quote_counts()
    assert counts == {"ISSUED": 120}


async def test_quotes_of_two_epochs_go_in_batches_of_one_unit(refmint, open_wallet, mnemonic) -> None:
    wallet = await open_wallet(refmint.url, mnemonic)
    await _quotes(refmint, wallet.keys.lock_key, 3, leading_zeros=2)
    await refmint.reward(1_000_000)  # the first epoch settles; its quotes stay mintable while it is redeemable
    await _quotes(refmint, wallet.keys.lock_key, 2, leading_zeros=4)
    result = await sweep(wallet, Issuance(wallet.mint))
    assert result.minted == 5 and result.batches == 2 and sorted(result.units.values()) == [12, 32]


async def test_quotes_past_their_expiry_are_left_out_of_the_batch(refmint_factory, open_wallet, mnemonic) -> None:
    refmint = await refmint_factory(redeem_window=1)
    wallet = await open_wallet(refmint.url, mnemonic)
    old = await _quotes(refmint, wallet.keys.lock_key, 3, leading_zeros=2)
    await wallet.store.see_quotes((q["quote"], q["unit"], q["amount"], "PAID") for q in old)  # seen earlier
    await refmint.reward(1_000_000)  # settled, redeemable for one second: then its quotes expire
    await asyncio.sleep(2.1)
    await _quotes(refmint, wallet.keys.lock_key, 2, leading_zeros=4)
    result = await sweep(wallet, Issuance(wallet.mint))
    assert result.minted == 2 and list(result.units.values()) == [32]
    assert (await wallet.store.quote_counts()) == {"EXPIRED": 3, "ISSUED": 2}


@pytest.mark.parametrize("when", ["before", "after", "lost"])
async def test_a_crash_around_a_batch_mints_each_quote_once(refmint, open_wallet, mnemonic, when) -> None:
    wallet = await open_wallet(refmint.url, mnemonic, mint_class=FaultyMint)
    quotes = await _quotes(refmint, wallet.keys.lock_key, 30)
    wallet.mint.fault = ("/v1/mint/ehash/batch", when)
    if when == "lost":
        # The answer is lost; the replay is refused (already issued) and restore of the same outputs finds it.
        result = await sweep(wallet, Issuance(wallet.mint), batch_size=10)
        assert result.minted == 30
    else:
        with pytest.raises(Crash):
            await sweep(wallet, Issuance(wallet.mint), batch_size=10)
        reopened = await open_wallet(refmint.url, mnemonic)  # the next run: recovery at open, then sweep again
        await sweep(reopened, Issuance(reopened.mint), batch_size=10)
        wallet = reopened
    (balance,) = await wallet.balance()
    assert balance.unspent == 240  # every quote exactly once
    assert set(await _states(refmint, quotes)) == {"ISSUED"}
    ys = [p.y for p in await wallet.store.proofs()]
    assert all(s.state == "UNSPENT" for s in await wallet.mint.checkstate(ys)) and len(set(ys)) == len(ys)


async def test_swept_ehash_restores_from_the_mnemonic(refmint, open_wallet, mnemonic) -> None:
    wallet = await open_wallet(refmint.url, mnemonic, "first")
    await _quotes(refmint, wallet.keys.lock_key, 12, leading_zeros=5)
    await sweep(wallet, Issuance(wallet.mint), batch_size=5)
    fresh = await open_wallet(refmint.url, mnemonic, "second")
    assert sum((await fresh.restore()).values()) == 12 * 32
    # And the restored wallet's counters are past the swept outputs: new sweeps do not collide.
    await _quotes(refmint, fresh.keys.lock_key, 2, leading_zeros=1)
    assert (await sweep(fresh, Issuance(fresh.mint))).minted == 2
    assert sum(b.unspent for b in await fresh.balance()) == 12 * 32 + 4


async def test_a_lookup_signed_for_another_mint_is_refused(refmint, refmint_factory, open_wallet, mnemonic) -> None:
    wallet = await open_wallet(refmint.url, mnemonic)
    other_pubkey = (await (await refmint_factory()).ok("GET", "/v1/info"))["pubkey"]

    class SignsForTheOtherMint(Issuance):
        async def mint_pubkey(self) -> str:
            return other_pubkey

    with pytest.raises(MintError) as refused:
        await SignsForTheOtherMint(wallet.mint).lookup([wallet.keys.lock_key])
    assert refused.value.code == 20008


async def test_a_stale_lookup_is_signed_again_with_a_fresh_timestamp(refmint, open_wallet, mnemonic,
                                                                     monkeypatch) -> None:
    import time as real_time

    from hashpool_cln.wallet import issuance as issuance_module

    wallet = await open_wallet(refmint.url, mnemonic)
    await _quotes(refmint, wallet.keys.lock_key, 2)
    calls: list[int] = []

    class Clock:
        @staticmethod
        def time() -> float:
            calls.append(1)
            return real_time.time() - (3600 if len(calls) == 1 else 0)  # the first signature is an hour old

    monkeypatch.setattr(issuance_module, "time", Clock)
    found = await Issuance(wallet.mint).lookup([wallet.keys.lock_key])
    assert len(found) == 2 and len(calls) == 2


async def test_a_full_lookup_is_followed_by_another(refmint, open_wallet, mnemonic, monkeypatch) -> None:
    from hashpool_cln.wallet import sweep as sweep_module

    wallet = await open_wallet(refmint.url, mnemonic)
    await _quotes(refmint, wallet.keys.lock_key, 12)
    monkeypatch.setattr(sweep_module, "LOOKUP_LIMIT", 12)  # as if the mint had answered its most
    looked: list[int] = []
    issuance = Issuance(wallet.mint)
    real_lookup = issuance.lookup

    async def counting(keys):  # the real signed lookup, counted
        found = await real_lookup(keys)
        looked.append(len(found))
        return found

    issuance.lookup = counting  # type: ignore[method-assign]
    result = await sweep(wallet, issuance)
    assert looked == [12, 0] and result.minted == 12
