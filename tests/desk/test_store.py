import json
import os
import stat

import pytest

from hashpool_cln.desk.states import IllegalTransition, State
from hashpool_cln.desk.store import MIGRATIONS, BudgetExceeded, ClaimConflict, StaleState, Store


def _fields(rid: str, unit: str = "u") -> dict:
    return {"id": rid, "mint": "http://m", "unit": unit, "amount": 8, "dest_kind": "bolt11", "destination": "lnbc"}


@pytest.fixture
async def store(tmp_path):
    s = await Store.open(str(tmp_path / "desk.sqlite3"))
    yield s
    await s.close()


async def test_file_is_private_and_durable(tmp_path, store):
    path = tmp_path / "desk.sqlite3"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert await store.pragma("journal_mode") == "wal"
    assert await store.pragma("synchronous") == 2  # FULL
    assert await store.pragma("user_version") == len(MIGRATIONS)


async def test_reopen_keeps_rows_and_does_not_migrate_twice(tmp_path):
    first = await Store.open(str(tmp_path / "again.sqlite3"))
    await first.create(_fields("a"), [("y1", "{}")], "h1")
    await first.close()
    again = await Store.open(str(tmp_path / "again.sqlite3"))
    try:
        assert (await again.get("a")).state is State.NEW
        with pytest.raises(ClaimConflict):
            await again.create(_fields("b"), [("y1", "{}")], None)
    finally:
        await again.close()


async def test_one_input_cannot_be_in_two_live_redemptions(store):
    await store.create(_fields("a"), [("y1", "{}"), ("y2", "{}")], "h1")
    with pytest.raises(ClaimConflict) as e:
        await store.create(_fields("b"), [("y2", "{}")], "h2")
    assert e.value.what == "input"
    assert await store.get("b") is None  # rolled back entirely


async def test_one_payment_hash_cannot_be_in_two_live_redemptions(store):
    await store.create(_fields("a"), [("y1", "{}")], "h1")
    with pytest.raises(ClaimConflict) as e:
        await store.create(_fields("b"), [("y2", "{}")], "h1")
    assert e.value.what == "payment_hash"


async def test_rejected_releases_claims_paid_keeps_them(store):
    await store.create(_fields("a"), [("y1", "{}")], "h1")
    await store.advance("a", State.NEW, State.REJECTED, error="x")
    await store.create(_fields("b"), [("y1", "{}")], "h1")  # free again
    await store.advance("b", State.NEW, State.QUOTED, quote_amount_msat=1)
    await store.advance("b", State.QUOTED, State.CUSTODY, custody=[json.dumps({"p": 1})])
    await store.advance("b", State.CUSTODY, State.PAYING)
    await store.advance("b", State.PAYING, State.PAID, preimage="00")
    with pytest.raises(ClaimConflict):
        await store.create(_fields("c"), [("y9", "{}")], "h1")
    assert await store.custody("b") == [json.dumps({"p": 1})]


async def test_advance_is_compare_and_set_and_refuses_illegal_moves(store):
    await store.create(_fields("a"), [("y1", "{}")], "h1")
    with pytest.raises(IllegalTransition):
        await store.advance("a", State.NEW, State.PAYING)
    with pytest.raises(StaleState):
        await store.advance("a", State.QUOTED, State.CUSTODY)
    assert (await store.get("a")).state is State.NEW


async def test_counters_are_reserved_without_overlap(store):
    await store.create(_fields("a"), [("y1", "{}")], None)
    await store.create(_fields("b"), [("y2", "{}")], None)
    a = await store.advance("a", State.NEW, State.QUOTED, reserve=("00ab", 5))
    b = await store.advance("b", State.NEW, State.QUOTED, reserve=("00ab", 3))
    assert (a["counter_start"], b["counter_start"]) == (0, 5)
    assert await store.counter("00ab") == 8


async def test_epoch_budget_is_checked_inside_the_move(store):
    await store.create(_fields("a", "e1"), [("y1", "{}")], None)
    await store.create(_fields("b", "e1"), [("y2", "{}")], None)
    await store.advance("a", State.NEW, State.QUOTED, budget_msat=1000, quote_amount_msat=700)
    with pytest.raises(BudgetExceeded):
        await store.advance("b", State.NEW, State.QUOTED, budget_msat=1000, quote_amount_msat=301)
    assert (await store.get("b")).state is State.NEW
    await store.advance("b", State.NEW, State.QUOTED, budget_msat=1000, quote_amount_msat=300)
    assert await store.committed_msat("e1") == 1000


async def test_a_claim_hash_belongs_to_one_redemption_ever(store):
    await store.create({**_fields("a"), "claim_hash": "c" * 64}, [("y1", "{}")], "h1")
    await store.advance("a", State.NEW, State.REJECTED)  # released: its inputs and hash are free again
    with pytest.raises(ClaimConflict) as e:
        await store.create({**_fields("b"), "claim_hash": "c" * 64}, [("y1", "{}")], "h1")
    assert e.value.what == "claim"
    assert await store.get("b") is None
    assert (await store.get_by_claim("c" * 64)).id == "a" and await store.claim_used("c" * 64)
    assert await store.get_by_claim("d" * 64) is None


async def test_a_ledger_from_before_claims_migrates_and_keeps_its_rows(tmp_path):
    import aiosqlite

    from hashpool_cln import sqlite

    path = str(tmp_path / "old.sqlite3")
    sqlite.create_private(path)
    async with aiosqlite.connect(path, isolation_level=None) as db:
        await sqlite.migrate(db, MIGRATIONS[:-1])
        now = 1_767_225_600
        await db.execute("INSERT INTO redemptions (id, state, mint, unit, amount, dest_kind, destination, "
                         "created_at, updated_at) VALUES ('old', 'settled', 'm', 'u', 8, 'bolt11', 'lnbc', ?, ?)",
                         (now, now))
    store = await Store.open(path)
    try:
        old = await store.get("old")
        assert old["claim_hash"] is None and old.state is State.SETTLED  # no claim: its tokens by id never
        await store.create({**_fields("new"), "claim_hash": "e" * 64}, [("y9", "{}")], None)
        assert (await store.get_by_claim("e" * 64)).id == "new"
    finally:
        await store.close()
