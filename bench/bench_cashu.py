"""Cashu core per-proof cost: token parse, hash_to_curve, blind, unblind, DLEQ verify, vs nutshell and the floor.

Every row is the median over several repetitions of the time per proof for a batch of N proofs. Inputs are
what a caller holds at that step: DLEQ checks start from the hex fields of a BlindSignature or Proof (plus the
mint's key, already parsed and cached by ``Keyset``); unblinding starts from parsed points. nutshell's
``cashu.core.crypto.b_dhke`` runs the same operations in the same process on the same inputs.

The floor is what the operation cannot avoid, priced with raw coincurve calls measured in the same run:
``mul`` = ``PublicKey.multiply`` (variable-base point multiplication), ``gmul`` = ``PublicKey.from_valid_secret``
(generator multiplication), ``dec`` = ``PublicKey(bytes)`` on a compressed point (decompression, a square
root). hash_to_curve needs one ``dec`` per try of its counter loop (the exact number for each input is counted).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from coincurve import PrivateKey, PublicKey

from hashpool_cln.cashu import crypto
from hashpool_cln.cashu.crypto import (
    blind,
    dleq_create,
    dleq_verify,
    dleq_verify_proof,
    hash_to_curve,
    point,
    scalar,
    sign,
    unblind,
)
from hashpool_cln.cashu.models import DLEQ, Proof, Token
from hashpool_cln.cashu.tokens import parse_token, serialize_v4

KEYSET_ID = "01" + hashlib.sha256(b"bench keyset").hexdigest()
UNIT = "hash_" + "02" + "ab" * 32 + "_900000"


@dataclass
class Fixture:
    """N proofs with everything each operation starts from."""

    a: PrivateKey
    A: PublicKey
    secrets: list[str]
    B_: list[PublicKey]
    r: list[PrivateKey]
    C_: list[PublicKey]
    C: list[PublicKey]
    e: list[bytes]
    s: list[bytes]
    token: str


def make_fixture(n: int) -> Fixture:
    a = PrivateKey()
    f = Fixture(a, a.public_key, [], [], [], [], [], [], [], "")
    proofs = []
    for _ in range(n):
        secret = os.urandom(32).hex()
        B_, r = blind(secret.encode(), PrivateKey())
        C_ = sign(B_, a)
        e, s = dleq_create(a, B_, C_)
        C = unblind(C_, r, f.A)
        for lst, v in ((f.secrets, secret), (f.B_, B_), (f.r, r), (f.C_, C_), (f.C, C), (f.e, e), (f.s, s)):
            lst.append(v)
        proofs.append(Proof(1, KEYSET_ID, secret, C.format().hex(), DLEQ(e.hex(), s.hex(), r.secret.hex())))
    f.token = serialize_v4(Token("http://127.0.0.1:3338", UNIT, tuple(proofs)))
    return f


def h2c_tries(message: bytes) -> int:
    """How many decompressions hash_to_curve needs for ``message`` (same loop, counted)."""
    msg_hash = hashlib.sha256(crypto.DOMAIN_SEPARATOR + message).digest()
    for counter in range(2**16):
        try:
            PublicKey(b"\x02" + hashlib.sha256(msg_hash + counter.to_bytes(4, "little")).digest())
            return counter + 1
        except ValueError:
            continue
    raise RuntimeError("unreachable")


def measure(batches: dict[str, Callable[[], object]], n: int, reps: int) -> dict[str, float]:
    """Median seconds per proof of each batch (each handles ``n`` proofs).

    Every timed sample is one call of one batch, and the batches take turns sample by sample, so a machine
    that slows down or speeds up mid-run (other processes on shared cores) affects all of them alike. Small
    batches get more samples: ``reps * max(1, 256 // n)`` each. Samples are the thread's CPU time: every batch
    is single-threaded CPU work, and time spent descheduled while other processes run is not the operation's.
    Reading that clock costs ~0.7 us, a tenth of a one-proof floor, so the clock's own median is taken off.
    """
    samples: dict[str, list[float]] = {name: [] for name in batches}
    timer = time.thread_time
    own = clock_cost(timer)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for batch in batches.values():
            batch()  # warm-up
        for _ in range(reps * max(1, 256 // n)):
            for name, batch in batches.items():
                t0 = timer()
                batch()
                samples[name].append(timer() - t0)
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: (statistics.median(values) - own) / n for name, values in samples.items()}


def clock_cost(timer: Callable[[], float]) -> float:
    """Median of what a sample reads with nothing timed between its two clock reads."""
    samples = []
    for _ in range(1001):
        t0 = timer()
        samples.append(timer() - t0)
    return statistics.median(samples)


def calls(*kinds: tuple) -> Callable[[], None]:
    """A batch that calls each ``(fn, arg_list, ...)`` over its argument lists and does nothing else per call
    (``map`` makes the calls; the loop only drains it)."""
    def batch() -> None:
        for fn, *args in kinds:
            for _ in map(fn, *args):
                pass

    return batch


def primitive_costs(reps: int) -> dict[str, float]:
    """Median seconds of one raw coincurve mul, gmul and dec (for the record; floors are timed per row)."""
    ks = [os.urandom(32) for _ in range(256)]
    ps = [PublicKey.from_secret(os.urandom(32)) for _ in range(256)]
    return measure({
        "mul": calls((PublicKey.multiply, ps, ks)),
        "gmul": calls((PublicKey.from_valid_secret, ks)),
        "dec": calls((PublicKey, [p.format() for p in ps])),
    }, len(ks), reps)


# What each operation cannot avoid, per proof: (mul, gmul, dec, hash_to_curve's decompressions?)
FLOOR_COUNTS = {
    "parse": (0, 0, 1, False),
    "hash_to_curve": (0, 0, 0, True),
    "blind": (0, 1, 0, True),
    "unblind": (1, 0, 0, False),
    "dleq_verify": (3, 1, 1, False),
    "dleq_verify_proof": (4, 2, 1, True),
}


def describe_count(op: str) -> str:
    mul, gmul, dec, h2c = FLOOR_COUNTS[op]
    parts = [f"{c} {name}" for c, name in ((mul, "mul"), (gmul, "gmul"), (dec, "dec")) if c]
    if h2c:
        parts.append("1 dec per hash_to_curve try")
    return " + ".join(parts)


def floors(f: Fixture) -> dict[str, Callable[[], object]]:
    """Each operation's floor as the raw coincurve calls themselves, on that operation's inputs.

    The calls of one kind are made by one ``map`` over prepared arguments: a floor that also paid for Python
    bookkeeping per proof (about 0.8 us with nested loops) would flatter every ratio, the cheapest operations'
    most.
    """
    tries = [h2c_tries(x.encode()) for x in f.secrets]
    ys = [hash_to_curve(x.encode()).format() for x in f.secrets]
    c_enc = [C.format() for C in f.C]

    def run(op: str) -> Callable[[], object]:
        mul, gmul, dec, h2c = FLOOR_COUNTS[op]
        kinds = [(PublicKey, [y for y, n in zip(ys, tries) for _ in range(n)])] if h2c else []
        kinds += [(PublicKey, c_enc)] * dec
        kinds += [(PublicKey.from_valid_secret, f.e)] * gmul
        if mul:
            points = [p for B_, C_ in zip(f.B_, f.C_) for p in (f.A, B_, C_, f.A)[:mul]]
            kinds.append((PublicKey.multiply, points, [k for k in f.e for _ in range(mul)]))
        return calls(*kinds)

    return {op: run(op) for op in FLOOR_COUNTS}


def _inputs(f: Fixture) -> tuple[list[bytes], list[tuple], list[tuple], list[tuple]]:
    """What both implementations are handed, as a caller holds it: messages, signatures and proofs with their
    hex fields (decoding them is part of the timed work), and (C_, r) pairs to unblind."""
    msgs = [s.encode() for s in f.secrets]
    sig_hex = [(B_, C_.format().hex(), e.hex(), s.hex()) for B_, C_, e, s in zip(f.B_, f.C_, f.e, f.s)]
    proof_hex = [(x, C.format().hex(), r.secret.hex(), e.hex(), s.hex())
                 for x, C, r, e, s in zip(f.secrets, f.C, f.r, f.e, f.s)]
    return msgs, sig_hex, proof_hex, list(zip(f.C_, f.r))


def ours(f: Fixture) -> dict[str, Callable[[], object]]:
    A = f.A
    msgs, sig_hex, proof_hex, unblind_in = _inputs(f)
    return {
        "parse": lambda: parse_token(f.token),
        "hash_to_curve": lambda: [hash_to_curve(m) for m in msgs],
        "blind": lambda: [blind(x.encode()) for x in f.secrets],
        "unblind": lambda: [unblind(C_, r, A) for C_, r in unblind_in],
        "dleq_verify": lambda: [
            dleq_verify(B_, point(C_), bytes.fromhex(e), bytes.fromhex(s), A) for B_, C_, e, s in sig_hex
        ],
        "dleq_verify_proof": lambda: [
            dleq_verify_proof(x.encode(), point(C), scalar(r), bytes.fromhex(e), bytes.fromhex(s), A)
            for x, C, r, e, s in proof_hex
        ],
    }


def theirs(f: Fixture, nut) -> dict[str, Callable[[], object]]:
    A = f.A
    msgs, sig_hex, proof_hex, unblind_in = _inputs(f)

    def key(h: str) -> PrivateKey:
        return PrivateKey(bytes.fromhex(h))

    def pub(h: str) -> PublicKey:
        return PublicKey(bytes.fromhex(h))

    return {
        "hash_to_curve": lambda: [nut.hash_to_curve(m) for m in msgs],
        "blind": lambda: [nut.step1_alice(x) for x in f.secrets],
        "unblind": lambda: [nut.step3_alice(C_, r, A) for C_, r in unblind_in],
        "dleq_verify": lambda: [nut.alice_verify_dleq(B_, pub(C_), key(e), key(s), A) for B_, C_, e, s in sig_hex],
        "dleq_verify_proof": lambda: [
            nut.carol_verify_dleq(x, key(r), pub(C), key(e), key(s), A) for x, C, r, e, s in proof_hex
        ],
    }


def check(f: Fixture, ours_ops: dict, theirs_ops: dict) -> None:
    """The timed paths must be the successful ones."""
    assert all(ours_ops["dleq_verify"]()) and all(ours_ops["dleq_verify_proof"]())
    assert len(ours_ops["parse"]().proofs) == len(f.secrets)
    if theirs_ops:
        assert all(theirs_ops["dleq_verify"]()) and all(theirs_ops["dleq_verify_proof"]())


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_cashu", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,64,1024", help="proofs per batch, comma separated")
    parser.add_argument("--reps", type=int, default=7, help="repetitions per figure (median)")
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]

    try:
        from cashu.core.crypto import b_dhke as nut
    except ImportError:
        nut = None
        print("nutshell's cashu.core.crypto is not installed: no comparison column")

    prim = primitive_costs(args.reps)
    print(f"raw coincurve per call: mul {prim['mul'] * 1e6:.1f} us, gmul {prim['gmul'] * 1e6:.1f} us, "
          f"dec {prim['dec'] * 1e6:.1f} us")
    print("| op | N | ours us/proof | nutshell us/proof | nutshell/ours | floor us/proof | ours/floor "
          "| floor per proof |")
    print("|" + "---|" * 8)
    for n in sizes:
        f = make_fixture(n)
        ours_ops = ours(f)
        theirs_ops = theirs(f, nut) if nut is not None else {}
        floor_ops = floors(f)
        check(f, ours_ops, theirs_ops)
        tries = statistics.mean(h2c_tries(x.encode()) for x in f.secrets)
        for op in FLOOR_COUNTS:
            batches = {"ours": ours_ops[op], "floor": floor_ops[op]}
            if op in theirs_ops:
                batches["theirs"] = theirs_ops[op]
            t = measure(batches, n, args.reps)
            mine, floor, other = t["ours"], t["floor"], t.get("theirs")
            print(
                f"| {op} | {n} | {mine * 1e6:.1f} | "
                + (f"{other * 1e6:.1f} | {other / mine:.2f} | " if other else "n/a | n/a | ")
                + f"{floor * 1e6:.1f} | {mine / floor:.2f} | {describe_count(op)} |",
                flush=True,
            )
        print(f"| | {n} | hash_to_curve tries per secret (mean): {tries:.2f} | | | | | |", flush=True)
