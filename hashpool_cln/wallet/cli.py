"""``hashpool-wallet``: the miner's wallet on the command line. Tables for people, ``--json`` for scripts; errors
are ``error <code>: <message>`` on stderr (``{"error": {...}}`` with ``--json``) and exit status 1."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

from hashpool_cln.mintclient import MintClient, MintClientError, MintError
from hashpool_cln.wallet import config as cfg
from hashpool_cln.wallet.commando import NodeAddress
from hashpool_cln.wallet.errors import Code, WalletError
from hashpool_cln.wallet.issuance import Issuance
from hashpool_cln.wallet.lock import held
from hashpool_cln.wallet.redeem import CommandoDesk, autopay, public, redeem, resolve_open
from hashpool_cln.wallet.seed import SeedError, WalletKeys, check_mnemonic, new_mnemonic, read_mnemonic
from hashpool_cln.wallet.store import WalletStore
from hashpool_cln.wallet.sweep import sweep
from hashpool_cln.wallet.wallet import Wallet

FIRST_STEPS = """\
first steps:
  hashpool-wallet init --mint https://mint.pool.example     create the wallet (12 words, kept in the wallet dir)
  hashpool-wallet info                                       the key to give the pool: it locks your shares to it
  hashpool-wallet sweep                                      collect the ehash your shares earned
  hashpool-wallet balance                                    per epoch: units, state, value once settled
  hashpool-wallet config --node <id>@<host>:<port> --rune <rune from the pool operator>
  hashpool-wallet redeem <bolt11 | bolt12 offer | user@domain>   cash a settled epoch out over Lightning

Write down the words (hashpool-wallet mnemonic): they restore everything, here or in any Cashu wallet
that speaks NUT-13 (hashpool-wallet restore).
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hashpool-wallet", description="The miner's wallet for Hashpool ehash: sweep "
                                "your shares' ehash, keep it, cash it out at the pool's desk over Lightning.",
                                epilog=FIRST_STEPS, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, default=None, help=f"wallet directory (default ${cfg.ENV_DIR} or "
                   "~/.hashpool-wallet)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    # The same two options after the command too (`hashpool-wallet balance --json`), without overriding the
    # values given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, parents=[common])

    init = command("init", help="create the wallet: a new mnemonic (or --restore one), and its settings")
    init.add_argument("--restore", action="store_true", help="read an existing mnemonic from stdin")
    init.add_argument("--words", type=int, choices=(12, 24), default=12)
    _settings(init)
    _settings(command("config", help="show or change the mint, the pool node and the rune"))
    command("info", help="the wallet's keys (the one to give the pool), settings and counts")
    command("mnemonic", help="show the words that restore this wallet (keep them offline)")
    command("balance", help="ehash per epoch: units, epoch state, value for settled epochs")
    send = command("send", help="make a token of AMOUNT units (pending until someone swaps it)")
    send.add_argument("amount", type=int)
    send.add_argument("--unit", required=True, help="the epoch unit (hash_<pool>_<height>), see balance")
    receive = command("receive", help="swap a token's ehash into this wallet ('-' reads it from stdin)")
    receive.add_argument("token")
    command("pending", help="tokens sent: ask the mint which were spent")
    command("restore", help="recover every proof of this mnemonic from the mint (NUT-09 + NUT-13)")
    sw = command("sweep", help="collect the ehash of your shares: quotes locked to your key, minted in batches")
    sw.add_argument("--watch", action="store_true", help="keep sweeping every --interval seconds")
    sw.add_argument("--interval", type=seconds, default=30.0)
    sw.add_argument("--batch", type=positive, default=None, help="quotes per batch (default: the mint's maximum)")
    rd = command("redeem", help="pay DESTINATION with the ehash of a settled epoch, at the pool's desk")
    rd.add_argument("destination", help="BOLT11 invoice, BOLT12 offer or BIP353 name (user@domain)")
    rd.add_argument("--amount", type=int, default=None, help="msat, for destinations that name no amount")
    rd.add_argument("--unit", default=None, help="the epoch to pay from (default: the one worth most)")
    rd.add_argument("--maxfee", type=int, default=None, help="routing fee cap, msat")
    ap = command("autopay", help="redeem every settled epoch to DESTINATION (an offer without amount or "
                        "a BIP353 name)")
    ap.add_argument("destination")
    ap.add_argument("--min-msat", type=int, default=0, help="leave epochs worth less than this")
    ap.add_argument("--watch", action="store_true", help="keep going: sweep, then redeem, every --interval")
    ap.add_argument("--interval", type=seconds, default=300.0, help="seconds between rounds (default 300)")
    command("redemptions", help="redemptions sent to the desk, and their outcome (asks about open ones)")
    return p


def number(kind: Callable[[str], Any], fits: Callable[[Any], bool], wanted: str) -> Callable[[str], Any]:
    """An argparse type: ``kind`` of the text, refused (a usage error) unless it ``fits``."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, not {text!r}") from None
        if not fits(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, not {text!r}")
        return value
    return parse


positive = number(int, lambda v: v >= 1, "a whole number from 1 up")
# A pause between two rounds: 0 or less would ask the mint in a tight loop.
seconds = number(float, lambda v: 0 < v < math.inf, "more than 0 seconds and finite")


def _settings(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mint", help="the pool's mint URL")
    p.add_argument("--node", help="the pool's Lightning node: <node id>@<host>[:<port>]")
    p.add_argument("--rune", help="the rune the pool operator created for you")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command is None:
        parser().print_help()
        return 2
    directory = args.dir or cfg.default_dir()
    try:
        result = asyncio.run(COMMANDS[args.command](args, directory))
    except WalletError as exc:
        return _fail(args, exc)
    except SeedError as exc:
        return _fail(args, WalletError(Code.NOT_CONFIGURED, str(exc)))
    except MintClientError as exc:
        return _fail(args, coded(exc))
    except KeyboardInterrupt:
        return 130  # an interrupted request is finished by the next command (operations are written first)
    except Exception as exc:  # a bug: say what, without a traceback that could quote a token
        return _fail(args, WalletError(1, f"unexpected {type(exc).__name__}; nothing was lost: the next command "
                                          "recovers any unfinished request"))
    _print(args, result)
    return 0


def coded(exc: MintClientError) -> WalletError:
    """A mint failure no command turned into a wallet error: a refusal keeps the mint's code."""
    if isinstance(exc, MintError):
        return WalletError.from_mint(exc)
    return WalletError(Code.MINT_UNAVAILABLE, str(exc))


def _fail(args: argparse.Namespace, exc: WalletError) -> int:
    if args.json:
        print(json.dumps({"error": exc.to_dict()}), file=sys.stderr)
    else:
        print(f"error {exc.code}: {exc.message}", file=sys.stderr)
    return 1


def _print(args: argparse.Namespace, result: Any) -> None:
    if args.json:
        print(json.dumps(result, indent=2))
    elif isinstance(result, dict) and "table" in result:
        print(table(result["table"], result["columns"]))
        for line in result.get("notes", []):
            print(line)
    elif isinstance(result, dict):
        width = max((len(k) for k in result), default=0)
        for k, v in result.items():
            print(f"{k:<{width}}  {v}")
    elif result is not None:
        print(result)


def table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


# ---- opening the wallet ---------------------------------------------------------------------------------------

@asynccontextmanager
async def opened(directory: Path, *, hold: bool = True) -> AsyncIterator[tuple[Wallet, cfg.WalletConfig]]:
    """The wallet, its unfinished requests finished first, under the wallet's lock (``hold=False``: the caller
    takes the lock round by round, and recovers in each)."""
    keys = WalletKeys(read_mnemonic(directory / cfg.MNEMONIC_FILE))
    config = cfg.load(directory)
    config.require("mint")
    async with held(directory) if hold else nullcontext():
        store = await WalletStore.open(directory / cfg.DATABASE_FILE)
        wallet = Wallet(store, keys, MintClient(config.mint or ""))
        try:
            if hold:
                await wallet.recover()
            yield wallet, config
        finally:
            await wallet.mint.close()
            await store.close()


def desk_of(wallet: Wallet, config: cfg.WalletConfig) -> CommandoDesk:
    config.require("node", "rune")
    return CommandoDesk(NodeAddress.parse(config.node or ""), wallet.keys.node_key, config.rune or "")


# ---- commands -------------------------------------------------------------------------------------------------

async def cmd_init(args: argparse.Namespace, directory: Path) -> Any:
    path = directory / cfg.MNEMONIC_FILE
    if path.exists():
        raise WalletError(Code.NOT_CONFIGURED, f"a wallet already exists in {directory}")
    if args.restore:
        words = check_mnemonic(sys.stdin.read())
    else:
        words = new_mnemonic(128 if args.words == 12 else 256)
    _configure(args, directory)
    cfg.write_secret_file(path, words + "\n")
    keys = WalletKeys(words)
    return {"directory": str(directory), "lock_pubkey": keys.lock_pubkey, "node_id": keys.node_id,
            "next": "write down the words (hashpool-wallet mnemonic), give the pool your lock_pubkey"
            + ("; then run hashpool-wallet restore" if args.restore else "")}


def _configure(args: argparse.Namespace, directory: Path) -> cfg.WalletConfig:
    current = cfg.load(directory)
    given = {k: getattr(args, k) for k in cfg.KEYS if getattr(args, k, None) is not None}
    if not given:
        return current
    try:
        updated = cfg.check(cfg.WalletConfig(**{**{k: getattr(current, k) for k in cfg.KEYS}, **given}))
    except ValueError as exc:
        raise WalletError(Code.NOT_CONFIGURED, str(exc)) from None
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    cfg.save(directory, updated)
    return updated


async def cmd_config(args: argparse.Namespace, directory: Path) -> Any:
    return (_configure(args, directory)).shown()


async def cmd_info(args: argparse.Namespace, directory: Path) -> Any:
    async with opened(directory) as (wallet, config):
        counts = await wallet.store.quote_counts()
        return {"lock_pubkey": wallet.keys.lock_pubkey, "node_id": wallet.keys.node_id, **config.shown(),
                "quotes_seen": sum(counts.values()), "quotes_minted": counts.get("ISSUED", 0)}


async def cmd_mnemonic(args: argparse.Namespace, directory: Path) -> Any:
    return {"mnemonic": read_mnemonic(directory / cfg.MNEMONIC_FILE)}


async def cmd_balance(args: argparse.Namespace, directory: Path) -> Any:
    async with opened(directory) as (wallet, _):
        rows = [b.to_dict() for b in await wallet.balance()]
    if args.json:
        return {"balances": rows}
    for r in rows:
        r["value_msat"] = r["value_msat"] if r["value_msat"] is not None else "(not settled)"
    return {"table": rows, "columns": ["unit", "unspent", "pending", "epoch_state", "value_msat"]}


async def cmd_send(args: argparse.Namespace, directory: Path) -> Any:
    async with opened(directory) as (wallet, _):
        token = await wallet.send(args.amount, args.unit)
    return {"token": token} if args.json else token


async def cmd_receive(args: argparse.Namespace, directory: Path) -> Any:
    text = sys.stdin.read() if args.token == "-" else args.token
    async with opened(directory) as (wallet, _):
        return {"received": await wallet.receive(text)}


async def cmd_pending(args: argparse.Namespace, directory: Path) -> Any:
    async with opened(directory) as (wallet, _):
        rows = [{k: v for k, v in s.items() if k != "token"} for s in await wallet.check_sends()]
    return {"sends": rows} if args.json else {"table": rows, "columns": ["id", "unit", "amount", "state"]}


async def cmd_restore(args: argparse.Namespace, directory: Path) -> Any:
    async with opened(directory) as (wallet, _):
        return {"restored": await wallet.restore()}


async def cmd_redeem(args: argparse.Namespace, directory: Path) -> Any:
    async with opened(directory) as (wallet, config):
        desk = desk_of(wallet, config)
        try:
            return await redeem(wallet, desk, args.destination, amount_msat=args.amount, unit=args.unit,
                                maxfee_msat=args.maxfee)
        finally:
            desk.close()


async def cmd_autopay(args: argparse.Namespace, directory: Path) -> Any:
    async with opened(directory, hold=not args.watch) as (wallet, config):
        desk = desk_of(wallet, config)
        try:
            async def round_() -> list[dict[str, Any]]:
                return await autopay(wallet, desk, args.destination, min_msat=args.min_msat,
                                     before=(lambda: sweep(wallet, Issuance(wallet.mint))) if args.watch else None)

            if not args.watch:
                return {"redemptions": await round_()}
            await watch(args, directory, wallet, round_, lambda paid: [
                json.dumps(r) if args.json else f"redeemed {r.get('unit')}: {r.get('state')} "
                f"{r.get('amount_msat')} msat" for r in paid])
        finally:
            desk.close()


async def cmd_sweep(args: argparse.Namespace, directory: Path) -> Any:
    async with opened(directory, hold=not args.watch) as (wallet, _):
        async def round_() -> Any:
            return await sweep(wallet, Issuance(wallet.mint), batch_size=args.batch,
                               progress=None if args.json else ProgressBar())

        if not args.watch:
            return (await round_()).to_dict()
        await watch(args, directory, wallet, round_, lambda result: [] if not result.minted else [
            json.dumps(result.to_dict()) if args.json else
            f"swept {result.minted} quotes: " + ", ".join(f"{u} +{n}" for u, n in result.units.items())])


async def watch(args: argparse.Namespace, directory: Path, wallet: Wallet | None, round_: Any, lines: Any) -> None:
    """Run ``round_`` every ``args.interval`` seconds for good, each round under the wallet's lock and after
    finishing what an earlier one left open. A failed round (the mint or the node away for a while) is reported
    and the next one tried."""
    while True:
        try:
            async with held(directory):
                if wallet is not None:
                    await wallet.recover()
                result = await round_()
            for line in lines(result):
                print(line, flush=True)
        except (WalletError, MintClientError) as exc:
            err = exc if isinstance(exc, WalletError) else coded(exc)
            print(json.dumps({"error": err.to_dict()}) if args.json else f"error {err.code}: {err.message}; "
                  f"trying again in {args.interval:g} s", file=sys.stderr, flush=True)
        await asyncio.sleep(args.interval)


class ProgressBar:
    """A bar on stderr when a terminal is watching and there is enough to wait for."""

    SHOW_FROM = 20

    def __call__(self, done: int, total: int) -> None:
        if total < self.SHOW_FROM or not sys.stderr.isatty():
            return
        filled = 30 * done // total
        sys.stderr.write(f"\rminting [{'#' * filled}{'.' * (30 - filled)}] {done}/{total} quotes")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()


async def cmd_redemptions(args: argparse.Namespace, directory: Path) -> Any:
    async with opened(directory) as (wallet, config):
        if config.node and config.rune:
            desk = desk_of(wallet, config)
            try:
                await resolve_open(wallet, desk)
            finally:
                desk.close()
        rows = [public(r) for r in await wallet.store.redemptions()]
    if args.json:
        return {"redemptions": rows}
    return {"table": rows, "columns": ["id", "state", "unit", "amount", "amount_msat", "payment_preimage",
                                       "error_code"]}


COMMANDS = {"init": cmd_init, "config": cmd_config, "info": cmd_info, "mnemonic": cmd_mnemonic,
            "balance": cmd_balance, "send": cmd_send, "receive": cmd_receive, "pending": cmd_pending,
            "restore": cmd_restore, "sweep": cmd_sweep, "redeem": cmd_redeem, "autopay": cmd_autopay,
            "redemptions": cmd_redemptions}
