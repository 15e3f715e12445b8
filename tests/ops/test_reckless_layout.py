"""The directory reckless installs from: entry point, dependency file and package, checked without reckless
(tests/realnode/test_reckless.py runs the real one)."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.pluginharness import PluginHarness

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_DIR = ROOT / "plugin" / "hashpool-redeem"


def requirement_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_the_dependency_file_is_setup_cfgs_runtime_dependencies() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    declared = requirement_lines(cfg["options"]["install_requires"])
    assert requirement_lines((PLUGIN_DIR / "requirements.txt").read_text()) == declared


def test_the_directory_holds_what_reckless_looks_for() -> None:
    # reckless matches a directory named like the plugin holding <name>.py and requirements.txt.
    entry = PLUGIN_DIR / "hashpool-redeem.py"
    assert entry.is_file() and os.access(entry, os.X_OK)
    assert entry.read_text().startswith("#!/usr/bin/env python3\n")
    assert (PLUGIN_DIR / "hashpool_cln").resolve() == (ROOT / "hashpool_cln").resolve()
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "plugin/hashpool-redeem"], capture_output=True,
                             text=True)
    if tracked.returncode == 0 and tracked.stdout:
        assert set(tracked.stdout.split()) == {"plugin/hashpool-redeem/hashpool-redeem.py",
                                               "plugin/hashpool-redeem/requirements.txt",
                                               "plugin/hashpool-redeem/hashpool_cln"}


@pytest.fixture
def staged(tmp_path: Path) -> Path:
    """The directory as reckless stages it: copied with links followed, nothing else of the checkout."""
    dest = tmp_path / "source" / "hashpool-redeem"
    shutil.copytree(PLUGIN_DIR, dest, ignore=shutil.ignore_patterns("__pycache__"))
    assert not (dest / "hashpool_cln").is_symlink() and (dest / "hashpool_cln" / "desk" / "desk.py").is_file()
    return dest


def test_the_staged_copy_runs_as_the_plugin_on_its_own_package(staged: Path, tmp_path: Path, monkeypatch) -> None:
    # The package comes from the copy (first on the path, as reckless's wrapper puts it), not from this checkout.
    env = {**os.environ, "PYTHONPATH": str(staged)}
    where = subprocess.run([sys.executable, "-c", "import hashpool_cln; print(hashpool_cln.__file__)"], env=env,
                           capture_output=True, text=True, cwd=tmp_path, check=True)
    assert Path(where.stdout.strip()).is_relative_to(staged)
    usage = subprocess.run([sys.executable, str(staged / "hashpool-redeem.py")], env=env, capture_output=True,
                           text=True, timeout=60)
    assert usage.returncode == 0 and "hashpool-redeem" in usage.stdout  # how reckless tries a plugin out
    monkeypatch.setenv("PYTHONPATH", str(staged))
    h = PluginHarness(tmp_path / "ln", plugin=staged / "hashpool-redeem.py").start()
    try:
        manifest = h.getmanifest()
        assert {"hashpool-redeem", "hashpool-resolve"} <= {m["name"] for m in manifest["rpcmethods"]}
    finally:
        h.close()
