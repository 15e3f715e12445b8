"""A token too large for the event loop is quoted and redeemed as a small one is: the worker's path gives the
same answers, the same refusals, and the proofs it takes into custody are the token's."""

from __future__ import annotations

import json
import secrets

import pytest
from support.invoices import make_invoice

from hashpool_cln.cashu.tokens import parse_token
from hashpool_cln.desk import cpu
from hashpool_cln.desk.errors import Code, DeskError

PROOFS = cpu.INLINE_PROOFS + 36  # past the loop's limit: read, checked and hashed in the worker


def inline(monkeypatch) -> None:
    """Every token on the loop, as the desk does with small ones."""
    monkeypatch.setattr(cpu, "INLINE_PROOFS", 10**6)
    monkeypatch.setattr(cpu, "INLINE_CHARS", 10**9)


async def outcome(coro) -> tuple:
    try:
        return "ok", await coro
    except DeskError as e:
        return e.code, e.message, e.data


async def test_a_large_token_is_quoted_as_on_the_loop(desk, ehash, node, monkeypatch):
    token = await ehash.token(amounts=[1] * PROOFS)
    p2pk = await ehash.token(amounts=[1] * PROOFS, secret_for=lambda a: json.dumps(
        ["P2PK", {"nonce": secrets.token_hex(8), "data": desk.p2pk_pubkey, "tags": []}]))
    foreign = await ehash.token(amounts=[2] * PROOFS, secret_for=lambda a: json.dumps(
        ["HTLC", {"nonce": secrets.token_hex(8), "data": "ab" * 32, "tags": []}]) if secrets.randbits(3) == 0
        else secrets.token_hex(32))
    inv = make_invoice(30_000).bolt11
    calls = [(token,), (token, inv), (p2pk, inv), (foreign,), (token + "x",)]
    worker = [await outcome(desk.quote(*c)) for c in calls]
    inline(monkeypatch)
    assert [await outcome(desk.quote(*c)) for c in calls] == worker
    assert worker[0][0] == "ok" and worker[0][1]["amount"] == PROOFS
    assert worker[3][0] in (Code.CONDITION_REFUSED, "ok") and worker[4][0] is Code.INVALID_TOKEN


@pytest.mark.parametrize("locked", [False, True])
async def test_a_large_token_is_redeemed_once_with_its_own_proofs(desk, ehash, node, locked):
    secret_for = (lambda a: json.dumps(["P2PK", {"nonce": secrets.token_hex(8), "data": desk.p2pk_pubkey,
                                                 "tags": []}])) if locked else None
    token = await ehash.token(amounts=[1] * PROOFS, secret_for=secret_for)
    out = await desk.redeem(token, make_invoice(50_000).bolt11)
    assert out["state"] in ("paid", "settled")
    assert set(await ehash.states(token)) == {"SPENT"}  # the token's own proofs went into custody
    again = await outcome(desk.redeem(token, make_invoice(50_000).bolt11))
    assert again[0] is Code.TOKEN_SPENT
    assert len(parse_token(token).proofs) == PROOFS
