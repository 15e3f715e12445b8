"""Settings of the reference mint and the secrets it keeps in its data directory.

The data directory (created 0700) holds, each created 0600 on first start and reused afterwards:
``seed`` (the mint's 32-byte master seed, hex), ``auth.json`` (the bearer keys of the pool and desk roles),
``pool_key`` (the pool's private key, when none is given on the command line) and ``mint.sqlite3``.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from coincurve import PrivateKey

SEED_FILE = "seed"
AUTH_FILE = "auth.json"
POOL_KEY_FILE = "pool_key"
DB_FILE = "mint.sqlite3"


@dataclass(frozen=True)
class MintConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 3338
    pool_key: str | None = None  # hex private key; generated and kept in the data dir when None
    min_difficulty: int = 32  # leading zero bits a share needs to earn 1 unit
    input_fee_ppk: int = 0  # for keysets created from now on (each keyset keeps its own)
    pool_fee_ppm: int = 0  # fixed into each epoch when it closes
    final_confirmations: int = 6  # a reward is final once its block has this many confirmations
    redeem_window: int = 30 * 86400  # seconds an epoch stays settled (quotable) before it closes
    melt_quote_ttl: int = 600
    partial_melt: bool = True  # a melt may settle its quote for fewer units (docs/ehash-mint-api.md, 5.2)
    start_height: int = 0  # the height naming the very first epoch
    max_inputs: int = 1000
    max_outputs: int = 1000
    max_batch_size: int = 100  # quotes per NUT-29 batch check or batch mint
    lookup_max_age: int = 300  # seconds a signed lookup by key stays valid either side of the mint's clock
    max_body: int = 1 << 20
    pending_wait: float = 5.0  # how long a request waits for another one holding the same proofs/outputs
    name: str = "hashpool reference mint"
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def db_path(self) -> Path:
        return self.data_dir / DB_FILE


def prepare_data_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def write_private(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only; refuse to overwrite (secrets are never replaced)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _load_or_create(path: Path, make: Callable[[], str]) -> str:
    if not path.exists():
        try:
            write_private(path, make())
        except FileExistsError:
            pass  # another process won the race; use its file
    return path.read_text().strip()


def load_seed(data_dir: Path) -> bytes:
    text = _load_or_create(data_dir / SEED_FILE, lambda: secrets.token_hex(32) + "\n")
    seed = bytes.fromhex(text)
    if len(seed) != 32:
        raise ValueError(f"{data_dir / SEED_FILE} does not hold a 32-byte hex seed")
    return seed


def load_auth(data_dir: Path) -> dict[str, str]:
    """The bearer keys ``{"pool": hex, "desk": hex}``."""
    text = _load_or_create(
        data_dir / AUTH_FILE,
        lambda: json.dumps({"pool": secrets.token_hex(32), "desk": secrets.token_hex(32)}, indent=2) + "\n",
    )
    auth = json.loads(text)
    if not isinstance(auth, dict) or not all(isinstance(auth.get(k), str) and auth[k] for k in ("pool", "desk")):
        raise ValueError(f"{data_dir / AUTH_FILE} must hold string keys 'pool' and 'desk'")
    return {"pool": auth["pool"], "desk": auth["desk"]}


def load_pool_key(data_dir: Path, given: str | None) -> PrivateKey:
    """The pool's key: the one given, else the one kept in the data dir (created on first start)."""
    text = given if given is not None else _load_or_create(
        data_dir / POOL_KEY_FILE, lambda: secrets.token_hex(32) + "\n")
    try:
        return PrivateKey(bytes.fromhex(text.strip()))
    except ValueError as exc:
        raise ValueError("the pool key must be a 32-byte hex secp256k1 private key") from exc
