"""A request too large to decode on the plugin's own interpreter (a token of thousands of proofs), through a real
lightningd: decoded in the worker process, answered with its code, and the calls around it served."""

from __future__ import annotations

import secrets
import shutil

import pytest

_MISSING = [b for b in ("lightningd", "bitcoind") if shutil.which(b) is None]
if _MISSING:
    pytest.skip(f"{' and '.join(_MISSING)} not on PATH", allow_module_level=True)

from coincurve import PrivateKey  # noqa: E402
from pyln.client import RpcError  # noqa: E402

from hashpool_cln.cashu.models import Proof  # noqa: E402
from hashpool_cln.cashu.tokens import make_token, parse_token  # noqa: E402
from hashpool_cln.plugin import wire  # noqa: E402
from tests.realnode.test_realnode import _plugin_opts  # noqa: E402


def test_a_large_token_is_answered_through_lightningd(node_factory, mint) -> None:
    l1 = node_factory.get_node(options=_plugin_opts(mint))
    token = mint.issue_settled([64])[0]
    genuine = parse_token(token)
    points = [PrivateKey().public_key.format().hex() for _ in range(16)]
    proofs = tuple(Proof(amount=1, id=genuine.proofs[0].id, secret=secrets.token_hex(32), C=points[n % 16])
                   for n in range(2000))
    large = make_token(genuine.mint, genuine.unit, proofs)
    assert len(large) > wire.LARGE_MESSAGE
    for _ in range(2):
        with pytest.raises(RpcError) as e:
            l1.rpc.call("hashpool-quote", {"token": large})
        assert e.value.error["code"] == 3409 and e.value.error["data"] == {"proofs": 2000, "max_inputs": 1000}
        assert l1.rpc.call("hashpool-quote", {"token": token})["amount"] == 64
    assert not l1.daemon.is_in_log("Traceback")
