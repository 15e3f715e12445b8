"""The desk's own small Cashu wallet: its seed, its P2PK key and the denominations of its outputs.

Outputs come from NUT-13 counters (``hashpool_cln.cashu.nut13.derive_outputs``), so a swap whose answer was lost
can be asked again (identical request) or recovered with NUT-09 restore from nothing but the seed and the
counters in the ledger.
"""

from __future__ import annotations

import hashlib
import os
import secrets

from coincurve import PrivateKey

from hashpool_cln.cashu import crypto
from hashpool_cln.cashu.amounts import split_amount

from . import files

SEED_BYTES = 32
_P2PK_TAG = b"hashpool-desk/p2pk/v1"


def load_or_create_seed(path: str) -> bytes:
    """Read the hex seed at ``path`` (32–64 bytes), creating a random one, owner-only, when absent.

    A new seed is written whole to a temporary file first and then linked into place: a process dying midway
    leaves no seed file at all rather than an empty one, and a seed already there is never replaced.
    """
    try:
        return _read_seed(path)
    except FileNotFoundError:
        pass
    seed = secrets.token_bytes(SEED_BYTES)
    tmp = f"{path}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(seed.hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _read_seed(path)  # another start won the race: its seed is the one
    finally:
        os.unlink(tmp)
    _fsync_dir(os.path.dirname(os.path.abspath(path)))
    return seed


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_seed(path: str) -> bytes:
    with open(path) as f:
        files.check_secret(f.fileno(), "desk seed file")
        text = f.read().strip()
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        raise ValueError("the desk seed file does not hold hex") from None
    if not 32 <= len(seed) <= 64:
        raise ValueError(f"the desk seed must be 32 to 64 bytes, not {len(seed)}")
    return seed


def p2pk_key(seed: bytes) -> PrivateKey:
    """The key tokens may be locked to (NUT-11) when a wallet sends ehash to this desk."""
    return crypto.scalar(hashlib.sha256(_P2PK_TAG + seed).hexdigest())


def _fee(count: int, fee_ppk: int) -> int:
    return -(-count * fee_ppk // 1000)


def exact_amounts(units: int, fee_ppk: int) -> list[int]:
    """Denominations whose sum, less the input fee of spending them all later (NUT-02), is exactly ``units``.

    The mint burns exactly the quoted units at settlement, so custody must be neither short nor over.
    """
    for total in range(units, units + _fee(128, fee_ppk) + 2):
        parts = split_amount(total)
        # Too much left after the fee: break the smallest coin in two; each break adds one proof's fee.
        while total - _fee(len(parts), fee_ppk) > units and any(p > 1 for p in parts):
            smallest = min(p for p in parts if p > 1)
            parts.remove(smallest)
            parts += [smallest // 2, smallest // 2]
        if total - _fee(len(parts), fee_ppk) == units:
            return sorted(parts)
    raise ValueError(f"no denominations give exactly {units} units after an input fee of {fee_ppk} ppk")


def reserve_amounts(units: int) -> list[int]:
    """Denominations for a fee reserve of ``units`` in which every value from 0 to ``units`` is an exact subset
    sum: 1, 2, 4, ... 2^(k-1) (the largest k with 2^k - 1 <= units), plus the rest split into powers of two. What
    routing leaves of the reserve can then be handed back to the caller to the unit."""
    run = 0
    while (1 << (run + 1)) - 1 <= units:
        run += 1
    return sorted([1 << i for i in range(run)] + split_amount(units - ((1 << run) - 1)))


def units_after_fee(available: int, fee_ppk: int) -> int:
    """Units left when ``available`` units are all spent as proofs that each carry the input fee."""
    return available - _fee(len(split_amount(max(available, 0))), fee_ppk)
