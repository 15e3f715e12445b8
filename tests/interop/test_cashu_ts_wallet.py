"""The miner's wallet and cashu-ts share a mnemonic: what ``hashpool-wallet`` holds, cashu-ts restores from the
same twelve words (NUT-13 secrets, NUT-09 restore), and what cashu-ts received, ``hashpool-wallet`` restores.

cashu-ts gets the mnemonic itself and turns it into its BIP39 seed with node's crypto, not with this project's code.
Both sides are checked against the mint's own records.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from support.refmint import ys
from support.wallets import Wallets

from hashpool_cln.cashu.models import Proof
from hashpool_cln.cashu.tokens import make_token
from hashpool_cln.wallet.seed import new_mnemonic
from hashpool_cln.wallet.wallet import Wallet
from interop.harness import CashuTs, Mint, fee

pytestmark = pytest.mark.asyncio(loop_scope="module")


def coins(proofs: list[Proof] | list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """What makes a proof spendable, sorted: secret, signature, amount."""
    return sorted((p.secret, p.C, p.amount) if isinstance(p, Proof) else (p["secret"], p["C"], p["amount"])
                  for p in proofs)


@pytest_asyncio.fixture(loop_scope="module")
async def miner(mint: Mint, tmp_path: Path) -> AsyncIterator[Any]:
    """``await miner(words)``: a hashpool-wallet of ``words`` on a fresh sqlite file, for the mint."""
    wallets = Wallets(tmp_path)

    async def make(words: str) -> Wallet:
        return await wallets.open(mint.handle.url, words)

    yield make
    await wallets.close()


async def test_cashu_ts_restores_what_hashpool_wallet_holds(mint: Mint, wallet: CashuTs, miner: Any) -> None:
    words = new_mnemonic()
    ours = await miner(words)
    proofs = await mint.handle.issue(4, 3)  # three proofs of 16 units
    assert await ours.receive(make_token(mint.handle.url, mint.unit, proofs) or "") == 48 - fee(3)
    held = await ours.unspent(mint.unit)
    assert sum(p.amount for p in held) == 48 - fee(3)
    assert mint.state.spent(ys(held)) == [False] * len(held)

    answer = await wallet.ok("restore_only", mnemonic=words)
    assert coins(answer["restored"]) == coins(held)
    assert answer["last_counter"] == len(held) - 1  # the wallet's outputs took counters 0 .. n-1

    # Another mnemonic restores nothing: the match above is the words', not the mint's.
    assert (await wallet.ok("restore_only", mnemonic=new_mnemonic()))["restored"] == []


async def test_hashpool_wallet_restores_what_cashu_ts_received(mint: Mint, wallet: CashuTs, miner: Any) -> None:
    words = new_mnemonic()
    proofs = await mint.handle.issue(3, 5)  # five proofs of 8 units
    answer = await wallet.ok("restore", mnemonic=words, proofs=[p.to_dict() for p in proofs])
    received = answer["received"]
    assert sum(p["amount"] for p in received) == 40 - fee(5)

    ours = await miner(words)
    found = await ours.restore()
    assert found == {mint.unit: 40 - fee(5)}
    held = await ours.unspent(mint.unit)
    assert coins(held) == coins(received)
    # Its counter resumes past cashu-ts's outputs, so its next outputs are new ones.
    (reserved,) = answer["reserved"]
    assert await ours.store.counter(reserved["keyset"]) == reserved["start"] + reserved["count"]
    # And what it restored is real: the mint takes it.
    await mint.handle.swap(held)
    assert mint.state.spent(ys(held)) == [True] * len(held)
