"""Settlement: the units a paid redemption bought go to the mint against its payment (``POST /v1/melt/ehash``).

A quote the mint let go (expired, its budget taken by others) is replaced by a new one for the same units, each
written down before anything is melted against it. A quote for more units than are kept (part of the fee reserve
went back to the caller) is settled for the units kept where the mint serves partial melts (``partial_melt`` in
its info); elsewhere it is released and replaced by one for the units kept. A redemption the mint does not take
now stays ``paid`` for a later try (the watcher, ``hashpool-settle``).

A partial melt needs nothing written before it: the redemption names its quote and its kept proofs, so a melt
whose answer was lost is sent again, and the quote's state (PAID for the units kept) decides.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from hashpool_cln.cashu.models import Proof
from hashpool_cln.ehash import EhashQuote
from hashpool_cln.mintclient import MintError, MintProtocolError, MintUnavailable

from .errors import Code, DeskError
from .states import State
from .store import Record

if TYPE_CHECKING:
    from .desk import Desk

# The NUT error code of a quote the mint let expire.
NUT_QUOTE_EXPIRED = 20007


class Settlement:
    """The desk's settlement steps (a part of ``Desk``)."""

    async def settle(self: Desk, unit: str | None = None) -> dict:
        """Hand every paid redemption's units to the mint (optionally of one unit only)."""
        with self.timings.measure("sqlite"):
            recs = await self.store.list([State.PAID], limit=1_000_000, unit=unit)
        settled, waiting = [], []
        for rec in recs:
            if not self.drive(rec.id):
                continue  # a redeem or a reconcile is settling it right now
            try:
                rec = await self.settle_one(rec)
            finally:
                self.let_go(rec.id)
            (settled if rec.state is State.SETTLED else waiting).append(rec.id)
        return {"settled": settled, "waiting": waiting}

    async def settle_one(self: Desk, rec: Record) -> Record:
        """Hand a paid redemption's units to the mint against its payment; left ``paid`` for a later try when the
        mint does not take them now (see the module's note on quotes for fewer units than quoted)."""
        with self.timings.measure("sqlite"):
            proofs = [Proof.from_dict(json.loads(p)) for p in await self.store.custody(rec.id, state="held")]
        kept = sum(p.amount for p in proofs)
        partial: int | None = None
        if rec.get("returned_units") and rec["quote_units"] != kept:
            partial = kept if await self._partial_melts() else None
            if partial is None:
                # Asked before anything is released: a try before a crash or a lost answer may have settled the
                # quote as a partial melt at a mint that no longer says it serves them.
                done = await self._settled_for(rec, kept)
                if done is not None:
                    return done
                # The quote can never be paid as it is: its budget is given back before a quote for the units
                # kept is asked (which it might otherwise crowd out).
                await self.release_other_quotes(rec.id, keep=None)
                requoted = await self._requote(rec, kept)
                if requoted is None:
                    return await self._get(rec.id)
                rec = requoted
        state, quote = await self._melt(rec, proofs, partial)
        if state == "EXPIRED":
            requoted = await self._requote(rec, kept if partial is not None else rec["quote_units"])
            if requoted is None:
                return await self._get(rec.id)
            rec, partial = requoted, None
            state, quote = await self._melt(rec, proofs)
        if state != "PAID":
            return await self._get(rec.id)
        fields = {} if partial is None else {"quote_units": partial, "quote_amount_msat": quote.amount_msat}
        return await self._move(rec, State.SETTLED, custody_state="spent", **fields)

    async def _settled_for(self: Desk, rec: Record, kept: int) -> Record | None:
        """``rec`` settled, when its quote is already PAID for the ``kept`` units: a partial melt went through, its
        answer was lost, and the mint no longer says it serves them (restarted without). Else None."""
        quote = await self._quote_state(rec)
        if quote is None or quote.state != "PAID" or quote.amount != kept:
            return None
        return await self._move(rec, State.SETTLED, custody_state="spent", quote_units=kept,
                                quote_amount_msat=quote.amount_msat)

    async def _partial_melts(self: Desk) -> bool:
        """Whether the mint settles a quote for fewer units than quoted. A mint whose info cannot be read now gets
        the release-and-requote path, safe either way: a released quote is never melted, and one that does not
        answer leaves the redemption ``paid`` for a later try."""
        try:
            with self.timings.measure("mint"):
                return await self.mint.partial_melt()
        except (MintError, MintUnavailable, MintProtocolError):
            return False

    async def _melt(self: Desk, rec: Record, proofs: list[Proof],
                    partial: int | None = None) -> tuple[str | None, EhashQuote | None]:
        """The quote's state after melting ``proofs`` against it (for ``partial`` units of it, when given), with
        the quote as the mint last showed it: PAID, EXPIRED (the mint let the quote go), or None (refused
        otherwise, or no answer: noted on the redemption)."""
        try:
            with self.timings.measure("mint"):
                quote = await self.mint.melt_ehash(rec["quote_id"], proofs, rec["payment_hash"], rec["preimage"],
                                                   amount=partial)
        except MintError as e:
            # A settlement that went through before a crash answers "spent": the quote's state decides.
            quote = await self._quote_state(rec)
            if quote is not None and quote.state == "PAID" and quote.amount in (partial, rec["quote_units"]):
                return quote.state, quote
            await self._note(rec, Code.MINT_REFUSED, f"settlement refused: {e.detail}"[:300])
            return ("EXPIRED" if e.code == NUT_QUOTE_EXPIRED else None), quote
        except (MintUnavailable, MintProtocolError):
            await self._note(rec, Code.MINT_UNAVAILABLE, "settlement waits for the mint")
            return None, None
        return quote.state, quote

    async def _requote(self: Desk, rec: Record, units: int) -> Record | None:
        """``rec`` (still ``paid``) with a new quote for ``units``, or None when the mint gives none now."""
        request = quote_request(rec["dest_kind"], rec["invoice"])
        try:
            with self.timings.measure("sqlite"):
                ref = await self.store.record_ask(rec.id, rec["unit"], units, request)
            quote = await self.ask_quote(ref, rec["unit"], units, request)
        except DeskError as e:
            await self._note(rec, e.code, f"settlement waits for a new quote: {e.message}"[:300])
            return None
        if quote.unit != rec["unit"] or quote.amount != units or quote.state != "UNPAID":
            await self._note(rec, Code.RATE_REFUSED, "settlement waits: the mint quoted something other than asked",
                             answer=(ref, quote.quote))
            return None
        self._hook("before:requote")
        with self.timings.measure("sqlite"):
            # The answer and the redemption's new quote in one commit.
            await self.store.update(rec.id, answer=(ref, quote.quote), quote_id=quote.quote,
                                    quote_expiry=quote.expiry, quote_units=units, quote_amount_msat=quote.amount_msat)
        self._hook("after:requote")
        await self.release_quotes(rec.id)  # the quote it replaced
        return await self._get(rec.id)

    async def _quote_state(self: Desk, rec: Record) -> EhashQuote | None:
        try:
            with self.timings.measure("mint"):
                return await self.mint.get_melt_quote_ehash(rec["quote_id"])
        except (MintError, MintUnavailable, MintProtocolError):
            return None


def quote_request(dest_kind: str, invoice: str | None) -> str | None:
    """What a melt quote names as its request: a BOLT11 invoice binds the quote to its payment hash at the mint
    (an audit trail for the pool)."""
    return invoice if dest_kind == "bolt11" else None
