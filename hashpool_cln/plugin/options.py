"""The plugin's options: their declaration to lightningd and the checking of the values it passes back.

Values arrive in two shapes: ``init`` passes ints as JSON numbers and multi options as arrays, while
``setconfig`` passes every value as a string. Both go through the same parsers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MINT_URL = "hashpool-mint-url"
MINT_KEY = "hashpool-mint-key"
DB = "hashpool-db"
SEED_FILE = "hashpool-seed-file"
POOL = "hashpool-pool"
MAX_MSAT = "hashpool-max-msat"
MAXFEE_PPM = "hashpool-maxfee-ppm"
MAXFEE_MSAT = "hashpool-maxfee-msat"
MIN_INVOICE_LIFE = "hashpool-min-invoice-life"
SETTLE_BATCH = "hashpool-settle-batch"
METRICS = "hashpool-metrics"
METRICS_PUBLIC = "hashpool-metrics-public"

DATA_DIR = "hashpool"  # under the node's network directory
DEFAULT_DB = "desk.sqlite3"
DEFAULT_SEED = "seed"

MAX_INT = 2**63 - 1  # what the ledger can store
_POOL_KEY = re.compile(r"^0[23][0-9a-f]{64}$")


class OptionError(ValueError):
    """An option's value is unusable; the message names the option."""


@dataclass(frozen=True)
class OptionSpec:
    name: str
    default: Any
    description: str
    opt_type: str = "string"
    multi: bool = False
    dynamic: bool = False
    conceal: bool = False  # shown as "..." by listconfigs


# Limits and fee caps are safe to change while running: the desk reads them once per redemption.
SPECS: tuple[OptionSpec, ...] = (
    OptionSpec(MINT_URL, None, "URL of the pool's mint (required); http:// only for loopback addresses"),
    OptionSpec(MINT_KEY, None, "Bearer key the mint expects from this desk for ehash melt quotes and melts",
               conceal=True),
    OptionSpec(DB, None, "Path of the desk's sqlite database (default: <lightning-dir>/hashpool/desk.sqlite3)"),
    OptionSpec(SEED_FILE, None, "Path of the desk's 32-byte seed, created 0600 when missing "
                                "(default: <lightning-dir>/hashpool/seed)"),
    OptionSpec(POOL, None, "Compressed public key (hex) of a pool whose ehash this desk buys (required); "
                           "repeat for several pools", multi=True),
    OptionSpec(MAX_MSAT, 100_000_000, "Largest payment of one redemption, in msat", opt_type="int", dynamic=True),
    OptionSpec(MAXFEE_PPM, 5_000, "Default routing fee budget, in millionths of the amount paid",
               opt_type="int", dynamic=True),
    OptionSpec(MAXFEE_MSAT, 50_000, "Most routing fee one redemption may pay, whatever the ppm budget or the "
                                    "caller's maxfee_msat, in msat", opt_type="int", dynamic=True),
    OptionSpec(MIN_INVOICE_LIFE, 60, "Refuse invoices that expire within this many seconds", opt_type="int",
               dynamic=True),
    OptionSpec(SETTLE_BATCH, 0, "Settle paid redemptions with the mint together every this many seconds, off the "
                                "redeem call (0: each right after its payment)", opt_type="int"),
    OptionSpec(METRICS, None, "host:port to serve Prometheus metrics on (default: off; a loopback host unless "
                              "hashpool-metrics-public is set)"),
    OptionSpec(METRICS_PUBLIC, False, "Allow hashpool-metrics on an address other than loopback", opt_type="bool"),
)
SPEC_BY_NAME = {s.name: s for s in SPECS}
DYNAMIC = frozenset(s.name for s in SPECS if s.dynamic)


@dataclass
class Settings:
    """The options after checking, with paths resolved against the node's directory."""

    mint_url: str
    mint_key: str | None
    db_path: Path
    seed_path: Path
    pools: list[str] = field(default_factory=list)
    max_msat: int = 100_000_000
    maxfee_ppm: int = 5_000
    maxfee_msat: int = 50_000
    min_invoice_life: int = 60
    settle_batch: int = 0  # seconds between batched settlements; 0: settle each redemption after its payment


def register(plugin: Any) -> None:
    """Declare every option to ``plugin`` (a pyln Plugin)."""
    for spec in SPECS:
        plugin.add_option(spec.name, spec.default, spec.description, opt_type=spec.opt_type, multi=spec.multi,
                          dynamic=spec.dynamic)
        if spec.conceal:
            # pyln only knows the basic types; lightningd also has string-conceal, which keeps the key out of
            # listconfigs.
            plugin.options[spec.name].opt_type = "string-conceal"


def parse_int(name: str, value: Any, *, minimum: int = 0) -> int:
    if isinstance(value, bool):
        raise OptionError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[0-9]{1,19}", text):
            raise OptionError(f"{name} must be a whole number, got {value[:40]!r}")
        value = int(text)
    if not isinstance(value, int):
        raise OptionError(f"{name} must be an integer, got {str(value)[:40]!r}")
    if not minimum <= value <= MAX_INT:
        raise OptionError(f"{name} must be from {minimum} to {MAX_INT}, got {str(value)[:40]}")
    return value


def parse_pools(value: Any) -> list[str]:
    items = [] if value is None else [value] if isinstance(value, str) else list(value)
    pools: list[str] = []
    for item in items:
        key = str(item).strip().lower()
        if not _POOL_KEY.fullmatch(key):
            raise OptionError(f"{POOL} must be a 33-byte compressed public key in hex, got {item!r}")
        if key not in pools:
            pools.append(key)
    return pools


def parse_dynamic(name: str, value: Any) -> int:
    """Check a new value of a dynamic option (all of them are non-negative integers)."""
    if name not in DYNAMIC:
        raise OptionError(f"{name} cannot be changed while the plugin runs")
    if value is None:
        value = SPEC_BY_NAME[name].default
    return parse_int(name, value, minimum=1 if name == MAX_MSAT else 0)


def resolve(options: Mapping[str, Any], lightning_dir: str) -> Settings:
    """Check the options ``init`` passed and resolve paths; raises OptionError naming the bad option."""

    def get(name: str) -> Any:
        value = options.get(name)
        return SPEC_BY_NAME[name].default if value is None else value

    mint_url = get(MINT_URL)
    if not mint_url or not isinstance(mint_url, str):
        raise OptionError(f"{MINT_URL} is required")
    if not re.match(r"^https?://", mint_url):
        raise OptionError(f"{MINT_URL} must be an http(s) URL")
    mint_key = get(MINT_KEY) or None
    pools = parse_pools(options.get(POOL))
    if not pools:
        raise OptionError(f"{POOL} is required: the pool key(s) whose ehash this desk buys")
    data_dir = Path(lightning_dir) / DATA_DIR
    db = get(DB)
    seed = get(SEED_FILE)
    return Settings(
        mint_url=mint_url.rstrip("/"),
        mint_key=mint_key,
        db_path=_path(db, lightning_dir) if db else data_dir / DEFAULT_DB,
        seed_path=_path(seed, lightning_dir) if seed else data_dir / DEFAULT_SEED,
        pools=pools,
        max_msat=parse_int(MAX_MSAT, get(MAX_MSAT), minimum=1),
        maxfee_ppm=parse_int(MAXFEE_PPM, get(MAXFEE_PPM)),
        maxfee_msat=parse_int(MAXFEE_MSAT, get(MAXFEE_MSAT)),
        min_invoice_life=parse_int(MIN_INVOICE_LIFE, get(MIN_INVOICE_LIFE)),
        settle_batch=parse_int(SETTLE_BATCH, get(SETTLE_BATCH)),
    )


def _path(value: str, lightning_dir: str) -> Path:
    # Relative paths are relative to the node's directory, which is also the plugin's working directory.
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else Path(lightning_dir) / path


SETTING_OF = {MAX_MSAT: "max_msat", MAXFEE_PPM: "maxfee_ppm", MAXFEE_MSAT: "maxfee_msat",
              MIN_INVOICE_LIFE: "min_invoice_life"}
