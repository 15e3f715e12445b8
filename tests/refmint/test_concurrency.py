"""The mint under concurrent requests: one spend per proof, and an epoch budget that never overflows."""

from __future__ import annotations

import asyncio
import threading

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
    row = await mint.ledger.db.fetchone("SELECT SUM(amount_msat) FROM melt_quotes WHERE unit = ?", (unit,))
    assert row[0] <= net


async def test_a_quote_committed_a_moment_ago_is_never_unknown(refmint) -> None:
    """4 pools-and-miners create a share quote and mint it at once, while other clients keep the mint's reader
    busy. A read must never run inside an older snapshot kept alive by another request's statement (it would
    answer 51000 for a quote committed before it was asked)."""
    kid = await refmint.keyset_id((await refmint.ok("GET", "/v1/info"))["ehash"]["open_unit"])
    done = asyncio.Event()
    unknown: list = []

    async def reader() -> None:
        while not done.is_set():
            await refmint.call("GET", "/v1/ehash/epochs")
            await refmint.call("POST", "/v1/checkstate", {"Ys": ["02" + "11" * 32] * 50})

    async def miner(rounds: int) -> None:
        for _ in range(rounds):
            quote = await refmint.share_quote(1)
            for path in (f"/v1/mint/quote/ehash/{quote['quote']}",):
                seen = await refmint.call("GET", path)
                if seen.status != 200:
                    unknown.append(seen)
            body = {"quote": quote["quote"], "outputs": [o.to_dict() for o in blind_outputs(kid, [2]).outputs]}
            answer = await refmint.call("POST", "/v1/mint/mining_share", body)
            if answer.status != 200:
                unknown.append(answer)

    readers = [asyncio.ensure_future(reader()) for _ in range(4)]
    try:
        await asyncio.gather(*(miner(100) for _ in range(4)))
    finally:
        done.set()
        await asyncio.gather(*readers)
    assert unknown == []


async def test_keysets_stay_consistent_while_epochs_open(refmint) -> None:
    """A new epoch's keyset is served together with its epoch, never before (that answered 500 on /v1/keysets
    when a reward came in the middle of a request)."""
    done = asyncio.Event()
    answers: list = []

    async def poll() -> None:
        while not done.is_set():
            for path in ("/v1/keysets", "/v1/keys", "/v1/ehash/epochs", "/v1/info"):
                answers.append((path, (await refmint.call("GET", path)).status))

    pollers = [asyncio.ensure_future(poll()) for _ in range(4)]
    try:
        for _ in range(25):
            await refmint.reward(1_000)
    finally:
        done.set()
        await asyncio.gather(*pollers)
    assert answers and {status for _, status in answers} == {200}, [a for a in answers if a[1] != 200][:3]
    keysets = (await refmint.ok("GET", "/v1/keysets"))["keysets"]
    assert len(keysets) == 26 and len({k["unit"] for k in keysets}) == 26


async def test_swaps_waiting_together_share_one_commit_and_a_double_spend_fails_alone(refmint) -> None:
    """The mint's writes run on one thread; those that wait together are committed at once, each in its own
    savepoint: a swap of proofs already spent is refused and leaves nothing, the swaps beside it are signed."""
    spent, fresh_a, fresh_b = [await refmint.issue(1, count=2) for _ in range(3)]
    kid = spent[0].id

    def body(proofs) -> dict:
        return {"inputs": [p.to_dict() for p in proofs],
                "outputs": [o.to_dict() for o in blind_outputs(kid, [p.amount for p in proofs]).outputs]}
    assert (await refmint.call("POST", "/v1/swap", body(spent))).status == 200
    db = refmint.ledger.db
    release = threading.Event()
    held = asyncio.ensure_future(db.write(lambda _conn: release.wait(10)))  # the writer's thread is busy
    await asyncio.sleep(0.05)
    commits, syncs = db.commits, db.syncs
    bodies = [body(fresh_a), body(spent), body(fresh_b)]
    calls = [asyncio.ensure_future(refmint.call("POST", "/v1/swap", b)) for b in bodies]
    await asyncio.sleep(0.2)
    assert not any(c.done() for c in calls), "no swap is answered before its commit"
    release.set()
    await held
    answers = await asyncio.gather(*calls)
    assert [(a.status, a.code) for a in answers] == [(200, None), (400, 11001), (200, None)], answers
    # the holder's own commit, then the two swaps that went through in one
    assert (db.commits - commits, db.syncs - syncs) == (3, 2)
    refused = [o["B_"] for o in bodies[1]["outputs"]]
    assert await db.fetchall("SELECT b_ FROM promises WHERE b_ IN (?, ?)", refused) == []
    states = (await refmint.ok("POST", "/v1/checkstate", {"Ys": ys(fresh_a + fresh_b)}))["states"]
    assert {s["state"] for s in states} == {"SPENT"}
