"""Fixtures for driving the real plugin process: a node directory, the stand-in node on its rpc socket."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fakenode import FakeNode
from support.pluginharness import PluginHarness, ThreadedMint, assert_clean


@pytest.fixture
def lightning_dir() -> Iterator[Path]:
    # Short path: unix socket names are limited to about 100 bytes.
    path = Path(tempfile.mkdtemp(prefix="hp-ln-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def node(lightning_dir: Path) -> Iterator[FakeNode]:
    fake = FakeNode(lightning_dir / "lightning-rpc").start_in_thread()
    try:
        yield fake
    finally:
        fake.stop_thread()


@pytest.fixture
def harness(lightning_dir: Path, node: FakeNode) -> Iterator[PluginHarness]:
    h = PluginHarness(lightning_dir, python=sys.executable).start()
    try:
        yield h
    finally:
        h.close()
    assert_clean(h)


@pytest.fixture
def ehash_mint(tmp_path: Path) -> Iterator[ThreadedMint]:
    mint = ThreadedMint(tmp_path / "mint").start()
    try:
        yield mint
    finally:
        mint.stop()
