"""Blind Diffie-Hellman key exchange (NUT-00) and DLEQ proofs (NUT-12) on secp256k1.

Points are coincurve ``PublicKey`` objects and scalars coincurve ``PrivateKey`` objects. Every group operation
is one native libsecp256k1 call (``multiply`` = constant-time ``P*k``, ``add`` = ``P + k*G``, ``combine_keys`` =
point sum); scalar arithmetic mod ``n`` is done on Python ints, which is cheaper than a round trip through key
objects. Points are never compared with ``==`` (other libraries patch ``PublicKey.__eq__``): their encodings are.

Notation (NUT-00): the mint key ``a`` with public key ``A = a*G``; a secret ``x`` with ``Y = hash_to_curve(x)``;
the blinded message ``B_ = Y + r*G``; the blind signature ``C_ = a*B_``; the unblinded signature
``C = C_ - r*A = a*Y``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Iterable
from functools import cached_property
from itertools import repeat

from coincurve import PrivateKey, PublicKey
from coincurve.context import GLOBAL_CONTEXT
from coincurve.keys import PublicKeyXOnly

from hashpool_cln.cashu.errors import CryptoError

try:  # coincurve's own cffi binding: lets hash_to_curve test candidates without raising an exception per miss
    from coincurve._libsecp256k1 import ffi as _ffi
    from coincurve._libsecp256k1 import lib as _lib

    _parse = _lib.secp256k1_ec_pubkey_parse
    _PUBKEY_T = _ffi.typeof("secp256k1_pubkey *")  # resolved once instead of per call
    _RECOVERABLE_T = _ffi.typeof("secp256k1_ecdsa_recoverable_signature *")
    _parse_recoverable = _lib.secp256k1_ecdsa_recoverable_signature_parse_compact
    _recover = _lib.secp256k1_ecdsa_recover
except (ImportError, AttributeError):  # pragma: no cover - then hash_to_curve uses the public constructor only
    _ffi = _parse = _recover = None

# secp256k1 group order.
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

DOMAIN_SEPARATOR = b"Secp256k1_HashToCurve_Cashu_"
DLEQ_NONCE_TAG = b"Cashu_DLEQ_R_v1"

# Every try of the hash-to-curve loop succeeds with probability 1/2; 2^16 tries never all fail in practice.
_H2C_MAX_TRIES = 2**16
_COUNTERS = [c.to_bytes(4, "little") for c in range(64)]
_HEXDIGITS = frozenset(string.hexdigits)
_sha256 = hashlib.sha256
_CTX = GLOBAL_CONTEXT.ctx


class _Scalar(PrivateKey):
    """A ``PrivateKey`` whose public keys are computed on first use.

    coincurve's constructor computes ``k*G`` twice (plain and x-only); scalars that only ever multiply a point
    (blinding factors, DLEQ values) do not need either, and each costs as much as half a point multiplication.
    """

    def __init__(self, secret: bytes) -> None:  # secret already checked to be in [1, n-1]
        self.secret = secret
        self.context = GLOBAL_CONTEXT

    @cached_property
    def public_key(self) -> PublicKey:  # type: ignore[override]
        return PublicKey.from_valid_secret(self.secret, self.context)

    @cached_property
    def public_key_xonly(self) -> PublicKeyXOnly:  # type: ignore[override]
        return PublicKeyXOnly.from_valid_secret(self.secret, self.context)


def scalar_from_int(k: int) -> PrivateKey:
    """A scalar from an integer in [1, n-1]; CryptoError otherwise."""
    if not 0 < k < N:
        raise CryptoError("scalar out of range [1, n-1]", reason="bad_scalar")
    return _Scalar(k.to_bytes(32, "big"))


def random_scalar() -> PrivateKey:
    """A uniformly random non-zero scalar from the operating system's CSPRNG."""
    while True:
        k = int.from_bytes(secrets.token_bytes(32), "big")
        if 0 < k < N:
            return _Scalar(k.to_bytes(32, "big"))


def _is_hex(text: str, length: int) -> bool:
    return isinstance(text, str) and len(text) == length and _HEXDIGITS.issuperset(text)


def point(hex_str: str) -> PublicKey:
    """Parse a compressed SEC1 point (66 hex characters); CryptoError if it is not a point on secp256k1."""
    if not _is_hex(hex_str, 66):
        raise CryptoError("a point must be 66 hex characters (compressed SEC1)", reason="bad_point")
    if hex_str[1] not in "23" or hex_str[0] != "0":
        raise CryptoError("a point must be in compressed form (prefix 02 or 03)", reason="bad_point")
    try:
        return PublicKey(bytes.fromhex(hex_str))
    except ValueError:
        raise CryptoError("not a point on secp256k1", reason="bad_point") from None


def first_non_point(encodings: Iterable[bytes]) -> int | None:
    """Index of the first entry that is not a compressed point on secp256k1 (33 bytes, prefix 02/03, ``x`` on
    the curve), or None if all are.

    For checking many points that are not otherwise needed (a token's ``C`` values): one native parse each into
    one reused buffer, with no key object built and no exception raised per entry.
    """
    if _parse is None:  # pragma: no cover - no cffi binding: the public constructor does the same check
        for i, data in enumerate(encodings):
            if not (type(data) is bytes and len(data) == 33 and data[0] in (2, 3)):
                return i
            try:
                PublicKey(data)
            except ValueError:
                return i
        return None
    encodings = list(encodings)
    # libsecp256k1 reads exactly the given length, so every entry is checked to be 33 bytes before any parse;
    # with length 33 it accepts only the 02/03 forms.
    if set(map(type, encodings)) <= {bytes} and set(map(len, encodings)) <= {33}:
        parsed = _ffi.new(_PUBKEY_T)
        # The common case, all valid, runs as one C-level pass over the entries.
        if all(map(_parse, repeat(_CTX), repeat(parsed), encodings, repeat(33))):
            return None
    for i, data in enumerate(encodings):
        if not (type(data) is bytes and len(data) == 33 and _parse(_CTX, _ffi.new(_PUBKEY_T), data, 33)):
            return i
    return None  # pragma: no cover - unreachable: the pass above found an entry that is not a point


def is_point(data: bytes) -> bool:
    """Whether ``data`` is a compressed point on secp256k1 (33 bytes, prefix 02/03)."""
    return first_non_point((data,)) is None


def scalar(hex_str: str) -> PrivateKey:
    """Parse a scalar (64 hex characters, big-endian, in [1, n-1]); CryptoError otherwise."""
    if not _is_hex(hex_str, 64):
        raise CryptoError("a scalar must be 64 hex characters", reason="bad_scalar")
    return scalar_from_int(int(hex_str, 16))


def hash_to_curve(message: bytes) -> PublicKey:
    """NUT-00 hash-to-curve: ``02 || sha256(sha256(DOMAIN_SEPARATOR || message) || counter_le32)``.

    The counter counts up from 0 until the 33 bytes decode to a point on the curve.
    """
    msg_hash = _sha256(DOMAIN_SEPARATOR + message).digest()
    if _parse is not None:
        parsed = _ffi.new(_PUBKEY_T)
        for ctr in _COUNTERS:  # almost always found within a few tries
            if _parse(_CTX, parsed, b"\x02" + _sha256(msg_hash + ctr).digest(), 33):
                return PublicKey(parsed)
    for counter in range(len(_COUNTERS) if _parse is not None else 0, _H2C_MAX_TRIES):
        candidate = b"\x02" + _sha256(msg_hash + counter.to_bytes(4, "little")).digest()
        try:
            return PublicKey(candidate)
        except ValueError:  # x has no point on the curve: try the next counter
            continue
    raise CryptoError("hash_to_curve found no point", reason="no_point")  # pragma: no cover


def proof_y(secret: str) -> str:
    """The ``Y`` of a proof (NUT-07): hex of ``hash_to_curve(secret)``, the mint's key for its spent state."""
    return hash_to_curve(secret.encode("utf-8")).format().hex()


def blind(secret: bytes, r: PrivateKey | None = None) -> tuple[PublicKey, PrivateKey]:
    """Blind ``secret``: ``B_ = Y + r*G`` with a fresh random ``r`` unless one is given."""
    if r is None:
        r = random_scalar()
    try:
        # r*G is usually already known (coincurve computes it with the key): a point sum is all that is left.
        return PublicKey.combine_keys([hash_to_curve(secret), r.public_key]), r
    except ValueError:  # r*G == -Y: impossible unless r was chosen for it
        raise CryptoError("blinded message is the point at infinity", reason="bad_scalar") from None


def sign(B_: PublicKey, a: PrivateKey) -> PublicKey:
    """The mint's blind signature ``C_ = a*B_``."""
    return B_.multiply(a.secret)


def unblind(C_: PublicKey, r: PrivateKey, A: PublicKey) -> PublicKey:
    """Remove the blinding: ``C = C_ - r*A``."""
    neg_r = (N - int.from_bytes(r.secret, "big")).to_bytes(32, "big")
    try:
        return PublicKey.combine_keys([C_, A.multiply(neg_r)])
    except ValueError:
        raise CryptoError("unblinded signature is the point at infinity", reason="bad_point") from None


def verify(a: PrivateKey, C: PublicKey, secret: bytes) -> bool:
    """Mint-side check that ``C == a*hash_to_curve(secret)``."""
    return hmac.compare_digest(hash_to_curve(secret).multiply(a.secret).format(), C.format())


def hash_e(*points: PublicKey) -> bytes:
    """NUT-12 challenge: sha256 of the concatenated lowercase hex of the uncompressed points."""
    return _hash_e_raw(b"".join(p.format(compressed=False) for p in points))


def _hash_e_raw(uncompressed: bytes) -> bytes:
    # The hex of a concatenation is the concatenation of the hexes.
    return hashlib.sha256(uncompressed.hex().encode("ascii")).digest()


def _dleq_nonce(a: bytes, A_u: bytes, B_u: bytes, C_u: bytes) -> int:
    """NUT-12 deterministic nonce: ``HMAC-SHA256(a, "Cashu_DLEQ_R_v1" || A || B_ || C_ || ctr)``.

    ``A``, ``B_``, ``C_`` are the uncompressed 65-byte encodings and ``ctr`` one byte counting up from 0 while
    the digest is not a valid scalar. Binding the nonce to the secret key and to the whole statement makes it
    unique per signature without a random number generator, so a weak RNG can never leak ``a``.
    """
    prefix = DLEQ_NONCE_TAG + A_u + B_u + C_u
    for ctr in range(256):
        k = int.from_bytes(hmac.digest(a, prefix + bytes((ctr,)), "sha256"), "big")
        if 0 < k < N:
            return k
    raise CryptoError("no valid DLEQ nonce", reason="no_nonce")  # pragma: no cover


def dleq_create(a: PrivateKey, B_: PublicKey, C_: PublicKey) -> tuple[bytes, bytes]:
    """Prove that ``C_ = a*B_`` uses the same ``a`` as ``A = a*G`` (NUT-12); returns ``(e, s)`` as 32 bytes each.

    ``C_`` must be ``sign(B_, a)``. The nonce is deterministic (see ``_dleq_nonce``).
    """
    A_u = a.public_key.format(compressed=False)
    B_u = B_.format(compressed=False)
    C_u = C_.format(compressed=False)
    k = _dleq_nonce(a.secret, A_u, B_u, C_u)
    k_bytes = k.to_bytes(32, "big")
    R1 = PublicKey.from_valid_secret(k_bytes)
    R2 = B_.multiply(k_bytes)
    e = _hash_e_raw(R1.format(compressed=False) + R2.format(compressed=False) + A_u + C_u)
    s = (k + int.from_bytes(e, "big") * int.from_bytes(a.secret, "big")) % N
    return e, s.to_bytes(32, "big")


def public_mul_add_g(P: PublicKey, a: int, b: int) -> PublicKey:
    """``a*P + b*G`` for public ``a`` and ``b`` (in [1, n-1] and [0, n-1]), in one variable-time double
    multiplication, about a quarter cheaper than ``P.multiply(a).add(b)``.

    libsecp256k1 has no public call for it, but ECDSA public-key recovery computes exactly one:
    ``Q = r⁻¹·(s·R − z·G)`` for the point ``R`` with x-coordinate ``r`` (and the y parity the recovery id names).
    With ``R = P``, ``s = a·r`` and ``z = −b·r`` (mod n) that is ``a*P + b*G``. Only for values anyone may know
    (a DLEQ proof's): recovery's multiplication does not run in constant time. ValueError: the point at infinity.
    """
    encoded = P.format()
    x = int.from_bytes(encoded[1:], "big")
    recid = encoded[0] & 1  # 02: even y, 03: odd
    r = x
    if r >= N:  # x in [n, p): recovery ids 2 and 3 name R's x as r + n
        r -= N
        recid |= 2
    if _recover is None or r == 0:  # pragma: no cover - no binding, or an x of exactly n (no point is known)
        return P.multiply(a.to_bytes(32, "big")).add(b.to_bytes(32, "big"))
    signature, out = _ffi.new(_RECOVERABLE_T), _ffi.new(_PUBKEY_T)
    # r, s = a·r in [1, n-1] always parse; recovery fails only when the sum is the point at infinity.
    if not (_parse_recoverable(_CTX, signature, r.to_bytes(32, "big") + (a * r % N).to_bytes(32, "big"), recid)
            and _recover(_CTX, out, signature, ((-b * r) % N).to_bytes(32, "big"))):
        raise ValueError("the point at infinity")
    return PublicKey(out)


def dleq_verify(B_: PublicKey, C_: PublicKey, e: bytes, s: bytes, A: PublicKey) -> bool:
    """Check a DLEQ proof on a blind signature: ``e == hash_e(s*G - e*A, s*B_ - e*C_, A, C_)``."""
    if len(e) != 32 or len(s) != 32:
        return False
    e_int = int.from_bytes(e, "big")
    s_int = int.from_bytes(s, "big")
    if not (0 < e_int < N and 0 < s_int < N):
        return False
    neg_e = (N - e_int).to_bytes(32, "big")
    try:
        R1 = public_mul_add_g(A, N - e_int, s_int)  # -e*A + s*G: every value here is public
        R2 = PublicKey.combine_keys([B_.multiply(s), C_.multiply(neg_e)])
    except ValueError:  # an intermediate point at infinity: not a proof an honest mint makes
        return False
    digest = _hash_e_raw(
        R1.format(compressed=False) + R2.format(compressed=False) + A.format(compressed=False)
        + C_.format(compressed=False)
    )
    return hmac.compare_digest(digest, e)


def dleq_verify_proof(secret: bytes, C: PublicKey, r: PrivateKey, e: bytes, s: bytes, A: PublicKey) -> bool:
    """Check the DLEQ carried by a proof (NUT-12, user to user): reblind ``B_ = Y + r*G``, ``C_ = C + r*A``."""
    try:
        B_ = PublicKey.combine_keys([hash_to_curve(secret), r.public_key])
        C_ = PublicKey.combine_keys([C, A.multiply(r.secret)])
    except ValueError:
        return False
    return dleq_verify(B_, C_, e, s, A)


# --- BIP340 ----------------------------------------------------------------------------------------------------


def sign_schnorr(key: PrivateKey, digest: bytes) -> str:
    """A BIP340 signature (128 hex) of the 32-byte ``digest``, with fresh auxiliary randomness."""
    return key.sign_schnorr(digest, secrets.token_bytes(32)).hex()


def verify_schnorr(pubkey: str, digest: bytes, signature: str) -> bool:
    """A BIP340 signature (128 hex) of the 32-byte ``digest`` by the key ``pubkey`` (compressed hex)."""
    try:
        sig = bytes.fromhex(signature)
        xonly = PublicKeyXOnly(bytes.fromhex(pubkey)[1:])
    except ValueError:
        return False
    return len(sig) == 64 and xonly.verify(sig, digest)
