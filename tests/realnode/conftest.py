"""Real Core Lightning nodes (pyln-testing) for the plugin's end-to-end tests.

They run wherever ``lightningd`` and ``bitcoind`` are on PATH; the test module skips (with the reason) elsewhere.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

MISSING = [b for b in ("lightningd", "bitcoind") if shutil.which(b) is None]


def _has_grpc_plugin(lightningd: str) -> bool:
    """Whether this lightningd was built with its Rust plugins (cln-grpc among them)."""
    binary = Path(os.path.realpath(lightningd))
    installed = binary.parent.parent / "libexec" / "c-lightning" / "plugins" / "cln-grpc"
    source_tree = binary.parent.parent / "plugins" / "cln-grpc"  # lightningd/lightningd in a build directory
    return installed.exists() or source_tree.exists()


if not MISSING:
    # pyln-testing passes --grpc-port unless RUST=0, and a lightningd without cln-grpc refuses that option.
    if not _has_grpc_plugin(shutil.which("lightningd") or ""):
        os.environ["RUST"] = "0"
    # lightningd runs plugin files through their shebang (/usr/bin/env python3): this environment's python first.
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]

    import pytest
    from pyln.testing.fixtures import *  # noqa: F403  (bitcoind, node_factory, executor, ...)
    from support.pluginharness import method_schemas

    @pytest.fixture
    def jsonschemas() -> dict:
        # pyln-testing checks every call made through a node's rpc against these: our methods' requests and
        # answers against doc/schemas, whatever directory pytest runs from.
        return method_schemas()
