"""Large tokens are read, checked and hashed in a worker process, with the same outcomes as on the loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import random
import secrets
import signal

import pytest
from coincurve import PrivateKey

from hashpool_cln.cashu import conditions, crypto
from hashpool_cln.cashu.errors import ConditionError, TokenError
from hashpool_cln.cashu.keysets import Keyset
from hashpool_cln.cashu.models import DLEQ, Proof, Token
from hashpool_cln.cashu.tokens import make_token, parse_token, serialize_v3, serialize_v4
from hashpool_cln.desk import cpu, intake
from hashpool_cln.desk.errors import Code, DeskError

OWN = PrivateKey().public_key.format().hex()
FOREIGN = PrivateKey().public_key.format().hex()
FULL_ID = "01" + "ab" * 32
OTHER_ID = "01" + "cd" * 32
POINTS = [PrivateKey().public_key.format().hex() for _ in range(8)]


def signed(count: int) -> list[Proof]:
    a = PrivateKey()
    proofs = []
    for _ in range(count):
        secret = secrets.token_hex(32)
        B_, r = crypto.blind(secret.encode())
        C_ = crypto.sign(B_, a)
        e, s = crypto.dleq_create(a, B_, C_)
        C = crypto.unblind(C_, r, a.public_key).format().hex()
        proofs.append(Proof(amount=1, id=FULL_ID, secret=secret, C=C,
                            dleq=DLEQ(e=e.hex(), s=s.hex(), r=r.secret.hex()), witness=None))
    return proofs


def keysets() -> dict[str, Keyset]:
    keys = {2**i: POINTS[0] for i in range(8)}
    return {FULL_ID: Keyset(id=FULL_ID, unit="hash_x", keys=keys),
            OTHER_ID: Keyset(id=OTHER_ID, unit="hash_x", keys={1: POINTS[1], 2: POINTS[1]})}


def p2pk(key: str, **tags: str) -> str:
    return json.dumps(["P2PK", {"nonce": secrets.token_hex(8), "data": key, "tags": [[k, v] for k, v in tags.items()]}])


def random_token(rng: random.Random) -> Token:
    """Proofs of two keysets (one written as a short id), with now and then an amount a keyset cannot sign, or
    a spending condition the desk refuses or accepts."""
    proofs: list[Proof] = []
    for _ in range(rng.randint(1, 160)):
        kid = rng.choice([FULL_ID, FULL_ID[:16], OTHER_ID])
        amount = rng.choice([1, 2, 4, 128]) if rng.random() > 0.01 else rng.choice([8, 256, 2**40])
        roll = rng.random()
        if roll < 0.006:
            secret = json.dumps(["HTLC", {"nonce": rng.randbytes(8).hex(), "data": "ab" * 32}])
        elif roll < 0.012:
            secret = p2pk(FOREIGN)
        elif roll < 0.018:
            secret = p2pk(OWN, sigflag="SIG_ALL")
        elif roll < 0.1:
            secret = p2pk(OWN)
        else:
            secret = rng.randbytes(32).hex()
        proofs.append(Proof(amount=amount, id=kid, secret=secret, C=rng.choice(POINTS)))
    return Token(mint="http://127.0.0.1:3338", unit="hash_x", proofs=tuple(proofs))


def proof_by_proof(token: Token, ks: dict[str, Keyset]) -> tuple[str, ...] | tuple[Code, str, dict]:
    """What the desk checked before summaries existed: each proof's amount, then its condition, then
    duplicates among the Ys (the Ys when nothing is wrong)."""
    for i, proof in enumerate(token.proofs):
        kid = next(k for k in ks if k.startswith(proof.id))
        if proof.amount not in ks[kid].keys:
            return Code.PROOF_INVALID, f"proof {i} has an amount its keyset cannot sign", {"index": i,
                                                                                           "amount": proof.amount}
        try:
            conditions.require_spendable(proof, (OWN,))
        except ConditionError as e:
            return Code.CONDITION_REFUSED, str(e), {"index": i, "reason": e.reason}
    ys = tuple(crypto.proof_y(p.secret) for p in token.proofs)
    if len(set(ys)) != len(ys):
        return Code.INVALID_TOKEN, "the token holds the same proof twice", {}
    return ys


def outcome(summary: cpu.Summary, ks: dict[str, Keyset]) -> tuple[str, ...] | tuple[Code, str, dict]:
    ids = intake.full_ids(summary, ks)
    try:
        intake.check_proofs(summary, ids, ks)
    except DeskError as e:
        return e.code, e.message, e.data
    return intake.Checked(summary=summary, ids=ids, epoch=None, keysets=ks, pool_fee_ppm=0).ys  # type: ignore


async def test_summaries_find_what_a_proof_by_proof_check_finds() -> None:
    rng = random.Random(9)
    ks = keysets()
    worker = cpu.Worker()
    try:
        faults = set()
        for _ in range(120):
            text = serialize_v4(random_token(rng))
            token = parse_token(text)  # cashuB groups proofs by keyset
            expected = proof_by_proof(token, ks)
            inline = cpu.summarize(token, OWN)
            assert outcome(inline, ks) == expected
            summary, flat, error = await worker.run(cpu.read_token, text, OWN, True)
            assert error is None and summary == inline
            ids = intake.full_ids(summary, ks)
            assert cpu.unflatten(flat, ids) == tuple(
                Proof(amount=p.amount, id=ids[p.id], secret=p.secret, C=p.C) for p in token.proofs)
            faults.add(expected[0] if isinstance(expected[0], Code) else "ok")
        # the generator reached every outcome
        assert faults == {Code.PROOF_INVALID, Code.CONDITION_REFUSED, "ok"}
        # A secret twice is refused by the parser already; a token object holding one still meets the check.
        twice = Token(mint="m", unit="hash_x", proofs=token.proofs + token.proofs[:1])
        if isinstance(expected[0], str):
            assert outcome(cpu.summarize(twice, OWN), ks) == proof_by_proof(twice, ks)
            assert outcome(cpu.summarize(twice, OWN), ks)[0] is Code.INVALID_TOKEN
        with pytest.raises(TokenError) as inline:
            parse_token(text.replace(text[-300:], text[-300:][::-1]))
        assert (await worker.run(cpu.read_token, text.replace(text[-300:], text[-300:][::-1]), OWN, False))[2] \
            == (str(inline.value), inline.value.reason)
    finally:
        worker.close()


def test_the_swap_fee_counted_per_keyset_is_nut02s() -> None:
    from hashpool_cln.cashu.keysets import input_fee

    rng = random.Random(2)
    for _ in range(50):
        token = random_token(rng)
        fees = {FULL_ID: rng.randint(0, 1000), OTHER_ID: rng.randint(0, 1000)}
        ks = {kid: Keyset(id=kid, unit="hash_x", keys=k.keys, input_fee_ppk=fees[kid]) for kid, k in keysets().items()}
        summary = cpu.summarize(token, OWN)
        checked = intake.Checked(summary=summary, ids=intake.full_ids(summary, ks), epoch=None,  # type: ignore
                                 keysets=ks, pool_fee_ppm=0)
        full = [next(k for k in ks if k.startswith(p.id)) for p in token.proofs]
        assert checked.swap_fee() == input_fee(full, fees)


@pytest.mark.parametrize("encode", [serialize_v4, serialize_v3])
async def test_a_large_token_read_in_the_worker_is_the_token(encode) -> None:
    proofs = signed(400)
    token = Token(mint="http://127.0.0.1:3338", unit="hash_x", proofs=tuple(proofs), memo="gm")
    text = encode(token)
    assert len(text) > cpu.INLINE_CHARS
    worker = cpu.Worker()
    try:
        summary, built = await worker.read(text, OWN, with_proofs=True)
        assert summary == cpu.summarize(parse_token(text), OWN)
        assert summary.token(await built.build({FULL_ID: FULL_ID})) == parse_token(text)
        quoted, none = await worker.read(text, OWN)  # a quote: no proofs cross back
        assert quoted == summary and none is None
        with pytest.raises(TokenError) as e:
            await worker.read(text[:-400] + "!" * 400, OWN)
        with pytest.raises(TokenError) as inline:
            parse_token(text[:-400] + "!" * 400)
        assert (str(e.value), e.value.reason) == (str(inline.value), inline.value.reason)
    finally:
        worker.close()


async def test_the_loop_answers_while_the_worker_reads() -> None:
    proofs = tuple(Proof(amount=1, id=FULL_ID, secret=secrets.token_hex(32), C=POINTS[n % 8]) for n in range(2400))
    text = make_token("http://127.0.0.1:3338", "hash_x", proofs)
    worker = cpu.Worker()
    try:
        await worker.read(text, OWN)  # the worker started
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        ticker = asyncio.create_task(tick())
        results = await asyncio.gather(*(worker.read(text, OWN) for _ in range(3)))
        ticker.cancel()
        assert all(r[0] == results[0][0] and r[0].count == 2400 for r in results) and ticks > 10
    finally:
        worker.close()


async def test_a_dead_worker_fails_one_call_and_the_next_gets_a_new_one() -> None:
    worker = cpu.Worker()
    try:
        pid = await worker.run(os.getpid)
        assert pid != os.getpid()
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(concurrent.futures.BrokenExecutor):
            for _ in range(50):  # until the executor notices
                await worker.run(os.getpid)
                await asyncio.sleep(0.05)
        assert await worker.run(os.getpid) != pid
    finally:
        worker.close()


async def test_the_worker_runs_below_the_plugins_priority() -> None:
    worker = cpu.Worker()
    try:
        assert await worker.run(os.nice, 0) == min(19, os.nice(0) + cpu.WORKER_NICENESS)
    finally:
        worker.close()
