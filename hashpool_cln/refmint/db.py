"""The mint's sqlite store: WAL, versioned schema migrations, one writer thread and one reader.

Writes go through ``write(work)``: ``work`` runs whole as one ``BEGIN IMMEDIATE`` transaction on the writer's
thread (a ``sqlite.Worker``), in one hop from the event loop, and writes that wait together share one commit.
UNIQUE constraints back every rule that keeps money safe: a proof's ``Y`` can be spent once, an output ``B_``
signed once, a share header hash quoted once. Reads use a second connection, so they see only committed state
and never wait for a writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from hashpool_cln import sqlite

# Each entry upgrades the schema by one version; never edit a released entry, append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE keysets (
        id TEXT PRIMARY KEY,
        unit TEXT NOT NULL,
        derivation TEXT NOT NULL UNIQUE,
        keys TEXT NOT NULL,                 -- JSON {amount: compressed pubkey hex}
        input_fee_ppk INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE rewards (
        block_hash TEXT PRIMARY KEY,
        height INTEGER NOT NULL,
        reward_msat INTEGER NOT NULL,
        confirmations INTEGER NOT NULL,
        final_at INTEGER,                   -- when confirmations first reached the final depth
        dissolved INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE epochs (
        seq INTEGER PRIMARY KEY,
        unit TEXT NOT NULL UNIQUE,
        pool TEXT NOT NULL,
        height INTEGER NOT NULL,
        keyset_id TEXT NOT NULL UNIQUE REFERENCES keysets(id),
        opened_at INTEGER NOT NULL,
        closed_at INTEGER,                  -- NULL while open
        reward_block_hash TEXT REFERENCES rewards(block_hash),
        reward_msat INTEGER NOT NULL DEFAULT 0,  -- this epoch's part of its reward
        pool_fee_ppm INTEGER NOT NULL DEFAULT 0,
        issued INTEGER NOT NULL DEFAULT 0   -- units signed from this epoch's share quotes
    );
    CREATE TABLE proofs_used (
        y TEXT PRIMARY KEY,
        keyset_id TEXT NOT NULL,
        amount INTEGER NOT NULL,
        secret TEXT NOT NULL,
        c TEXT NOT NULL,
        witness TEXT,
        spent_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE promises (
        b_ TEXT PRIMARY KEY,
        keyset_id TEXT NOT NULL,
        amount INTEGER NOT NULL,
        c_ TEXT NOT NULL,
        dleq_e TEXT NOT NULL,
        dleq_s TEXT NOT NULL,
        created_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE share_quotes (
        quote TEXT PRIMARY KEY,
        header_hash TEXT NOT NULL UNIQUE,
        unit TEXT NOT NULL REFERENCES epochs(unit),
        amount INTEGER NOT NULL,
        pubkey TEXT,
        issued INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX share_quotes_pubkey ON share_quotes(pubkey) WHERE pubkey IS NOT NULL;
    CREATE TABLE melt_quotes (
        quote TEXT PRIMARY KEY,
        unit TEXT NOT NULL REFERENCES epochs(unit),
        amount INTEGER NOT NULL,
        amount_msat INTEGER NOT NULL,
        request TEXT,
        request_payment_hash TEXT,
        state TEXT NOT NULL CHECK (state IN ('UNPAID', 'PAID')),
        expiry INTEGER NOT NULL,
        payment_hash TEXT,
        preimage TEXT,
        created_at INTEGER NOT NULL,
        paid_at INTEGER
    );
    CREATE INDEX melt_quotes_budget ON melt_quotes(unit, state, expiry);
    """,
    # Melt quotes named by the desk that asked (owner: a digest of its bearer key) and released early.
    """
    ALTER TABLE melt_quotes ADD COLUMN owner TEXT;
    ALTER TABLE melt_quotes ADD COLUMN reference TEXT;
    ALTER TABLE melt_quotes ADD COLUMN released_at INTEGER;
    CREATE UNIQUE INDEX melt_quotes_reference ON melt_quotes(owner, reference) WHERE reference IS NOT NULL;
    """,
    # Share quotes keep the header hash as the pool sent it (``request``; ``header_hash`` stays in display
    # order, the one key for uniqueness whatever order a pool speaks) and when they were issued.
    """
    ALTER TABLE share_quotes ADD COLUMN request TEXT;
    ALTER TABLE share_quotes ADD COLUMN issued_at INTEGER;
    """,
    # Epochs are priced over the units they quoted (``issued``), not the units minted (now ``minted``), so a
    # quote stays mintable as long as its epoch signs. The open epoch counts its quotes from now on; a closed
    # epoch keeps its price, so its quotes not minted in time stay unmintable (``priced`` = 0).
    """
    ALTER TABLE epochs ADD COLUMN minted INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE share_quotes ADD COLUMN priced INTEGER NOT NULL DEFAULT 1;
    UPDATE epochs SET minted = issued;
    UPDATE epochs SET issued = (SELECT COALESCE(SUM(q.amount), 0) FROM share_quotes q WHERE q.unit = epochs.unit)
        WHERE closed_at IS NULL;
    UPDATE share_quotes SET priced = 0
        WHERE issued = 0 AND unit IN (SELECT unit FROM epochs WHERE closed_at IS NOT NULL);
    """,
    # Each epoch carries what its paid quotes redeemed (written with each melt), so checking a quote against
    # the budget reads the quotes still live, not every quote ever paid.
    """
    ALTER TABLE epochs ADD COLUMN redeemed_msat INTEGER NOT NULL DEFAULT 0;
    UPDATE epochs SET redeemed_msat = (SELECT COALESCE(SUM(q.amount_msat), 0) FROM melt_quotes q
        WHERE q.unit = epochs.unit AND q.state = 'PAID');
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


T = TypeVar("T")
Db = sqlite.Db


class Database:
    def __init__(self, writer: Db, reader: aiosqlite.Connection) -> None:
        self._writer = writer
        self._reader = reader
        self._worker = sqlite.Worker("mint-writer")

    @classmethod
    async def open(cls, path: Path) -> Database:
        writer = await sqlite.open_migrated(path, MIGRATIONS, what="this mint", before=_adopt_version_table)
        try:
            reader = await sqlite.connect(path)
        except BaseException:
            writer.close()
            raise
        return cls(writer, reader)

    async def close(self) -> None:
        try:
            await self._reader.close()
        finally:
            await self._worker.close(self._writer)

    @property
    def commits(self) -> int:
        """Write transactions committed since the store was opened."""
        return self._worker.commits

    @property
    def syncs(self) -> int:
        """Commits to the file since it was opened: each carries one or more write transactions."""
        return self._worker.syncs

    async def schema_version(self) -> int:
        return await sqlite.schema_version(self._reader)

    async def write(self, work: Callable[[Db], T]) -> T:
        """``work(db)`` as one transaction: committed (with whatever writes wait beside it) before this returns,
        rolled back if it raises. ``work`` runs on the writer's thread: it touches nothing the event loop owns."""
        return await self._worker.run(self._writer, work, write=True)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        # One call into sqlite's thread that runs, reads and closes the statement: a statement left open across
        # an await keeps the shared reader's read transaction, and with it an old WAL snapshot, alive for every
        # other coroutine's read (a quote committed a moment earlier then looks unknown).
        return [tuple(r) for r in await self._reader.execute_fetchall(sql, params)]

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None


def fetchall(conn: Db, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """The rows of a query, in a ``write`` job."""
    return conn.execute(sql, params).fetchall()


def fetchone(conn: Db, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
    """The first row of a query that names at most one, in a ``write`` job."""
    return conn.execute(sql, params).fetchone()


def placeholders(values: Iterable[Any]) -> str:
    return ",".join("?" for _ in values)


async def _adopt_version_table(conn: aiosqlite.Connection) -> None:
    """Files made before the version moved to ``PRAGMA user_version`` kept it in a table: carry it over once."""
    if not await conn.execute_fetchall(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"):
        return
    rows = list(await conn.execute_fetchall("SELECT version FROM schema_version"))
    if rows and await sqlite.schema_version(conn) == 0:
        await conn.execute(f"PRAGMA user_version = {int(rows[0][0])}")
    await conn.execute("DROP TABLE schema_version")


IntegrityError = sqlite3.IntegrityError
