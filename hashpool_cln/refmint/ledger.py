"""The mint's logic, free of HTTP: keysets per epoch, swaps, share issuance, ehash settlement, chain events.

Every operation that moves value runs its checks, then one ``BEGIN IMMEDIATE`` transaction that re-checks
what could have changed and writes; UNIQUE constraints on spent ``Y``s, signed ``B_``s and share hashes make a
double spend impossible even if two requests race past the in-memory reservations.

A chain watcher drives epochs with three calls (all idempotent for a repeated event):

- ``apply_reward(height, block_hash, reward_msat, confirmations)``: a block whose coinbase pays the pool was
  found: it closes the open epoch (and any epoch still waiting after a reorg) and opens the next one.
- ``confirm(block_hash, confirmations)``: the block got deeper; at ``final_confirmations`` its reward is final.
- ``dissolve(block_hash)``: the block left the best chain before becoming final; the epochs it closed wait
  for the next reward.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, TypeVar

from coincurve import PrivateKey, PublicKey

from hashpool_cln import __version__
from hashpool_cln.cashu import conditions, crypto
from hashpool_cln.cashu.errors import CashuError
from hashpool_cln.cashu.keysets import Keyset, derive_keyset_id_v2, derive_mint_keys, input_fee
from hashpool_cln.cashu.models import DLEQ, BlindedMessage, BlindSignature, Proof
from hashpool_cln.cashu.nut20 import verify_quote_signature
from hashpool_cln.cashu.units import MAX_HEIGHT, format_unit
from hashpool_cln.ehash import REFERENCE_PATTERN, EhashQuote, Epoch, quote_amount_msat
from hashpool_cln.refmint import db as dbm
from hashpool_cln.refmint import invoices
from hashpool_cln.refmint.config import MintConfig, load_pool_key, load_seed, prepare_data_dir
from hashpool_cln.refmint.epochs import EPOCH_COLUMNS, EPOCH_FROM, EPOCH_SELECT, EpochRecord, split_reward
from hashpool_cln.refmint.errors import Code, MintError, malformed
from hashpool_cln.refmint.lookup import MAX_LOOKUP_PUBKEYS, NonceBook, verify_lookup
from hashpool_cln.refmint.reservations import Key, Reservations
from hashpool_cln.refmint.shares import HashOrder, display_order, share_amount

log = logging.getLogger(__name__)

KEYSET_AMOUNTS = tuple(1 << i for i in range(63))  # 2^0 .. 2^62: amounts fit sqlite's signed 64-bit integers
MAX_AMOUNT = (1 << 63) - 1
MAX_REWARD_MSAT = 21_000_000 * 100_000_000 * 1000
MAX_CONFIRMATIONS = (1 << 31) - 1  # any depth a chain can have, and far below sqlite's integer range
MAX_TIMESTAMP = (1 << 63) - 1
IDENTITY_DERIVATION = "m/0'/0'"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_POINT = re.compile(r"0[23][0-9a-f]{64}")
_MAX_REQUEST_CHARS = 4096
MAX_LOOKUP_QUOTES = 1000  # quotes one signed lookup answers (the oldest mintable ones)
GENERIC_UNITS = ("hash", "ehash")  # unit names upstream pools send for "this mint's ehash"
ISSUANCE_METHODS = ("ehash", "mining_share")  # one method; mining_share is its older name (an alias)
_REFERENCE = re.compile(REFERENCE_PATTERN)
# Checks of more inputs than this are split over threads, one slice per core: coincurve's calls release the
# interpreter's lock, so a large swap is proved on every core and the event loop serves other requests meanwhile.
SPREAD_INPUTS = 128
T = TypeVar("T")
R = TypeVar("R")


def now_s() -> int:
    return int(time.time())


def _epoch_derivation(seq: int) -> str:
    return f"m/0'/1'/{seq}'"


@dataclass(frozen=True, slots=True)
class ShareQuote:
    quote: str
    header_hash: str  # display order: the key that makes a share quotable once
    request: str  # the header hash as the pool sent it
    unit: str
    amount: int
    pubkey: str | None
    issued: bool
    created_at: int
    updated_at: int
    expiry: int | None

    def to_dict(self) -> dict[str, Any]:
        """CDK's custom mint-quote response (``method`` ehash), with this mint's ``state`` and ``header_hash``."""
        return {
            "quote": self.quote, "request": self.request, "method": "ehash", "header_hash": self.request,
            "unit": self.unit, "amount": self.amount, "amount_paid": self.amount,
            "amount_issued": self.amount if self.issued else 0, "state": "ISSUED" if self.issued else "PAID",
            "expiry": self.expiry, "pubkey": self.pubkey, "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class ProofState:
    Y: str
    state: str
    witness: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"Y": self.Y, "state": self.state, "witness": self.witness}


class _MintKeyset:
    """A keyset with its private keys, as the mint signs and verifies with it."""

    __slots__ = ("keyset", "private", "seq")

    def __init__(self, keyset: Keyset, private: dict[int, PrivateKey], seq: int) -> None:
        self.keyset = keyset
        self.private = private
        self.seq = seq


def _busy(key: Key) -> MintError:
    kind = key[0]
    if kind == "Y":
        return MintError(Code.PROOFS_PENDING, "proofs are pending: another request is spending them")
    if kind == "B_":
        return MintError(Code.OUTPUTS_PENDING, "outputs are pending: another request is signing them")
    return MintError(Code.QUOTE_PENDING, "quote is pending: another request is using it")


class Ledger:
    def __init__(self, config: MintConfig, db: dbm.Database, seed: bytes, pool_pubkey: str) -> None:
        self.config = config
        self.db = db
        self._seed = seed
        self.pool_pubkey = pool_pubkey
        self.identity_pubkey = derive_mint_keys(seed, IDENTITY_DERIVATION, [1])[1].public_key.format().hex()
        self._keysets: dict[str, _MintKeyset] = {}
        self._epochs: dict[str, EpochRecord] = {}  # by unit; this process is the only writer, so it stays exact
        self._reservations = Reservations()
        self._nonces = NonceBook(config.lookup_max_age, now_s())

    # ------------------------------------------------------------------ life cycle

    @classmethod
    async def open(cls, config: MintConfig) -> Ledger:
        prepare_data_dir(config.data_dir)
        seed = load_seed(config.data_dir)
        pool_pubkey = load_pool_key(config.data_dir, config.pool_key).public_key.format().hex()
        db = await dbm.Database.open(config.db_path)
        ledger = cls(config, db, seed, pool_pubkey)
        try:
            await ledger._load()
        except BaseException:
            await db.close()
            raise
        return ledger

    async def close(self) -> None:
        await self.db.close()

    async def _load(self) -> None:
        for kid, unit, derivation, keys_json, fee in await self.db.fetchall(
                "SELECT id, unit, derivation, keys, input_fee_ppk FROM keysets"):
            keys = {int(a): k for a, k in json.loads(keys_json).items()}
            private = derive_mint_keys(self._seed, derivation, sorted(keys))
            derived = {a: p.public_key.format().hex() for a, p in private.items()}
            if derived != keys:
                raise RuntimeError(f"keyset {kid}: the seed in the data directory does not derive its keys")
            seq = int(derivation.rsplit("/", 1)[1].rstrip("'"))
            self._keysets[kid] = _MintKeyset(Keyset(kid, unit, keys, True, fee), private, seq)
        self._epochs = _epoch_map(await self.db.fetchall(EPOCHS_IN_ORDER))
        if not self._epochs:
            def work(conn: dbm.Db) -> tuple[dict[str, EpochRecord], _MintKeyset]:
                made = self._open_epoch(conn, self.config.start_height, now_s())
                return _read_epochs(conn), made
            self._install(*await self.db.write(work))

    def _install(self, epochs: dict[str, EpochRecord], made: _MintKeyset | None) -> None:
        """Serve the epochs a transaction read just before its commit, and the keyset of an epoch it made.

        Called right after the commit with no await in between: no other write can come first, no request
        sees a keyset without its epoch (or one that was rolled back) or an epoch whose counts went stale.
        """
        if made is not None:
            self._keysets[made.keyset.id] = made
        self._epochs = epochs

    def _open_epoch(self, conn: dbm.Db, height: int, now: int) -> _MintKeyset:
        """Create the next epoch (and its keyset) at ``height`` in ``conn``'s transaction; returns the keyset,
        for ``_install`` once the transaction committed."""
        row = dbm.fetchone(conn, "SELECT COALESCE(MAX(seq), 0) + 1 FROM epochs")
        seq = int(row[0])
        taken = {r[0] for r in dbm.fetchall(conn, "SELECT unit FROM epochs WHERE height = ?", (height,))}
        suffix = 0
        while format_unit(self.pool_pubkey, height, suffix) in taken:
            suffix += 1
        unit = format_unit(self.pool_pubkey, height, suffix)
        derivation = _epoch_derivation(seq)
        private = derive_mint_keys(self._seed, derivation, KEYSET_AMOUNTS)
        keys = {a: p.public_key.format().hex() for a, p in private.items()}
        fee = self.config.input_fee_ppk
        kid = derive_keyset_id_v2(keys, unit, None, input_fee_ppk=fee)
        conn.execute(
            "INSERT INTO keysets (id, unit, derivation, keys, input_fee_ppk, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (kid, unit, derivation, json.dumps({str(a): k for a, k in keys.items()}), fee, now))
        conn.execute(
            "INSERT INTO epochs (seq, unit, pool, height, keyset_id, opened_at) VALUES (?, ?, ?, ?, ?, ?)",
            (seq, unit, self.pool_pubkey, height, kid, now))
        return _MintKeyset(Keyset(kid, unit, keys, True, fee), private, seq)

    # ------------------------------------------------------------------ keysets and epochs

    def _epoch_of_keyset(self, kid: str) -> EpochRecord:
        return self._epochs[self._keysets[kid].keyset.unit]

    def _keyset_active(self, kid: str, now: int) -> bool:
        return self._state(self._epoch_of_keyset(kid), now) != "retired"

    def _state(self, rec: EpochRecord, now: int) -> str:
        return rec.state(now, self.config.redeem_window)

    def keysets(self, now: int | None = None) -> list[Keyset]:
        """All keysets, oldest first, with ``active`` as of ``now``."""
        now = now_s() if now is None else now
        out = []
        for mk in sorted(self._keysets.values(), key=lambda m: m.seq):
            k = mk.keyset
            out.append(Keyset(k.id, k.unit, k.keys, self._keyset_active(k.id, now), k.input_fee_ppk))
        return out

    def keyset(self, kid: str) -> Keyset:
        mk = self._keysets.get(kid)
        if mk is None:
            raise MintError(Code.KEYSET_UNKNOWN, f"keyset {kid[:70]!r} is not known")
        return mk.keyset

    @property
    def open_epoch(self) -> EpochRecord:
        return next(r for r in self._epochs.values() if r.closed_at is None)

    async def epochs(self, now: int | None = None) -> list[Epoch]:
        now = now_s() if now is None else now
        return [r.to_epoch(now, self.config.redeem_window) for r in sorted(self._epochs.values(), key=lambda r: r.seq)]

    # ------------------------------------------------------------------ shared checks

    def _check_counts(self, inputs: Sequence[Proof], outputs: Sequence[BlindedMessage]) -> None:
        if len(inputs) > self.config.max_inputs:
            raise MintError(Code.TOO_MANY_INPUTS, f"too many inputs: {len(inputs)} > {self.config.max_inputs}")
        if len(outputs) > self.config.max_outputs:
            raise MintError(Code.TOO_MANY_OUTPUTS, f"too many outputs: {len(outputs)} > {self.config.max_outputs}")

    async def _inputs(self, inputs: Sequence[Proof], now: int) -> tuple[list[PublicKey], str, int, int]:
        """Structural checks of inputs: returns their Y points, their unit, their sum and the input fee."""
        if not inputs:
            raise malformed("inputs must not be empty")
        units: set[str] = set()
        for p in inputs:
            mk = self._keysets.get(p.id)
            if mk is None:
                raise MintError(Code.KEYSET_UNKNOWN, f"keyset {p.id} of an input is not known")
            units.add(mk.keyset.unit)
        if len(units) > 1:
            raise MintError(Code.MULTIPLE_UNITS, "inputs of multiple units")
        ys = await spread(_hash_secrets, [p.secret for p in inputs])
        if len({y.format() for y in ys}) != len(ys):
            raise MintError(Code.DUPLICATE_INPUTS, "duplicate inputs provided")
        total = sum(p.amount for p in inputs)
        fee = input_fee((p.id for p in inputs), {k: m.keyset.input_fee_ppk for k, m in self._keysets.items()})
        return ys, units.pop(), total, fee

    def _outputs(self, outputs: Sequence[BlindedMessage], now: int) -> tuple[str | None, int]:
        """Structural checks of outputs: returns their unit (None if there are none) and their sum."""
        seen: set[str] = set()
        units: set[str] = set()
        for o in outputs:
            mk = self._keysets.get(o.id)
            if mk is None:
                raise MintError(Code.KEYSET_UNKNOWN, f"keyset {o.id} of an output is not known")
            if not self._keyset_active(o.id, now):
                raise MintError(Code.KEYSET_INACTIVE, f"keyset {o.id} is inactive, it cannot sign outputs")
            if o.amount not in mk.private:
                raise MintError(Code.AMOUNT_OUT_OF_RANGE, f"keyset {o.id} has no key for amount {o.amount}")
            if o.B_ in seen:
                raise MintError(Code.DUPLICATE_OUTPUTS, "duplicate outputs provided")
            seen.add(o.B_)
            units.add(mk.keyset.unit)
        if len(units) > 1:
            raise MintError(Code.MULTIPLE_UNITS, "outputs of multiple units")
        return (units.pop() if units else None), sum(o.amount for o in outputs)

    async def _verify_proofs(self, inputs: Sequence[Proof], ys: Sequence[PublicKey], now: int) -> None:
        await spread(partial(self._verify_pairs, now=now), list(zip(inputs, ys)))

    def _verify_pairs(self, pairs: Sequence[tuple[Proof, PublicKey]], now: int) -> list[None]:
        for p, y in pairs:
            key = self._keysets[p.id].private.get(p.amount)
            try:
                c = crypto.point(p.C)
            except CashuError:
                raise MintError(Code.PROOF_INVALID, "proof verification failed: C is not a point") from None
            if key is None or not hmac.compare_digest(y.multiply(key.secret).format(), c.format()):
                raise MintError(Code.PROOF_INVALID, "proof verification failed")
            self._check_condition(p, now)
        return []

    @staticmethod
    def _check_condition(p: Proof, now: int) -> None:
        try:
            condition = conditions.classify(p.secret)
        except CashuError as exc:
            raise MintError(Code.PROOF_INVALID, f"proof verification failed: {exc}") from None
        if condition.kind == conditions.PLAIN:
            return
        if condition.kind != conditions.P2PK:
            raise MintError(Code.PROOF_INVALID,
                            f"proof verification failed: spending condition {condition.kind[:40]!r} is not supported")
        if not conditions.verify_p2pk_witness(p, now):
            raise MintError(Code.PROOF_INVALID, "proof verification failed: the P2PK witness does not unlock it")

    def _sign(self, outputs: Sequence[BlindedMessage]) -> list[BlindSignature]:
        sigs = []
        for o in outputs:
            key = self._keysets[o.id].private[o.amount]
            try:
                b_ = crypto.point(o.B_)
            except CashuError as exc:
                raise malformed(f"output B_ {o.B_[:66]!r}: {exc}") from None
            c_ = crypto.sign(b_, key)
            e, s = crypto.dleq_create(key, b_, c_)
            sigs.append(BlindSignature(o.amount, o.id, c_.format().hex(), DLEQ(e.hex(), s.hex())))
        return sigs

    @staticmethod
    def _spend(conn: dbm.Db, inputs: Sequence[Proof], ys: Sequence[PublicKey], now: int) -> None:
        try:
            conn.executemany(
                "INSERT INTO proofs_used (y, keyset_id, amount, secret, c, witness, spent_at) VALUES (?,?,?,?,?,?,?)",
                [(y.format().hex(), p.id, p.amount, p.secret, p.C, p.witness, now) for p, y in zip(inputs, ys)])
        except dbm.IntegrityError:
            raise MintError(Code.PROOFS_SPENT, "proofs already spent") from None

    @staticmethod
    def _store_signatures(conn: dbm.Db, outputs: Sequence[BlindedMessage], sigs: Sequence[BlindSignature],
                          now: int) -> None:
        try:
            conn.executemany(
                "INSERT INTO promises (b_, keyset_id, amount, c_, dleq_e, dleq_s, created_at) VALUES (?,?,?,?,?,?,?)",
                [(o.B_, s.id, s.amount, s.C_, s.dleq.e, s.dleq.s, now)  # type: ignore[union-attr]
                 for o, s in zip(outputs, sigs)])
        except dbm.IntegrityError:
            raise MintError(Code.OUTPUTS_SIGNED, "outputs have already been signed") from None

    def _hold(self, ys: Sequence[PublicKey], outputs: Sequence[BlindedMessage], *quotes: str) -> Any:
        keys: list[Key] = [("Y", y.format().hex()) for y in ys]
        keys += [("B_", o.B_) for o in outputs]
        keys += [("quote", q) for q in quotes]
        return self._reservations.hold(keys, self.config.pending_wait, _busy)

    # ------------------------------------------------------------------ NUT-03 swap, NUT-07, NUT-09

    async def swap(self, inputs: Sequence[Proof], outputs: Sequence[BlindedMessage]) -> list[BlindSignature]:
        now = now_s()
        self._check_counts(inputs, outputs)
        ys, in_unit, in_total, fee = await self._inputs(inputs, now)
        out_unit, out_total = self._outputs(outputs, now)
        if out_unit is not None and out_unit != in_unit:
            raise MintError(Code.UNIT_MISMATCH, f"inputs are {in_unit}, outputs are {out_unit}")
        if in_total - fee != out_total:
            raise MintError(Code.UNBALANCED,
                            f"inputs ({in_total}) minus the input fee ({fee}) must equal outputs ({out_total})")
        async with self._hold(ys, outputs):
            await self._verify_proofs(inputs, ys, now)
            sigs = self._sign(outputs)

            def work(conn: dbm.Db) -> None:
                self._spend(conn, inputs, ys, now)
                self._store_signatures(conn, outputs, sigs, now)
            await self.db.write(work)
        return sigs

    async def check_state(self, ys: Sequence[str]) -> list[ProofState]:
        rows = dict(await self.db.fetchall(
            f"SELECT y, witness FROM proofs_used WHERE y IN ({dbm.placeholders(ys)})", list(ys)))
        out = []
        for y in ys:
            if y in rows:
                out.append(ProofState(y, "SPENT", rows[y]))
            elif self._reservations.is_held(("Y", y)):
                out.append(ProofState(y, "PENDING", None))
            else:
                out.append(ProofState(y, "UNSPENT", None))
        return out

    async def restore(self, outputs: Sequence[BlindedMessage]) -> tuple[list[BlindedMessage], list[BlindSignature]]:
        if len(outputs) > self.config.max_outputs:
            raise MintError(Code.TOO_MANY_OUTPUTS, f"too many outputs: {len(outputs)} > {self.config.max_outputs}")
        bs = [o.B_ for o in outputs]
        found = {r[0]: r for r in await self.db.fetchall(
            f"SELECT b_, keyset_id, amount, c_, dleq_e, dleq_s FROM promises WHERE b_ IN ({dbm.placeholders(bs)})",
            bs)}
        msgs, sigs = [], []
        for b in dict.fromkeys(bs):
            row = found.get(b)
            if row is not None:
                _, kid, amount, c_, e, s = row
                msgs.append(BlindedMessage(amount, kid, b))
                sigs.append(BlindSignature(amount, kid, c_, DLEQ(e, s)))
        return msgs, sigs

    # ------------------------------------------------------------------ share issuance (method ehash)

    async def create_share_quote(self, header_hash: str, pubkey: str | None, *, order: HashOrder = "display",
                                 amount: int | None = None, unit: str | None = None,
                                 require_pubkey: bool = False) -> ShareQuote:
        """A paid quote for the share whose header hash is ``header_hash`` (given in byte ``order``), stamped
        with the open epoch's unit. ``amount`` and ``unit``, when the pool sends them, must agree with what the
        share earns and name this mint's ehash (``unit`` is advisory: the open epoch is the one issuing)."""
        if not isinstance(header_hash, str) or not _HEX64.fullmatch(header_hash.lower()):
            raise malformed("header_hash must be 64 hex characters")
        request = header_hash.lower()
        if pubkey is None:
            if require_pubkey:
                raise MintError(Code.PUBKEY_INVALID, "pubkey required: every ehash quote is locked to a NUT-20 key")
        else:
            pubkey = _check_pubkey(pubkey)
        if unit is not None and unit not in self._epochs and unit not in GENERIC_UNITS:
            raise MintError(Code.UNIT_UNSUPPORTED, f"unit {unit[:100]!r} is no ehash unit of this mint")
        digest = display_order(request, order)
        earned = share_amount(digest, self.config.min_difficulty)
        if earned == 0:
            raise MintError(Code.AMOUNT_OUT_OF_RANGE,
                            f"share is below the minimum difficulty ({self.config.min_difficulty} leading zero bits)")
        if amount is not None and amount != earned:
            raise MintError(Code.AMOUNT_OUT_OF_RANGE, f"the share earns {earned}, the request says {amount}")
        now = now_s()
        quote = secrets.token_hex(16)

        def work(conn: dbm.Db) -> tuple[str, int, int]:
            # The quote's units count in the epoch's price now, minted or not: nothing later can move it.
            unit, issued, minted = dbm.fetchone(conn, "SELECT unit, issued, minted FROM epochs WHERE closed_at IS NULL")
            if issued + earned > MAX_AMOUNT:
                raise MintError(Code.AMOUNT_OUT_OF_RANGE, "the epoch cannot issue more units")
            try:
                conn.execute(
                    "INSERT INTO share_quotes (quote, header_hash, unit, amount, pubkey, created_at, request)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)", (quote, digest.hex(), unit, earned, pubkey, now, request))
            except dbm.IntegrityError:
                raise MintError(Code.SHARE_DUPLICATE, "this share header hash has already been quoted") from None
            conn.execute("UPDATE epochs SET issued = ? WHERE unit = ?", (issued + earned, unit))
            return unit, issued, minted
        unit, issued, minted = await self.db.write(work)
        self._epochs[unit] = self._epochs[unit].with_counts(issued + earned, minted)
        return ShareQuote(quote, digest.hex(), request, unit, earned, pubkey, False, now, now, None)

    def _share_quote(self, row: tuple) -> ShareQuote:
        quote, header_hash, request, unit, amount, pubkey, issued, created_at, issued_at, priced = row
        epoch = self._epochs[unit]
        # Mintable while the epoch's keyset signs; a quote its epoch's price never counted (made under the
        # rules of schema 3 and not minted in time) expired when its epoch closed.
        expiry = epoch.redeem_until(self.config.redeem_window) if priced else epoch.closed_at
        return ShareQuote(quote, header_hash, request or header_hash, unit, amount, pubkey, bool(issued),
                          created_at, issued_at or created_at, expiry)

    _SHARE_COLUMNS = "quote, header_hash, request, unit, amount, pubkey, issued, created_at, issued_at, priced"

    async def get_share_quote(self, quote: str) -> ShareQuote:
        return (await self.share_quotes([quote]))[0]

    async def share_quotes(self, quote_ids: Sequence[str]) -> list[ShareQuote]:
        """The quotes named, in order (NUT-29 check): all known and no id twice, or nothing."""
        self._check_batch(quote_ids)
        rows = await self.db.fetchall(f"SELECT {self._SHARE_COLUMNS} FROM share_quotes"
                                      f" WHERE quote IN ({dbm.placeholders(quote_ids)})", list(quote_ids))
        found = {r[0]: r for r in rows}
        missing = [q for q in quote_ids if q not in found]
        if missing:
            raise MintError(Code.QUOTE_UNKNOWN, f"unknown quote {missing[0][:80]!r}")
        return [self._share_quote(found[q]) for q in quote_ids]

    def _check_batch(self, quote_ids: Sequence[str]) -> None:
        if not quote_ids:
            raise malformed("quotes must not be empty")
        if len(quote_ids) > self.config.max_batch_size:
            raise MintError(Code.BATCH_TOO_LARGE, f"too many quotes: {len(quote_ids)} > {self.config.max_batch_size}")
        if len(set(quote_ids)) != len(quote_ids):
            raise MintError(Code.DUPLICATE_QUOTES, "duplicate quote ids provided")

    async def share_quote_by_hash(self, header_hash: str) -> ShareQuote:
        """The quote of a share by its header hash given in either byte order (display or internal)."""
        h = header_hash.lower()
        reverse = bytes.fromhex(h)[::-1].hex()
        row = await self.db.fetchone(f"SELECT {self._SHARE_COLUMNS} FROM share_quotes WHERE header_hash IN (?, ?)",
                                     (h, reverse))
        if row is None:
            raise MintError(Code.QUOTE_UNKNOWN, "no quote for this share header hash")
        return self._share_quote(row)

    async def lookup_share_quotes(self, pubkeys: Sequence[str], signatures: Sequence[str], timestamp: int,
                                  nonce: str) -> list[ShareQuote]:
        """The signed lookup by key: the quotes locked to ``pubkeys`` that can still be minted, oldest first."""
        if len(pubkeys) > MAX_LOOKUP_PUBKEYS:
            raise MintError(Code.BATCH_TOO_LARGE, f"too many pubkeys: {len(pubkeys)} > {MAX_LOOKUP_PUBKEYS}")
        if not pubkeys:
            raise malformed("pubkeys must not be empty")
        keys = [_check_pubkey(k) for k in pubkeys]
        now = now_s()
        self._nonces.check_fresh(nonce, timestamp, now)
        verify_lookup(self.identity_pubkey, keys, list(signatures), nonce, timestamp)
        self._nonces.remember(nonce, timestamp, now)  # no await since the check: no other request came between
        wanted = list(dict.fromkeys(keys))
        columns = ", ".join(f"q.{c.strip()}" for c in self._SHARE_COLUMNS.split(","))
        rows = await self.db.fetchall(
            f"SELECT {columns} FROM share_quotes q JOIN epochs e ON e.unit = q.unit"
            " LEFT JOIN rewards r ON r.block_hash = e.reward_block_hash AND r.dissolved = 0"
            f" WHERE q.pubkey IN ({dbm.placeholders(wanted)}) AND q.issued = 0 AND q.priced = 1"
            " AND (e.closed_at IS NULL OR r.final_at IS NULL OR MAX(r.final_at, e.closed_at) + ? > ?)"
            " ORDER BY q.created_at, q.rowid LIMIT ?",
            (*wanted, self.config.redeem_window, now, MAX_LOOKUP_QUOTES))
        return [self._share_quote(r) for r in rows]

    async def mint_shares(self, quote_id: str, outputs: Sequence[BlindedMessage],
                          signature: str | None) -> list[BlindSignature]:
        """NUT-04 mint of one quote (a signature sent for an unlocked quote is ignored)."""
        return await self.mint_batch([quote_id], outputs, [signature], None, single=True)

    async def mint_batch(self, quote_ids: Sequence[str], outputs: Sequence[BlindedMessage],
                         signatures: Sequence[str | None] | None, quote_amounts: Sequence[int] | None, *,
                         single: bool = False) -> list[BlindSignature]:
        """NUT-29 batch mint: every quote checked, signed for and issued in one transaction, or none."""
        now = now_s()
        quotes = await self.share_quotes(quote_ids)
        if signatures is not None and len(signatures) != len(quotes):
            raise MintError(Code.SIGNATURE_INVALID, "signatures must hold one entry per quote")
        if quote_amounts is not None and len(quote_amounts) != len(quotes):
            raise malformed("quote_amounts must hold one amount per quote")
        units = {q.unit for q in quotes}
        if len(units) > 1:
            raise MintError(Code.MULTIPLE_UNITS, "the quotes are of several units")
        unit = units.pop()
        for i, q in enumerate(quotes):
            if q.issued:
                raise MintError(Code.QUOTE_ISSUED, f"quote {q.quote} has already been issued")
            if quote_amounts is not None and quote_amounts[i] != q.amount:
                raise MintError(Code.UNBALANCED, f"quote_amounts[{i}] is {quote_amounts[i]}, the quote is {q.amount}")
        self._check_counts((), outputs)
        if not outputs:
            raise malformed("outputs must not be empty")
        for i, q in enumerate(quotes):
            _check_quote_signature(q, signatures[i] if signatures is not None else None, outputs, single)
        if any(q.expiry is not None and now >= q.expiry for q in quotes):
            raise MintError(Code.QUOTE_EXPIRED, "quote expired: its epoch no longer signs")
        for o in outputs:
            if o.id in self._keysets and self._keysets[o.id].keyset.unit != unit:
                raise MintError(Code.UNIT_MISMATCH, f"the quotes are for {unit}, an output is for another unit")
        _, total = self._outputs(outputs, now)
        expected = sum(q.amount for q in quotes)
        if total != expected:
            raise MintError(Code.UNBALANCED, f"outputs ({total}) must equal the quote amount ({expected})")
        async with self._hold((), outputs, *(q.quote for q in quotes)):
            sigs = self._sign(outputs)

            def work(conn: dbm.Db) -> EpochRecord:
                for q in quotes:
                    cur = conn.execute("UPDATE share_quotes SET issued = 1, issued_at = ?"
                                       " WHERE quote = ? AND issued = 0", (now, q.quote))
                    if cur.rowcount != 1:
                        raise MintError(Code.QUOTE_ISSUED, f"quote {q.quote} has already been issued")
                epoch = EpochRecord.from_row(dbm.fetchone(conn, EPOCH_SELECT + " WHERE e.unit = ?", (unit,)))
                if self._state(epoch, now) == "retired":
                    raise MintError(Code.QUOTE_EXPIRED, "quote expired: its epoch no longer signs")
                if epoch.minted + expected > epoch.issued:
                    raise RuntimeError(f"epoch {unit} would mint more than it quoted")  # never: quotes count first
                self._store_signatures(conn, outputs, sigs, now)
                conn.execute("UPDATE epochs SET minted = ? WHERE unit = ?", (epoch.minted + expected, unit))
                return epoch
            epoch = await self.db.write(work)
            self._epochs[unit] = epoch.with_counts(epoch.issued, epoch.minted + expected)
        return sigs

    # ------------------------------------------------------------------ ehash settlement (melt quotes)

    async def create_melt_quote(self, unit: str, amount: int, request: str | None, *, owner: str = "",
                                reference: str | None = None) -> EhashQuote:
        """A quote committing ``amount`` units' worth of the epoch's budget.

        ``owner`` names the desk asking (a digest of its key). With a ``reference``, the same owner asking again
        for the same unit and amount gets the quote it was first given (a lost answer is recovered by asking
        again, and the budget is held once); the same reference for another unit or amount is 51006.
        """
        now = now_s()
        if reference is not None and not _REFERENCE.fullmatch(reference):
            raise malformed("reference must be 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'")
        if amount <= 0 or amount > MAX_AMOUNT:
            raise MintError(Code.AMOUNT_OUT_OF_RANGE, "amount must be a positive integer below 2^63")
        request = request or None  # CDK's body always carries a request; an empty one binds nothing
        request_hash = _request_payment_hash(request)
        unit_known = unit in self._epochs  # read here: the job below runs on the writer's thread

        def work(conn: dbm.Db) -> EhashQuote:
            if reference is not None:
                known = self._melt_quote_by_reference(conn, owner, reference, now)
                if known is not None:
                    if (known.unit, known.amount) != (unit, amount):
                        raise MintError(Code.REFERENCE_CONFLICT,
                                        f"reference {reference} already names a quote for {known.amount} {known.unit}")
                    return known
            if not unit_known:
                raise MintError(Code.UNIT_UNSUPPORTED, f"unit {unit[:100]!r} is not an epoch of this mint")
            epoch, committed = _budget(conn, unit, now)
            net = self._require_redeemable(epoch, now)
            amount_msat = quote_amount_msat(amount, net, epoch.issued)
            if amount_msat == 0:
                raise MintError(Code.AMOUNT_OUT_OF_RANGE, f"{amount} units of {unit} are worth less than 1 msat")
            if committed + amount_msat > net:
                raise MintError(Code.BUDGET_EXHAUSTED,
                                f"epoch budget exhausted: {net - committed} msat left, the quote needs {amount_msat}")
            quote = secrets.token_hex(16)
            expiry = now + self.config.melt_quote_ttl
            conn.execute(
                "INSERT INTO melt_quotes (quote, unit, amount, amount_msat, request, request_payment_hash, state,"
                " expiry, created_at, owner, reference) VALUES (?, ?, ?, ?, ?, ?, 'UNPAID', ?, ?, ?, ?)",
                (quote, unit, amount, amount_msat, request, request_hash, expiry, now, owner, reference))
            return _melt_quote((quote, unit, amount, amount_msat, "UNPAID", expiry, request_hash, reference, None,
                                request, None), now)
        return await self.db.write(work)

    def _melt_quote_by_reference(self, conn: dbm.Db, owner: str, reference: str, now: int) -> EhashQuote | None:
        row = dbm.fetchone(conn, f"SELECT {self._MELT_COLUMNS} FROM melt_quotes"
                                 " WHERE owner = ? AND reference = ?", (owner, reference))
        return None if row is None else _melt_quote(row, now)

    async def release_melt_quote(self, quote_id: str, owner: str = "") -> EhashQuote:
        """Give an unpaid quote's budget back at once (it becomes EXPIRED for good); idempotent. A paid quote
        cannot be released (20006); a quote of another desk is unknown to this one (51000)."""
        now = now_s()

        def work(conn: dbm.Db) -> EhashQuote:
            row = dbm.fetchone(conn, f"SELECT {self._MELT_COLUMNS}, owner FROM melt_quotes WHERE quote = ?",
                               (quote_id,))
            if row is None or (row[-1] is not None and row[-1] != owner):  # quotes of older versions: no owner
                raise MintError(Code.QUOTE_UNKNOWN, "unknown quote")
            q = _melt_quote(row[:-1], now)
            if q.state == "PAID":
                raise MintError(Code.QUOTE_PAID, "quote is already paid: it cannot be released")
            conn.execute(
                "UPDATE melt_quotes SET released_at = COALESCE(released_at, ?), expiry = MIN(expiry, ?)"
                " WHERE quote = ?", (now, now, quote_id))
            return _melt_quote((*row[:5], min(q.expiry, now), *row[6:-1]), now)
        return await self.db.write(work)

    def _require_redeemable(self, epoch: EpochRecord, now: int) -> int:
        """The epoch's net reward if it is settled and has a price; MintError otherwise."""
        state = self._state(epoch, now)
        if state != "settled":
            raise MintError(Code.EPOCH_NOT_REDEEMABLE, f"epoch {epoch.unit} is {state}, not settled")
        if epoch.issued == 0:
            raise MintError(Code.EPOCH_NOT_REDEEMABLE, f"epoch {epoch.unit} issued no units: it has no price")
        return epoch.net_reward_msat

    _MELT_COLUMNS = ("quote, unit, amount, amount_msat, state, expiry, request_payment_hash, reference, released_at,"
                     " request, preimage")

    async def get_melt_quote(self, quote_id: str) -> EhashQuote:
        row = await self.db.fetchone(f"SELECT {self._MELT_COLUMNS} FROM melt_quotes WHERE quote = ?", (quote_id,))
        if row is None:
            raise MintError(Code.QUOTE_UNKNOWN, "unknown quote")
        return _melt_quote(row, now_s())

    async def melt(self, quote_id: str, inputs: Sequence[Proof], payment_hash: str, preimage: str,
                   amount: int | None = None) -> EhashQuote:
        """Burn ``inputs`` against the quote and mark it PAID. With ``amount`` (a partial melt, when the mint
        serves it), the inputs are worth ``amount ≤ quote.amount`` units: the quote is settled for those units
        alone, at their price, and the rest of its budget is free at once."""
        now = now_s()
        if not _HEX64.fullmatch(payment_hash) or not _HEX64.fullmatch(preimage):
            raise malformed("payment_hash and preimage must be 64 lowercase hex characters")
        if hashlib.sha256(bytes.fromhex(preimage)).hexdigest() != payment_hash:
            raise MintError(Code.PAYMENT_PROOF_INVALID, "sha256(preimage) does not equal payment_hash")
        row = await self.db.fetchone(f"SELECT {self._MELT_COLUMNS} FROM melt_quotes WHERE quote = ?", (quote_id,))
        if row is None:
            raise MintError(Code.QUOTE_UNKNOWN, "unknown quote")
        q = _melt_quote(row, now)
        if row[6] is not None and row[6] != payment_hash:
            raise MintError(Code.PAYMENT_PROOF_INVALID, "payment_hash is not the one of the quote's request")
        if q.state == "PAID":
            raise MintError(Code.QUOTE_PAID, "quote is already paid")
        if row[8] is not None:
            raise MintError(Code.QUOTE_EXPIRED, "quote was released: its budget is no longer held")
        self._check_counts(inputs, ())
        units = self._melt_units(q, amount)
        ys, unit, total, fee = await self._inputs(inputs, now)
        if unit != q.unit:
            raise MintError(Code.UNIT_MISMATCH, f"the quote is for {q.unit}, the inputs are {unit}")
        if total - fee != units:
            named = "the amount named" if units != q.amount else "the quote amount"
            raise MintError(Code.UNBALANCED,
                            f"inputs ({total}) minus the input fee ({fee}) must equal {named} ({units})")
        async with self._hold(ys, (), q.quote):
            await self._verify_proofs(inputs, ys, now)

            def work(conn: dbm.Db) -> tuple[EpochRecord, int, int]:
                state, expiry, released_at = dbm.fetchone(
                    conn, "SELECT state, expiry, released_at FROM melt_quotes WHERE quote = ?", (q.quote,))
                if state == "PAID":
                    raise MintError(Code.QUOTE_PAID, "quote is already paid")
                if released_at is not None:
                    raise MintError(Code.QUOTE_EXPIRED, "quote was released: its budget is no longer held")
                epoch, committed = _budget(conn, q.unit, now)
                net = self._require_redeemable(epoch, now)
                # The units melted are priced as a fresh quote for them would be (all of them when not partial).
                amount_msat = q.amount_msat if units == q.amount else quote_amount_msat(units, net, epoch.issued)
                # An expired quote freed its budget; it may still be honoured if the budget still holds it.
                if expiry <= now and committed + amount_msat > net:
                    raise MintError(Code.QUOTE_EXPIRED, "quote expired and the epoch budget no longer holds it")
                self._spend(conn, inputs, ys, now)
                conn.execute(
                    "UPDATE melt_quotes SET state = 'PAID', amount = ?, amount_msat = ?, payment_hash = ?,"
                    " preimage = ?, paid_at = ? WHERE quote = ?",
                    (units, amount_msat, payment_hash, preimage, now, q.quote))
                redeemed = epoch.redeemed_msat + amount_msat
                conn.execute("UPDATE epochs SET redeemed_msat = ? WHERE unit = ?", (redeemed, q.unit))
                return epoch, amount_msat, redeemed
            epoch, amount_msat, redeemed = await self.db.write(work)
            self._epochs[q.unit] = replace(epoch, redeemed_msat=redeemed)
        return replace(q, amount=units, amount_msat=amount_msat, state="PAID", payment_preimage=preimage)

    def _melt_units(self, q: EhashQuote, amount: int | None) -> int:
        """The units a melt settles its quote for: the quote's, or the ``amount`` a partial melt names (at most
        the quote's). A mint configured without partial melts ignores ``amount``, as a mint that never heard of
        it would: the inputs must then match the quote."""
        if amount is None or not self.config.partial_melt:
            return q.amount
        if amount <= 0 or amount > q.amount:
            raise MintError(Code.UNBALANCED, f"a melt settles 1 to {q.amount} units of this quote, not {amount}")
        return amount

    # ------------------------------------------------------------------ chain events

    async def apply_reward(self, height: int, block_hash: str, reward_msat: int, confirmations: int) -> list[Epoch]:
        """A block at ``height`` paid ``reward_msat`` to the pool: close the open epoch, open the next.

        Returns the epochs the reward backs followed by the open epoch (the newly opened one). Repeating a known
        reward only updates its confirmations. A block at the height whose reward was dissolved, while the
        epoch that reward opened is still the open one, is that boundary **re-mined**: the epochs waiting for a
        reward take it and the open epoch stays open (shares mined after the boundary never dilute the epoch
        before it). Another block at a height that still has an active reward is refused.
        """
        _check_reward_args(height, block_hash, reward_msat, confirmations)
        now = now_s()
        final_at = now if confirmations >= self.config.final_confirmations else None

        def work(conn: dbm.Db) -> tuple[dict[str, EpochRecord], _MintKeyset | None, list[str]]:
            made: _MintKeyset | None = None
            known = dbm.fetchone(
                conn, "SELECT height, reward_msat, dissolved FROM rewards WHERE block_hash = ?", (block_hash,))
            if known is not None and not known[2]:
                if (known[0], known[1]) != (height, reward_msat):
                    raise MintError(Code.REWARD_REFUSED,
                                    f"block {block_hash} is already known with another height or reward")
                self._set_confirmations(conn, block_hash, confirmations, now)
                units = _units_backed_by(conn, block_hash)
            else:
                current = EpochRecord.from_row(dbm.fetchone(conn, EPOCH_SELECT + " WHERE e.closed_at IS NULL"))
                if height < current.height:
                    raise MintError(Code.REWARD_REFUSED,
                                    f"height {height} is below the open epoch's height {current.height}")
                rivals = {bool(r[0]) for r in dbm.fetchall(
                    conn, "SELECT dissolved FROM rewards WHERE height = ? AND block_hash != ?", (height, block_hash))}
                if False in rivals:
                    raise MintError(Code.REWARD_REFUSED,
                                    f"height {height} already has an active reward: dissolve it first")
                waiting = [r for r in map(EpochRecord.from_row, dbm.fetchall(
                    conn, EPOCH_SELECT + " WHERE e.closed_at IS NOT NULL AND e.reward_block_hash IS NULL"
                    " ORDER BY e.seq"))]
                remined = height == current.height and True in rivals and bool(waiting)
                if known is None:
                    conn.execute(
                        "INSERT INTO rewards (block_hash, height, reward_msat, confirmations, final_at, created_at)"
                        " VALUES (?, ?, ?, ?, ?, ?)", (block_hash, height, reward_msat, confirmations, final_at, now))
                else:
                    conn.execute(
                        "UPDATE rewards SET dissolved = 0, confirmations = ?, final_at = ? WHERE block_hash = ?",
                        (confirmations, final_at, block_hash))
                backers = waiting if remined else [*waiting, current]
                parts = split_reward(reward_msat, [b.issued for b in backers])
                if not remined:
                    conn.execute("UPDATE epochs SET closed_at = ?, pool_fee_ppm = ? WHERE seq = ?",
                                 (now, self.config.pool_fee_ppm, current.seq))
                conn.executemany("UPDATE epochs SET reward_block_hash = ?, reward_msat = ? WHERE seq = ?",
                                 [(block_hash, part, b.seq) for b, part in zip(backers, parts)])
                made = None if remined else self._open_epoch(conn, height, now)
                units = [b.unit for b in backers] + [current.unit if made is None else made.keyset.unit]
            return _read_epochs(conn), made, units
        epochs, made, units = await self.db.write(work)
        self._install(epochs, made)
        log.info("reward of block %s at height %d: %d msat", block_hash, height, reward_msat)  # public chain data
        return await self._epochs_named(units)

    async def confirm(self, block_hash: str, confirmations: int) -> list[Epoch]:
        """Record the depth of a reward's block; returns the epochs it backs."""
        if not isinstance(block_hash, str) or not _HEX64.fullmatch(block_hash):
            raise malformed("block_hash must be 64 lowercase hex characters")
        if isinstance(confirmations, bool) or not isinstance(confirmations, int) \
                or not 0 <= confirmations <= MAX_CONFIRMATIONS:
            raise malformed(f"confirmations must be an integer in [0, {MAX_CONFIRMATIONS}]")
        now = now_s()

        def work(conn: dbm.Db) -> tuple[dict[str, EpochRecord], list[str]]:
            row = dbm.fetchone(conn, "SELECT dissolved FROM rewards WHERE block_hash = ?", (block_hash,))
            if row is None or row[0]:
                raise MintError(Code.REWARD_REFUSED, f"no active reward for block {block_hash}")
            self._set_confirmations(conn, block_hash, confirmations, now)
            return _read_epochs(conn), _units_backed_by(conn, block_hash)
        epochs, units = await self.db.write(work)
        self._install(epochs, None)
        return await self._epochs_named(units)

    def _set_confirmations(self, conn: dbm.Db, block_hash: str, confirmations: int, now: int) -> None:
        final_at = now if confirmations >= self.config.final_confirmations else None
        conn.execute(
            "UPDATE rewards SET confirmations = ?, final_at = COALESCE(final_at, ?) WHERE block_hash = ?",
            (confirmations, final_at, block_hash))

    async def dissolve(self, block_hash: str) -> list[Epoch]:
        """Drop the reward of a block that left the best chain before it was final; returns the epochs that
        now wait for the next reward. A final reward cannot be dissolved."""
        if not isinstance(block_hash, str) or not _HEX64.fullmatch(block_hash):
            raise malformed("block_hash must be 64 lowercase hex characters")

        def work(conn: dbm.Db) -> tuple[dict[str, EpochRecord], list[str]]:
            row = dbm.fetchone(conn, "SELECT dissolved, final_at FROM rewards WHERE block_hash = ?", (block_hash,))
            if row is None or row[0]:
                raise MintError(Code.REWARD_REFUSED, f"no active reward for block {block_hash}")
            if row[1] is not None:
                raise MintError(Code.REWARD_REFUSED, f"the reward of block {block_hash} is final")
            units = _units_backed_by(conn, block_hash)
            conn.execute("UPDATE rewards SET dissolved = 1 WHERE block_hash = ?", (block_hash,))
            conn.execute("UPDATE epochs SET reward_block_hash = NULL, reward_msat = 0"
                         " WHERE reward_block_hash = ?", (block_hash,))
            return _read_epochs(conn), units
        epochs, units = await self.db.write(work)
        self._install(epochs, None)
        log.info("reward of block %s dissolved", block_hash)
        return await self._epochs_named(units)

    async def _epochs_named(self, units: Sequence[str]) -> list[Epoch]:
        by_unit = {e.unit: e for e in await self.epochs()}
        return [by_unit[u] for u in units]

    # ------------------------------------------------------------------ NUT-06

    def info(self) -> dict[str, Any]:
        now = now_s()
        open_unit = self.open_epoch.unit
        settled = [r.unit for r in sorted(self._epochs.values(), key=lambda r: r.seq)
                   if self._state(r, now) == "settled"]
        return {
            "name": self.config.name,
            "pubkey": self.identity_pubkey,
            "version": f"hashpool-refmint/{__version__}",
            "description": "Reference Cashu mint for Hashpool ehash epochs",
            "time": now,
            "nuts": {
                "4": {"methods": [{"method": m, "unit": open_unit} for m in ISSUANCE_METHODS], "disabled": False},
                "5": {"methods": [{"method": "ehash", "unit": u} for u in settled], "disabled": False},
                "7": {"supported": True},
                "8": {"supported": False},
                "9": {"supported": True},
                "10": {"supported": True},
                "11": {"supported": True},
                "12": {"supported": True},
                "20": {"supported": True},
                "29": {"max_batch_size": self.config.max_batch_size, "methods": list(ISSUANCE_METHODS)},
                "XX": {"supported": True, "max_age": self.config.lookup_max_age},
            },
            "limits": {"max_inputs": self.config.max_inputs, "max_outputs": self.config.max_outputs},
            "ehash": {
                "pool": self.pool_pubkey,
                "open_unit": open_unit,
                "min_difficulty": self.config.min_difficulty,
                "pool_fee_ppm": self.config.pool_fee_ppm,
                "final_confirmations": self.config.final_confirmations,
                "redeem_window": self.config.redeem_window,
                "melt_quote_ttl": self.config.melt_quote_ttl,
                "partial_melt": self.config.partial_melt,
                "max_inputs": self.config.max_inputs,
                "max_outputs": self.config.max_outputs,
            },
        }


async def spread(func: Callable[[Sequence[T]], list[R]], items: Sequence[T]) -> list[R]:
    """``func(items)``: at once for a few items, else one slice per core, each in its own thread (results in order;
    the first slice to raise raises)."""
    if len(items) <= SPREAD_INPUTS:
        return func(items)
    cores = min(os.cpu_count() or 1, 8)
    step = -(-len(items) // cores)
    parts = await asyncio.gather(*(asyncio.to_thread(func, items[i:i + step]) for i in range(0, len(items), step)))
    return [r for part in parts for r in part]


def _hash_secrets(secrets_: Sequence[str]) -> list[PublicKey]:
    return [crypto.hash_to_curve(s.encode("utf-8")) for s in secrets_]


EPOCHS_IN_ORDER = EPOCH_SELECT + " ORDER BY e.seq"


def _epoch_map(rows: Sequence[tuple]) -> dict[str, EpochRecord]:
    """The epochs of ``EPOCHS_IN_ORDER`` rows, by unit."""
    return {r.unit: r for r in map(EpochRecord.from_row, rows)}


def _read_epochs(conn: dbm.Db) -> dict[str, EpochRecord]:
    """Every epoch, by unit, as a write job sees them (for ``_install`` once it committed)."""
    return _epoch_map(dbm.fetchall(conn, EPOCHS_IN_ORDER))


def _units_backed_by(conn: dbm.Db, block_hash: str) -> list[str]:
    return [r[0] for r in dbm.fetchall(
        conn, "SELECT unit FROM epochs WHERE reward_block_hash = ? ORDER BY seq", (block_hash,))]


def _budget(conn: dbm.Db, unit: str, now: int) -> tuple[EpochRecord, int]:
    """The epoch of ``unit`` and what its budget already carries: its paid quotes and the unpaid ones not yet
    expired (one statement; the index on unit, state and expiry finds the live quotes alone)."""
    row = dbm.fetchone(
        conn, f"SELECT {EPOCH_COLUMNS}, (SELECT COALESCE(SUM(q.amount_msat), 0) FROM melt_quotes q"
              f" WHERE q.unit = e.unit AND q.state = 'UNPAID' AND q.expiry > ?){EPOCH_FROM} WHERE e.unit = ?",
        (now, unit))
    epoch = EpochRecord.from_row(row[:-1])
    return epoch, epoch.redeemed_msat + int(row[-1])


def _melt_quote(row: tuple, now: int) -> EhashQuote:
    """The quote of a ``_MELT_COLUMNS`` row as of ``now`` (an unpaid quote past its expiry is EXPIRED)."""
    quote, unit, amount, amount_msat, state, expiry, _, reference, _, request, preimage = row
    if state == "UNPAID" and expiry <= now:
        state = "EXPIRED"
    return EhashQuote(quote, unit, amount, amount_msat, state, expiry, reference, request, preimage)


def _request_payment_hash(request: str | None) -> str | None:
    """The payment hash a BOLT11 ``request`` binds the quote to; other requests (BOLT12) are kept as notes."""
    if request is None:
        return None
    if len(request) > _MAX_REQUEST_CHARS:
        raise malformed(f"request is longer than {_MAX_REQUEST_CHARS} characters")
    if request.lower().startswith("ln") and not request.lower().startswith(("lno", "lni", "lnr")):
        try:
            return invoices.payment_hash(request)
        except invoices.InvoiceError as exc:
            raise malformed(f"request looks like a BOLT11 invoice but does not decode: {exc}") from None
    return None


def _check_quote_signature(q: ShareQuote, signature: str | None, outputs: Sequence[BlindedMessage],
                           single: bool) -> None:
    """NUT-20: a locked quote needs its key's signature over the quote and all outputs; in a NUT-29 batch an
    unlocked quote must come with null (a single mint ignores a signature it does not need)."""
    if q.pubkey is None:
        if signature is not None and not single:
            raise MintError(Code.SIGNATURE_INVALID, f"quote {q.quote} is not locked: its signature must be null")
    elif signature is None:
        raise MintError(Code.SIGNATURE_INVALID, f"quote {q.quote} is locked to a pubkey: a signature is required")
    elif not verify_quote_signature(q.pubkey, q.quote, outputs, signature):
        raise MintError(Code.SIGNATURE_INVALID, f"the signature for quote {q.quote} is invalid")


def _check_pubkey(pubkey: str) -> str:
    """A NUT-20 key: a compressed secp256k1 point (66 hex), lowercased; 20009 otherwise."""
    key = pubkey.lower() if isinstance(pubkey, str) else ""
    if not _POINT.fullmatch(key):
        raise MintError(Code.PUBKEY_INVALID, "pubkey must be a compressed secp256k1 public key (66 hex)")
    try:
        crypto.point(key)
    except CashuError:
        raise MintError(Code.PUBKEY_INVALID, "pubkey is not a point on secp256k1") from None
    return key


def _check_reward_args(height: int, block_hash: str, reward_msat: int, confirmations: int) -> None:
    def is_int(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if not is_int(height) or not 0 <= height <= MAX_HEIGHT:
        raise malformed(f"height must be an integer in [0, {MAX_HEIGHT}]")
    if not isinstance(block_hash, str) or not _HEX64.fullmatch(block_hash):
        raise malformed("block_hash must be 64 lowercase hex characters")
    if not is_int(reward_msat) or not 0 <= reward_msat <= MAX_REWARD_MSAT:
        raise malformed("reward_msat must be a non-negative integer no larger than 21M BTC")
    if not is_int(confirmations) or not 0 <= confirmations <= MAX_CONFIRMATIONS:
        raise malformed(f"confirmations must be an integer in [0, {MAX_CONFIRMATIONS}]")
