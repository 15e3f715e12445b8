"""The wallet's one secret: a BIP39 mnemonic, and everything derived from it.

* the NUT-13 seed: ``seed_from_mnemonic(words)`` (BIP39 PBKDF2), the same bytes cashu-ts and CDK derive, so
  those wallets restore the same ehash from the same words;
* the NUT-20 key every share quote is locked to: BIP32 ``m/129372'/20'/0'`` of that seed (the Cashu purpose,
  then NUT-20's number);
* the key of the wallet's Lightning identity (BOLT8 node id, which a rune can be tied to): BIP32
  ``m/129372'/8'/0'``.

The mnemonic file is written 0600 in a 0700 directory, whole or not at all.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from coincurve import PrivateKey
from mnemonic import Mnemonic

from hashpool_cln.cashu.nut13 import derive_path, seed_from_mnemonic

LOCK_KEY_PATH = "m/129372'/20'/0'"
NODE_KEY_PATH = "m/129372'/8'/0'"
_WORDS = Mnemonic("english")


class SeedError(ValueError):
    """A mnemonic that is not valid BIP39 English, or a mnemonic file that cannot be used."""


def new_mnemonic(strength: int = 128) -> str:
    """Twelve (128 bits) or twenty-four (256 bits) English words with their BIP39 checksum."""
    return _WORDS.to_mnemonic(secrets.token_bytes(strength // 8))


def check_mnemonic(words: str) -> str:
    """The mnemonic normalised to single spaces and lowercase; SeedError unless its words and checksum are valid."""
    normal = " ".join(words.lower().split())
    if len(normal.split()) not in (12, 15, 18, 21, 24) or not _WORDS.check(normal):
        raise SeedError("not a valid BIP39 English mnemonic (12-24 words with a correct checksum)")
    return normal


class WalletKeys:
    """The keys of one mnemonic. Never printed: ``repr`` shows the public keys only."""

    def __init__(self, mnemonic: str) -> None:
        self.seed = seed_from_mnemonic(check_mnemonic(mnemonic))
        self.lock_key = PrivateKey(derive_path(self.seed, LOCK_KEY_PATH))
        self.node_key = derive_path(self.seed, NODE_KEY_PATH)

    @property
    def lock_pubkey(self) -> str:
        return self.lock_key.public_key.format().hex()

    @property
    def node_id(self) -> str:
        return PrivateKey(self.node_key).public_key.format().hex()

    def __repr__(self) -> str:
        return f"WalletKeys(lock_pubkey={self.lock_pubkey}, node_id={self.node_id})"


def write_secret_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` owner-only, whole or not at all; never replaces an existing file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)  # FileExistsError if one is there: never overwrite a secret
    finally:
        os.unlink(tmp)


def read_mnemonic(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except FileNotFoundError:
        raise SeedError(f"no mnemonic at {path}: run `hashpool-wallet init` first") from None
    except UnicodeDecodeError:
        raise SeedError(f"{path} is not a mnemonic (not UTF-8 text)") from None
    except OSError as exc:
        raise SeedError(f"cannot read the mnemonic at {path}: {exc.strerror or exc}") from None
    if mode & 0o077:
        raise SeedError(f"{path} is readable by others; make it owner-only (chmod 600 {path})")
    return check_mnemonic(text)
