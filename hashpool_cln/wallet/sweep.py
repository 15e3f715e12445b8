"""Sweeping: find the miner's share quotes by key, check them in a batch, mint them in batches into NUT-13 outputs.

Each batch is a wallet operation (written with its counters before the request): a lost answer is replayed, the
replay refused because the first went through is recovered by NUT-09 restore of the same outputs, and a crash
is finished at the next start the same way. A quote is minted once or not at all: it joins a batch only while
the mint says PAID and no open operation holds it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hashpool_cln.cashu.amounts import split_amount
from hashpool_cln.cashu.models import BlindSignature
from hashpool_cln.cashu.nut13 import Output
from hashpool_cln.wallet.issuance import LOOKUP_LIMIT, Issuance, MintQuote
from hashpool_cln.wallet.wallet import Wallet

Progress = Callable[[int, int], None]


@dataclass
class SweepResult:
    found: int = 0  # quotes the lookup returned
    minted: int = 0  # quotes minted in this sweep
    units: dict[str, int] = field(default_factory=dict)
    batches: int = 0

    def to_dict(self) -> dict[str, object]:
        return {"quotes_found": self.found, "quotes_minted": self.minted, "batches": self.batches,
                "units": self.units}


def batches(quotes: Sequence[MintQuote], max_quotes: int, max_outputs: int) -> list[list[MintQuote]]:
    """Quotes grouped by unit (NUT-29 batches are single-unit), each batch within both of the mint's limits."""
    out: list[list[MintQuote]] = []
    for unit in sorted({q.unit for q in quotes}):
        current: list[MintQuote] = []
        outputs = 0
        for q in (q for q in quotes if q.unit == unit):
            n = len(split_amount(q.amount))
            if current and (len(current) >= max_quotes or outputs + n > max_outputs):
                out.append(current)
                current, outputs = [], 0
            current.append(q)
            outputs += n
        if current:
            out.append(current)
    return out


async def sweep(wallet: Wallet, issuance: Issuance, *, batch_size: int | None = None,
                progress: Progress | None = None) -> SweepResult:
    """Sweep until the lookup finds nothing more to mint (it answers at most LOOKUP_LIMIT quotes at a time)."""
    await wallet.recover()
    result = SweepResult()
    while True:
        found = await issuance.lookup([wallet.keys.lock_key])
        await wallet.store.see_quotes((q.quote, q.unit, q.amount, q.state) for q in found)
        result.found += len(found)
        minted = await _mint_paid(wallet, issuance, result, batch_size, progress)
        if len(found) < LOOKUP_LIMIT or not minted:
            return result


async def _mint_paid(wallet: Wallet, issuance: Issuance, result: SweepResult, batch_size: int | None,
                     progress: Progress | None) -> int:
    """Batch check every quote the wallet may mint, then mint the PAID ones in batches; returns how many."""
    max_quotes = min(batch_size or 10**9, await issuance.max_batch())
    candidates = [q for q, _, _ in await wallet.store.mintable_quotes()]
    # NUT-29 check right before minting: quotes seen earlier may have been minted since (by a run that crashed).
    checked: list[MintQuote] = []
    for i in range(0, len(candidates), max_quotes):
        checked += await issuance.check(candidates[i:i + max_quotes])
    now = int(time.time())
    # A quote past its expiry would make the mint refuse its whole batch: recorded as such, never asked again.
    await wallet.store.see_quotes((q.quote, q.unit, q.amount, "EXPIRED" if q.state == "PAID" and q.expired(now)
                                   else q.state) for q in checked)
    paid = [q for q in checked if q.state == "PAID" and not q.expired(now)]
    done = 0
    if progress is not None:
        progress(0, len(paid))
    for chunk in batches(paid, max_quotes, await issuance.max_outputs()):
        keyset = await wallet.active_keyset(chunk[0].unit)
        amounts = [a for q in chunk for a in split_amount(q.amount)]
        op = await wallet.store.begin_operation(f"mint-{secrets.token_hex(8)}", "mint", keyset.id, amounts,
                                                quotes=[q.quote for q in chunk])

        async def request(outputs: list[Output], chunk: list[MintQuote] = chunk) -> list[BlindSignature]:
            return await issuance.mint_batch(chunk, [o.message for o in outputs], wallet.keys.lock_key)

        await wallet.run(op, request)
        done += len(chunk)
        result.minted += len(chunk)
        result.batches += 1
        result.units[chunk[0].unit] = result.units.get(chunk[0].unit, 0) + sum(amounts)
        if progress is not None:
            progress(done, len(paid))
    return done
