"""Fixtures of the operator's tools: desks on the shared ``ehash`` mint and ``node`` stand-in (tests/conftest.py),
and the real plugin process beside the reference mint on loopback."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from desk.conftest import make_desk  # noqa: F401  (the desk tests' factory of desks)
from support.fakenode import FakeNode
from support.pluginharness import PluginHarness, ThreadedMint, assert_clean


@pytest.fixture
def plugin_dir() -> Iterator[Path]:
    # Short path: unix socket names are limited to about 100 bytes.
    path = Path(tempfile.mkdtemp(prefix="hp-ops-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def plugin_node(plugin_dir: Path) -> Iterator[FakeNode]:
    fake = FakeNode(plugin_dir / "lightning-rpc").start_in_thread()
    yield fake
    fake.stop_thread()


@pytest.fixture
def plugin_mint(tmp_path: Path) -> Iterator[ThreadedMint]:
    mint = ThreadedMint(tmp_path / "mint").start()
    yield mint
    mint.stop()


@pytest.fixture
def start_plugin(plugin_dir: Path, plugin_node: FakeNode, plugin_mint: ThreadedMint):
    """``start_plugin(**options)``: the plugin process, initialised against ``plugin_mint``; checked clean after."""
    started: list[PluginHarness] = []

    def start(**options) -> PluginHarness:
        h = PluginHarness(plugin_dir, python=sys.executable).start()
        started.append(h)
        h.getmanifest()
        assert h.init({"hashpool-mint-url": plugin_mint.url, "hashpool-mint-key": plugin_mint.desk_key,
                       "hashpool-pool": [plugin_mint.pool], **options}) is None
        return h

    yield start
    for h in started:
        h.close()
    for h in started:
        assert_clean(h)
