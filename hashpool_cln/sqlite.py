"""sqlite files that hold money: owner-only, WAL, ``synchronous=FULL``, versioned migrations, one writer at a time.

The desk's ledger, the reference mint's store and the wallet open their files here. A committed write survives a
power cut, since a lost spend is a double spend. Writes take ``BEGIN IMMEDIATE`` (one writer per file, even across
processes) and come in two kinds:

- ``Worker``: a thread of its own owns the connection (``connect_blocking``) and runs each transaction there
  whole, in one hop from the event loop, so the file's one writer is held for the transaction's own work, not for
  a loop turn per statement; transactions waiting together share one commit. The desk's ledger and the mint's
  writes run so.
- ``transaction``: an asyncio lock (one writer per connection, many coroutines) around an aiosqlite connection,
  one hop per statement; for migrations and the wallet, where nothing waits on the writer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import stat
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

MEMORY = ":memory:"

log = logging.getLogger("hashpool_cln.sqlite")

T = TypeVar("T")
Db = sqlite3.Connection


def create_private(path: str | Path) -> None:
    """Create ``path`` readable by its owner only, before sqlite creates it (its -wal and -shm files take the
    database file's mode); an existing file open to others is made owner-only, with a log line."""
    if str(path) == MEMORY:
        return
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o077:
            os.fchmod(fd, 0o600)
            log.warning("the database %s was open to others (mode %03o); made owner-only", path, mode)
    finally:
        os.close(fd)


def _pragmas(busy_timeout_ms: int) -> tuple[str, ...]:
    return f"busy_timeout={int(busy_timeout_ms)}", "foreign_keys=ON", "synchronous=FULL", "journal_mode=WAL"


def connect_blocking(path: str | Path, *, busy_timeout_ms: int = 10_000) -> sqlite3.Connection:
    """``connect``'s settings on a plain sqlite3 connection, for a caller that runs it on a thread of its own
    (any one thread at a time)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in _pragmas(busy_timeout_ms):
        conn.execute(f"PRAGMA {pragma}").close()
    return conn


class _Job:
    __slots__ = ("db", "future", "loop", "work", "write")

    def __init__(self, work: Callable[[Db], Any], db: Db, write: bool) -> None:
        self.work, self.db, self.write = work, db, write
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[Any] = self.loop.create_future()


class Worker:
    """The thread that owns connections and runs every job on them, in the order given.

    Write jobs waiting together are one group: the first in its own transaction, each later one in a savepoint of
    it (one that raises is rolled back alone, and only its caller sees the error), and the group is committed
    once, so one sync to the disk makes them all durable. No caller hears of its write before that commit: a rule
    that a write is committed before the action it allows holds job by job, and sixteen callers' writes cost one
    sync instead of sixteen in a row. Answers reach the event loop in commit order.
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.commits = 0  # write jobs committed
        self.syncs = 0  # commits of groups of them
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def run(self, db: Db, work: Callable[[Db], T], *, write: bool) -> T:
        """``work(db)`` on the thread: as one transaction if ``write`` (committed before this returns, rolled back
        if it raises), else outside any."""
        job = _Job(work, db, write)
        self._jobs.put(job)
        return await job.future

    async def stop(self) -> None:
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join)

    async def close(self, db: Db) -> None:
        """Close ``db`` on the thread (after every job given before), then stop the thread, even if closing failed."""
        try:
            await self.run(db, lambda conn: conn.close(), write=False)
        finally:
            await self.stop()

    def _serve(self) -> None:
        while True:
            jobs = [self._jobs.get()]
            while jobs[-1] is not None:  # every job already waiting joins this round
                try:
                    jobs.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            group: list[_Job] = []
            for job in jobs:
                if group and (job is None or not job.write or job.db is not group[0].db):
                    self._commit(group)
                    group = []
                if job is None:
                    return
                if job.write:
                    group.append(job)
                else:
                    self._read(job)
            if group:
                self._commit(group)

    def _read(self, job: _Job) -> None:
        try:
            result = job.work(job.db)
        except BaseException as e:
            _deliver(job, None, e)
        else:
            _deliver(job, result, None)

    def _commit(self, group: list[_Job]) -> None:
        db = group[0].db
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        written = 0  # jobs kept in the open transaction
        try:
            db.execute("BEGIN IMMEDIATE")
            for job in group:
                if written == 0:
                    # Alone in the transaction so far: a failure rolls the transaction back, which undoes this job
                    # only. No savepoint: sqlite journals every page a savepoint's statements change, which costs a
                    # 1,024-proof write a third more.
                    try:
                        outcomes.append((job, job.work(db), None))
                        written += 1
                    except BaseException as e:
                        if db.in_transaction:
                            db.execute("ROLLBACK")
                        db.execute("BEGIN IMMEDIATE")
                        outcomes.append((job, None, e))
                    continue
                db.execute("SAVEPOINT job")
                try:
                    result = job.work(db)
                except BaseException as e:
                    db.execute("ROLLBACK TO job")
                    db.execute("RELEASE job")
                    outcomes.append((job, None, e))
                else:
                    db.execute("RELEASE job")
                    outcomes.append((job, result, None))
                    written += 1
            db.execute("COMMIT" if written else "ROLLBACK")
        except BaseException as e:
            try:
                if db.in_transaction:
                    db.execute("ROLLBACK")
            except BaseException:  # noqa: S110  (the group's own error is what the callers hear)
                pass
            outcomes = [(job, None, e) for job in group]  # nothing of the group was written
        else:
            self.commits += written
            self.syncs += 1 if written else 0
        for job, result, error in outcomes:
            _deliver(job, result, error)


def _deliver(job: _Job, result: Any, error: BaseException | None) -> None:
    def settle() -> None:
        if job.future.done():  # its caller was cancelled meanwhile
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)
    try:
        job.loop.call_soon_threadsafe(settle)
    except RuntimeError:
        pass  # the loop is closed: nobody waits for the answer


async def connect(path: str | Path, *, busy_timeout_ms: int = 10_000) -> aiosqlite.Connection:
    """A connection in autocommit mode (transactions are explicit) with the durability settings above."""
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        for pragma in _pragmas(busy_timeout_ms):
            async with conn.execute(f"PRAGMA {pragma}"):
                pass
    except BaseException:
        await conn.close()
        raise
    return conn


@asynccontextmanager
async def transaction(conn: aiosqlite.Connection, lock: asyncio.Lock) -> AsyncIterator[aiosqlite.Connection]:
    """One write transaction: committed when the block ends, rolled back if it raises."""
    async with lock:
        await conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")


async def schema_version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def migrate(conn: aiosqlite.Connection, migrations: Sequence[str], *, what: str = "this program") -> int:
    """Run the migrations the file has not had yet (its version is ``PRAGMA user_version``), inside the caller's
    transaction; refuse a file made by a newer version. Returns the version reached."""
    version = await schema_version(conn)
    if version > len(migrations):
        raise RuntimeError(f"the database's schema version {version} is newer than {what} ({len(migrations)})")
    for number, script in enumerate(migrations[version:], start=version + 1):
        for statement in statements(script):
            await conn.execute(statement)
        await conn.execute(f"PRAGMA user_version = {number}")
    return len(migrations)


def statements(script: str) -> list[str]:
    """A migration script's statements (scripts hold no ``;`` inside strings or triggers)."""
    return [s.strip() for s in script.split(";") if s.strip()]


async def open_migrated(path: str | Path, migrations: Sequence[str], *, what: str, busy_timeout_ms: int = 10_000,
                        before: Callable[[aiosqlite.Connection], Awaitable[None]] | None = None) -> sqlite3.Connection:
    """The file at ``path`` made owner-only and brought to the latest schema in one transaction (``before`` runs
    first in it), then opened as the plain connection a ``Worker`` runs."""
    create_private(path)
    migrating = await connect(path, busy_timeout_ms=busy_timeout_ms)
    try:
        async with transaction(migrating, asyncio.Lock()) as conn:
            if before is not None:
                await before(conn)
            await migrate(conn, migrations, what=what)
    finally:
        await migrating.close()
    return connect_blocking(path, busy_timeout_ms=busy_timeout_ms)
