"""Miner wallets (``hashpool_cln.wallet``) on real sqlite files, opened for a test and closed after it."""

from __future__ import annotations

from pathlib import Path

from hashpool_cln.mintclient import MintClient
from hashpool_cln.wallet.seed import WalletKeys
from hashpool_cln.wallet.store import WalletStore
from hashpool_cln.wallet.wallet import Wallet


class Wallets:
    """``await open(url, words)``: a wallet of ``words`` for the mint at ``url``, recovered as at any start;
    ``await close()`` closes every one opened."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.opened: list[Wallet] = []

    async def open(self, url: str, words: str, name: str | None = None,
                   mint_class: type[MintClient] = MintClient) -> Wallet:
        store = await WalletStore.open(self.directory / f"{name or f'wallet-{len(self.opened)}'}.sqlite3")
        wallet = Wallet(store, WalletKeys(words), mint_class(url))
        self.opened.append(wallet)
        await wallet.recover()
        return wallet

    async def close(self) -> None:
        for w in self.opened:
            await w.mint.close()
            await w.store.close()
