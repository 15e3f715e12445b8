"""The desk's ledger: one sqlite file, WAL, ``synchronous=FULL``, every state change committed before it acts.

The ledger has a thread of its own (a ``sqlite.Worker``), and every transaction runs there whole, in one hop from
the event loop: a transaction never waits for the loop between its statements, so under many callers the one
writer is held for the transaction's own work only, not for a loop turn per statement. Transactions that wait
together share one commit (one sync to the disk), each still committed before its caller hears of it.

Two claims make double spending a database error rather than a race: an input's ``Y`` is unique among live
redemptions (one token cannot be in two of them) and a payment hash is unique among live redemptions (one
invoice is never paid twice). A claim is released only when its redemption ends rejected or refunded.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from hashpool_cln import sqlite

from .states import RELEASED, State, transition

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE redemptions (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        mint TEXT NOT NULL,
        unit TEXT NOT NULL,
        amount INTEGER NOT NULL,              -- the caller's token, in units
        dest_kind TEXT NOT NULL,
        destination TEXT NOT NULL,            -- what the caller gave: invoice or offer
        invoice TEXT,                         -- what is paid: the invoice, or the one fetched for an offer
        invoice_expires_at INTEGER,
        payment_hash TEXT,
        pay_method TEXT,                      -- xpay | sendamount
        pay_amount_msat INTEGER,              -- amount given to the pay call (NULL: the invoice's own)
        maxfee_msat INTEGER,
        quote_id TEXT,
        quote_units INTEGER,
        quote_amount_msat INTEGER,
        quote_expiry INTEGER,
        swap_fee INTEGER,
        keyset_id TEXT,                       -- keyset of the desk's outputs
        counter_start INTEGER,                -- NUT-13 counters [start, start + len(outputs))
        custody_amounts TEXT,                 -- JSON list, the outputs bought for the payment
        change_amounts TEXT,                  -- JSON list, the outputs handed back as change
        change_token TEXT,
        refund_token TEXT,
        preimage TEXT,
        amount_msat INTEGER,                  -- delivered to the payee
        amount_sent_msat INTEGER,
        fee_msat INTEGER,
        error_code INTEGER,
        error TEXT,
        paying_at INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX redemptions_state ON redemptions(state);
    CREATE INDEX redemptions_unit ON redemptions(unit);

    CREATE TABLE inputs (
        redemption_id TEXT NOT NULL REFERENCES redemptions(id),
        position INTEGER NOT NULL,
        y TEXT NOT NULL,
        proof TEXT NOT NULL,                  -- JSON, kept to replay the swap after a crash
        live INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (redemption_id, position)
    );
    CREATE UNIQUE INDEX inputs_live_y ON inputs(y) WHERE live = 1;

    CREATE TABLE payment_hashes (
        redemption_id TEXT NOT NULL REFERENCES redemptions(id),
        payment_hash TEXT NOT NULL,
        live INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (redemption_id, payment_hash)
    );
    CREATE UNIQUE INDEX payment_hashes_live ON payment_hashes(payment_hash) WHERE live = 1;

    CREATE TABLE custody (
        redemption_id TEXT NOT NULL REFERENCES redemptions(id),
        position INTEGER NOT NULL,
        proof TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'held',   -- held | spent | refunded | returned (unused fee reserve)
        PRIMARY KEY (redemption_id, position)
    );

    CREATE TABLE counters (
        keyset_id TEXT PRIMARY KEY,
        next INTEGER NOT NULL
    );
    """,
    # the BIP353 name (as given) a redemption's offer was resolved from; `destination` holds the offer
    "ALTER TABLE redemptions ADD COLUMN bip353 TEXT",
    # 1: the node holds a completed payment of this redemption's hash that the desk cannot take as its own (xpay
    # answered "already paid" with none listed, or the one listed carries another label): never refunded
    "ALTER TABLE redemptions ADD COLUMN node_paid INTEGER",
    # The routing fee reserve of a fixed-amount payment, bought as its own outputs so that what routing leaves of
    # it goes back to the caller: reserve_amounts (JSON list) are the last custody outputs; the payment itself
    # needs payment_units; the rate (rate_net_msat over rate_issued units) prices the routing fee paid;
    # returned_units is what went back in the change token (custody rows then 'returned').
    """
    ALTER TABLE redemptions ADD COLUMN reserve_amounts TEXT;
    ALTER TABLE redemptions ADD COLUMN payment_units INTEGER;
    ALTER TABLE redemptions ADD COLUMN rate_net_msat INTEGER;
    ALTER TABLE redemptions ADD COLUMN rate_issued INTEGER;
    ALTER TABLE redemptions ADD COLUMN returned_units INTEGER
    """,
    # The operator's decision on a redemption held for it (hashpool-resolve): paid | refund, who, when, why.
    """
    ALTER TABLE redemptions ADD COLUMN resolved_decision TEXT;
    ALTER TABLE redemptions ADD COLUMN resolved_by TEXT;
    ALTER TABLE redemptions ADD COLUMN resolved_at INTEGER;
    ALTER TABLE redemptions ADD COLUMN resolved_reason TEXT
    """,
    # The claim: sha256 of the per-redemption secret only the redeem answer carries (and the caller chose or
    # was given); whoever shows the secret may see the change and refund tokens. Unique among all redemptions.
    """
    ALTER TABLE redemptions ADD COLUMN claim_hash TEXT;
    CREATE UNIQUE INDEX redemptions_claim ON redemptions(claim_hash) WHERE claim_hash IS NOT NULL
    """,
    # The melt quotes the desk asked for and has not let go of yet, each under a reference of its own (the mint
    # answers the same quote to the same reference): written before the ask, so that a lost answer is asked
    # again and a quote no longer needed is released, across crashes too. quote_asks numbers the references.
    """
    CREATE TABLE quotes (
        ref TEXT PRIMARY KEY,
        redemption_id TEXT NOT NULL REFERENCES redemptions(id),
        unit TEXT NOT NULL,
        units INTEGER NOT NULL,
        request TEXT,
        quote_id TEXT
    );
    CREATE INDEX quotes_redemption ON quotes(redemption_id);
    ALTER TABLE redemptions ADD COLUMN quote_asks INTEGER
    """,
)


T = TypeVar("T")
Db = sqlite.Db


class ClaimConflict(Exception):
    """A live redemption already claims one of these inputs (``what == "input"``) or this payment hash
    (``"payment_hash"``), or any redemption holds this claim secret's hash (``"claim"``)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class BudgetExceeded(Exception):
    """Committing this quote would take the desk past its budget for the epoch."""


class StaleState(Exception):
    """The redemption is no longer in the state the caller expected (someone else moved it)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One redemption row; ``fields`` holds every column by name."""

    fields: dict[str, Any]

    @property
    def id(self) -> str:
        return self.fields["id"]

    @property
    def state(self) -> State:
        return State(self.fields["state"])

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def get(self, key: str, default: Any = None) -> Any:
        value = self.fields.get(key)
        return default if value is None else value

    def amounts(self, key: str) -> list[int]:
        raw = self.fields.get(key)
        return list(json.loads(raw)) if raw else []


class Store:
    """The ledger: writes on one thread and connection, reads on another.

    The file is in WAL mode, so a read never waits for a write, and sees every write committed before it began:
    a read queued behind the writer would wait out its sync to the disk (a few milliseconds each) for nothing.
    """

    def __init__(self, db: Db, reader: Db | None = None) -> None:
        self._db = db
        self._ledger = sqlite.Worker("desk-ledger")
        self._reads_db = db if reader is None else reader
        self._reads = self._ledger if reader is None else sqlite.Worker("desk-reader")

    @property
    def commits(self) -> int:
        """Write transactions committed since the ledger was opened."""
        return self._ledger.commits

    @property
    def syncs(self) -> int:
        """Commits to the file since it was opened: each carries one or more write transactions."""
        return self._ledger.syncs

    @classmethod
    async def open(cls, path: str) -> Store:
        # the ledger holds proofs, which are money: owner-only
        db = await sqlite.open_migrated(path, MIGRATIONS, what="this desk", busy_timeout_ms=5_000)
        try:
            reader = None if path == sqlite.MEMORY else sqlite.connect_blocking(path, busy_timeout_ms=5_000)
        except BaseException:
            db.close()
            raise
        store = cls(db, reader)
        for conn in (db, reader):
            if conn is not None:
                conn.row_factory = sqlite3.Row
        return store

    async def close(self) -> None:
        try:
            if self._reads is not self._ledger:
                await self._reads.close(self._reads_db)
        finally:
            await self._ledger.close(self._db)

    async def _read(self, work: Callable[[Db], T]) -> T:
        """``work(db)`` on the reading thread, outside any transaction."""
        return await self._reads.run(self._reads_db, work, write=False)

    async def _write(self, work: Callable[[Db], T]) -> T:
        """``work(db)`` as one transaction: committed (with whatever writes wait beside it) before this returns,
        rolled back if it raises."""
        return await self._ledger.run(self._db, work, write=True)

    # --- writes -------------------------------------------------------------------------------------------

    async def create(self, fields: dict[str, Any], inputs: Sequence[tuple[str, str]],
                     payment_hash: str | None, then: tuple[State, dict[str, Any]] | None = None) -> Record:
        """Insert a ``new`` redemption claiming ``inputs`` ((Y, proof JSON) pairs) and ``payment_hash``.

        ``then=(state, moves)`` moves it on from ``new`` in the same commit, as ``advance(..., **moves)`` would:
        a redemption priced before it is written down is born ``quoted`` (or ``rejected``) with one sync, and a
        move that fails (BudgetExceeded) leaves nothing written.
        """
        now = int(time.time())
        row = {**fields, "state": State.NEW.value, "created_at": now, "updated_at": now}
        if then is not None:
            transition(State.NEW, then[0])

        def work(db: Db) -> Record:
            try:
                cur = db.execute(
                    f"INSERT INTO redemptions ({', '.join(row)}) VALUES ({', '.join('?' * len(row))}) RETURNING *",
                    tuple(row.values()))
                created = Record(dict(cur.fetchone()))
            except sqlite3.IntegrityError:
                raise ClaimConflict("claim") from None
            try:
                db.executemany("INSERT INTO inputs (redemption_id, position, y, proof) VALUES (?, ?, ?, ?)",
                               [(row["id"], i, y, proof) for i, (y, proof) in enumerate(inputs)])
            except sqlite3.IntegrityError:
                raise ClaimConflict("input") from None
            if payment_hash is not None:
                _claim_payment_hash(db, row["id"], payment_hash)
            if then is not None:
                return _advance(db, row["id"], State.NEW, then[0], now, **then[1])
            return created
        return await self._write(work)

    async def advance(self, redemption_id: str, old: State, new: State, **moves: Any) -> Record:
        """Move ``old → new`` and write its fields in one commit (``moves``: see ``_advance``)."""
        transition(old, new)
        now = int(time.time())
        return await self._write(lambda db: _advance(db, redemption_id, old, new, now, **moves))

    async def update(self, redemption_id: str, *, answer: tuple[str, str] | None = None, **fields: Any) -> None:
        """Write fields that change no state (an error note, a refreshed detail); ``answer=(ref, quote_id)``
        records a melt quote's answer (``answered``) in the same commit."""
        fields["updated_at"] = int(time.time())
        sql = f"UPDATE redemptions SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?"

        def work(db: Db) -> None:
            if answer is not None:
                _answer(db, *answer)
            db.execute(sql, (*fields.values(), redemption_id))
        await self._write(work)

    async def record_ask(self, redemption_id: str, unit: str, units: int, request: str | None) -> str:
        """Write down a melt quote about to be asked for; returns its reference (new for every ask)."""
        return await self._write(lambda db: _record_ask(db, redemption_id, unit, units, request))

    async def open_ask(self, redemption_id: str, unit: str, units: int, request: str | None) -> str | None:
        """The newest recorded reference of this redemption for exactly this ask, if any."""
        row = await self._fetchone(
            "SELECT ref FROM quotes WHERE redemption_id = ? AND unit = ? AND units = ? AND request IS ? "
            "ORDER BY rowid DESC LIMIT 1", (redemption_id, unit, units, request))
        return None if row is None else row[0]

    async def answered(self, ref: str, quote_id: str) -> None:
        await self._write(lambda db: _answer(db, ref, quote_id))

    async def forget_quote(self, ref: str) -> None:
        await self._write(lambda db: db.execute("DELETE FROM quotes WHERE ref = ?", (ref,)))

    async def quotes_to_release(self, redemption_id: str | None = None) -> list[dict[str, Any]]:
        """Quotes the desk no longer needs (of one redemption, or of all): every one but the current quote of a
        redemption that may still settle. Each row also says whether it is the quote a settlement paid, and
        whether it may have been sent: a redemption's quotes are asked only once it holds custody proofs."""
        live = [s.value for s in (State.QUOTED, State.CUSTODY, State.PAYING, State.PAID)]
        sql = ("SELECT q.ref, q.redemption_id, q.unit, q.units, q.request, q.quote_id, "
               "(r.state = 'settled' AND q.quote_id = r.quote_id) AS paid, "
               "EXISTS (SELECT 1 FROM custody c WHERE c.redemption_id = q.redemption_id) AS sent "
               "FROM quotes q JOIN redemptions r ON r.id = q.redemption_id "
               f"WHERE NOT (r.state IN ({', '.join('?' * len(live))}) AND q.quote_id IS r.quote_id)")
        args: list[Any] = list(live)
        if redemption_id is not None:
            sql += " AND q.redemption_id = ?"
            args.append(redemption_id)
        return [dict(row) for row in await self._fetchall(sql + " ORDER BY q.rowid", args)]

    async def quotes_but(self, redemption_id: str, keep: str | None) -> list[dict[str, Any]]:
        """Every recorded quote of a redemption except ``keep`` (None: all of them), in the shape above."""
        rows = await self._fetchall(
            "SELECT ref, redemption_id, unit, units, request, quote_id, 0 AS paid, 1 AS sent FROM quotes "
            "WHERE redemption_id = ? AND quote_id IS NOT ? ORDER BY rowid", (redemption_id, keep))
        return [dict(row) for row in rows]

    # --- reads --------------------------------------------------------------------------------------------

    async def _fetchone(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return await self._read(lambda db: db.execute(sql, args).fetchone())

    async def _fetchall(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        return await self._read(lambda db: db.execute(sql, args).fetchall())

    async def pragma(self, name: str) -> Any:
        """One of the connection's settings (``journal_mode``, ``synchronous``, ``user_version``)."""
        if not name.isidentifier():
            raise ValueError(f"not a pragma: {name!r}")
        return (await self._fetchone(f"PRAGMA {name}"))[0]

    async def get(self, redemption_id: str) -> Record | None:
        row = await self._fetchone("SELECT * FROM redemptions WHERE id = ?", (redemption_id,))
        return Record(dict(row)) if row else None

    async def get_by_claim(self, claim_hash: str) -> Record | None:
        row = await self._fetchone("SELECT * FROM redemptions WHERE claim_hash = ?", (claim_hash,))
        return Record(dict(row)) if row else None

    async def claim_used(self, claim_hash: str) -> bool:
        return await self._fetchone("SELECT 1 FROM redemptions WHERE claim_hash = ?", (claim_hash,)) is not None

    async def list(self, states: Iterable[State] | None = None, limit: int = 100,
                   unit: str | None = None) -> list[Record]:
        sql, args = "SELECT * FROM redemptions WHERE 1 = 1", []
        if states is not None:
            wanted = [s.value for s in states]
            sql += f" AND state IN ({', '.join('?' * len(wanted))})"
            args += wanted
        if unit is not None:
            sql += " AND unit = ?"
            args.append(unit)
        sql += " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        args.append(limit)
        return [Record(dict(r)) for r in await self._fetchall(sql, args)]

    async def claimed_by(self, ys: Sequence[str]) -> set[State]:
        """The states of the live redemptions that claim any of these inputs."""
        def work(db: Db) -> set[State]:
            found: set[State] = set()
            for start in range(0, len(ys), 500):  # within sqlite's bound on parameters
                chunk = list(ys[start:start + 500])
                cur = db.execute(
                    "SELECT DISTINCT r.state FROM inputs i JOIN redemptions r ON r.id = i.redemption_id "
                    f"WHERE i.live = 1 AND i.y IN ({', '.join('?' * len(chunk))})", chunk)
                found |= {State(row[0]) for row in cur.fetchall()}
            return found
        return await self._read(work)

    async def inputs(self, redemption_id: str) -> list[str]:
        """The caller's proofs (JSON), in token order."""
        rows = await self._fetchall("SELECT proof FROM inputs WHERE redemption_id = ? ORDER BY position",
                                    (redemption_id,))
        return [r[0] for r in rows]

    async def custody(self, redemption_id: str, state: str | None = None) -> list[str]:
        """The desk's proofs (JSON) of a redemption, in output order; given ``state``, only those in it."""
        rows = await self._fetchall(
            "SELECT proof FROM custody WHERE redemption_id = ? AND state = COALESCE(?, state) ORDER BY position",
            (redemption_id, state))
        return [r[0] for r in rows]

    async def count_by_state(self) -> dict[str, int]:
        return {r[0]: r[1] for r in await self._fetchall("SELECT state, COUNT(*) FROM redemptions GROUP BY state")}

    async def custody_by_unit(self) -> dict[str, dict[str, int]]:
        """The ehash the desk holds now (custody proofs neither settled nor refunded), per unit."""
        rows = await self._fetchall(
            "SELECT r.unit, COALESCE(SUM(json_extract(c.proof, '$.amount')), 0), COUNT(*), "
            "COUNT(DISTINCT c.redemption_id) FROM custody c JOIN redemptions r ON r.id = c.redemption_id "
            "WHERE c.state = 'held' GROUP BY r.unit ORDER BY r.unit")
        return {unit: {"units": units, "proofs": proofs, "redemptions": count}
                for unit, units, proofs, count in rows}

    async def totals(self, states: list[str]) -> dict[str, int]:
        """Sums over the redemptions in ``states``: how many, their quoted value, what payees got, routing fees."""
        marks = ", ".join("?" * len(states))
        count, value, delivered, fees = await self._fetchone(
            "SELECT COUNT(*), COALESCE(SUM(quote_amount_msat), 0), COALESCE(SUM(amount_msat), 0), "
            f"COALESCE(SUM(fee_msat), 0) FROM redemptions WHERE state IN ({marks})", states)
        return {"redemptions": count, "value_msat": value, "amount_msat": delivered, "fee_msat": fees}

    async def committed_msat(self, unit: str) -> int:
        """What the desk has bought or is buying in ``unit``: quotes of redemptions not released."""
        return await self._read(lambda db: _committed(db, unit))

    async def counter(self, keyset_id: str) -> int:
        found = await self._fetchone("SELECT next FROM counters WHERE keyset_id = ?", (keyset_id,))
        return found[0] if found else 0


# --- steps of a transaction, on the ledger's thread ------------------------------------------------------------


def _advance(db: Db, redemption_id: str, old: State, new: State, now: int, *,
             reserve: tuple[str, int] | None = None, custody: Sequence[str] | None = None,
             custody_state: str | None = None, budget_msat: int | None = None,
             returned: Sequence[int] = (), ask: tuple[str, int, str | None] | None = None,
             answer: tuple[str, str] | None = None, **fields: Any) -> Record:
    """Move ``old → new`` and write ``fields``, inside the caller's transaction.

    ``reserve=(keyset_id, n)`` also takes ``n`` NUT-13 counters of that keyset (``counter_start``);
    ``custody`` stores the desk's proofs; ``custody_state`` marks the held ones spent or refunded;
    ``budget_msat`` refuses (BudgetExceeded) a quote that would take the unit's committed sum past it;
    ``returned`` marks the held custody proofs at these positions returned (handed back to the caller);
    ``ask=(unit, units, request)`` records a melt quote to be asked (``record_ask``) and ``answer=(ref,
    quote_id)`` its answer (``answered``).
    """
    found = db.execute("SELECT state, unit FROM redemptions WHERE id = ?", (redemption_id,)).fetchone()
    if found is None or found[0] != old.value:
        raise StaleState(f"{redemption_id} is {found[0] if found else 'missing'}, not {old}")
    if budget_msat is not None:
        if _committed(db, found[1]) + fields.get("quote_amount_msat", 0) > budget_msat:
            raise BudgetExceeded(found[1])
    if reserve is not None:
        keyset_id, count = reserve
        fields["counter_start"] = _reserve_counters(db, keyset_id, count)
        fields["keyset_id"] = keyset_id
    if custody is not None:
        db.executemany("INSERT INTO custody (redemption_id, position, proof) VALUES (?, ?, ?)",
                       [(redemption_id, i, p) for i, p in enumerate(custody)])
    if returned:
        db.executemany(
            "UPDATE custody SET state = 'returned' WHERE redemption_id = ? AND position = ? AND state = 'held'",
            [(redemption_id, position) for position in returned])
    if custody_state is not None:
        db.execute("UPDATE custody SET state = ? WHERE redemption_id = ? AND state = 'held'",
                   (custody_state, redemption_id))
    if "payment_hash" in fields and fields["payment_hash"] is not None:
        _claim_payment_hash_once(db, redemption_id, fields["payment_hash"])
    if ask is not None:
        _record_ask(db, redemption_id, *ask)
    if answer is not None:
        _answer(db, *answer)
    if new is State.SETTLED:
        # The quote the settlement paid holds nothing at the mint any more: forgotten in this commit.
        db.execute("DELETE FROM quotes WHERE redemption_id = ? AND quote_id = "
                   "(SELECT quote_id FROM redemptions WHERE id = ?)", (redemption_id, redemption_id))
    if new in RELEASED:
        db.execute("UPDATE inputs SET live = 0 WHERE redemption_id = ?", (redemption_id,))
        db.execute("UPDATE payment_hashes SET live = 0 WHERE redemption_id = ?", (redemption_id,))
    row = {**fields, "state": new.value, "updated_at": now}
    cur = db.execute(f"UPDATE redemptions SET {', '.join(f'{k} = ?' for k in row)} WHERE id = ? RETURNING *",
                     (*row.values(), redemption_id))
    return Record(dict(cur.fetchone()))


def _claim_payment_hash(db: Db, redemption_id: str, payment_hash: str) -> None:
    try:
        db.execute("INSERT INTO payment_hashes (redemption_id, payment_hash) VALUES (?, ?)",
                   (redemption_id, payment_hash))
    except sqlite3.IntegrityError:
        raise ClaimConflict("payment_hash") from None


def _claim_payment_hash_once(db: Db, redemption_id: str, payment_hash: str) -> None:
    cur = db.execute("SELECT 1 FROM payment_hashes WHERE redemption_id = ? AND payment_hash = ?",
                     (redemption_id, payment_hash))
    if cur.fetchone() is None:
        _claim_payment_hash(db, redemption_id, payment_hash)


def _reserve_counters(db: Db, keyset_id: str, count: int) -> int:
    found = db.execute("SELECT next FROM counters WHERE keyset_id = ?", (keyset_id,)).fetchone()
    start = found[0] if found else 0
    db.execute("INSERT INTO counters (keyset_id, next) VALUES (?, ?) "
               "ON CONFLICT(keyset_id) DO UPDATE SET next = excluded.next", (keyset_id, start + count))
    return start


def _record_ask(db: Db, redemption_id: str, unit: str, units: int, request: str | None) -> str:
    asks = db.execute("UPDATE redemptions SET quote_asks = COALESCE(quote_asks, 0) + 1 WHERE id = ? "
                      "RETURNING quote_asks", (redemption_id,)).fetchone()[0]
    ref = f"{redemption_id}-{asks}"
    db.execute("INSERT INTO quotes (ref, redemption_id, unit, units, request) VALUES (?, ?, ?, ?, ?)",
               (ref, redemption_id, unit, units, request))
    return ref


def _answer(db: Db, ref: str, quote_id: str) -> None:
    db.execute("UPDATE quotes SET quote_id = ? WHERE ref = ?", (quote_id, ref))


def _committed(db: Db, unit: str) -> int:
    released = [s.value for s in RELEASED]
    cur = db.execute(
        f"SELECT COALESCE(SUM(quote_amount_msat), 0) FROM redemptions WHERE unit = ? "
        f"AND state NOT IN ({', '.join('?' * len(released))})", (unit, *released))
    return cur.fetchone()[0]
