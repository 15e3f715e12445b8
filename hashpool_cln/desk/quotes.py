"""The melt quotes the desk asks the mint for, and their release once no longer needed (a part of ``Desk``).

A melt quote holds part of its epoch's reward at the mint until it is paid, expires or is released. Every ask is
written down (``quotes`` in the ledger) under a reference of its own before it is sent: the mint answers the same
quote to the same reference, so an answer lost on the way is asked for again without holding the budget twice.
Any quote the desk no longer needs (its redemption rejected or refunded, or the quote replaced by another) is
released (``POST /v1/melt/quote/ehash/release``) right away, or by the next reconciliation when the mint does not
answer; a quote whose answer never came is first found again by its reference. A mint without the release route
leaves the quote to expire.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from hashpool_cln.ehash import EhashQuote
from hashpool_cln.mintclient import MintError, MintProtocolError, MintUnavailable, MintUnsupported

from .errors import Code, DeskError

if TYPE_CHECKING:
    from .desk import Desk

log = logging.getLogger("hashpool_cln.desk.quotes")

# The mint's refusal of a melt quote because the epoch's budget is committed (docs/ehash-mint-api.md).
MINT_BUDGET_EXHAUSTED = 51002


class Quotes:
    """Asking for melt quotes and letting them go."""

    async def ask_quote(self: Desk, ref: str, unit: str, units: int, request: str | None) -> EhashQuote:
        """Ask the mint for the quote of a recorded reference; a lost answer is asked for once more under the
        same reference (the mint answers the same quote). The answer is the caller's to record. DeskError when
        the mint gives none (a refusal forgets the reference: nothing is held under it)."""
        try:
            try:
                with self.timings.measure("mint"):
                    quote = await self.mint.melt_quote_ehash(unit, units, request, reference=ref)
            except MintUnavailable:
                with self.timings.measure("mint"):
                    quote = await self.mint.melt_quote_ehash(unit, units, request, reference=ref)
        except MintUnavailable:
            raise DeskError(Code.MINT_UNAVAILABLE, "the mint did not answer the quote request") from None
        except MintProtocolError as e:
            raise DeskError(Code.MINT_REFUSED, f"the mint's quote is unusable: {e}") from None
        except MintError as e:
            with self.timings.measure("sqlite"):
                await self.store.forget_quote(ref)  # refused: no quote holds anything under this reference
            if e.code == MINT_BUDGET_EXHAUSTED:
                raise DeskError(Code.EPOCH_BUDGET_EXHAUSTED, "the epoch's budget at the mint is used up",
                                {"mint_code": e.code}) from None
            raise DeskError(Code.MINT_REFUSED, f"the mint refused a quote: {e.detail}"[:300],
                            {"mint_code": e.code}) from None
        return quote

    async def release_quotes(self: Desk, redemption_id: str | None = None) -> int:
        """Release the quotes no longer needed (of one redemption, or of every one no call is driving); returns
        how many are still waiting for the mint. Never raises for the mint's sake."""
        with self.timings.measure("sqlite"):
            rows = await self.store.quotes_to_release(redemption_id)
        waiting = 0
        for row in rows:
            if redemption_id is None and self.driven(row["redemption_id"]):
                continue  # its call may still be asking for it
            if not await self._release(row):
                waiting += 1
        return waiting

    async def release_other_quotes(self: Desk, redemption_id: str, keep: str | None) -> None:
        """Release every quote of a redemption but ``keep`` (None: all), while its call still drives it."""
        with self.timings.measure("sqlite"):
            rows = await self.store.quotes_but(redemption_id, keep)
        for row in rows:
            await self._release(row)

    async def _release(self: Desk, row: dict) -> bool:
        """Let one recorded quote go; False when the mint cannot be asked now (the row stays for a later try)."""
        quote_id = row["quote_id"]
        try:
            if quote_id is None and not row["sent"]:
                pass  # written down with the plan, never asked: nothing is held under it
            elif not row["paid"]:
                if quote_id is None:  # the answer was lost: the same reference finds the same quote
                    with self.timings.measure("mint"):
                        quote_id = (await self.mint.melt_quote_ehash(row["unit"], row["units"], row["request"],
                                                                     reference=row["ref"])).quote
                with self.timings.measure("mint"):
                    await self.mint.release_melt_quote_ehash(quote_id)
        except MintError:
            pass  # refused now (no quote under the reference, or it was paid): nothing is held for the desk
        except MintUnsupported:
            # A mint without the release route: asking again would never succeed. The quote holds its budget
            # until it expires, as it would at any mint without releases.
            log.info("quote %s of redemption %s is left to expire: the mint cannot release quotes", row["ref"],
                     row["redemption_id"])
        except (MintUnavailable, MintProtocolError) as e:
            log.info("quote %s of redemption %s waits to be released: %s", row["ref"], row["redemption_id"],
                     type(e).__name__)
            return False
        with self.timings.measure("sqlite"):
            await self.store.forget_quote(row["ref"])
        return True
