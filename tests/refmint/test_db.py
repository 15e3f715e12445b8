"""The mint's sqlite file: owner-only, WAL, durable, versioned; files of the older version layout still open."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from hashpool_cln import sqlite
from hashpool_cln.refmint.db import MIGRATIONS, SCHEMA_VERSION, Database


async def test_a_new_file_is_private_durable_and_at_the_latest_version(tmp_path) -> None:
    path = tmp_path / "mint.sqlite3"
    db = await Database.open(path)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert await db.schema_version() == SCHEMA_VERSION == len(MIGRATIONS)
        assert (await db.fetchone("PRAGMA journal_mode"))[0] == "wal"
        assert (await db.fetchone("PRAGMA synchronous"))[0] == 2  # FULL
        assert (await db.fetchone("PRAGMA foreign_keys"))[0] == 1
    finally:
        await db.close()
    again = await Database.open(path)  # reopening runs nothing twice
    try:
        assert await again.schema_version() == SCHEMA_VERSION
    finally:
        await again.close()


async def test_a_file_with_the_old_version_table_is_adopted(tmp_path) -> None:
    path = tmp_path / "mint.sqlite3"
    with sqlite3.connect(path) as old:
        for statement in sqlite.statements(MIGRATIONS[0]):
            old.execute(statement)
        old.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        old.execute("INSERT INTO schema_version (version) VALUES (1)")
        old.execute("INSERT INTO rewards (block_hash, height, reward_msat, confirmations, created_at)"
                    " VALUES ('aa', 1, 5, 1, 0)")
    old.close()
    db = await Database.open(path)
    try:
        assert await db.schema_version() == SCHEMA_VERSION  # adopted at 1, then migrated forward
        assert await db.fetchone("SELECT name FROM sqlite_master WHERE name = 'schema_version'") is None
        assert (await db.fetchone("SELECT reward_msat FROM rewards WHERE block_hash = 'aa'"))[0] == 5
    finally:
        await db.close()


async def test_a_file_from_a_newer_mint_is_refused(tmp_path) -> None:
    path = tmp_path / "mint.sqlite3"
    with sqlite3.connect(path) as newer:
        newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    newer.close()
    with pytest.raises(RuntimeError, match="newer than this mint"):
        await Database.open(path)


async def test_an_existing_file_is_made_private(tmp_path) -> None:
    path = tmp_path / "loose.sqlite3"
    path.write_bytes(b"")
    os.chmod(path, 0o644)
    sqlite.create_private(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
