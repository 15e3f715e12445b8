"""Keysets (NUT-01/02): ids v1 and v2, id checks, short ids, input fees, and the mint's key derivation.

Keyset ids (NUT-02):

* v1 ``00`` + the first 14 hex characters of ``sha256(K_1 || K_2 || ...)``, compressed public keys sorted by
  amount;
* v2 ``01`` + the full hex ``sha256("1:K_1,2:K_2,...|unit:<unit>[|input_fee_ppk:<p>][|final_expiry:<t>]")``,
  keys in lowercase hex sorted by amount; the fee appears only when non-zero, the expiry only when set and
  non-zero.

A token may name a v2 keyset by its short id, the first 8 bytes (16 hex characters) of the full id (NUT-00);
``resolve_short_id`` maps it back, refusing ambiguity.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from coincurve import PrivateKey, PublicKey

from hashpool_cln.cashu.crypto import point, scalar_from_int
from hashpool_cln.cashu.errors import CryptoError, KeysetError
from hashpool_cln.cashu.nut13 import derive_path

SHORT_ID_CHARS = 16


@dataclass
class Keyset:
    """A mint keyset: ``keys`` maps each amount to its compressed public key in hex."""

    id: str
    unit: str
    keys: Mapping[int, str]
    active: bool = True
    input_fee_ppk: int = 0
    final_expiry: int | None = None
    _points: dict[int, PublicKey] = field(default_factory=dict, init=False, repr=False, compare=False)

    def public_key(self, amount: int) -> PublicKey:
        """The parsed key for ``amount`` (parsed once, then cached)."""
        cached = self._points.get(amount)
        if cached is not None:
            return cached
        hex_key = self.keys.get(amount)
        if hex_key is None:
            raise KeysetError(f"keyset {self.id} has no key for amount {amount}", reason="unknown_amount")
        try:
            parsed = point(hex_key)
        except CryptoError as exc:
            raise KeysetError(f"keyset {self.id}: key for amount {amount}: {exc}", reason="bad_key") from None
        self._points[amount] = parsed
        return parsed

    def verify(self) -> None:
        """Check that the keys, unit, fee and expiry hash to ``id`` (KeysetError otherwise)."""
        verify_keyset_id(self.id, self.keys, self.unit, self.final_expiry, input_fee_ppk=self.input_fee_ppk)


def _sorted_keys(keys: Mapping[int, str]) -> list[tuple[int, str]]:
    """Keys sorted by amount, each checked to be a positive integer amount and a valid compressed point."""
    if not keys:
        raise KeysetError("keyset has no keys", reason="bad_key")
    items = []
    for amount, hex_key in keys.items():
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise KeysetError(f"keyset amount must be a positive integer, not {amount!r}", reason="bad_key")
        try:
            point(hex_key)
        except CryptoError as exc:
            raise KeysetError(f"key for amount {amount}: {exc}", reason="bad_key") from None
        items.append((amount, hex_key.lower()))
    items.sort()
    return items


def _check_count(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise KeysetError(f"{name} must be a non-negative integer, not {value!r}", reason="bad_keyset_metadata")


def derive_keyset_id_v1(keys: Mapping[int, str]) -> str:
    """NUT-02 v1 id: ``00`` + 14 hex characters of sha256 over the compressed keys sorted by amount."""
    digest = hashlib.sha256(b"".join(bytes.fromhex(k) for _, k in _sorted_keys(keys))).hexdigest()
    return "00" + digest[:14]


def derive_keyset_id_v2(
    keys: Mapping[int, str], unit: str, final_expiry: int | None = None, *, input_fee_ppk: int = 0
) -> str:
    """NUT-02 v2 id: ``01`` + sha256 of the amount:key list, the unit, a non-zero fee and a set expiry."""
    if not isinstance(unit, str) or not unit:
        raise KeysetError("keyset unit must be a non-empty string", reason="bad_unit")
    _check_count(input_fee_ppk, "input_fee_ppk")
    if final_expiry is not None:
        _check_count(final_expiry, "final_expiry")
    preimage = ",".join(f"{amount}:{k}" for amount, k in _sorted_keys(keys)) + f"|unit:{unit}"
    if input_fee_ppk:
        preimage += f"|input_fee_ppk:{input_fee_ppk}"
    if final_expiry:
        preimage += f"|final_expiry:{final_expiry}"
    return "01" + hashlib.sha256(preimage.encode("utf-8")).hexdigest()


def verify_keyset_id(
    keyset_id: str,
    keys: Mapping[int, str],
    unit: str,
    final_expiry: int | None = None,
    *,
    input_fee_ppk: int = 0,
) -> None:
    """Raise KeysetError unless ``keys`` (and, for v2, the metadata) hash to ``keyset_id``."""
    if not isinstance(keyset_id, str):
        raise KeysetError("keyset id must be a string", reason="bad_keyset_id")
    if keyset_id.startswith("00") and len(keyset_id) == 16:
        expected = derive_keyset_id_v1(keys)
    elif keyset_id.startswith("01") and len(keyset_id) == 66:
        expected = derive_keyset_id_v2(keys, unit, final_expiry, input_fee_ppk=input_fee_ppk)
    else:
        raise KeysetError(f"unsupported keyset id {keyset_id!r}", reason="bad_keyset_id")
    if expected != keyset_id.lower():
        raise KeysetError(f"keys do not match keyset id {keyset_id} (they hash to {expected})",
                          reason="keyset_id_mismatch")


def input_fee(keyset_ids: Iterable[str], fee_ppk: Mapping[str, int]) -> int:
    """NUT-02 fee for spending inputs of ``keyset_ids`` (one entry per input): ``ceil(sum(ppk) / 1000)``."""
    return input_fee_by_keyset(Counter(keyset_ids), fee_ppk)


def input_fee_by_keyset(counts: Mapping[str, int], fee_ppk: Mapping[str, int]) -> int:
    """``input_fee`` of ``counts[id]`` inputs of each keyset id."""
    total = 0
    for keyset_id, count in counts.items():
        ppk = fee_ppk.get(keyset_id)
        if ppk is None:
            raise KeysetError(f"no fee known for keyset {keyset_id}", reason="unknown_keyset")
        _check_count(ppk, f"input_fee_ppk of keyset {keyset_id}")
        total += ppk * count
    return (total + 999) // 1000


def resolve_short_id(short_id: str, known_ids: Iterable[str]) -> str:
    """The full id among ``known_ids`` that ``short_id`` names: itself, or a v2 id it is the 8-byte prefix of.

    KeysetError ``unknown_keyset`` if none matches, ``ambiguous_keyset`` if several do.
    """
    if not isinstance(short_id, str) or len(short_id) not in (SHORT_ID_CHARS, 66):
        raise KeysetError(f"malformed keyset id {short_id!r}", reason="bad_keyset_id")
    wanted = short_id.lower()
    matches = set()
    for known in known_ids:
        full = known.lower()
        if full == wanted or (len(wanted) == SHORT_ID_CHARS and full[:SHORT_ID_CHARS] == wanted):
            matches.add(known)
    if not matches:
        raise KeysetError(f"unknown keyset {short_id}", reason="unknown_keyset")
    if len(matches) > 1:
        raise KeysetError(f"keyset id {short_id} is ambiguous: {', '.join(sorted(matches))}",
                          reason="ambiguous_keyset")
    return matches.pop()


def derive_mint_keys(seed: bytes, derivation: str, amounts: Iterable[int]) -> dict[int, PrivateKey]:
    """The mint's private key per amount: BIP32 ``derivation/i'`` from ``seed`` for the i-th amount.

    This is the derivation nutshell's mint uses (with ``seed`` the UTF-8 of its private-key setting), so the
    same seed and path give the same keyset in both.
    """
    keys: dict[int, PrivateKey] = {}
    for i, amount in enumerate(amounts):
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0 or amount in keys:
            raise KeysetError(f"bad or repeated keyset amount {amount!r}", reason="bad_key")
        keys[amount] = scalar_from_int(int.from_bytes(derive_path(seed, f"{derivation}/{i}'"), "big"))
    return keys
