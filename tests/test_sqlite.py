"""The writer thread (``sqlite.Worker``): writes waiting together share one commit, and each fails alone."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from hashpool_cln import sqlite


class Refused(Exception):
    pass


async def _group(worker: sqlite.Worker, db: sqlite3.Connection, jobs: list) -> list:
    """Run ``jobs`` as one group: the thread is held until every one of them waits."""
    release = threading.Event()
    held = asyncio.ensure_future(worker.run(db, lambda _db: release.wait(10), write=False))
    await asyncio.sleep(0.05)
    calls = [asyncio.ensure_future(worker.run(db, job, write=True)) for job in jobs]
    await asyncio.sleep(0.05)
    release.set()
    await held
    return await asyncio.gather(*calls, return_exceptions=True)


def _insert(key: str, fail: bool = False):
    def work(db: sqlite3.Connection) -> str:
        db.execute("INSERT INTO t VALUES (?)", (key,))
        if fail:
            raise Refused(key)
        return key
    return work


@pytest.fixture
async def store(tmp_path):
    db = await sqlite.open_migrated(tmp_path / "w.sqlite3", ["CREATE TABLE t (k TEXT PRIMARY KEY)"], what="a test")
    worker = sqlite.Worker("test-writer")
    try:
        yield worker, db
    finally:
        await worker.close(db)


def _keys(db: sqlite3.Connection) -> set[str]:
    return {k for (k,) in db.execute("SELECT k FROM t")}


@pytest.mark.parametrize("failing", [0, 1, 3])
async def test_a_failing_write_leaves_nothing_and_the_others_share_one_commit(store, failing) -> None:
    worker, db = store
    jobs = [_insert(f"k{i}", fail=i == failing) for i in range(4)]
    syncs = worker.syncs
    results = await _group(worker, db, jobs)
    assert isinstance(results[failing], Refused)
    assert [r for i, r in enumerate(results) if i != failing] == [f"k{i}" for i in range(4) if i != failing]
    assert (worker.commits, worker.syncs - syncs) == (3, 1)
    assert await worker.run(db, _keys, write=False) == {f"k{i}" for i in range(4) if i != failing}


async def test_a_group_of_failing_writes_commits_nothing(store) -> None:
    worker, db = store
    syncs = worker.syncs
    results = await _group(worker, db, [_insert("a", fail=True), _insert("b", fail=True)])
    assert all(isinstance(r, Refused) for r in results)
    assert (worker.commits, worker.syncs) == (0, syncs)
    assert await worker.run(db, _keys, write=False) == set()
    assert await worker.run(db, _insert("c"), write=True) == "c"  # the connection is in no transaction left over
