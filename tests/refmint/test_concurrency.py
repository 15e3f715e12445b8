"""The mint under concurrent requests: one spend per proof, and an epoch budget that never overflows."""

from __future__ import annotations

import asyncio

from support.refmint import ys

from hashpool_cln.ehash import net_reward_msat
from hashpool_cln.refmint.miner import blind_outputs


async def test_two_concurrent_swaps_of_the_same_proofs(refmint) -> None:
    for _ in range(3):
        proofs = await refmint.issue(3, count=4)
        kid = proofs[0].id
        bodies = [{"inputs": [p.to_dict() for p in proofs],
                   "outputs": [o.to_dict() for o in blind_outputs(kid, [32]).outputs]} for _ in range(2)]
        answers = await asyncio.gather(*(refmint.call("POST", "/v1/swap", b) for b in bodies))
        statuses = sorted((a.status, a.code) for a in answers)
        assert statuses == [(200, None), (400, 11001)], answers
        states = (await refmint.ok("POST", "/v1/checkstate", {"Ys": ys(proofs)}))["states"]
        assert {s["state"] for s in states} == {"SPENT"}


async def test_many_concurrent_swaps_of_overlapping_proofs(refmint) -> None:
    proofs = await refmint.issue(2, count=6)  # six proofs of 4
    kid = proofs[0].id
    # every request spends a pair; pairs overlap, so at most 3 disjoint ones can succeed
    pairs = [(i, j) for i in range(6) for j in range(i + 1, 6)]
    bodies = [{"inputs": [proofs[i].to_dict(), proofs[j].to_dict()],
               "outputs": [o.to_dict() for o in blind_outputs(kid, [8]).outputs]} for i, j in pairs]
    answers = await asyncio.gather(*(refmint.call("POST", "/v1/swap", b) for b in bodies))
    won = [pairs[k] for k, a in enumerate(answers) if a.status == 200]
    assert all(a.code == 11001 for a in answers if a.status != 200), answers
    spent_indexes = [i for pair in won for i in pair]
    assert len(spent_indexes) == len(set(spent_indexes))  # no proof spent twice
    assert 1 <= len(won) <= 3


async def test_budget_holds_under_concurrent_quotes(refmint_factory) -> None:
    mint = await refmint_factory(pool_fee_ppm=20_000)
    reward = 1_000_003
    unit, _ = await mint.settled_epoch(reward, 4, count=4)  # 64 units
    net = net_reward_msat(reward, 20_000)
    answers = await asyncio.gather(*(
        mint.call("POST", "/v1/melt/quote/ehash", {"unit": unit, "amount": 3}, role="desk") for _ in range(40)))
    ok = [a.body for a in answers if a.status == 200]
    refused = [a for a in answers if a.status != 200]
    assert all(a.code == 51002 for a in refused)
    assert sum(q["amount_msat"] for q in ok) <= net
    assert len(ok) == 21  # floor(64 / 3) quotes of 3 units fit: each is worth floor(3 * net / 64)
    assert all(q["amount_msat"] == 3 * net // 64 for q in ok)
    # what the mint reports as committed stays within the budget too
    from hashpool_cln.refmint.db import fetchone

    row = await fetchone(mint.ledger.db._reader, "SELECT SUM(amount_msat) FROM melt_quotes WHERE unit = ?", (unit,))
    assert row[0] <= net
