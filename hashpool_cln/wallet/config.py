"""The wallet's directory: ``mnemonic`` (the one secret), ``wallet.conf`` (mint URL, the pool node's address and the
rune) and ``wallet.sqlite3``; all owner-only. The config holds no pool or desk bearer key and refuses to: a miner's
wallet must never be able to commit the pool's budget at the mint.
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, replace
from io import StringIO
from pathlib import Path

from hashpool_cln.mintclient import check_mint_url
from hashpool_cln.text import valid_unicode
from hashpool_cln.wallet.commando import NodeAddress
from hashpool_cln.wallet.errors import Code, WalletError
from hashpool_cln.wallet.seed import write_secret_file

CONFIG_FILE = "wallet.conf"
MNEMONIC_FILE = "mnemonic"
DATABASE_FILE = "wallet.sqlite3"
KEYS = ("mint", "node", "rune")
ENV_DIR = "HASHPOOL_WALLET_DIR"
_RUNE = re.compile(r"[A-Za-z0-9_\-+/=]+")  # base64, URL-safe or not (runes are written URL-safe)


def default_dir() -> Path:
    return Path(os.environ.get(ENV_DIR) or Path.home() / ".hashpool-wallet")


@dataclass(frozen=True, slots=True)
class WalletConfig:
    mint: str | None = None
    node: str | None = None
    rune: str | None = None

    def require(self, *names: str) -> None:
        missing = [n for n in names if not getattr(self, n)]
        if missing:
            raise WalletError(Code.NOT_CONFIGURED, f"set {', '.join(missing)} first: hashpool-wallet config "
                              + " ".join(f"--{n} ..." for n in missing))

    def shown(self) -> dict[str, str | None]:
        """For people and scripts: the rune is a credential, so only whether one is set."""
        return {"mint": self.mint, "node": self.node, "rune": "set" if self.rune else None}


def check(config: WalletConfig) -> WalletConfig:
    """Each value checked; ValueError names the bad one."""
    for key in KEYS:
        if not valid_unicode(getattr(config, key)):  # from argv: bytes that are not UTF-8 arrive as surrogates
            raise ValueError(f"the {key} is not UTF-8 text")
    if config.mint is not None:
        config = replace(config, mint=check_mint_url(config.mint))
    if config.node is not None:
        config = replace(config, node=str(NodeAddress.parse(config.node)))
    if config.rune is not None and not _RUNE.fullmatch(config.rune.strip()):
        raise ValueError("a rune is one word of base64")
    return config


def load(directory: Path) -> WalletConfig:
    path = directory / CONFIG_FILE
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text())
    except FileNotFoundError:
        return WalletConfig()
    except (configparser.Error, UnicodeDecodeError) as exc:  # one line: configparser's own spans several
        raise WalletError(Code.NOT_CONFIGURED, f"{path} is not a valid config file: {' '.join(str(exc).split())}"
                          ) from None
    except OSError as exc:
        raise WalletError(Code.NOT_CONFIGURED, f"cannot read {path}: {exc.strerror or exc}") from None
    section = parser["wallet"] if parser.has_section("wallet") else {}
    unknown = set(section) - set(KEYS)
    if unknown:
        raise WalletError(Code.NOT_CONFIGURED, f"{path}: unknown settings {sorted(unknown)}; the wallet takes "
                          "only mint, node and rune (never a pool or desk key)")
    try:
        return check(WalletConfig(**{k: section.get(k) or None for k in KEYS}))
    except ValueError as exc:
        raise WalletError(Code.NOT_CONFIGURED, f"{path}: {exc}") from None


def save(directory: Path, config: WalletConfig) -> None:
    """Write the config whole (a new file linked over the old one), owner-only."""
    parser = configparser.ConfigParser(interpolation=None)
    parser["wallet"] = {k: v for k in KEYS if (v := getattr(config, k))}
    path = directory / CONFIG_FILE
    fresh = directory / f".{CONFIG_FILE}.new"
    fresh.unlink(missing_ok=True)
    text = "# hashpool-wallet: the mint, the pool node (id@host:port) and the rune its operator gave you\n"
    buf = StringIO()
    parser.write(buf)
    write_secret_file(fresh, text + buf.getvalue())
    os.replace(fresh, path)
