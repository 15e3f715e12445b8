"""The desk's fixtures: desks built by ``support.ehash.DeskFactory`` on the shared ``ehash`` mint and ``node``
stand-in (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from support.ehash import DeskFactory

from hashpool_cln.desk.desk import Desk


@pytest.fixture
async def make_desk(tmp_path, ehash, node) -> AsyncIterator[DeskFactory]:
    factory = DeskFactory(tmp_path, ehash, node)
    yield factory
    await factory.close_all()


@pytest.fixture
async def desk(make_desk) -> Desk:
    return await make_desk()
