"""``hashpool-mint``: run the reference mint, show its bearer keys, issue test ehash, feed block rewards."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

import aiohttp
from aiohttp import web
from coincurve import PrivateKey

from hashpool_cln.cashu.tokens import serialize_v4
from hashpool_cln.mintclient import MintClientError
from hashpool_cln.refmint import chainwatch
from hashpool_cln.refmint.app import LEDGER, create_app
from hashpool_cln.refmint.config import MintConfig, load_auth
from hashpool_cln.refmint.miner import Pool, PoolRequestError, issue_token


def _nonneg(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hashpool-mint", description="Reference Cashu mint for Hashpool ehash epochs")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the mint")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=_nonneg, default=3338, help="0 picks a free port")
    s.add_argument("--data-dir", type=Path, required=True)
    s.add_argument("--pool-key", help="the pool's private key (hex); default: generated and kept in the data dir")
    s.add_argument("--min-difficulty", type=_nonneg, default=32, help="leading zero bits of a 1-unit share")
    s.add_argument("--input-fee-ppk", type=_nonneg, default=0, help="input fee of keysets created from now on")
    s.add_argument("--pool-fee-ppm", type=_nonneg, default=0)
    s.add_argument("--final-confirmations", type=_nonneg, default=6,
                   help="confirmations that make a reward final (default 6)")
    s.add_argument("--redeem-window", type=_nonneg, default=30 * 86400, help="seconds an epoch stays redeemable")
    s.add_argument("--melt-quote-ttl", type=_nonneg, default=600)
    s.add_argument("--start-height", type=_nonneg, default=0)
    s.add_argument("--no-partial-melt", dest="partial_melt", action="store_false",
                   help="melts settle whole quotes only (as a mint without the partial-melt extension)")
    s.add_argument("--log-level", default=os.environ.get("HASHPOOL_LOG_LEVEL", "INFO"))
    chainwatch.add_arguments(s.add_argument_group("chain watcher (opens and settles epochs from bitcoind)"))

    k = sub.add_parser("keys", help="print the bearer keys of the pool and desk roles (JSON)")
    k.add_argument("--data-dir", type=Path, required=True)

    sh = sub.add_parser("shares", help="submit random shares, mint them and print one cashuB ehash token")
    _add_pool_auth(sh)
    sh.add_argument("--count", type=_nonneg, default=1)
    sh.add_argument("--min-leading-zeros", type=_nonneg, default=32, help="leading zero bits of each share")
    sh.add_argument("--pubkey", help="lock the quotes (NUT-20) to this private key (hex) and sign the mint request")

    r = sub.add_parser("reward", help="feed a block reward: closes the open epoch, opens the next")
    _add_pool_auth(r)
    r.add_argument("--height", type=_nonneg, required=True)
    r.add_argument("--reward-msat", type=_nonneg, required=True)
    r.add_argument("--block-hash", help="64 hex; default: random")
    r.add_argument("--confirmations", type=_nonneg, help="default: the mint's final depth")
    return p


def _add_pool_auth(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", required=True)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--data-dir", type=Path, help="read the pool bearer key from the mint's data dir")
    group.add_argument("--pool-auth", help="the pool bearer key")


def _pool_auth(args: argparse.Namespace) -> str:
    return args.pool_auth if args.pool_auth else load_auth(args.data_dir)["pool"]


async def _serve(args: argparse.Namespace) -> int:
    config = MintConfig(
        data_dir=args.data_dir, host=args.host, port=args.port, pool_key=args.pool_key,
        min_difficulty=args.min_difficulty, input_fee_ppk=args.input_fee_ppk, pool_fee_ppm=args.pool_fee_ppm,
        final_confirmations=args.final_confirmations,
        redeem_window=args.redeem_window, melt_quote_ttl=args.melt_quote_ttl, start_height=args.start_height,
        partial_melt=args.partial_melt)
    watch = chainwatch.config_from_args(args, args.data_dir, args.final_confirmations)
    app = create_app(config)
    if watch is not None:
        chainwatch.attach(app, watch, LEDGER)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    host, port = runner.addresses[0][:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"hashpool-mint listening on http://{shown}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    return 0


async def _shares(args: argparse.Namespace) -> int:
    lock_key = PrivateKey(bytes.fromhex(args.pubkey)) if args.pubkey else None
    token = await issue_token(args.url, _pool_auth(args), args.count, args.min_leading_zeros, lock_key)
    print(serialize_v4(token))
    return 0


async def _reward(args: argparse.Namespace) -> int:
    block_hash = args.block_hash or os.urandom(32).hex()
    async with aiohttp.ClientSession() as session:
        pool = Pool(args.url, _pool_auth(args), session)
        body = {"height": args.height, "block_hash": block_hash, "reward_msat": args.reward_msat}
        if args.confirmations is not None:
            body["confirmations"] = args.confirmations
        answer = await pool.request("POST", "/v1/admin/reward", body)
    print(json.dumps(answer, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
            return asyncio.run(_serve(args))
        if args.command == "keys":
            print(json.dumps(load_auth(args.data_dir), indent=2))
            return 0
        if args.command == "shares":
            return asyncio.run(_shares(args))
        return asyncio.run(_reward(args))
    except (PoolRequestError, MintClientError, aiohttp.ClientError, OSError, ValueError) as exc:
        print(f"hashpool-mint: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
