"""The desk's fixtures: desks built by ``support.ehash.DeskFactory`` on the shared ``ehash`` mint and ``node``
stand-in (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from support.ehash import DeskFactory, EhashMint, running_ehash

from hashpool_cln.desk.desk import Desk


@pytest.fixture
async def ehash(request, tmp_path) -> AsyncIterator[EhashMint]:
    """The shared mint (tests/conftest.py); ``parametrize("ehash", [False], indirect=True)`` serves it without
    partial melts, as a mint that settles whole quotes only (a CDK mint)."""
    async with running_ehash(tmp_path, partial_melt=getattr(request, "param", True)) as env:
        yield env


@pytest.fixture
async def make_desk(tmp_path, ehash, node) -> AsyncIterator[DeskFactory]:
    factory = DeskFactory(tmp_path, ehash, node)
    yield factory
    await factory.close_all()


@pytest.fixture
async def desk(make_desk) -> Desk:
    return await make_desk()
