"""The wallet's database: one sqlite file (owner-only, WAL, ``synchronous=FULL``, versioned migrations).

What it holds, and why it survives any crash:

* ``proofs`` per keyset with their state: ``unspent`` (spendable), ``pending`` (handed out in a token or to the
  desk, not yet known spent) and ``spent``.
* ``counters``: the next NUT-13 counter of each keyset. An ``operation`` (a swap or a mint, with its keyset,
  first counter and output amounts) is written, and the counter moved past it, in one transaction *before* the
  request goes out. Whatever happens to the answer, the same outputs can be asked of the mint again (NUT-09
  restore), so no signature is ever lost and no counter is ever used twice.
* ``quotes``: the share quotes seen through the signed lookup, and whether they were minted.
* ``redemptions``: each redemption sent to the desk, with its claim secret (written before the call) and outcome.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from hashpool_cln import sqlite
from hashpool_cln.cashu.crypto import proof_y
from hashpool_cln.cashu.models import Proof
from hashpool_cln.wallet.errors import Code, WalletError

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE keysets (
        id TEXT PRIMARY KEY,
        unit TEXT NOT NULL,
        active INTEGER NOT NULL,
        input_fee_ppk INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE counters (
        keyset_id TEXT PRIMARY KEY,
        next INTEGER NOT NULL
    );
    CREATE TABLE proofs (
        y TEXT PRIMARY KEY,
        keyset_id TEXT NOT NULL,
        amount INTEGER NOT NULL,
        proof TEXT NOT NULL,                   -- JSON, with its DLEQ
        state TEXT NOT NULL CHECK (state IN ('unspent', 'pending', 'spent')),
        reserved_for TEXT,                     -- the operation, send or redemption holding it pending
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX proofs_state ON proofs(state, keyset_id);
    CREATE TABLE operations (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,                    -- swap | mint
        keyset_id TEXT NOT NULL,
        counter_start INTEGER NOT NULL,
        amounts TEXT NOT NULL,                 -- JSON list: one output per amount, counters in order
        inputs TEXT NOT NULL,                  -- JSON list of the Ys spent (swap)
        quotes TEXT NOT NULL,                  -- JSON list of quote ids (mint)
        purpose TEXT,                          -- JSON: what the caller meant (send amounts, receive...)
        state TEXT NOT NULL CHECK (state IN ('started', 'done', 'failed')),
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX operations_state ON operations(state);
    CREATE TABLE quotes (
        quote TEXT PRIMARY KEY,
        unit TEXT NOT NULL,
        amount INTEGER NOT NULL,
        state TEXT NOT NULL,                   -- the mint's UNPAID | PAID | ISSUED, or EXPIRED (past its expiry)
        operation TEXT,                        -- the mint operation that took it
        seen_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX quotes_state ON quotes(state);
    CREATE TABLE sends (
        id TEXT PRIMARY KEY,
        unit TEXT NOT NULL,
        amount INTEGER NOT NULL,
        token TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'spent', 'reclaimed')),
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE redemptions (
        claim TEXT PRIMARY KEY,                -- the claim secret (hex), written before the call
        id TEXT,                               -- the desk's redemption id, once known
        destination TEXT NOT NULL,
        unit TEXT NOT NULL,
        amount INTEGER NOT NULL,
        amount_msat INTEGER,
        state TEXT NOT NULL,                   -- sending | unknown | the desk's final state | rejected
        payment_hash TEXT,
        payment_preimage TEXT,
        error_code INTEGER,
        error TEXT,
        change_token TEXT,                     -- kept until swapped back in (then taken = 1)
        refund_token TEXT,
        taken INTEGER NOT NULL DEFAULT 0,      -- 1: swapped in, 2: a token the mint will not take (see error)
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX redemptions_state ON redemptions(state)
    """,
)


@dataclass(frozen=True, slots=True)
class Operation:
    id: str
    kind: str
    keyset_id: str
    counter_start: int
    amounts: list[int]
    inputs: list[str]
    quotes: list[str]
    purpose: dict[str, Any]
    state: str


@dataclass(frozen=True, slots=True)
class StoredProof:
    proof: Proof
    y: str
    state: str
    reserved_for: str | None


class WalletStore:
    """The wallet database; ``await WalletStore.open(path)``, then ``close()``."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str | Path) -> WalletStore:
        sqlite.create_private(path)
        conn = await sqlite.connect(path)
        store = cls(conn)
        async with store.tx() as c:
            await sqlite.migrate(c, MIGRATIONS, what="this hashpool-wallet")
        return store

    async def close(self) -> None:
        await self._conn.close()

    def tx(self) -> Any:
        return sqlite.transaction(self._conn, self._lock)

    async def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        async with self._conn.execute(sql, args) as cur:
            return list(await cur.fetchall())

    # ---- keysets and counters ---------------------------------------------------------------------------

    async def save_keysets(self, keysets: Iterable[tuple[str, str, bool, int]]) -> None:
        async with self.tx() as c:
            await c.executemany(
                "INSERT INTO keysets (id, unit, active, input_fee_ppk) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO "
                "UPDATE SET unit = excluded.unit, active = excluded.active, input_fee_ppk = excluded.input_fee_ppk",
                [(k, u, int(a), f) for k, u, a, f in keysets])

    async def keysets(self) -> list[tuple[str, str, bool, int]]:
        rows = await self._rows("SELECT id, unit, active, input_fee_ppk FROM keysets ORDER BY unit, id")
        return [(r[0], r[1], bool(r[2]), r[3]) for r in rows]

    async def counter(self, keyset_id: str) -> int:
        rows = await self._rows("SELECT next FROM counters WHERE keyset_id = ?", (keyset_id,))
        return rows[0][0] if rows else 0

    async def raise_counter(self, keyset_id: str, at_least: int) -> None:
        """Move a keyset's counter to ``at_least`` unless it is already past it (after a restore)."""
        async with self.tx() as c:
            await c.execute("INSERT INTO counters (keyset_id, next) VALUES (?, ?) ON CONFLICT(keyset_id) DO "
                            "UPDATE SET next = max(next, excluded.next)", (keyset_id, at_least))

    # ---- operations -------------------------------------------------------------------------------------

    async def begin_operation(self, op_id: str, kind: str, keyset_id: str, amounts: Sequence[int], *,
                              inputs: Sequence[str] = (), quotes: Sequence[str] = (),
                              purpose: dict[str, Any] | None = None, own_inputs: bool = True,
                              input_state: str = "unspent") -> Operation:
        """Write the operation and take its counters, and mark its input proofs pending (``own_inputs``: they are
        the wallet's; a token being received is not), in one transaction. The inputs must be ``input_state``
        (``pending`` only to take back a token the wallet sent): two commands can never take the same proofs."""
        now = int(time.time())
        async with self.tx() as c:
            async with c.execute("SELECT next FROM counters WHERE keyset_id = ?", (keyset_id,)) as cur:
                row = await cur.fetchone()
            start = row[0] if row else 0
            await c.execute("INSERT INTO counters (keyset_id, next) VALUES (?, ?) ON CONFLICT(keyset_id) DO "
                            "UPDATE SET next = excluded.next", (keyset_id, start + len(amounts)))
            await c.execute(
                "INSERT INTO operations (id, kind, keyset_id, counter_start, amounts, inputs, quotes, purpose, "
                "state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'started', ?, ?)",
                (op_id, kind, keyset_id, start, json.dumps(list(amounts)), json.dumps(list(inputs)),
                 json.dumps(list(quotes)), json.dumps(purpose or {}), now, now))
            if inputs and own_inputs:
                await self._set_state(c, inputs, "pending", op_id, expect=(input_state,))
            if quotes:
                await c.executemany("UPDATE quotes SET operation = ?, updated_at = ? WHERE quote = ?",
                                    [(op_id, now, q) for q in quotes])
        return Operation(op_id, kind, keyset_id, start, list(amounts), list(inputs), list(quotes), purpose or {},
                         "started")

    async def finish_operation(self, op: Operation, proofs: Sequence[Proof], *,
                               pending_for: dict[int, str] | None = None,
                               send: tuple[str, str, int, str] | None = None) -> None:
        """The operation's answer: its new proofs stored (``pending_for`` maps output indexes to the send they
        belong to, ``send`` = (id, unit, amount, token) is that send), its inputs spent, its quotes issued; all in
        one transaction."""
        now = int(time.time())
        pending_for = pending_for or {}
        async with self.tx() as c:
            await self._add_proofs(c, proofs, now, pending_for)
            if send is not None:
                await c.execute("INSERT INTO sends (id, unit, amount, token, state, created_at, updated_at) VALUES "
                                "(?, ?, ?, ?, 'pending', ?, ?)", (*send, now, now))
            if op.inputs and not op.purpose.get("foreign_inputs"):
                await self._set_state(c, op.inputs, "spent", op.id)
            if op.quotes:
                await c.executemany("UPDATE quotes SET state = 'ISSUED', updated_at = ? WHERE quote = ?",
                                    [(now, q) for q in op.quotes])
            await c.execute("UPDATE operations SET state = 'done', updated_at = ? WHERE id = ?", (now, op.id))

    async def fail_operation(self, op: Operation, *, spent: Sequence[str] = ()) -> None:
        """The mint did not act: inputs back to unspent (those in ``spent`` marked spent: the mint says so; those
        of a token the wallet sent and failed to take back pending for that token again), quotes free for another
        operation."""
        now = int(time.time())
        async with self.tx() as c:
            if op.inputs and not op.purpose.get("foreign_inputs"):
                gone = set(spent)
                held: dict[str, str | None] = op.purpose.get("reclaim") or {}
                await self._set_state(c, [y for y in op.inputs if y not in gone and y not in held], "unspent", None)
                for holder in set(held.values()):
                    await self._set_state(c, [y for y in op.inputs if y not in gone and y in held
                                              and held[y] == holder], "pending", holder)
                await self._set_state(c, [y for y in op.inputs if y in gone], "spent", op.id)
            if op.quotes:
                await c.executemany("UPDATE quotes SET operation = NULL, updated_at = ? WHERE quote = ? AND "
                                    "operation = ?", [(now, q, op.id) for q in op.quotes])
            await c.execute("UPDATE operations SET state = 'failed', updated_at = ? WHERE id = ?", (now, op.id))

    async def open_operations(self) -> list[Operation]:
        rows = await self._rows("SELECT id, kind, keyset_id, counter_start, amounts, inputs, quotes, purpose, "
                                "state FROM operations WHERE state = 'started' ORDER BY created_at, id")
        return [Operation(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]), json.loads(r[6]),
                          json.loads(r[7] or "{}"), r[8]) for r in rows]

    # ---- proofs -----------------------------------------------------------------------------------------

    async def add_proofs(self, proofs: Sequence[Proof]) -> int:
        """Store proofs as unspent (known ones are left as they are); returns how many were new."""
        async with self.tx() as c:
            return await self._add_proofs(c, proofs, int(time.time()), {})

    async def _add_proofs(self, c: aiosqlite.Connection, proofs: Sequence[Proof], now: int,
                          pending_for: dict[int, str]) -> int:
        before = c.total_changes
        await c.executemany(
            "INSERT OR IGNORE INTO proofs (y, keyset_id, amount, proof, state, reserved_for, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(proof_y(p.secret), p.id, p.amount, json.dumps(p.to_dict()),
              "pending" if i in pending_for else "unspent", pending_for.get(i), now, now)
             for i, p in enumerate(proofs)])
        return c.total_changes - before

    async def _set_state(self, c: aiosqlite.Connection, ys: Iterable[str], state: str, reserved_for: str | None,
                         expect: Sequence[str] | None = None) -> None:
        now = int(time.time())
        for y in ys:
            sql = "UPDATE proofs SET state = ?, reserved_for = ?, updated_at = ? WHERE y = ?"
            args: list[Any] = [state, reserved_for, now, y]
            if expect is not None:
                sql += f" AND state IN ({','.join('?' * len(expect))})"
                args += list(expect)
            async with c.execute(sql, args) as cur:
                if cur.rowcount != 1:
                    raise WalletError(Code.BUSY, f"proof {y[:16]}... is not {' or '.join(expect or ['known'])} in "
                                      "the wallet: another command may be using it; try again")

    async def set_proof_states(self, ys: Iterable[str], state: str, reserved_for: str | None = None) -> None:
        async with self.tx() as c:
            await self._set_state(c, list(ys), state, reserved_for)

    async def proofs(self, *, state: str | None = None, keyset_ids: Sequence[str] | None = None,
                     reserved_for: str | None = None) -> list[StoredProof]:
        sql, args = "SELECT proof, y, state, reserved_for FROM proofs WHERE 1 = 1", []
        if state is not None:
            sql += " AND state = ?"
            args.append(state)
        if keyset_ids is not None:
            sql += f" AND keyset_id IN ({','.join('?' * len(keyset_ids))})"
            args += list(keyset_ids)
        if reserved_for is not None:
            sql += " AND reserved_for = ?"
            args.append(reserved_for)
        rows = await self._rows(sql + " ORDER BY amount DESC, y", args)
        return [StoredProof(Proof.from_dict(json.loads(r[0])), r[1], r[2], r[3]) for r in rows]

    # ---- quotes -----------------------------------------------------------------------------------------

    async def see_quotes(self, quotes: Iterable[tuple[str, str, int, str]]) -> None:
        """Record quotes ``(id, unit, amount, state)`` as the mint shows them; ISSUED and EXPIRED are final."""
        now = int(time.time())
        async with self.tx() as c:
            await c.executemany(
                "INSERT INTO quotes (quote, unit, amount, state, seen_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(quote) DO UPDATE SET state = CASE WHEN quotes.state IN ('ISSUED', 'EXPIRED') THEN "
                "quotes.state ELSE excluded.state END, updated_at = excluded.updated_at",
                [(q, u, a, s, now, now) for q, u, a, s in quotes])

    async def mintable_quotes(self) -> list[tuple[str, str, int]]:
        rows = await self._rows("SELECT quote, unit, amount FROM quotes WHERE state = 'PAID' AND operation IS NULL "
                                "ORDER BY unit, seen_at, quote")
        return [(r[0], r[1], r[2]) for r in rows]

    async def quote_counts(self) -> dict[str, int]:
        return {r[0]: r[1] for r in await self._rows("SELECT state, count(*) FROM quotes GROUP BY state")}

    # ---- sends ------------------------------------------------------------------------------------------

    async def add_send(self, send_id: str, unit: str, amount: int, token: str, ys: Sequence[str]) -> None:
        now = int(time.time())
        async with self.tx() as c:
            await c.execute("INSERT INTO sends (id, unit, amount, token, state, created_at, updated_at) VALUES "
                            "(?, ?, ?, ?, 'pending', ?, ?)", (send_id, unit, amount, token, now, now))
            await self._set_state(c, ys, "pending", send_id, expect=("unspent",))

    async def sends(self, state: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT id, unit, amount, token, state, created_at FROM sends"
        rows = await self._rows(sql + (" WHERE state = ?" if state else "") + " ORDER BY created_at",
                                (state,) if state else ())
        return [dict(zip(("id", "unit", "amount", "token", "state", "created_at"), r)) for r in rows]

    async def set_send_state(self, send_id: str, state: str) -> None:
        async with self.tx() as c:
            await c.execute("UPDATE sends SET state = ?, updated_at = ? WHERE id = ?",
                            (state, int(time.time()), send_id))

    # ---- redemptions ------------------------------------------------------------------------------------

    async def begin_redemption(self, claim: str, destination: str, unit: str, amount: int,
                               ys: Sequence[str]) -> None:
        """The claim secret written and the proofs marked pending, before the desk is called."""
        now = int(time.time())
        async with self.tx() as c:
            await c.execute("INSERT INTO redemptions (claim, destination, unit, amount, state, created_at, "
                            "updated_at) VALUES (?, ?, ?, ?, 'sending', ?, ?)",
                            (claim, destination, unit, amount, now, now))
            await self._set_state(c, ys, "pending", f"redeem:{claim}", expect=("unspent",))

    async def update_redemption(self, claim: str, **fields: Any) -> None:
        allowed = {"id", "state", "amount_msat", "payment_hash", "payment_preimage", "error_code", "error",
                   "change_token", "refund_token", "taken"}
        if not fields or set(fields) - allowed:
            raise ValueError(f"unknown redemption fields {sorted(set(fields) - allowed)}")
        sets = ", ".join(f"{k} = ?" for k in fields)
        async with self.tx() as c:
            await c.execute(f"UPDATE redemptions SET {sets}, updated_at = ? WHERE claim = ?",
                            [*fields.values(), int(time.time()), claim])

    async def redemptions(self, states: Sequence[str] | None = None) -> list[dict[str, Any]]:
        cols = ("claim", "id", "destination", "unit", "amount", "amount_msat", "state", "payment_hash",
                "payment_preimage", "error_code", "error", "change_token", "refund_token", "taken", "created_at",
                "updated_at")
        sql = f"SELECT {', '.join(cols)} FROM redemptions"
        args: list[Any] = []
        if states:
            sql += f" WHERE state IN ({','.join('?' * len(states))})"
            args = list(states)
        return [dict(zip(cols, r)) for r in await self._rows(sql + " ORDER BY created_at", args)]
