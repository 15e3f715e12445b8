"""The miner's wallet against real lightningd: a direct BOLT8 connection to the pool's node, commando with a real
rune, redemptions into the payee node's BOLT11 invoice and BOLT12 offer, and a method the rune does not allow."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

_MISSING = [b for b in ("lightningd", "bitcoind") if shutil.which(b) is None]
if _MISSING:
    pytest.skip(f"{' and '.join(_MISSING)} not on PATH", allow_module_level=True)

from support.pluginharness import PLUGIN, ThreadedMint  # noqa: E402

from hashpool_cln.mintclient import MintClient  # noqa: E402
from hashpool_cln.wallet.commando import CommandoError, NodeAddress  # noqa: E402
from hashpool_cln.wallet.errors import WalletError  # noqa: E402
from hashpool_cln.wallet.redeem import CommandoDesk, redeem  # noqa: E402
from hashpool_cln.wallet.seed import WalletKeys, new_mnemonic  # noqa: E402
from hashpool_cln.wallet.store import WalletStore  # noqa: E402
from hashpool_cln.wallet.wallet import Wallet  # noqa: E402

# The README's recipe: rate=10 is at least six seconds between two commands, so each redemption (a quote, then the
# redemption) waits once between its two calls.
MINER_RESTRICTIONS = [["method=hashpool-quote", "method=hashpool-redeem", "method=hashpool-status"], ["rate=10"]]



def _pool_and_payee(node_factory, mint: ThreadedMint):
    opts = {"plugin": str(PLUGIN), "hashpool-mint-url": mint.url, "hashpool-mint-key": mint.desk_key,
            "hashpool-pool": mint.pool}
    return node_factory.line_graph(2, opts=[opts, {}], wait_for_announce=True)


def _wallet_session(pool, mint: ThreadedMint, tmp_path: Path, rune: str, tokens: list[str], scenario: Any) -> Any:
    async def main() -> Any:
        keys = WalletKeys(new_mnemonic())
        store = await WalletStore.open(tmp_path / "wallet.sqlite3")
        wallet = Wallet(store, keys, MintClient(mint.url))
        desk = CommandoDesk(NodeAddress(pool.info["id"], "127.0.0.1", pool.port), keys.node_key, rune, timeout=60)
        try:
            for token in tokens:
                await wallet.receive(token)
            return await scenario(wallet, desk, keys)
        finally:
            desk.close()
            await wallet.mint.close()
            await store.close()

    return asyncio.run(main())


def test_the_wallet_redeems_over_commando_with_a_real_rune(node_factory, mint, tmp_path: Path) -> None:
    pool, payee = _pool_and_payee(node_factory, mint)
    rune = pool.rpc.call("createrune", {"restrictions": MINER_RESTRICTIONS})["rune"]
    tokens = mint.issue_settled([64, 64], msat_per_unit=1_000_000)
    invoice = payee.rpc.invoice(10_000_000, "miner-wallet-1", "ehash over commando")["bolt11"]
    offer = payee.rpc.call("offer", {"amount": "any", "description": "ehash over commando (BOLT12)"})["bolt12"]

    async def scenario(wallet: Wallet, desk: CommandoDesk, keys: WalletKeys) -> Any:
        units = [b.unit for b in await wallet.balance()]
        paid11 = await redeem(wallet, desk, invoice, unit=units[0])
        assert paid11["state"] in ("paid", "settled")
        paid12 = await redeem(wallet, desk, offer, amount_msat=7_000_000, unit=units[0])
        assert paid12["state"] in ("paid", "settled") and paid12["amount_msat"] == 7_000_000
        # The rune allows three methods and nothing else.
        with pytest.raises(CommandoError) as refused:
            await desk.call("hashpool-redemptions", {})
        assert refused.value.code == 0x4C51
        return paid11

    paid11 = _wallet_session(pool, mint, tmp_path, rune, tokens, scenario)
    received = payee.rpc.listinvoices("miner-wallet-1")["invoices"][0]
    assert received["status"] == "paid" and received["payment_preimage"] == paid11["payment_preimage"]


def test_a_rune_for_quotes_only_cannot_redeem(node_factory, mint, tmp_path: Path) -> None:
    pool, payee = _pool_and_payee(node_factory, mint)
    rune = pool.rpc.call("createrune", {"restrictions": [["method=hashpool-quote"]]})["rune"]
    tokens = mint.issue_settled([16], msat_per_unit=1_000_000)
    invoice = payee.rpc.invoice(1_000_000, "miner-wallet-2", "refused")["bolt11"]

    async def scenario(wallet: Wallet, desk: CommandoDesk, keys: WalletKeys) -> Any:
        with pytest.raises(WalletError) as refused:
            await redeem(wallet, desk, invoice)
        assert refused.value.code == 0x4C51
        assert sum(b.unspent for b in await wallet.balance()) == 16  # untouched, spendable again

    _wallet_session(pool, mint, tmp_path, rune, tokens, scenario)
    assert payee.rpc.listinvoices("miner-wallet-2")["invoices"][0]["status"] == "unpaid"
