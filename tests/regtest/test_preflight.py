"""The stack refuses to start, before touching anything, when bitcoind or lightningd is missing or too old."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hashpool_cln.regtest import preflight

ROOT = Path(__file__).resolve().parents[2]


def _fake(bin_dir: Path, name: str, version_line: str, calls: Path) -> None:
    """A stand-in binary that prints ``version_line`` and records every invocation's arguments."""
    script = bin_dir / name
    script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\necho "{version_line}"\n')
    script.chmod(0o755)


@pytest.fixture
def fakebin(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    return bin_dir


def _run(command: str, bin_dir: Path, state: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PATH", "HASHPOOL_REGTEST_DIR")}
    env.update(PATH=str(bin_dir), HASHPOOL_REGTEST_DIR=str(state))
    return subprocess.run([sys.executable, "-m", "hashpool_cln.regtest", command], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", ["demo", "up"])
def test_nothing_on_path_stops_at_once_naming_both_and_where_to_get_them(fakebin, tmp_path, command):
    result = _run(command, fakebin, tmp_path / "state")
    assert result.returncode == 1
    assert "bitcoind is not on PATH" in result.stderr
    assert "lightningd is not on PATH" in result.stderr
    assert "https://bitcoincore.org/en/download/" in result.stderr
    assert "https://github.com/ElementsProject/lightning/releases" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state").exists()


def test_missing_lightningd_never_half_starts_the_stack(fakebin, tmp_path):
    calls = tmp_path / "calls.log"
    _fake(fakebin, "bitcoind", "Bitcoin Core daemon version v28.1.0", calls)
    _fake(fakebin, "bitcoin-cli", "Bitcoin Core RPC client version v28.1.0", calls)
    result = _run("demo", fakebin, tmp_path / "state")
    assert result.returncode == 1
    assert "lightningd is not on PATH" in result.stderr and "bitcoind" not in result.stderr.split("\n")[1]
    assert calls.read_text().splitlines() == ["bitcoind -version", "bitcoin-cli -version"]  # only asked versions
    assert not (tmp_path / "state").exists()


def test_too_old_lightningd_is_refused_with_the_version_needed(fakebin, tmp_path):
    calls = tmp_path / "calls.log"
    _fake(fakebin, "bitcoind", "Bitcoin Core daemon version v28.1.0", calls)
    _fake(fakebin, "bitcoin-cli", "Bitcoin Core RPC client version v28.1.0", calls)
    _fake(fakebin, "lightningd", "v25.12.1", calls)
    result = _run("demo", fakebin, tmp_path / "state")
    assert result.returncode == 1
    assert "lightningd is version v25.12.1; version v26.06 or newer is needed" in result.stderr
    assert "lightningd --version" in calls.read_text() and "lightningd --" not in calls.read_text().replace(
        "lightningd --version", "")
    assert not (tmp_path / "state").exists()


def test_too_old_bitcoind_is_refused(fakebin, tmp_path):
    calls = tmp_path / "calls.log"
    _fake(fakebin, "bitcoind", "Bitcoin Core Daemon version v0.21.1", calls)
    _fake(fakebin, "bitcoin-cli", "Bitcoin Core RPC client version v0.21.1", calls)
    _fake(fakebin, "lightningd", "v26.06.6", calls)
    result = _run("up", fakebin, tmp_path / "state")
    assert result.returncode == 1
    assert "bitcoind is version 0.21.1; version 22.0.0 or newer is needed" in result.stderr
    assert "lightningd" not in result.stderr.split("get it from")[0]
    assert not (tmp_path / "state").exists()


def test_recent_enough_tools_pass_the_check(fakebin, tmp_path):
    calls = tmp_path / "calls.log"
    _fake(fakebin, "bitcoind", "Bitcoin Core daemon version v28.1.0", calls)
    _fake(fakebin, "bitcoin-cli", "Bitcoin Core RPC client version v28.1.0", calls)
    _fake(fakebin, "lightningd", "v26.06", calls)
    found = preflight.check(str(fakebin))
    assert preflight.problems_report(found) is None
    assert {f.tool.name: f.version for f in found} == {
        "bitcoind": (28, 1, 0), "bitcoin-cli": (28, 1, 0), "lightningd": (26, 6, 0)}


def test_unreadable_version_is_a_problem(fakebin, tmp_path):
    _fake(fakebin, "lightningd", "lightning daemon, no version here", tmp_path / "calls.log")
    found = preflight.check_tool(preflight.TOOLS[2], str(fakebin))
    assert found.problem is not None and "cannot tell the version" in found.problem


@pytest.mark.parametrize(("text", "version"), [
    ("v26.06", (26, 6, 0)),
    ("v26.06.6-modded", (26, 6, 6)),
    ("v26.06-12-gabcdef0", (26, 6, 0)),
    ("v26.06rc2", (26, 5, 99)),
    ("v26.06.1rc1", (26, 6, 0)),
    ("Bitcoin Core daemon version v28.1.0\nCopyright (C) 2009-2024", (28, 1, 0)),
    ("Bitcoin Core version v29.99.0-1234abcd", (29, 99, 0)),
    ("", None),
    ("no digits", None),
])
def test_parse_version(text, version):
    assert preflight.parse_version(text) == version


def test_release_candidate_of_the_minimum_is_too_old():
    assert preflight.parse_version("v26.06rc3") < preflight.MIN_LIGHTNINGD <= preflight.parse_version("v26.06")
