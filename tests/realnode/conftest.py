"""Real Core Lightning nodes (pyln-testing) for the plugin's end-to-end tests.

They run wherever ``lightningd`` and ``bitcoind`` are on PATH; the test module skips (with the reason) elsewhere.
"""

from __future__ import annotations

import os
import shutil
import sys

MISSING = [b for b in ("lightningd", "bitcoind") if shutil.which(b) is None]

if not MISSING:
    # A CLN built without its Rust plugins rejects --grpc-port, which pyln-testing passes unless RUST=0.
    os.environ.setdefault("RUST", "0")
    # lightningd runs plugin files through their shebang (/usr/bin/env python3): this environment's python first.
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]

    from pyln.testing.fixtures import *  # noqa: F403  (bitcoind, node_factory, executor, ...)
