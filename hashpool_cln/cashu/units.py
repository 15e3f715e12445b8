"""ehash unit names: ``hash_<pool>_<height>[_<n>]`` per mining epoch, and the legacy single unit ``hash``.

``<pool>`` is the pool's compressed public key in lowercase hex (66 characters, ``02``/``03`` prefix),
``<height>`` the decimal block height that opened the epoch (no leading zeros), ``<n>`` an optional collision
suffix (decimal, >= 1, no leading zeros). The legacy unit is represented as ``EpochUnit(pool="", height=0)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import CashuError

LEGACY_UNIT = "hash"
EHASH_PREFIX = "hash_"
MAX_HEIGHT = 2**32 - 1  # block heights are u32 in Bitcoin; the suffix shares the bound
_UNIT_RE = re.compile(r"hash_(0[23][0-9a-f]{64})_(0|[1-9][0-9]{0,9})(?:_([1-9][0-9]{0,9}))?")
_POOL_RE = re.compile(r"0[23][0-9a-f]{64}")


def _unit_error(message: str) -> CashuError:
    return CashuError(message, reason="bad_unit")


@dataclass(frozen=True, slots=True)
class EpochUnit:
    """A parsed ehash unit. ``pool == ""`` marks the legacy unit ``hash``; ``suffix == 0`` means no suffix."""

    pool: str
    height: int
    suffix: int = 0

    @property
    def is_legacy(self) -> bool:
        return self.pool == ""

    def __str__(self) -> str:
        return format_unit(self.pool, self.height, self.suffix)


def parse_unit(unit: str) -> EpochUnit | None:
    """Parse an ehash unit name.

    Returns None for units that are not ehash at all (``sat``, ``usd``, ...), an EpochUnit for ``hash`` and
    well-formed ``hash_<pool>_<height>[_<n>]`` names, and raises CashuError (reason ``bad_unit``) for strings
    that start with ``hash_`` but are malformed: such a unit claims to be ehash, so silently treating it as
    "not ehash" would hide a pool or mint bug.
    """
    if not isinstance(unit, str):
        raise _unit_error(f"unit must be a string, not {type(unit).__name__}")
    if unit == LEGACY_UNIT:
        return EpochUnit(pool="", height=0, suffix=0)
    if not unit.startswith(EHASH_PREFIX):
        return None
    match = _UNIT_RE.fullmatch(unit)
    if match is None:
        shown = unit if len(unit) <= 100 else unit[:100] + "..."
        raise _unit_error(f"malformed ehash unit {shown!r}: expected hash_<66 lowercase hex pool key>_<height>[_<n>]")
    pool, height_text, suffix_text = match.groups()
    height = int(height_text)
    suffix = int(suffix_text) if suffix_text else 0
    if height > MAX_HEIGHT or suffix > MAX_HEIGHT:
        raise _unit_error(f"ehash unit {unit!r} has a height or suffix above {MAX_HEIGHT}")
    return EpochUnit(pool=pool, height=height, suffix=suffix)


def is_ehash_unit(unit: object) -> bool:
    """True for ``hash`` and well-formed epoch units; False for everything else (never raises)."""
    if not isinstance(unit, str):
        return False
    try:
        return parse_unit(unit) is not None
    except CashuError:
        return False


def format_unit(pool: str, height: int, suffix: int = 0) -> str:
    """Build the unit name of an epoch; ``format_unit("", 0)`` gives the legacy ``hash``.

    Raises CashuError (reason ``bad_unit``) for a pool that is not a lowercase compressed key in hex, or a
    height/suffix that is not an integer in range.
    """
    if pool == "":
        if height != 0 or suffix != 0:
            raise _unit_error("the legacy unit 'hash' has no height or suffix")
        return LEGACY_UNIT
    if not isinstance(pool, str) or _POOL_RE.fullmatch(pool) is None:
        raise _unit_error("pool must be a compressed public key in lowercase hex (66 characters, 02/03 prefix)")
    for name, value, low in (("height", height, 0), ("suffix", suffix, 0)):
        if type(value) is not int or not low <= value <= MAX_HEIGHT:
            raise _unit_error(f"{name} must be an integer between {low} and {MAX_HEIGHT}, got {value!r}")
    unit = f"{EHASH_PREFIX}{pool}_{height}"
    return f"{unit}_{suffix}" if suffix else unit
