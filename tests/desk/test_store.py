import asyncio
import json
import os
import sqlite3
import stat
import threading

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


# --- the ledger's thread: writes that wait together share one commit ------------------------------------------


async def _held(store: Store, release: threading.Event) -> None:
    """Occupy the ledger's thread until ``release`` is set, so that the writes queued meanwhile wait together."""
    await store._ledger.run(store._db, lambda _db: release.wait(10), write=False)


async def test_writes_waiting_together_share_one_commit_and_each_fails_alone(tmp_path):
    path = str(tmp_path / "group.sqlite3")
    store = await Store.open(path)
    try:
        await store.create(_fields("taken"), [("y-taken", "{}")], "h-taken")
        commits, syncs = store.commits, store.syncs
        release = threading.Event()
        held = asyncio.create_task(_held(store, release))
        await asyncio.sleep(0.05)
        creates = [asyncio.create_task(store.create(_fields(f"r{i}"), [(f"y{i}", "{}")], f"h{i}")) for i in range(8)]
        clash = asyncio.create_task(store.create(_fields("clash"), [("y-taken", "{}")], "h-clash"))
        await asyncio.sleep(0.05)
        assert not any(t.done() for t in [*creates, clash]), "no write is answered before its commit"
        release.set()
        await held
        made = await asyncio.gather(*creates)
        with pytest.raises(ClaimConflict):
            await clash
        assert [r.state for r in made] == [State.NEW] * 8
        assert store.commits - commits == 8 and store.syncs - syncs == 1
    finally:
        await store.close()
    # Durable and whole: a fresh connection sees the eight and nothing of the one that failed.
    plain = sqlite3.connect(path)
    try:
        ids = {r[0] for r in plain.execute("SELECT id FROM redemptions")}
        hashes = {r[0] for r in plain.execute("SELECT payment_hash FROM payment_hashes")}
    finally:
        plain.close()
    assert ids == {"taken", *(f"r{i}" for i in range(8))}
    assert "h-clash" not in hashes and len(hashes) == 9


async def test_a_group_whose_commit_fails_answers_every_writer_and_keeps_nothing(tmp_path):
    store = await Store.open(str(tmp_path / "failing.sqlite3"))
    try:
        release = threading.Event()
        held = asyncio.create_task(_held(store, release))
        await asyncio.sleep(0.05)
        good = asyncio.create_task(store.create(_fields("a"), [("ya", "{}")], "ha"))

        def poison(db: sqlite3.Connection) -> None:
            # Succeeds as a job, but its dangling reference is checked at the group's COMMIT, which then fails.
            db.execute("PRAGMA defer_foreign_keys = ON")
            db.execute("INSERT INTO inputs (redemption_id, position, y, proof) VALUES ('nobody', 0, 'yz', '{}')")

        bad = asyncio.create_task(store._write(poison))
        later = asyncio.create_task(store.create(_fields("b"), [("yb", "{}")], "hb"))
        await asyncio.sleep(0.05)
        release.set()
        await held
        results = await asyncio.gather(good, bad, later, return_exceptions=True)
        assert all(isinstance(r, sqlite3.IntegrityError) for r in results), results
        assert await store.get("a") is None and await store.get("b") is None
        assert (await store.create(_fields("c"), [("ya", "{}")], "ha")).state is State.NEW  # the ledger goes on
    finally:
        await store.close()


async def test_a_read_never_waits_behind_the_writer(store):
    """Reads run on a connection of their own: one asked while the writer is busy (a group syncing to the disk,
    here held) is answered at once, and sees every write committed before it."""
    await store.create(_fields("a"), [("ya", "{}")], "ha")
    release = threading.Event()
    held = asyncio.create_task(_held(store, release))
    try:
        await asyncio.sleep(0.05)
        pending = asyncio.create_task(store.create(_fields("b"), [("yb", "{}")], "hb"))
        found = await asyncio.wait_for(store.get("a"), 5)
        assert found is not None and found.state is State.NEW
        assert await store.get("b") is None and not pending.done()  # not committed yet: not seen
    finally:
        release.set()
        await held
    assert (await pending).id == "b" and (await store.get("b")).id == "b"
