"""sqlite files that hold money: owner-only, WAL, ``synchronous=FULL``, versioned migrations, one writer at a time.

The desk's ledger and the reference mint's store both open their files here. A transaction is an asyncio lock
(one writer per connection, many coroutines) around ``BEGIN IMMEDIATE`` (one writer per file, even across
processes); a committed write survives a power cut, since a lost spend is a double spend. ``connect_blocking``
gives the same settings to a plain connection that a caller runs on a thread of its own (the desk's ledger, which
runs each transaction there whole).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import stat
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

MEMORY = ":memory:"

log = logging.getLogger("hashpool_cln.sqlite")


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
