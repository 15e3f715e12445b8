"""``reckless install hashpool-redeem`` with Core Lightning's own reckless (a single Python script in its tools/):
from a local clone given as a source, from the repository's URL, and from the plugin's directory. Each install
goes into a temporary lightning directory, and the installed plugin then runs against the reference mint and the
node stand-in. Skips unless reckless is on PATH or named by $RECKLESS."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from support.fakenode import FakeNode
from support.pluginharness import PluginHarness, ThreadedMint, assert_clean

ROOT = Path(__file__).resolve().parents[2]
RECKLESS = os.environ.get("RECKLESS") or shutil.which("reckless")
DEFAULT_SOURCE = "https://github.com/lightningd/plugins"
REPO_URL = "https://github.com/hashpool/hashpool-cln"

pytestmark = pytest.mark.skipif(not RECKLESS, reason="reckless not found (put it on PATH or set RECKLESS)")


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """This repository's committed HEAD, cloned: what an operator has after ``git clone``."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    dest = tmp_path / "github" / "hashpool" / "hashpool-cln"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(dest)], check=True)
    subprocess.run(["git", "-C", str(dest), "checkout", "--quiet", head.stdout.strip()], check=True)
    return dest


@pytest.fixture
def lightning_dir(tmp_path: Path) -> Path:
    path = tmp_path / "ln"
    (path / "regtest").mkdir(parents=True)
    (path / "regtest" / "config").write_text("# the node's own configuration\n")
    return path


def reckless_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # No lightningd here: a lightning-cli that finds no node (exit 2), so reckless skips the dynamic start.
    cli = tmp_path / "lightning-cli"
    cli.write_text("#!/bin/sh\necho 'lightningd not running' >&2\nexit 2\n")
    cli.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(LIGHTNING_CLI=str(cli), **extra)
    return env


def reckless(lightning_dir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(RECKLESS), "-l", str(lightning_dir), "--regtest", "-v", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done


def check_installed(lightning_dir: Path, tmp_path: Path) -> None:
    """reckless's wrapper is in place and enabled, and runs the plugin from its own virtualenv."""
    wrapper = lightning_dir / "reckless" / "hashpool-redeem" / "hashpool-redeem.py"
    assert wrapper.is_file() and os.access(wrapper, os.X_OK)
    interpreter = wrapper.read_text().splitlines()[0].removeprefix("#!")
    assert Path(interpreter).is_relative_to(lightning_dir / "reckless" / "hashpool-redeem")
    staged = lightning_dir / "reckless" / "hashpool-redeem" / "source" / "hashpool-redeem"
    assert (staged / "hashpool_cln" / "desk" / "desk.py").is_file() and not (staged / "hashpool_cln").is_symlink()
    conf = (lightning_dir / "reckless" / "regtest-reckless.conf").read_text()
    assert f"plugin={wrapper}" in conf
    assert "regtest-reckless.conf" in (lightning_dir / "regtest" / "config").read_text()

    node_dir = Path(tempfile.mkdtemp(prefix="hp-rk-"))  # short: unix socket names are limited to ~100 bytes
    node = FakeNode(node_dir / "lightning-rpc").start_in_thread()
    mint = ThreadedMint(tmp_path / "mint").start()
    h = PluginHarness(node_dir, python=interpreter, plugin=wrapper).start()
    try:
        assert {"hashpool-redeem", "hashpool-resolve"} <= {m["name"] for m in h.getmanifest()["rpcmethods"]}
        assert h.init({"hashpool-mint-url": mint.url, "hashpool-mint-key": mint.desk_key,
                       "hashpool-pool": [mint.pool]}) is None
        info = h.call("hashpool-info").ok()
        assert info["mint_reachable"] is True and info["pools"] == [mint.pool]
    finally:
        h.close()
        mint.stop()
        node.stop_thread()
        shutil.rmtree(node_dir, ignore_errors=True)
    assert_clean(h)


def test_install_from_a_local_clone_as_a_source(clone: Path, lightning_dir: Path, tmp_path: Path) -> None:
    env = reckless_env(tmp_path)
    reckless(lightning_dir, env, "source", "add", str(clone))
    reckless(lightning_dir, env, "source", "remove", DEFAULT_SOURCE)  # search only the clone
    done = reckless(lightning_dir, env, "install", "hashpool-redeem")
    assert "plugin installed" in done.stdout
    check_installed(lightning_dir, tmp_path)


def test_install_from_the_repository_url(clone: Path, lightning_dir: Path, tmp_path: Path) -> None:
    # As Core Lightning's own reckless tests do: github.com is redirected to a local directory of repositories,
    # and reckless clones the source (as it does whenever GitHub's API does not answer) and searches the clone.
    env = reckless_env(tmp_path, REDIR_GITHUB=str(tmp_path / "github"), REDIR_GITHUB_API="http://127.0.0.1:9",
                       GITHUB_API_FALLBACK="1")
    reckless(lightning_dir, env, "source", "add", REPO_URL)
    reckless(lightning_dir, env, "source", "remove", DEFAULT_SOURCE)
    done = reckless(lightning_dir, env, "install", "hashpool-redeem")
    assert "plugin installed" in done.stdout
    assert (lightning_dir / "reckless" / ".remote_sources" / "hashpool" / "hashpool-cln" / ".git").exists()
    check_installed(lightning_dir, tmp_path)


def test_install_from_the_plugins_directory(clone: Path, lightning_dir: Path, tmp_path: Path) -> None:
    done = reckless(lightning_dir, reckless_env(tmp_path), "install", str(clone / "plugin" / "hashpool-redeem"))
    assert "plugin installed" in done.stdout
    check_installed(lightning_dir, tmp_path)
