"""The miner's steps of the regtest demo, run against the reference mint without bitcoind or lightningd: the
wallet is created in the stack's state directory, the pool quotes shares locked to its key, the wallet sweeps
them and, once the epoch settles, prices them. (The Lightning half runs in tests/realnode/test_regtest_demo.py.)"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.pluginharness import ThreadedMint

from hashpool_cln.regtest import demo
from hashpool_cln.regtest.layout import Layout
from hashpool_cln.wallet import config as wallet_config


@dataclass
class MintOnlyStack:
    """What the demo's wallet steps use of the stack: its layout and the mint's URL."""

    layout: Layout
    mint: ThreadedMint

    def mint_url(self) -> str:
        return self.mint.url


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[MintOnlyStack]:
    layout = Layout(tmp_path / "regtest")
    mint = ThreadedMint(layout.mint_dir).start()
    try:
        yield MintOnlyStack(layout, mint)
    finally:
        mint.stop()


def test_the_wallet_steps_of_the_demo(stack: MintOnlyStack) -> None:
    keys = demo.wallet_keys(stack)  # type: ignore[arg-type]
    assert demo.wallet_keys(stack).lock_pubkey == keys.lock_pubkey  # type: ignore[arg-type]  # created once
    directory = stack.layout.wallet_dir
    assert stat.S_IMODE((directory / "mnemonic").stat().st_mode) == 0o600
    assert wallet_config.load(directory).mint == stack.mint.url

    demo.quote_shares(stack, keys.lock_pubkey, 3)  # type: ignore[arg-type]
    swept = demo.wallet_sweep(stack, keys)  # type: ignore[arg-type]
    (unit,) = swept["units"]
    share = 1 << demo.SHARE_EXPONENT  # the test mint's minimum difficulty is 0
    assert swept["quotes_minted"] == 3 and swept["units"][unit] == 3 * share
    assert stack.layout.wallet_db.exists()

    (before,) = demo.wallet_balance(stack, keys)  # type: ignore[arg-type]
    assert (before["unspent"], before["epoch_state"], before["value_msat"]) == (3 * share, "open", None)
    stack.mint.issue_settled([1])  # a reward lands: the open epoch, ours, settles
    (after,) = demo.wallet_balance(stack, keys)  # type: ignore[arg-type]
    assert after["epoch_state"] == "settled" and after["value_msat"] > 0
