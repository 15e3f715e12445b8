"""Deterministic secrets, blinding factors and outputs (NUT-13), BIP32 private derivation and BIP39 seeds.

Version ``00`` keyset ids use the legacy BIP32 paths ``m/129372'/0'/{keyset_id_int}'/{counter}'/{0|1}``;
version ``01`` ids use the HMAC-SHA256 scheme::

    msg    = b"Cashu_KDF_HMAC_SHA256" || keyset_id_bytes || counter_u64_be
    secret = HMAC-SHA256(seed, msg || 0x00)            (the proof's secret is its lowercase hex)
    r      = HMAC-SHA256(seed, msg || 0x01) mod n      (rejected if 0)

BIP32 is implemented here on coincurve (HMAC-SHA512, secp256k1 scalar tweak-add); only private derivation
is needed.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from dataclasses import dataclass

from coincurve import PrivateKey, PublicKey

from hashpool_cln.cashu.crypto import N, blind, scalar_from_int
from hashpool_cln.cashu.errors import CryptoError, KeysetError
from hashpool_cln.cashu.models import BlindedMessage

HARDENED = 2**31
CASHU_PURPOSE = 129372  # UTF-8 of the peanut emoji, read as an integer
KDF_TAG = b"Cashu_KDF_HMAC_SHA256"
_MAX_COUNTER_V2 = 2**64


# --- BIP32 -----------------------------------------------------------------------------------------------------


def bip32_master(seed: bytes) -> tuple[bytes, bytes]:
    """The BIP32 master ``(key, chain_code)`` of ``seed``."""
    if not seed:
        raise CryptoError("empty seed", reason="bad_seed")
    digest = hmac.digest(b"Bitcoin seed", seed, "sha512")
    key = digest[:32]
    if not 0 < int.from_bytes(key, "big") < N:  # probability ~2^-127
        raise CryptoError("seed gives an invalid BIP32 master key", reason="bad_seed")
    return key, digest[32:]


def bip32_child(key: bytes, chain_code: bytes, index: int) -> tuple[bytes, bytes]:
    """BIP32 CKDpriv: the child ``(key, chain_code)`` at ``index`` (hardened when ``index >= 2^31``)."""
    if not 0 <= index < 2**32:
        raise CryptoError(f"BIP32 index out of range: {index}", reason="bad_path")
    if index >= HARDENED:
        data = b"\x00" + key + index.to_bytes(4, "big")
    else:
        data = PublicKey.from_valid_secret(key).format() + index.to_bytes(4, "big")
    digest = hmac.digest(chain_code, data, "sha512")
    # The scalar tweak-add k_child = IL + k_parent mod n, on ints: a coincurve PrivateKey would compute two
    # public keys nobody needs.
    tweak = int.from_bytes(digest[:32], "big")
    child = (tweak + int.from_bytes(key, "big")) % N
    if tweak >= N or child == 0:  # probability ~2^-127; BIP32 says to skip the index
        raise CryptoError(f"BIP32 index {index} gives an invalid key", reason="bad_path")
    return child.to_bytes(32, "big"), digest[32:]


def parse_path(path: str) -> list[int]:
    """``m/129372'/0'/5`` -> child indexes (``'`` or ``h`` marks a hardened index)."""
    parts = path.split("/")
    if parts[0] != "m":
        raise CryptoError(f"derivation path must start with 'm': {path!r}", reason="bad_path")
    indexes = []
    for part in parts[1:]:
        hardened = part[-1:] in ("'", "h", "H")
        digits = part[:-1] if hardened else part
        if not digits.isdigit() or not digits.isascii() or int(digits) >= HARDENED:
            raise CryptoError(f"bad derivation path component {part!r} in {path!r}", reason="bad_path")
        indexes.append(int(digits) + (HARDENED if hardened else 0))
    return indexes


def derive_path(seed: bytes, path: str | list[int]) -> bytes:
    """The 32-byte BIP32 private key of ``seed`` at ``path``."""
    key, chain_code = bip32_master(seed)
    for index in parse_path(path) if isinstance(path, str) else path:
        key, chain_code = bip32_child(key, chain_code, index)
    return key


# --- NUT-13 ----------------------------------------------------------------------------------------------------


def keyset_id_int(keyset_id: str) -> int:
    """The legacy integer form of a keyset id: big-endian value mod ``2^31 - 1`` (v2 ids: first 8 bytes)."""
    _check_keyset_id(keyset_id)
    return int(keyset_id[:16], 16) % (2**31 - 1)


def _check_keyset_id(keyset_id: str) -> None:
    if not isinstance(keyset_id, str):
        raise KeysetError("keyset id must be a string", reason="bad_keyset_id")
    version, length = keyset_id[:2], len(keyset_id)
    if not ((version == "00" and length == 16) or (version == "01" and length == 66)):
        raise KeysetError(f"unsupported keyset id {keyset_id!r}", reason="bad_keyset_id")
    try:
        bytes.fromhex(keyset_id)
    except ValueError:
        raise KeysetError(f"keyset id is not hex: {keyset_id!r}", reason="bad_keyset_id") from None


def derive_secret(seed: bytes, keyset_id: str, counter: int) -> tuple[str, PrivateKey]:
    """The deterministic ``(secret, r)`` for output number ``counter`` of ``keyset_id``.

    The secret is the hex string a Proof carries; ``r`` is the blinding factor.
    """
    _check_keyset_id(keyset_id)
    if isinstance(counter, bool) or not isinstance(counter, int) or counter < 0:
        raise CryptoError(f"counter must be a non-negative integer, not {counter!r}", reason="bad_counter")
    if keyset_id.startswith("00"):
        return _derive_bip32(seed, keyset_id, counter)
    return _derive_hmac(seed, keyset_id, counter)


def _derive_bip32(seed: bytes, keyset_id: str, counter: int) -> tuple[str, PrivateKey]:
    if counter >= HARDENED:
        raise CryptoError(f"counter {counter} exceeds the BIP32 hardened range", reason="bad_counter")
    # Derive m/129372'/0'/{id}'/{counter}' once; the secret and r are its children 0 and 1.
    key, chain_code = bip32_master(seed)
    for index in (CASHU_PURPOSE + HARDENED, HARDENED, keyset_id_int(keyset_id) + HARDENED, counter + HARDENED):
        key, chain_code = bip32_child(key, chain_code, index)
    secret, _ = bip32_child(key, chain_code, 0)
    r, _ = bip32_child(key, chain_code, 1)
    return secret.hex(), scalar_from_int(int.from_bytes(r, "big"))


def _derive_hmac(seed: bytes, keyset_id: str, counter: int) -> tuple[str, PrivateKey]:
    if counter >= _MAX_COUNTER_V2:
        raise CryptoError(f"counter {counter} does not fit 64 bits", reason="bad_counter")
    if not seed:
        raise CryptoError("empty seed", reason="bad_seed")
    message = KDF_TAG + bytes.fromhex(keyset_id) + counter.to_bytes(8, "big")
    secret = hmac.digest(seed, message + b"\x00", "sha256")
    r = int.from_bytes(hmac.digest(seed, message + b"\x01", "sha256"), "big") % N
    if r == 0:  # probability ~2^-256
        raise CryptoError("derived blinding factor is zero", reason="bad_counter")
    return secret.hex(), scalar_from_int(r)


@dataclass(frozen=True, slots=True)
class Output:
    """One deterministic output: what the mint sees (``message``) and what only its wallet knows."""

    message: BlindedMessage
    secret: str
    r: PrivateKey


def derive_outputs(seed: bytes, keyset_id: str, counter_start: int, amounts: list[int]) -> list[Output]:
    """The outputs of ``amounts`` for counters ``counter_start``, ``counter_start + 1``, ... of ``keyset_id``."""
    outputs = []
    for i, amount in enumerate(amounts):
        secret, r = derive_secret(seed, keyset_id, counter_start + i)
        B_, _ = blind(secret.encode(), r)
        outputs.append(Output(BlindedMessage(amount, keyset_id, B_.format().hex()), secret, r))
    return outputs


# --- BIP39 -----------------------------------------------------------------------------------------------------


def seed_from_mnemonic(mnemonic: str, passphrase: str = "") -> bytes:
    """The 64-byte BIP39 seed: PBKDF2-HMAC-SHA512(NFKD(mnemonic), "mnemonic" + NFKD(passphrase), 2048).

    Words are re-joined with single spaces so stray whitespace (a trailing newline in a file) cannot silently
    give another seed; for a well-formed mnemonic this changes nothing. The word list and checksum are not
    checked: the seed is defined for any sentence.
    """
    words = unicodedata.normalize("NFKD", mnemonic).split()
    if not words:
        raise CryptoError("empty mnemonic", reason="bad_seed")
    sentence = " ".join(words).encode("utf-8")
    salt = ("mnemonic" + unicodedata.normalize("NFKD", passphrase)).encode("utf-8")
    return hashlib.pbkdf2_hmac("sha512", sentence, salt, 2048)
