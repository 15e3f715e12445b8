"""Large tokens are read and verified in a worker process, with the same outcomes as on the loop."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from coincurve import PrivateKey

from hashpool_cln.cashu import crypto
from hashpool_cln.cashu.errors import TokenError
from hashpool_cln.cashu.models import DLEQ, Proof, Token
from hashpool_cln.cashu.tokens import parse_token, serialize_v3, serialize_v4
from hashpool_cln.desk import cpu


def signed(count: int) -> tuple[list[tuple], list[Proof]]:
    a = PrivateKey()
    items, proofs = [], []
    for _ in range(count):
        secret = secrets.token_hex(32)
        B_, r = crypto.blind(secret.encode())
        C_ = crypto.sign(B_, a)
        e, s = crypto.dleq_create(a, B_, C_)
        C = crypto.unblind(C_, r, a.public_key).format().hex()
        items.append((secret, C, r.secret.hex(), e.hex(), s.hex(), a.public_key.format().hex()))
        proofs.append(Proof(amount=1, id="01" + "ab" * 32, secret=secret, C=C,
                            dleq=DLEQ(e=e.hex(), s=s.hex(), r=r.secret.hex()), witness=None))
    return items, proofs


async def test_the_worker_finds_what_the_loop_finds() -> None:
    _, proofs = signed(cpu.INLINE_PROOFS + 6)
    secrets_ = [p.secret for p in proofs]
    worker = cpu.Worker()
    try:
        expected = [crypto.proof_y(s) for s in secrets_]
        assert await worker.ys(secrets_) == expected
        assert cpu.proof_ys(secrets_[:cpu.INLINE_PROOFS]) == expected[:cpu.INLINE_PROOFS]  # the inline path
        # many at once, and the loop answers meanwhile
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        ticker = asyncio.create_task(tick())
        results = await asyncio.gather(*(worker.ys(secrets_ * 20) for _ in range(3)))
        ticker.cancel()
        assert all(r == expected * 20 for r in results) and ticks > 10
    finally:
        worker.close()


@pytest.mark.parametrize("encode", [serialize_v4, serialize_v3])
async def test_a_large_token_read_in_the_worker_is_the_token(encode) -> None:
    _, proofs = signed(400)
    token = Token(mint="http://127.0.0.1:3338", unit="hash_x", proofs=tuple(proofs), memo="gm")
    text = encode(token)
    assert len(text) > cpu.INLINE_CHARS
    worker = cpu.Worker()
    try:
        assert await worker.parse(text) == parse_token(text)
        with pytest.raises(TokenError) as e:
            await worker.parse(text[:-400] + "!" * 400)
        with pytest.raises(TokenError) as inline:
            parse_token(text[:-400] + "!" * 400)
        assert (str(e.value), e.value.reason) == (str(inline.value), inline.value.reason)
    finally:
        worker.close()
