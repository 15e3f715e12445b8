"""cashu-ts (npm, pinned in package-lock.json) as an independent wallet against the reference mint.

``python3 dev.py test`` installs the npm packages from the lockfile into ``tests/interop/node_modules``; without
``node`` or without that install every test here skips and says why.

Fixtures (one mint per module: the module's tests share its event loop, ``loop_scope="module"``):

- ``mint`` — ``harness.Mint``: a reference mint on loopback with an input fee (``FEE_PPK``), its handle
  (``support.refmint.MintHandle``), the open epoch's unit, and ``state``, its ledger's sqlite file read directly
  (``harness.MintState``), so answers from cashu-ts are checked against what the mint itself recorded;
- ``wallet`` — ``harness.CashuTs``: ``await wallet.run(scenario, **job)`` runs ``driver.mjs <scenario>`` for the
  open epoch's unit and returns its JSON answer; ``ok(...)`` asserts cashu-ts threw nothing, ``refused(...)``
  returns what it threw.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from support.refmint import mint_config, start_mint

from interop.harness import FEE_PPK, HERE, CashuTs, Mint, MintState, why_not_runnable


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = why_not_runnable()
    if reason is None:
        return
    for item in items:
        if Path(str(item.fspath)).parent == HERE:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mint(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Mint]:
    data_dir = tmp_path_factory.mktemp("interop") / "mint"
    config = mint_config(data_dir, input_fee_ppk=FEE_PPK)
    running = await start_mint(config)
    try:
        info = await running.handle.ok("GET", "/v1/info")
        yield Mint(running.handle, MintState(config.db_path), info["ehash"]["open_unit"])
    finally:
        await running.stop()


@pytest.fixture(scope="module")
def wallet(mint: Mint) -> CashuTs:
    return CashuTs(mint.handle.url, mint.unit)
