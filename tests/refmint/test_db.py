"""The mint's sqlite file: owner-only, WAL, durable, versioned; files of the older version layout still open."""

from __future__ import annotations

import asyncio
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


def _file_at_version(path, version: int) -> sqlite3.Connection:
    """A mint file made by the version whose schema was ``version`` (its migrations run, nothing else)."""
    old = sqlite3.connect(path)
    for script in MIGRATIONS[:version]:
        for statement in sqlite.statements(script):
            old.execute(statement)
    old.execute(f"PRAGMA user_version = {version}")
    return old


async def test_pricing_moves_to_quoted_units_without_changing_a_closed_epochs_price(tmp_path) -> None:
    """Schema 4: the open epoch counts every quote it made; a closed epoch keeps the price it had (over minted
    units), so its quotes that were never minted stay unmintable."""
    path = tmp_path / "mint.sqlite3"
    with _file_at_version(path, 3) as old:
        for seq, unit, closed, issued in ((1, "u1", 5, 4), (2, "u2", None, 2)):
            old.execute("INSERT INTO keysets VALUES (?, ?, ?, '{}', 0, 0)", (f"k{seq}", unit, f"m/{seq}"))
            old.execute("INSERT INTO epochs (seq, unit, pool, height, keyset_id, opened_at, closed_at, issued)"
                        " VALUES (?, ?, 'p', ?, ?, 0, ?, ?)", (seq, unit, seq, f"k{seq}", closed, issued))
        quotes = (("a", "u1", 4, 1), ("b", "u1", 8, 0), ("c", "u2", 2, 1), ("d", "u2", 16, 0))
        for quote, unit, amount, issued in quotes:
            old.execute("INSERT INTO share_quotes (quote, header_hash, unit, amount, issued, created_at)"
                        " VALUES (?, ?, ?, ?, ?, 0)", (quote, quote * 64, unit, amount, issued))
    old.close()
    db = await Database.open(path)
    try:
        assert await db.fetchall("SELECT unit, issued, minted FROM epochs ORDER BY seq") == [
            ("u1", 4, 4), ("u2", 18, 2)]
        assert await db.fetchall("SELECT quote, priced FROM share_quotes ORDER BY quote") == [
            ("a", 1), ("b", 0), ("c", 1), ("d", 1)]
    finally:
        await db.close()


async def test_each_epoch_carries_what_its_paid_quotes_redeemed(tmp_path) -> None:
    """Schema 5: an epoch's ``redeemed_msat`` starts as the sum of its paid melt quotes (unpaid ones do not count),
    so that the budget check reads only the quotes still live."""
    path = tmp_path / "mint.sqlite3"
    with _file_at_version(path, 4) as old:
        for seq, unit in ((1, "u1"), (2, "u2"), (3, "u3")):
            old.execute("INSERT INTO keysets VALUES (?, ?, ?, '{}', 0, 0)", (f"k{seq}", unit, f"m/{seq}"))
            old.execute("INSERT INTO epochs (seq, unit, pool, height, keyset_id, opened_at)"
                        " VALUES (?, ?, 'p', ?, ?, 0)", (seq, unit, seq, f"k{seq}"))
        quotes = (("a", "u1", 7_000, "PAID"), ("b", "u1", 5_000, "PAID"), ("c", "u1", 100_000, "UNPAID"),
                  ("d", "u2", 1, "UNPAID"))
        for quote, unit, msat, state in quotes:
            old.execute("INSERT INTO melt_quotes (quote, unit, amount, amount_msat, state, expiry, created_at)"
                        " VALUES (?, ?, 1, ?, ?, 9999999999, 0)", (quote, unit, msat, state))
    old.close()
    db = await Database.open(path)
    try:
        assert await db.fetchall("SELECT unit, redeemed_msat FROM epochs ORDER BY seq") == [
            ("u1", 12_000), ("u2", 0), ("u3", 0)]
    finally:
        await db.close()


async def test_a_read_sees_what_was_committed_before_it_was_asked(tmp_path) -> None:
    """The mint's reads share one connection. A slow read that started before a commit must not make a read
    asked after the commit run in its older snapshot (the share quote committed a moment ago, answered
    51000 "unknown quote" under load): every read runs, fetches and ends its statement in one step."""
    db = await Database.open(tmp_path / "mint.sqlite3")
    try:
        def setup(conn: sqlite3.Connection) -> None:
            conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
            conn.execute("INSERT INTO t VALUES ('old')")
        await db.write(setup)
        # reads the table (its snapshot starts there), then spends a while counting
        slow = asyncio.ensure_future(db.fetchall(
            "WITH RECURSIVE c(x) AS (SELECT (SELECT COUNT(*) FROM t) UNION ALL SELECT x + 1 FROM c"
            " WHERE x < 3000000) SELECT MAX(x) FROM c"))
        await asyncio.sleep(0.05)
        await db.write(lambda conn: conn.execute("INSERT INTO t VALUES ('new')"))
        assert not slow.done(), "the slow read must still be running when the commit is made"
        assert await db.fetchone("SELECT k FROM t WHERE k = 'new'") == ("new",)
        assert (await slow)[0][0] == 3000000
    finally:
        await db.close()
