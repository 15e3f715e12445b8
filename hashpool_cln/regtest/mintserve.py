"""The regtest stack's mint: the reference mint's app with the chain watcher attached, on loopback.

``python -m hashpool_cln.regtest.mintserve --data-dir D --port P --final-confirmations N <chain watcher options>``
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from aiohttp import web

from hashpool_cln.refmint import chainwatch
from hashpool_cln.refmint.app import LEDGER, create_app
from hashpool_cln.refmint.config import MintConfig


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hashpool-regtest-mint", description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--final-confirmations", type=int, default=3)
    parser.add_argument("--start-height", type=int, default=0, help="the height naming the first epoch")
    parser.add_argument("--min-difficulty", type=int, default=32)
    chainwatch.add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = MintConfig(data_dir=args.data_dir, host=args.host, port=args.port,
                        final_confirmations=args.final_confirmations, start_height=args.start_height,
                        min_difficulty=args.min_difficulty)
    try:
        watch = chainwatch.config_from_args(args, args.data_dir, args.final_confirmations)
    except ValueError as exc:
        parser.error(str(exc))
    app = create_app(config)
    if watch is not None:
        chainwatch.attach(app, watch, LEDGER)
    web.run_app(app, host=args.host, port=args.port, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
