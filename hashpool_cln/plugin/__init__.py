"""The Core Lightning plugin that hosts the redemption desk: options, methods, notifications, and the bridge
from pyln's blocking stdin loop to one asyncio loop.

Importing this package is cheap: pyln, aiohttp and the desk load only when ``main()`` runs.
"""

from __future__ import annotations


def main() -> None:
    """Run the plugin on this process's stdin/stdout, as lightningd starts it."""
    from hashpool_cln.plugin.app import run

    run()
