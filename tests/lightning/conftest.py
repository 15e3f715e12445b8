from __future__ import annotations

import pytest
from support.fakenode import FakeNode

from hashpool_cln.lightning.clnrpc import ClnNode


@pytest.fixture
def cln(node: FakeNode) -> ClnNode:
    return ClnNode(node.rpc_path, timeout=5, pay_grace=5)
