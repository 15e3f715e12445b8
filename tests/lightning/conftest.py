from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from support.fakenode import FakeNode

from hashpool_cln.lightning.clnrpc import ClnNode


@pytest.fixture
async def node(tmp_path) -> AsyncIterator[FakeNode]:
    fake = FakeNode(tmp_path / "lightning-rpc")
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def cln(node: FakeNode) -> ClnNode:
    return ClnNode(node.rpc_path, timeout=5, pay_grace=5)

