"""The reference mint on loopback, with helpers to issue ehash through its mining-share endpoints."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from hashpool_cln.refmint.app import create_app
from hashpool_cln.refmint.config import MintConfig, load_auth
from hashpool_cln.refmint.shares import random_share_hash


@dataclass
class RealMint:
    url: str
    pool_key: str
    desk_key: str
    session: aiohttp.ClientSession

    async def pool_post(self, path: str, body: dict[str, Any]) -> Any:
        async with self.session.post(self.url + path, json=body,
                                     headers={"Authorization": f"Bearer {self.pool_key}"}) as resp:
            data = await resp.json()
            assert resp.status == 200, data
            return data

    async def share_quote(self, leading_zeros: int) -> dict[str, Any]:
        """A paid mining-share quote worth ``2^leading_zeros`` units (the mint's minimum difficulty is 0)."""
        return await self.pool_post("/v1/mint/quote/mining_share",
                                    {"header_hash": random_share_hash(leading_zeros).hex()})

    async def reward(self, height: int, reward_msat: int) -> list[dict[str, Any]]:
        """A final block reward: the open epoch settles and a new one opens."""
        answer = await self.pool_post("/v1/admin/reward", {"height": height, "block_hash": os.urandom(32).hex(),
                                                           "reward_msat": reward_msat, "confirmations": 6})
        return answer["epochs"]


@pytest.fixture
async def real_mint(tmp_path) -> AsyncIterator[RealMint]:
    config = MintConfig(data_dir=tmp_path / "mint", min_difficulty=0, input_fee_ppk=0)
    app = create_app(config)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    auth = load_auth(config.data_dir)
    async with aiohttp.ClientSession() as session:
        yield RealMint(url=f"http://127.0.0.1:{port}", pool_key=auth["pool"], desk_key=auth["desk"],
                       session=session)
    await runner.cleanup()
