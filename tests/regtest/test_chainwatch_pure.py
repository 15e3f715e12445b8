"""The watcher's pure parts: exact amounts, coinbase matching, configuration checks."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from hashpool_cln.refmint.chainwatch import (
    ChainUnavailable,
    ChainWatchConfig,
    RpcAuth,
    btc_to_msat,
    coinbase_reward_msat,
)


@pytest.mark.parametrize(("value", "msat"), [
    (Decimal("50.00000000"), 5_000_000_000_000),
    (Decimal("0.00000001"), 1000),
    (Decimal("20999999.97690000"), 2_099_999_997_690_000_000),
    (Decimal("0E-8"), 0),
    (3, 300_000_000_000),
])
def test_btc_to_msat_is_exact(value, msat):
    assert btc_to_msat(value) == msat


@pytest.mark.parametrize("value", [Decimal("0.000000001"), Decimal("-1"), 0.1, "1", True, None])
def test_btc_to_msat_refuses_what_is_not_a_whole_satoshi_amount(value):
    with pytest.raises(ChainUnavailable):
        btc_to_msat(value)


def _block(vout, vin=None):
    return {"hash": "ab" * 32, "tx": [{"vin": vin or [{"coinbase": "00"}], "vout": vout}]}


def test_coinbase_reward_matches_scripts_not_addresses():
    script = "0014" + "42" * 20
    vout = [{"value": Decimal("1.5"), "scriptPubKey": {"hex": script, "address": "whatever"}},
            {"value": Decimal("2"), "scriptPubKey": {"hex": "0014" + "43" * 20, "address": "whatever"}}]
    assert coinbase_reward_msat(_block(vout), script) == 150_000_000_000


def test_block_without_a_coinbase_is_refused():
    with pytest.raises(ChainUnavailable, match="not a coinbase"):
        coinbase_reward_msat(_block([], vin=[{"txid": "00" * 32, "vout": 0}]), "00")
    with pytest.raises(ChainUnavailable, match="expected coinbase fields"):
        coinbase_reward_msat({"tx": []}, "00")


@pytest.mark.parametrize(("overrides", "message"), [
    ({"receive_address": "bcrt1q"}, "exactly one"),
    ({"receive_script": None}, "exactly one"),
    ({"receive_script": "zz"}, "not hex"),
    ({"confirmations": 0}, "confirmations"),
    ({"poll_interval": 0}, "poll_interval"),
    ({"start_height": -1}, "start_height"),
])
def test_config_refuses_bad_values(overrides, message):
    options = {"rpc_url": "http://127.0.0.1:1/", "state_path": Path("x.json"), "auth": RpcAuth("u", "p"),
               "receive_script": "0014" + "42" * 20}
    options.update(overrides)
    with pytest.raises(ValueError, match=message):
        ChainWatchConfig(**options)


def test_missing_cookie_file_is_reported(tmp_path):
    with pytest.raises(ChainUnavailable, match="cookie file"):
        RpcAuth(cookie_file=tmp_path / "absent").header()
