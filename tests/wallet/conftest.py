"""Fixtures for the wallet: a fresh mnemonic, wallets on real sqlite files, and a mint client that crashes on cue."""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import sys
import tempfile
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from support.fakenode import FakeNode
from support.pluginharness import PluginHarness, ThreadedMint, assert_clean
from support.wallets import Wallets
from wallet.standin import CommandoStandin, StandinError

from hashpool_cln.cashu.models import Proof
from hashpool_cln.cashu.tokens import make_token, parse_token, serialize_v4
from hashpool_cln.mintclient import MintClient, MintUnavailable
from hashpool_cln.wallet import cli
from hashpool_cln.wallet.seed import new_mnemonic
from hashpool_cln.wallet.wallet import Wallet


class Crash(BaseException):
    """The process dies here: nothing in the wallet catches a BaseException."""


class FaultyMint(MintClient):
    """A real client of the real mint that, once, dies or loses the answer around one kind of request.

    ``fault = ("swap", "before" | "after" | "lost")``: ``before`` dies before the request goes out, ``after``
    dies once the mint has answered, ``lost`` drops the answer (the mint acted) as a timeout would.
    """

    fault: tuple[str, str] | None = None

    async def _request(self, method: str, path: str, body: Any, *, auth: bool) -> Any:
        fault = self.fault
        if fault is not None and path.endswith(fault[0]):
            self.fault = None
            if fault[1] == "before":
                raise Crash(path)
            await super()._request(method, path, body, auth=auth)
            if fault[1] == "after":
                raise Crash(path)
            raise MintUnavailable(f"POST {path}: no answer within 10 s; the outcome is unknown")
        return await super()._request(method, path, body, auth=auth)


@pytest.fixture
def mnemonic() -> str:
    return new_mnemonic()


@pytest.fixture
async def open_wallet(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Wallet]]]:
    wallets = Wallets(tmp_path)

    async def make(url: str, words: str, name: str = "wallet", mint_class: type[MintClient] = MintClient) -> Wallet:
        return await wallets.open(url, words, name, mint_class)

    yield make
    await wallets.close()


async def issued_token(refmint: Any, leading_zeros: int, count: int = 1) -> tuple[str, str]:
    """``(token, unit)``: fresh ehash of the open epoch from the reference mint, as a pool's miner would get it."""
    proofs = await refmint.issue(leading_zeros, count)
    unit = await unit_of(refmint, proofs)
    return make_token(refmint.url, unit, proofs) or "", unit


def retargeted(token: str, url: str) -> str:
    """The same token, naming ``url`` as its mint (a wallet takes tokens of its own mint only): for a wallet that
    reaches the mint through a proxy."""
    return serialize_v4(replace(parse_token(token), mint=url))


async def run_cli(argv: list[str], timeout: float = 30.0) -> tuple[int, str, str]:
    """``hashpool-wallet`` in this process, with what a terminal gives it: argv as the OS hands it over (bytes that
    are not UTF-8 arrive as lone surrogates, PEP 383), a UTF-8 stdout that refuses what UTF-8 cannot hold and a
    stderr that escapes it (Python's defaults). Exit status -1: an exception got out of ``main``."""
    argv = [a.replace("\ud800", "\udcff") for a in argv]
    out, err = io.BytesIO(), io.BytesIO()

    def main() -> int:
        stdout = io.TextIOWrapper(out, "utf-8", errors="strict", write_through=True)
        stderr = io.TextIOWrapper(err, "utf-8", errors="backslashreplace", write_through=True)
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                return cli.main(argv)
        except SystemExit as exc:  # argparse: usage errors exit 2
            return int(exc.code or 0)
        except Exception:
            err.write(traceback.format_exc().encode("utf-8", "backslashreplace"))
            return -1
        finally:
            stdout.detach(), stderr.detach()
    code = await asyncio.wait_for(asyncio.to_thread(main), timeout)
    return code, out.getvalue().decode("utf-8", "replace"), err.getvalue().decode("utf-8", "replace")


async def unit_of(refmint: Any, proofs: list[Proof]) -> str:
    keysets = (await refmint.ok("GET", "/v1/keysets"))["keysets"]
    return next(k["unit"] for k in keysets if k["id"] == proofs[0].id)


# ---- the desk for real: the plugin process behind a stand-in node that speaks BOLT8 and commando ------------

WALLET_RUNE = "rune-wallet"  # what the stand-in accepts: the three methods a miner's rune allows
QUOTE_ONLY_RUNE = "rune-quote"
NO_QUOTE_RUNE = "rune-no-quote"  # redeem and status, not quote
RATED_RUNE = "rune-rated"  # the miner's three methods with rate=60: a second between two commands


@dataclass
class PoolNode:
    """The pool's node as a wallet meets it: the plugin (real process), its Lightning stand-in, the mint, and the
    commando listener in front."""

    harness: PluginHarness
    lightning: FakeNode
    mint: ThreadedMint
    commando: CommandoStandin

    def forward(self, method: str, params: Any) -> Any:
        reply = self.harness.call(method, params, timeout=60)
        if reply.error is not None:
            raise StandinError(reply.error["code"], reply.error.get("message", ""), reply.error.get("data"))
        return reply.result


@pytest.fixture
def pool_node(tmp_path: Path) -> Iterator[PoolNode]:
    lightning_dir = Path(tempfile.mkdtemp(prefix="hp-wl-"))  # short: unix socket paths are limited
    fake = FakeNode(lightning_dir / "lightning-rpc").start_in_thread()
    mint = ThreadedMint(tmp_path / "mint").start()
    harness = PluginHarness(lightning_dir, python=sys.executable).start()
    holder: list[PoolNode] = []
    commando = CommandoStandin(lambda m, p: holder[0].forward(m, p), runes={
        WALLET_RUNE: {"hashpool-quote", "hashpool-redeem", "hashpool-status"},
        QUOTE_ONLY_RUNE: {"hashpool-quote"}, NO_QUOTE_RUNE: {"hashpool-redeem", "hashpool-status"},
        RATED_RUNE: {"hashpool-quote", "hashpool-redeem", "hashpool-status"}}, rates={RATED_RUNE: 60}).start()
    pool = PoolNode(harness, fake, mint, commando)
    holder.append(pool)
    harness.getmanifest()
    assert harness.init({"hashpool-mint-url": mint.url, "hashpool-mint-key": mint.desk_key,
                         "hashpool-pool": [mint.pool]}) is None
    try:
        yield pool
    finally:
        commando.stop()
        harness.close()
        mint.stop()
        fake.stop_thread()
        shutil.rmtree(lightning_dir, ignore_errors=True)
    assert_clean(harness)
