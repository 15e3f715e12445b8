"""Spending conditions: NUT-10 well-known secrets and NUT-11 P2PK locks, as far as the desk needs them.

A secret is *well-known* when it is JSON of the shape ``[kind, {"nonce", "data", "tags"?}]``; anything else
(random hex above all) is a *plain* secret that only needs ``C`` to be spent. A secret with the shape
``[<string>, {...}]`` whose contents break NUT-10 (missing ``data``, non-string tags, a key given twice...) is
refused as ``malformed_secret`` rather than treated as plain: mints differ on such secrets, and a desk must
never guess which rule the mint will apply to a token it is about to buy.

What the desk can spend (``require_spendable``):

- plain secrets;
- P2PK with ``SIG_INPUTS`` locked to exactly one key, that key being one of ours.

``locktime`` and ``refund`` tags do not change that answer: our key's signature stays valid on the locktime
pathway for ever (NUT-11: its conditions "continue to apply" after the lock expires). After expiry the refund
keys, or anyone when there are none, may spend the proof too; that makes it no weaker than a plain secret,
which its sender can always race, and the desk takes custody with an atomic swap before paying, so losing
such a race costs a failed redemption, never money.

Refused, each with its own ConditionError reason: ``malformed_secret``, ``htlc``, ``unknown_condition``,
``malformed_p2pk``, ``sig_all``, ``multisig``, ``foreign_key``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

from coincurve import PrivateKey, PublicKeyXOnly

from .errors import ConditionError
from .models import Proof

PLAIN = "plain"
P2PK = "P2PK"
HTLC = "HTLC"
SIG_INPUTS = "SIG_INPUTS"
SIG_ALL = "SIG_ALL"

# NUT-11: each of these may appear at most once in a P2PK secret.
_SINGLE_TAGS = ("sigflag", "pubkeys", "n_sigs", "locktime", "refund", "n_sigs_refund")
_PUBKEY = re.compile(r"0[23][0-9a-fA-F]{64}")
_SIGNATURE = re.compile(r"[0-9a-fA-F]{128}")
_DECIMAL = re.compile(r"[0-9]{1,20}")
_JSON_WS = " \t\n\r"


@dataclass(frozen=True, slots=True)
class Condition:
    """A classified secret: ``kind`` is ``"plain"`` or the NUT-10 kind (``"P2PK"``, ``"HTLC"``, ...)."""

    kind: str
    data: str = ""
    tags: tuple[tuple[str, ...], ...] = ()
    nonce: str = ""

    def tag(self, name: str) -> tuple[str, ...] | None:
        """The values of the first tag called ``name`` (possibly empty), or None if there is no such tag."""
        for tag in self.tags:
            if tag[0] == name:
                return tag[1:]
        return None


@dataclass(frozen=True, slots=True)
class P2PKLock:
    """A validated NUT-11 lock. Keys are lowercase compressed hex; ``pubkeys`` starts with the ``data`` key."""

    pubkeys: tuple[str, ...]
    n_sigs: int
    sigflag: str
    locktime: int | None
    refund: tuple[str, ...]
    n_sigs_refund: int

    @property
    def is_multisig(self) -> bool:
        return len(self.pubkeys) > 1 or self.n_sigs > 1


def _malformed(message: str) -> ConditionError:
    return ConditionError(message, reason="malformed_secret")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        # Implementations disagree on which duplicate wins; the mint might read a different lock than we do.
        raise _malformed("spending condition repeats a key in one object")
    return result


def _no_constant(name: str) -> Any:
    raise _malformed(f"spending condition contains {name}, which is not JSON")


_SECRET_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)


def classify(secret: str) -> Condition:
    """Classify a proof secret. Plain secrets give ``Condition("plain")``.

    Raises ConditionError (``malformed_secret``) for a secret shaped like a NUT-10 secret (a JSON array of a
    string and an object) whose contents break NUT-10.
    """
    if not isinstance(secret, str):
        raise _malformed(f"a secret must be a string, not {type(secret).__name__}")
    if not secret.lstrip(_JSON_WS).startswith("["):  # fast path for random secrets, which are never arrays
        return Condition(PLAIN)
    try:
        value = _SECRET_DECODER.decode(secret)
    except ConditionError:
        raise
    except (ValueError, RecursionError):
        return Condition(PLAIN)
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], dict)):
        return Condition(PLAIN)
    kind, body = value
    if not kind:
        raise _malformed("spending condition has an empty kind")
    data = body.get("data")
    if not isinstance(data, str):
        raise _malformed(f"{kind} condition needs a string 'data'")
    nonce = body.get("nonce", "")
    if not isinstance(nonce, str):
        raise _malformed(f"{kind} condition has a non-string 'nonce'")
    return Condition(kind=kind, data=data, tags=_tags(body.get("tags"), kind), nonce=nonce)


def _tags(raw: Any, kind: str) -> tuple[tuple[str, ...], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _malformed(f"{kind} condition 'tags' must be a list")
    tags = []
    for tag in raw:
        # NUT-10: a tag is an array of one or more non-empty strings.
        if not isinstance(tag, list) or not tag or not all(isinstance(v, str) and v for v in tag):
            raise _malformed(f"{kind} condition has an invalid tag {json.dumps(tag)[:80]}")
        tags.append(tuple(tag))
    return tuple(tags)


# ---------------------------------------------------------------------------------------------------------
# NUT-11 P2PK


def _bad_p2pk(message: str) -> ConditionError:
    return ConditionError(message, reason="malformed_p2pk")


def _xonly(key: str) -> str:
    return key[2:].lower()


def _keys(values: tuple[str, ...], what: str) -> tuple[str, ...]:
    seen: set[str] = set()
    keys = []
    for value in values:
        if _PUBKEY.fullmatch(value) is None:
            raise _bad_p2pk(f"P2PK {what} holds {value[:70]!r}, not a compressed public key")
        if _xonly(value) in seen:  # NUT-11: keys compare by x coordinate; one key once per pathway
            raise _bad_p2pk(f"P2PK {what} names key {value} twice")
        seen.add(_xonly(value))
        keys.append(value.lower())
    return tuple(keys)


def _count(values: tuple[str, ...] | None, name: str, available: int) -> int:
    if values is None:
        return 1
    if len(values) != 1 or _DECIMAL.fullmatch(values[0]) is None:
        raise _bad_p2pk(f"P2PK {name} must be one positive integer")
    n = int(values[0])
    if not 1 <= n <= available:
        raise _bad_p2pk(f"P2PK {name} is {n} but its pathway has {available} keys")
    return n


def p2pk_lock(condition: Condition) -> P2PKLock:
    """Validate a P2PK condition per NUT-11; ConditionError ``malformed_p2pk`` when the mint must refuse it."""
    if condition.kind != P2PK:
        raise ConditionError(f"not a P2PK condition: {condition.kind}", reason="unknown_condition")
    names = [tag[0] for tag in condition.tags]
    for name in _SINGLE_TAGS:
        if names.count(name) > 1:
            raise _bad_p2pk(f"P2PK tag {name} appears more than once")
    pubkeys = _keys((condition.data, *(condition.tag("pubkeys") or ())), "data/pubkeys")
    refund = _keys(condition.tag("refund") or (), "refund")
    sigflag_values = condition.tag("sigflag")
    sigflag = SIG_INPUTS if sigflag_values is None else (sigflag_values[0] if len(sigflag_values) == 1 else "")
    if sigflag not in (SIG_INPUTS, SIG_ALL):
        raise _bad_p2pk(f"P2PK sigflag must be {SIG_INPUTS} or {SIG_ALL}")
    locktime_values = condition.tag("locktime")
    locktime = None  # NUT-11: absent or not a unix time means a permanent lock
    if locktime_values and len(locktime_values) == 1 and _DECIMAL.fullmatch(locktime_values[0]):
        locktime = int(locktime_values[0])
    n_sigs_refund = condition.tag("n_sigs_refund")
    if n_sigs_refund is not None and not refund:
        raise _bad_p2pk("P2PK n_sigs_refund is set but there are no refund keys")
    return P2PKLock(
        pubkeys=pubkeys,
        n_sigs=_count(condition.tag("n_sigs"), "n_sigs", len(pubkeys)),
        sigflag=sigflag,
        locktime=locktime,
        refund=refund,
        n_sigs_refund=_count(n_sigs_refund, "n_sigs_refund", len(refund)),
    )


def require_spendable(proof: Proof, own_pubkeys: Collection[str]) -> None:
    """Accept a proof the desk can spend alone; ConditionError with a specific reason otherwise (see module)."""
    condition = classify(proof.secret)
    if condition.kind == PLAIN:
        return
    if condition.kind == HTLC:
        raise ConditionError("HTLC-locked (NUT-14) proofs are not accepted", reason="htlc")
    if condition.kind != P2PK:
        raise ConditionError(
            f"proofs with the spending condition {condition.kind[:40]!r} are not accepted", reason="unknown_condition"
        )
    lock = p2pk_lock(condition)
    if lock.sigflag == SIG_ALL:
        raise ConditionError("P2PK proofs with SIG_ALL are not accepted, only SIG_INPUTS", reason="sig_all")
    if lock.is_multisig:
        raise ConditionError(
            f"multisig P2PK proofs ({lock.n_sigs} of {len(lock.pubkeys)} keys) are not accepted", reason="multisig"
        )
    if _xonly(lock.pubkeys[0]) not in {_xonly(key) for key in own_pubkeys}:
        raise ConditionError(
            f"proof is locked to {lock.pubkeys[0]}, which is not this desk's key", reason="foreign_key"
        )


def _message(secret: str) -> bytes:
    # NUT-11: the BIP340 message is SHA256 of the secret string itself (unescaped, UTF-8).
    return hashlib.sha256(secret.encode("utf-8")).digest()


def sign_p2pk(proof: Proof, key: PrivateKey) -> Proof:
    """Return ``proof`` with a SIG_INPUTS witness ``{"signatures": [<BIP340 hex>]}`` made with ``key``.

    Any earlier witness is replaced. Raises ConditionError when the proof is not P2PK (``unknown_condition``),
    is malformed (``malformed_p2pk``), is SIG_ALL (``sig_all``: its message spans the whole transaction) or
    ``key`` is none of its keys (``foreign_key``).
    """
    lock = p2pk_lock(classify(proof.secret))
    if lock.sigflag != SIG_INPUTS:
        raise ConditionError("SIG_ALL proofs are signed over a whole transaction, not one proof", reason="sig_all")
    own = _xonly(key.public_key.format().hex())
    if own not in {_xonly(k) for k in (*lock.pubkeys, *lock.refund)}:
        raise ConditionError("the signing key is not one of the proof's P2PK keys", reason="foreign_key")
    signature = key.sign_schnorr(_message(proof.secret), os.urandom(32))
    return replace(proof, witness=json.dumps({"signatures": [signature.hex()]}, separators=(",", ":")))


def _signatures(witness: str | None) -> list[bytes]:
    if witness is None:
        return []
    try:
        doc = json.loads(witness)
    except (ValueError, RecursionError):
        return []
    sigs = doc.get("signatures") if isinstance(doc, dict) else None
    if not isinstance(sigs, list):
        return []
    return [bytes.fromhex(s) for s in sigs if isinstance(s, str) and _SIGNATURE.fullmatch(s)]


def _signers(keys: tuple[str, ...], signatures: list[bytes], message: bytes) -> int:
    """How many distinct keys made at least one of the signatures (NUT-11 counts keys, not signatures)."""
    count = 0
    for key in keys:
        try:
            xonly = PublicKeyXOnly(bytes.fromhex(_xonly(key)))
        except ValueError:
            continue
        if any(xonly.verify(sig, message) for sig in signatures):
            count += 1
    return count


def verify_p2pk_witness(proof: Proof, now: int | None = None) -> bool:
    """Whether ``proof.witness`` unlocks its SIG_INPUTS P2PK secret at time ``now`` (unix seconds).

    Follows NUT-11: enough distinct signers among data+pubkeys (``n_sigs``); after ``locktime`` also enough
    refund signers (``n_sigs_refund``), or no signature at all when there are no refund keys. False for
    anything else: plain, malformed or non-P2PK secrets, and SIG_ALL (its message spans the whole transaction).
    """
    try:
        lock = p2pk_lock(classify(proof.secret))
    except ConditionError:
        return False
    if lock.sigflag != SIG_INPUTS:
        return False
    now = int(time.time()) if now is None else now
    expired = lock.locktime is not None and now > lock.locktime
    if expired and not lock.refund:
        return True
    signatures = _signatures(proof.witness)
    message = _message(proof.secret)
    if _signers(lock.pubkeys, signatures, message) >= lock.n_sigs:
        return True
    return expired and _signers(lock.refund, signatures, message) >= lock.n_sigs_refund
