"""``python -m hashpool_cln.regtest <command>``: the regtest stack and the end-to-end demo.

Commands: up, down, status, demo, clean {cashu,wallet,regtest,logs}, db {desk,mint,wallet}, generate-blocks COUNT,
redeem TOKEN INVSTRING. State lives in .state/regtest/ of the checkout (or $HASHPOOL_REGTEST_DIR).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from pyln.client import RpcError

from hashpool_cln.refmint.chainwatch import ChainError
from hashpool_cln.regtest import demo, preflight
from hashpool_cln.regtest.layout import Layout, state_dir
from hashpool_cln.regtest.procs import StackError
from hashpool_cln.regtest.stack import Stack

NEEDS_NODES = {"up", "demo", "generate-blocks", "redeem"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hashpool_cln.regtest", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start bitcoind, the mint, the pool's and the miner's nodes, and open the channel")
    sub.add_parser("down", help="stop everything the stack started")
    sub.add_parser("status", help="which processes run, ports, addresses")
    sub.add_parser("demo", help="up, then redeem ehash into a BOLT11 invoice and a BOLT12 offer")
    clean = sub.add_parser("clean", help="delete state: cashu (mint, desk and wallet databases), wallet (the "
                           "miner's wallet), regtest (all), logs")
    clean.add_argument("what", choices=["cashu", "wallet", "regtest", "logs"])
    db = sub.add_parser("db", help="an sqlite shell on the desk's, the mint's or the miner wallet's database")
    db.add_argument("which", choices=["desk", "mint", "wallet"])
    gen = sub.add_parser("generate-blocks", help="mine COUNT blocks (--to-mint: their coinbase pays the mint)")
    gen.add_argument("count", type=int)
    gen.add_argument("--to-mint", action="store_true")
    redeem = sub.add_parser("redeem", help="redeem TOKEN into INVSTRING (BOLT11 invoice or BOLT12 offer) on the pool")
    redeem.add_argument("token")
    redeem.add_argument("invstring")
    return parser


def _tools() -> dict[str, str] | None:
    found = preflight.check()
    report = preflight.problems_report(found)
    if report is not None:
        print(report, file=sys.stderr)
        return None
    return {f.tool.name: str(f.path) for f in found}


def _clean(stack: Stack, what: str) -> int:
    layout = stack.layout
    running = [name for name, pid in stack.running().items() if pid is not None]
    if what == "logs":
        shutil.rmtree(layout.log_dir, ignore_errors=True)
        print(f"removed {layout.log_dir}")
        return 0
    if what == "wallet":  # nothing of the stack uses it: safe while it runs
        shutil.rmtree(layout.wallet_dir, ignore_errors=True)
        print(f"removed the miner's wallet ({layout.wallet_dir}: mnemonic, config, database)")
        return 0
    if running:
        print(f"the stack is running ({', '.join(running)}); stop it first: just down", file=sys.stderr)
        return 1
    if what == "regtest":
        shutil.rmtree(layout.root, ignore_errors=True)
        print(f"removed {layout.root}")
        return 0
    shutil.rmtree(layout.wallet_dir, ignore_errors=True)
    # cashu: the ecash state on every side; a fresh mint makes the desk's and the wallet's records meaningless.
    shutil.rmtree(layout.mint_dir, ignore_errors=True)
    for path in (layout.desk_db, layout.desk_seed, *layout.desk_db.parent.glob(layout.desk_db.name + "-*")):
        path.unlink(missing_ok=True)
    print(f"removed the mint's data ({layout.mint_dir}), the desk's database and seed, and the miner's wallet")
    return 0


def _db_shell(stack: Stack, which: str) -> int:
    path = {"desk": stack.layout.desk_db, "mint": stack.layout.mint_db, "wallet": stack.layout.wallet_db}[which]
    if not path.exists():
        print(f"no {which} database at {path} (run: just up)", file=sys.stderr)
        return 1
    binary = shutil.which("sqlite3")
    if binary:
        return subprocess.call([binary, str(path)])
    if sys.version_info >= (3, 12):
        return subprocess.call([sys.executable, "-m", "sqlite3", str(path)])
    return _mini_shell(path)


def _mini_shell(path: Path) -> int:
    """A minimal SQL prompt for Pythons without ``python -m sqlite3`` (3.11 and older)."""
    conn = sqlite3.connect(path)
    print(f"{path}: SQL statements end with ';'; Ctrl-D quits")
    buffer = ""
    while True:
        try:
            line = input("sqlite> " if not buffer else "   ...> ")
        except EOFError:
            print()
            return 0
        buffer += line + "\n"
        if not sqlite3.complete_statement(buffer):
            continue
        try:
            for row in conn.execute(buffer):
                print("|".join("" if v is None else str(v) for v in row))
            conn.commit()
        except sqlite3.Error as exc:
            print(f"error: {exc}")
        buffer = ""


def _status(stack: Stack) -> int:
    settings = stack.layout.load_settings()
    print(f"state: {stack.layout.root}")
    for name, pid in stack.running().items():
        print(f"  {name:9} {'running, pid ' + str(pid) if pid else 'stopped'}")
    if settings is not None:
        print(f"  mint      {stack.mint_url()}   receive address {settings.mint_address}")
        print(f"  bitcoind  rpc 127.0.0.1:{settings.bitcoind_rpc_port}")
    return 0


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    layout = Layout(state_dir())
    tools: dict[str, str] = {}
    if args.command in NEEDS_NODES:
        # Checked before anything starts: a missing or old binary never leaves a half-started stack.
        found = _tools()
        if found is None:
            return 1
        tools = found
    stack = Stack(layout, tools)
    if args.command == "up":
        stack.up()
        return _status(stack)
    if args.command == "down":
        stopped = stack.down()
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return 0
    if args.command == "status":
        return _status(stack)
    if args.command == "demo":
        demo.run(stack)
        return 0
    if args.command == "clean":
        return _clean(stack, args.what)
    if args.command == "db":
        return _db_shell(stack, args.which)
    if args.command == "generate-blocks":
        if args.count < 1:
            print("COUNT must be at least 1", file=sys.stderr)
            return 2
        stack.up()
        address = stack.settings().mint_address if args.to_mint else None
        for block in stack.mine(args.count, address):
            print(block)
        return 0
    if args.command == "redeem":
        stack.up()
        print(json.dumps(demo.redeem(stack, args.token, args.invstring), indent=2))
        return 0
    raise AssertionError(args.command)


def main(argv: list[str]) -> int:
    try:
        return run(argv)
    except StackError as exc:
        print(f"regtest: {exc}", file=sys.stderr)
    except RpcError as exc:
        print(f"regtest: {exc.method} failed: {json.dumps(exc.error)}", file=sys.stderr)
    except ChainError as exc:
        print(f"regtest: bitcoind: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("regtest: interrupted; the stack keeps running (just down stops it)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
