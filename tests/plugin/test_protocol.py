"""The plugin process as lightningd sees it: manifest, init, parameter checking, setconfig, shutdown.

None of these needs the desk to have started: they hold for a plugin whose mint is unreachable.
"""

from __future__ import annotations

import time

import pytest
from support.pluginharness import PluginHarness

POOL_A = "02" + "aa" * 32
POOL_B = "03" + "bb" * 32

UNREACHABLE_MINT = "http://127.0.0.1:9"
BASE_OPTIONS = {"hashpool-mint-url": UNREACHABLE_MINT, "hashpool-pool": [POOL_A]}
METHODS = {
    "hashpool-redeem": "token invstring [amount_msat] [maxfee_msat] [payer_note] [claim]",
    "hashpool-quote": "token [invstring] [amount_msat]",
    "hashpool-status": "[id] [claim]",
    "hashpool-redemptions": "[state] [limit]",
    "hashpool-info": "",
    "hashpool-settle": "[unit]",
    "hashpool-resolve": "id decision reason [who] [preimage]",
}


def test_manifest_declares_methods_with_help_options_and_topic(harness: PluginHarness) -> None:
    manifest = harness.getmanifest(allow_deprecated_apis=False)

    methods = {m["name"]: m for m in manifest["rpcmethods"]}
    assert set(methods) == set(METHODS)
    for name, params in METHODS.items():
        usage = methods[name]["usage"]
        assert usage.startswith(params), usage
        help_text = usage[len(params):].strip()
        assert len(help_text) > 30, f"{name} has no help text in its usage"
        assert methods[name]["description"] == help_text

    opts = {o["name"]: o for o in manifest["options"]}
    assert set(opts) == {"hashpool-mint-url", "hashpool-mint-key", "hashpool-db", "hashpool-seed-file",
                         "hashpool-pool", "hashpool-max-msat", "hashpool-maxfee-ppm", "hashpool-maxfee-msat",
                         "hashpool-min-invoice-life", "hashpool-settle-batch", "hashpool-metrics",
                         "hashpool-metrics-public"}
    assert opts["hashpool-pool"]["multi"] is True
    assert opts["hashpool-mint-key"]["type"] == "string-conceal"
    dynamic = {name for name, o in opts.items() if o["dynamic"]}
    assert dynamic == {"hashpool-max-msat", "hashpool-maxfee-ppm", "hashpool-maxfee-msat",
                       "hashpool-min-invoice-life"}
    assert all(opts[n]["type"] == "int" and isinstance(opts[n]["default"], int) for n in dynamic)

    assert manifest["notifications"] == [{"method": "hashpool_redemption"}]
    assert "shutdown" in manifest["subscriptions"]
    assert manifest["dynamic"] is True
    assert manifest["nonnumericids"] is True
    assert manifest["hooks"] == []


@pytest.mark.parametrize(("options", "needle"), [
    ({"hashpool-pool": [POOL_A]}, "hashpool-mint-url is required"),
    ({"hashpool-mint-url": "ftp://mint", "hashpool-pool": [POOL_A]}, "hashpool-mint-url"),
    ({"hashpool-mint-url": UNREACHABLE_MINT, "hashpool-pool": []}, "hashpool-pool is required"),
    ({"hashpool-mint-url": UNREACHABLE_MINT, "hashpool-pool": ["02" + "zz" * 32]}, "hashpool-pool"),
    ({**BASE_OPTIONS, "hashpool-max-msat": 0}, "hashpool-max-msat"),
    ({**BASE_OPTIONS, "hashpool-maxfee-ppm": -1}, "hashpool-maxfee-ppm"),
])
def test_init_disables_itself_on_bad_options(harness: PluginHarness, options: dict, needle: str) -> None:
    harness.getmanifest()
    result = harness.init(options)
    assert isinstance(result, dict) and needle in result["disable"]


def test_init_creates_private_data_dir(harness: PluginHarness) -> None:
    harness.getmanifest()
    assert harness.init(BASE_OPTIONS) is None
    data = harness.lightning_dir / "hashpool"
    assert data.is_dir()
    assert data.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(("method", "params", "needle"), [
    ("hashpool-redeem", {}, "missing required parameter 'token'"),
    ("hashpool-redeem", ["cashuBxyz"], "missing required parameter 'invstring'"),
    ("hashpool-redeem", {"token": "cashuBxyz", "invstring": "lnbc1", "bogus": 1}, "unknown parameter 'bogus'"),
    ("hashpool-redeem", ["t", "i", 1, 2, "note", "ab" * 32, "extra"], "too many parameters"),
    ("hashpool-redeem", {"token": "t", "invstring": "i", "amount_msat": "12.5sat"}, "amount_msat"),
    ("hashpool-redeem", {"token": "t", "invstring": "i", "amount_msat": -5}, "amount_msat"),
    ("hashpool-redeem", {"token": "t", "invstring": "i", "maxfee_msat": True}, "maxfee_msat"),
    ("hashpool-redeem", {"token": 5, "invstring": "i"}, "token"),
    ("hashpool-redeem", {"token": "t", "invstring": "i", "payer_note": "x" * 600}, "payer_note"),
    ("hashpool-quote", {"token": ""}, "token"),
    ("hashpool-status", [], "give id, claim, or both"),
    ("hashpool-status", {"id": "abc", "reveal_tokens": True}, "unknown parameter 'reveal_tokens'"),
    ("hashpool-status", {"claim": "AB" * 32}, "claim"),
    ("hashpool-redeem", {"token": "t", "invstring": "i", "claim": "00" * 31}, "claim"),
    ("hashpool-redemptions", {"state": "lost"}, "state"),
    ("hashpool-redemptions", {"limit": 0}, "limit"),
    ("hashpool-redemptions", ["paid", 5000], "limit"),
    ("hashpool-redemptions", {"limit": "²"}, "limit"),
    ("hashpool-redemptions", {"limit": "٣"}, "limit"),
    ("hashpool-redemptions", {"limit": "9" * 5000}, "limit"),
    ("hashpool-redeem", {"token": "t", "invstring": "i", "amount_msat": "9" * 5000}, "amount_msat"),
    ("hashpool-info", ["x"], "too many parameters"),
    ("hashpool-settle", {"unit": 7}, "unit"),
])
def test_bad_parameters_get_32602_with_a_clear_message(harness: PluginHarness, method: str, params, needle: str
                                                        ) -> None:
    harness.getmanifest()
    harness.init(BASE_OPTIONS)
    reply = harness.call(method, params)
    assert reply.error is not None
    assert reply.error["code"] == -32602
    assert needle in reply.error["message"]
    assert set(reply.error) <= {"code", "message", "data"}


def test_methods_answer_not_ready_while_the_desk_cannot_start(harness: PluginHarness, lightning_dir) -> None:
    harness.getmanifest()
    # The database path is a directory: the desk cannot open it, so it never becomes ready.
    (lightning_dir / "db-is-a-dir").mkdir()
    harness.init({**BASE_OPTIONS, "hashpool-db": "db-is-a-dir"})
    for _ in range(2):  # each call tries to start again, and says why it cannot
        reply = harness.call("hashpool-info")
        assert reply.error is not None and reply.error["code"] == 3460, reply.raw
        assert "could not start" in reply.error["message"]


def test_setconfig_checks_values(harness: PluginHarness) -> None:
    harness.getmanifest()
    harness.init(BASE_OPTIONS)
    assert harness.setconfig("hashpool-max-msat", 2500).ok() == {}
    bad = harness.setconfig("hashpool-max-msat", "lots")
    assert bad.error == {"code": -32602, "message": "hashpool-max-msat must be a whole number, got 'lots'"}
    bad = harness.setconfig("hashpool-max-msat", "0")
    assert bad.error is not None and bad.error["code"] == -32602
    for huge in ("9" * 5000, str(2**63)):
        bad = harness.setconfig("hashpool-max-msat", huge)
        assert bad.error is not None and bad.error["code"] == -32602 and len(bad.error["message"]) < 200
    refused = harness.setconfig("hashpool-mint-url", "http://127.0.0.1:1")
    assert refused.error is not None and "cannot be changed" in refused.error["message"]
    assert any("hashpool-max-msat set to 2500" in line for line in harness.logs())


def test_shutdown_notification_ends_the_process(harness: PluginHarness) -> None:
    harness.getmanifest()
    harness.init({**BASE_OPTIONS, "hashpool-pool": [POOL_A, POOL_B]})
    started = time.monotonic()
    harness.shutdown()
    assert harness.wait_exit(30) == 0
    assert time.monotonic() - started < 15


def test_a_failed_start_names_no_path(harness: PluginHarness, lightning_dir) -> None:
    harness.getmanifest()
    (lightning_dir / "db-is-a-dir").mkdir()
    harness.init({**BASE_OPTIONS, "hashpool-db": "db-is-a-dir"})
    reply = harness.call("hashpool-info")
    assert reply.error is not None and reply.error["code"] == 3460
    assert str(lightning_dir) not in str(reply.error) and "db-is-a-dir" not in str(reply.error)


def test_a_seed_file_open_to_others_is_refused(harness: PluginHarness, lightning_dir) -> None:
    import os

    seed = lightning_dir / "loose-seed"
    seed.write_text("ab" * 32 + "\n")
    os.chmod(seed, 0o644)
    harness.getmanifest()
    harness.init({**BASE_OPTIONS, "hashpool-seed-file": "loose-seed"})
    reply = harness.call("hashpool-info")
    assert reply.error is not None and reply.error["code"] == 3460
    assert "open to others" in reply.error["message"] and str(lightning_dir) not in reply.error["message"]
    assert harness.wait_log("open to others (mode 644): refused")
    assert os.stat(seed).st_mode & 0o777 == 0o644  # left as it is: the operator decides


def test_a_loose_database_and_directory_are_made_owner_only(harness: PluginHarness, lightning_dir) -> None:
    import os

    data = lightning_dir / "hashpool"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    db = data / "desk.sqlite3"
    db.touch()
    os.chmod(db, 0o664)
    harness.getmanifest()
    harness.init(BASE_OPTIONS)
    assert harness.call("hashpool-redemptions", {}).ok() == {"redemptions": []}
    assert os.stat(data).st_mode & 0o777 == 0o700
    assert os.stat(db).st_mode & 0o777 == 0o600
    assert os.stat(data / "seed").st_mode & 0o777 == 0o600
    harness.wait_log("was open to others (mode 755); made owner-only")
    harness.wait_log("was open to others (mode 664); made owner-only")
