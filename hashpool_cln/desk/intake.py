"""Step 1 of a redemption (DESIGN §2): read the caller's token and check it against the desk's rules and what
the mint publishes. Everything here is local or a cached read of the mint: no swap, no payment.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hashpool_cln.cashu.errors import TokenError
from hashpool_cln.cashu.keysets import Keyset, input_fee_by_keyset
from hashpool_cln.cashu.models import Proof, Token
from hashpool_cln.cashu.tokens import resolve_short_ids
from hashpool_cln.ehash import Epoch
from hashpool_cln.mintclient import MintClient, MintError, MintLimits, MintProtocolError, MintUnavailable

from . import cpu, policy, wallet
from .config import DeskConfig
from .errors import Code, DeskError
from .timing import Timings

CACHE_SECONDS = 30
# A keyset the cached list does not know makes the list be read again, at most this often: a new epoch's keyset
# is found at once, and made-up keyset ids cannot make the desk hammer the mint.
KEYSET_REFRESH_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Checked:
    """A token that passed every local check, with what the later steps need from the mint."""

    summary: cpu.Summary
    ids: dict[str, str]  # each keyset id as the token wrote it → the mint's full id
    epoch: Epoch
    keysets: dict[str, Keyset]  # every keyset of the unit, by id (keys loaded for the token's)
    pool_fee_ppm: int  # assumed only when the epoch does not publish its net reward
    proofs: tuple[Proof, ...] | None = None  # with full keyset ids; only when asked for (a redemption)

    @property
    def mint(self) -> str:
        return self.summary.mint

    @property
    def unit(self) -> str:
        return self.summary.unit

    @property
    def amount(self) -> int:
        return self.summary.amount

    @property
    def token(self) -> Token:
        """The token with full keyset ids; only for a token checked ``with_proofs``."""
        if self.proofs is None:
            raise RuntimeError("the token was checked without its proofs")
        return self.summary.token(self.proofs)

    @property
    def ys(self) -> tuple[str, ...]:
        ys = self.summary.ys
        return tuple(ys[i:i + cpu.Y_CHARS] for i in range(0, len(ys), cpu.Y_CHARS))

    def swap_fee(self) -> int:
        """The NUT-02 input fee of swapping every proof, counted per keyset rather than proof by proof."""
        counts: Counter[str] = Counter()
        for kid, count in self.summary.per_keyset.items():
            counts[self.ids[kid]] += count
        return input_fee_by_keyset(counts, self.fees_ppk)

    @property
    def fees_ppk(self) -> dict[str, int]:
        return {kid: k.input_fee_ppk for kid, k in self.keysets.items()}

    def output_keyset(self) -> Keyset:
        """The keyset the desk's outputs use: the newest active one of the token's epoch."""
        epoch_keysets = self.epoch.keysets
        active = [k for k in self.keysets.values() if k.active and (not epoch_keysets or k.id in epoch_keysets)]
        if not active:
            raise DeskError(Code.EPOCH_NOT_REDEEMABLE, "the mint has no active keyset for this unit",
                            {"unit": self.unit})
        return max(active, key=lambda k: k.id)

    def whole_units(self) -> int:
        """Units a whole-value redemption buys: all of the token's, less the input fees of the swap and the
        settlement."""
        available = self.amount - self.swap_fee()
        units = wallet.units_after_fee(available, self.output_keyset().input_fee_ppk)
        if units <= 0:
            raise DeskError(Code.INSUFFICIENT_VALUE, "the token does not cover the mint's input fees")
        return units

    def value(self, units: int) -> int:
        """What ``units`` of the token's epoch are worth at its published rate."""
        return policy.epoch_value(units, self.epoch, self.pool_fee_ppm)


class Catalog:
    """What the mint publishes (epochs, keysets, keys, its pool fee), read through a short cache."""

    def __init__(self, mint: MintClient, config: DeskConfig, timings: Timings) -> None:
        self.mint = mint
        self.config = config
        self.timings = timings
        self.entries: dict[str, tuple[float, Any]] = {}

    def clear(self) -> None:
        self.entries.clear()

    async def _cached(self, key: str, fetch: Callable[[], Any], fresh: bool = False) -> Any:
        hit = self.entries.get(key)
        if hit is not None and not fresh and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1]
        try:
            with self.timings.measure("mint"):
                value = await fetch()
        except MintUnavailable:
            raise DeskError(Code.MINT_UNAVAILABLE, "the mint did not answer") from None
        except MintProtocolError as e:
            raise DeskError(Code.MINT_REFUSED, f"the mint's answer is unusable: {e}") from None
        except MintError as e:
            raise DeskError(Code.MINT_REFUSED, f"the mint refused: {e.detail}", {"mint_code": e.code}) from None
        self.entries[key] = (time.monotonic(), value)
        return value

    async def epoch(self, unit: str) -> Epoch | None:
        for fresh in (False, True):
            epochs = await self._cached("epochs", self.mint.epochs, fresh)
            found = next((e for e in epochs if e.unit == unit), None)
            if found is not None and found.state == "settled":
                return found
        return found

    async def pool_fee(self) -> int:
        if self.config.pool_fee_ppm is not None:
            return self.config.pool_fee_ppm
        info = await self._cached("info", self.mint.info)
        fee = info.get("ehash", {}).get("pool_fee_ppm", 0) if isinstance(info, dict) else 0
        return fee if type(fee) is int and 0 <= fee <= 1_000_000 else 0

    async def keysets(self, missing: Iterable[str] = ()) -> list[Keyset]:
        """The mint's keysets; read again (once, and not more often than ``KEYSET_REFRESH_SECONDS``) when the
        cached list lacks one of the ids in ``missing`` (full ids, or short ids by prefix)."""
        known = await self._cached("keysets", self.mint.keysets)
        ids = [k.id for k in known]
        if all(any(kid == i or (len(kid) == 16 and i.startswith(kid)) for i in ids) for kid in missing):
            return known
        hit = self.entries.get("keysets")
        if hit is not None and time.monotonic() - hit[0] < KEYSET_REFRESH_SECONDS:
            return known
        return await self._cached("keysets", self.mint.keysets, fresh=True)

    async def keys(self, keyset_id: str) -> Keyset:
        return await self._cached("keys:" + keyset_id, lambda: self.mint.keys(keyset_id))

    async def limits(self) -> MintLimits:
        """How many inputs and outputs the mint takes per request (``MintClient.limits``, read once)."""
        return await self._cached("limits", self.mint.limits)


async def check_token(text: Any, catalog: Catalog, *, now: int, own_pubkey: str, worker: cpu.Worker,
                      with_proofs: bool = False) -> Checked:
    """Parse ``text`` and check mint, unit, epoch, keysets, proof amounts and conditions; DeskError on the first
    fault. A large token is read, checked and hashed off the event loop (``cpu``); its proofs are built only
    ``with_proofs`` (a redemption, which takes them into custody)."""
    config, timings = catalog.config, catalog.timings
    if not isinstance(text, str):
        raise DeskError(Code.INVALID_PARAMS, "token must be a string")
    try:
        with timings.measure("crypto"):
            summary, proofs = await worker.read(text, own_pubkey, with_proofs)
    except TokenError as e:
        raise DeskError(Code.INVALID_TOKEN, str(e), {"reason": e.reason}) from None
    policy.check_mint(summary.mint, config)
    policy.check_unit(summary.unit, config)
    check_inputs(summary.count, await catalog.limits())
    epoch = policy.check_epoch(summary.unit, await catalog.epoch(summary.unit), now)
    if summary.amount > epoch.issued:
        raise DeskError(Code.PROOF_INVALID, "the token holds more units than its epoch issued",
                        {"unit": summary.unit})
    unit_keysets = {k.id: k for k in await catalog.keysets(summary.keyset_ids) if k.unit == summary.unit}
    try:
        ids = full_ids(summary, unit_keysets)
    except TokenError as e:
        raise DeskError(Code.KEYSET_REFUSED, str(e), {"reason": e.reason}) from None
    for kid in dict.fromkeys(ids.values()):
        policy.check_keyset(unit_keysets[kid], summary.unit, now)
        if epoch.keysets and kid not in epoch.keysets:
            raise DeskError(Code.KEYSET_REFUSED, "a proof's keyset is not one of the epoch's", {"keyset": kid})
        unit_keysets[kid] = await catalog.keys(kid)
    check_proofs(summary, ids, unit_keysets)
    # The mint's current fee is only a fallback: an epoch's price rests on the fee fixed into it.
    fee = 0 if epoch.net_reward_msat is not None else await catalog.pool_fee()
    built = None
    if with_proofs and proofs is not None:
        with timings.measure("crypto"):
            built = await proofs.build(ids)
    return Checked(summary=summary, ids=ids, epoch=epoch, keysets=unit_keysets, pool_fee_ppm=fee, proofs=built)


def full_ids(summary: cpu.Summary, keysets: dict[str, Keyset]) -> dict[str, str]:
    """Each keyset id of the token → the mint's full id (``resolve_short_ids``, on one proof per keyset)."""
    resolved = resolve_short_ids(summary.token(summary.samples), keysets)
    return {old.id: new.id for old, new in zip(summary.samples, resolved.proofs)}


def check_inputs(count: int, limits: MintLimits) -> None:
    """A token is swapped into custody in one request, so it may hold no more proofs than the mint takes in one
    (refused before anything is asked or written: splitting it over several swaps would leave a redemption half
    in custody whenever a later swap fails)."""
    if count > limits.max_inputs:
        raise DeskError(Code.TOO_MANY_PROOFS, f"the token holds {count} proofs; the mint takes at most "
                        f"{limits.max_inputs} in one swap: swap it into fewer proofs first",
                        {"proofs": count, "max_inputs": limits.max_inputs})


def check_outputs(count: int, limits: MintLimits) -> None:
    if count > limits.max_outputs:
        raise DeskError(Code.TOO_MANY_PROOFS, f"custody would need {count} outputs; the mint signs at most "
                        f"{limits.max_outputs} in one swap", {"outputs": count, "max_outputs": limits.max_outputs})


def check_proofs(summary: cpu.Summary, ids: dict[str, str], keysets: dict[str, Keyset]) -> None:
    """Each proof's amount and spending condition, then duplicates; the first fault in proof order.

    Whether the mint signed the proofs is not checked here: the custody swap proves them, and nothing holds any
    of the mint's budget before it (the melt quote is asked after custody, DESIGN §1, threat model). A DLEQ
    proof a token carries is therefore not verified: it serves the wallet, not the desk's safety.
    """
    # ``amounts`` ends at the first refused condition, so any bad amount it holds comes first in proof order.
    bad = [(i, amount) for (kid, amount), i in summary.amounts.items() if amount not in keysets[ids[kid]].keys]
    if bad:
        i, amount = min(bad)
        raise DeskError(Code.PROOF_INVALID, f"proof {i} has an amount its keyset cannot sign",
                        {"index": i, "amount": amount})
    if summary.refused is not None:
        i, message, reason = summary.refused
        raise DeskError(Code.CONDITION_REFUSED, message, {"index": i, "reason": reason})
    if summary.duplicate:
        raise DeskError(Code.INVALID_TOKEN, "the token holds the same proof twice")
