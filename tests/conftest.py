"""Fixtures shared by every test folder.

``refmint`` — a fresh reference mint, in-process on 127.0.0.1 (random port), with its data directory in
``tmp_path / "mint"``. It yields a ``support.refmint.MintHandle``:

- ``url``, ``pool_key``, ``desk_key`` (bearer keys of the pool and desk roles), ``data_dir``,
  ``session`` (an aiohttp session), ``ledger`` (the in-process ``Ledger``, for direct chain-event calls);
- ``await call(method, path, body=None, role=None|"pool"|"desk", raw=None) -> HttpAnswer(status, body, code)``
  and ``await ok(...)`` (asserts 200, returns the JSON body);
- ``client()`` -> a ``MintClient`` with the desk key (use as ``async with``);
- ``await share_quote(leading_zeros, pubkey=None)``, ``await mint_quote(quote, lock_key=None, amounts=None)``,
  ``await issue(leading_zeros, count=1) -> list[Proof]`` (ehash of the open epoch; with the fixture's
  minimum difficulty 0 a share with n leading zero bits is worth 2^n units);
- ``await reward(reward_msat, height=None, confirmations=None, block_hash=None) -> list[epoch dict]``
  (the epochs the reward backs, then the newly opened one);
- ``await settled_epoch(reward_msat, leading_zeros, count=1) -> (unit, proofs)``: issue shares, then settle
  their epoch at once (final reward, no issuance grace): the helper for anything that needs redeemable ehash;
- ``await swap(proofs, amounts=None) -> list[Proof]``.

Settings: ``support.refmint.mint_config`` (min difficulty 0, final at 1 confirmation, no fees).
Tests needing other settings use the ``refmint_factory`` fixture: ``await refmint_factory(**overrides)``.

``ehash`` — redeemable ehash: a reference mint with a settled epoch at 1 sat a unit and a bank of 2^24 units,
behind a proxy that can misbehave (``support.ehash.EhashMint``: ``token(...)``, ``states(...)``, ``proxy``).

``node`` — the Lightning node stand-in (``support.fakenode.FakeNode``) on a unix socket in ``tmp_path``.

``mint`` — the reference mint in a thread of its own (``support.pluginharness.ThreadedMint``), for callers that
block while it answers: the plugin process, the wallet's command line, real nodes. Folders with a mint of their
own kind (``tests/interop``, ``tests/client``) define their own ``mint``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from support.ehash import EhashMint, running_ehash
from support.fakenode import FakeNode
from support.pluginharness import ThreadedMint
from support.refmint import InProcessMint, MintHandle, mint_config, start_mint


@pytest.fixture
async def refmint_factory(tmp_path) -> AsyncIterator[Callable[..., Awaitable[MintHandle]]]:
    started: list[InProcessMint] = []

    async def make(**overrides: Any) -> MintHandle:
        data_dir = overrides.pop("data_dir", tmp_path / f"mint{len(started) or ''}")
        mint = await start_mint(mint_config(data_dir, **overrides))
        started.append(mint)
        return mint.handle

    yield make
    for mint in reversed(started):
        await mint.stop()


@pytest.fixture
async def refmint(refmint_factory) -> MintHandle:
    return await refmint_factory()


@pytest.fixture
async def ehash(tmp_path) -> AsyncIterator[EhashMint]:
    async with running_ehash(tmp_path) as env:
        yield env


@pytest.fixture
async def node(tmp_path) -> AsyncIterator[FakeNode]:
    fake = FakeNode(tmp_path / "lightning-rpc")
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def mint(tmp_path) -> Iterator[ThreadedMint]:
    threaded = ThreadedMint(tmp_path / "mint").start()
    try:
        yield threaded
    finally:
        threaded.stop()
