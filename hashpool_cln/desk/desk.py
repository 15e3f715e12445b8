"""The redemption desk: ehash in, a Lightning payment out, never paying before it holds the tokens (DESIGN §2).

One redemption, step by step (each step's state is committed before the step acts):

    parse      the token: mint, unit, keysets, amounts, conditions — all local, no swap, no payment (intake.py)
    resolve    the destination: decode; for an offer fetch its invoice (kept in the ledger) (destination.py)
    quoted     written down: the token's proofs and the payment hash claimed (unique among live redemptions),
               priced at the epoch's published rate and planned (the units needed, the NUT-13 counters of the
               desk's outputs), all in one commit; nothing asked of the mint yet. (``new``, the claim alone, is
               only ever seen in ledgers of earlier versions: pricing asks nothing of anyone, so it shares the
               claim's commit.)
    custody    the caller's proofs swapped into the desk's outputs: the units bought plus change for the caller
    paying     the mint's melt quote for exactly the custody units (asked now, under the redemption's reference),
               and the payment to the destination
    paid       the preimage, the receipt
    settled    the bought units handed to the mint against the payment
    rejected   nothing happened; refunded: the custody proofs went back to the caller as a refund token

Every token takes one path: custody comes before the melt quote. The swap is what proves the proofs (a forged
token fails there with ``PROOF_INVALID`` and leaves no state at the mint), so no token holds any of the epoch's
budget at the mint before the mint has accepted its proofs, and the desk need not verify a token's DLEQ proofs
(cashu-ts and others send none). The price of that order: a quote the mint then refuses (its budget taken,
``EPOCH_BUDGET_EXHAUSTED``; a price off the published rate, ``RATE_REFUSED``) refunds the custody proofs rather
than leaving the token untouched.

The fee reserve's arithmetic (what a fixed-amount payment buys on top of its amount, and what routing leaves of
it for the caller) is in ``reserve.py``; handing the bought units to the mint is ``settlement.py``.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from hashpool_cln.cashu import conditions, crypto, nut13
from hashpool_cln.cashu.models import BlindedMessage, BlindSignature, Proof
from hashpool_cln.cashu.tokens import make_token, parse_token
from hashpool_cln.lightning.port import NodeError, NodeInfo, NodePort, NodeUnavailable, Payment
from hashpool_cln.mintclient import MintClient, MintError, MintProtocolError, MintUnavailable, ProofState

from . import claims, cpu, intake, policy, reserve, wallet
from .config import DeskConfig
from .destination import Resolver, Target
from .errors import Code, DeskError
from .intake import Checked
from .quotes import Quotes
from .settlement import Settlement, quote_request
from .states import FINAL, State
from .store import BudgetExceeded, ClaimConflict, Record, StaleState, Store
from .timing import Timings

log = logging.getLogger("hashpool_cln.desk")

LABEL_PREFIX = "hashpool-redeem:"
# NUT error codes the desk acts on.
NUT_TOKEN_SPENT = 11001
NUT_OUTPUTS_SIGNED = 10002
# A proof the mint cannot verify (10001 in this project's mint spec, 10003 in NUT's table and CDK's).
NUT_PROOF_INVALID = frozenset({10001, 10003})
# xpay's answer to a second concurrent payment of one invoice: the first one is still running.
XPAY_IN_PROGRESS = -3
# xpay's answer when the node holds a completed payment of the invoice.
XPAY_ALREADY_PAID = 219

EventCallback = Callable[[str, str, str, dict[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class Plan:
    units: int  # the units the melt quote will be asked for, after custody
    amount_msat: int  # what they are worth at the epoch's published rate
    custody_amounts: list[int]
    change_amounts: list[int]
    swap_fee: int
    maxfee_msat: int
    output_keyset: str
    # A fixed amount's fee reserve as its own outputs (the tail of custody_amounts), the units the payment itself
    # needs and the rate (net msat, units issued) that prices the routing fee paid; empty/None: charged in full.
    reserve_amounts: list[int]
    payment_units: int | None
    rate: tuple[int, int] | None


class Crash(BaseException):
    """Raised by a crash hook: tests use it to stop a desk dead at a chosen point."""


class Desk(Quotes, Settlement):
    def __init__(self, config: DeskConfig, node: NodePort, mint: MintClient, *,
                 crash_hook: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.node = node
        self.mint = mint
        self.timings = Timings()
        self._crash_hook = crash_hook
        self._clock = clock
        self._store: Store | None = None
        self._seed = b""
        self._p2pk_pub = ""
        self._p2pk_key = None
        self._node_info: NodeInfo | None = None
        self._callbacks: list[EventCallback] = []
        self._paying: set[str] = set()
        self._active: set[str] = set()  # redemptions a live call is driving; recovery leaves them alone
        self.catalog = intake.Catalog(mint, config, self.timings)
        self.worker = cpu.Worker()  # verifies large tokens off the event loop
        self.destinations = Resolver(node, self._node, config, self.timings)
        self._closing = False

    # ------------------------------------------------------------------------------------------------ life

    async def start(self) -> None:
        from .recovery import reconcile

        self._seed = wallet.load_or_create_seed(self.config.seed_path)
        key = wallet.p2pk_key(self._seed)
        self._p2pk_key, self._p2pk_pub = key, key.public_key.format().hex()
        with self.timings.measure("sqlite"):
            self._store = await Store.open(self.config.db_path)
            self._paying = {r.id for r in await self._store.list([State.PAYING], limit=1_000_000)}
        try:
            await self._node()
        except DeskError:
            log.warning("the node is not reachable yet; redemptions wait for it")
        await reconcile(self)  # isolates each redemption's failure: the desk starts whatever one of them does

    async def close(self) -> None:
        self._closing = True
        self.worker.close()
        self.node.close()
        if self._store is not None:
            await self._store.close()
            self._store = None

    def on_event(self, callback: EventCallback) -> None:
        """Call ``callback(redemption_id, old_state, new_state, public_fields)`` after every committed move."""
        self._callbacks.append(callback)

    def driven(self, redemption_id: str) -> bool:
        """Whether a live call (a redeem, a resolve, a reconcile or a settle) is driving this redemption."""
        return redemption_id in self._active

    def drive(self, redemption_id: str) -> bool:
        """Mark a redemption as driven by the caller; False (and nothing marked) when another already drives it.
        The caller lets it go with ``let_go``."""
        if redemption_id in self._active:
            return False
        self._active.add(redemption_id)
        return True

    def let_go(self, redemption_id: str) -> None:
        self._active.discard(redemption_id)

    def drivers(self) -> int:
        """How many redemptions live calls are driving now."""
        return len(self._active)

    def in_flight(self) -> int:
        """Redemptions whose payment may still be under way."""
        return len(self._paying)

    @property
    def store(self) -> Store:
        if self._store is None or self._closing:
            raise DeskError(Code.SHUTTING_DOWN if self._closing else Code.NOT_READY, "the desk is not running")
        return self._store

    @property
    def p2pk_pubkey(self) -> str:
        """The public key wallets may lock ehash to (NUT-11) when sending it to this desk."""
        return self._p2pk_pub

    def now(self) -> int:
        return int(self._clock())

    # ------------------------------------------------------------------------------------------ public API

    async def quote(self, token: str, invstring: str | None = None, amount_msat: int | None = None) -> dict:
        """Price a token (and, given a destination, say whether and how it could be paid). Commits nothing.

        The price comes from the epoch's published rate, the mint's own formula, and not from a mint quote: a
        melt quote holds part of the epoch's reward until it expires, and a look that holds budget would let
        anyone allowed to look block other miners' redemptions. A settled epoch's rate is fixed, so the price
        holds until the epoch's redemption window closes (``expiry``).
        """
        self.store  # noqa: B018  (refuse before start)
        checked = await self._check_token(token)
        fee = checked.swap_fee()
        units = checked.amount - fee
        if units <= 0:
            raise DeskError(Code.INSUFFICIENT_VALUE, "the token does not cover the mint's input fee")
        epoch = checked.epoch
        net = policy.epoch_net_reward(epoch, checked.pool_fee_ppm)
        out: dict[str, Any] = {
            "unit": checked.unit, "amount": checked.amount, "value_msat": checked.value(units),
            "expiry": epoch.redeem_until, "input_fee": fee,
            "rate": {"reward_msat": epoch.reward_msat, "net_reward_msat": net, "issued": epoch.issued,
                     "epoch_height": epoch.height, "unredeemed_msat": max(0, net - epoch.redeemed_msat)},
        }
        if out["expiry"] is None:
            del out["expiry"]
        if invstring is not None:
            out["destination"] = await self._quote_destination(checked, invstring, amount_msat, out["value_msat"])
        return out

    async def redeem(self, token: str, invstring: str, amount_msat: int | None = None,
                     maxfee_msat: int | None = None, payer_note: str | None = None,
                     claim: str | None = None) -> dict:
        """Buy ``token`` and pay ``invstring`` with it. Returns the redemption (see ``_public``) with its claim.

        ``claim`` (64 hex characters, see ``claims``) is the secret that later shows the change or refund token
        (``status``); drawn here when the caller brings none. Once the redemption is written down, an error
        carries it too (in ``data``), so that whatever came of the call the caller can reach its tokens.
        """
        self.store  # noqa: B018
        _check_params(amount_msat, maxfee_msat, payer_note)
        claim = claims.draw() if claim is None else claims.check(claim)
        claim_hash = claims.digest(claim)
        with self.timings.measure("sqlite"):
            if await self.store.claim_used(claim_hash):
                raise DeskError(Code.INVALID_PARAMS, "claim already used")
        policy.check_caller_maxfee(maxfee_msat, self.config)
        checked = await self._check_token(token, with_proofs=True)
        target = await self._resolve(invstring, amount_msat, payer_note, checked, maxfee_msat)
        # Marked as this call's before the ledger shows it: a reconcile running meanwhile must never see an
        # unclaimed ``new`` redemption and reject it under the call that is still driving it.
        redemption_id = secrets.token_hex(16)
        self._active.add(redemption_id)
        try:
            inputs = [self._signed(p) for p in checked.token.proofs]
            try:
                rec, looked = await self._create(redemption_id, checked, inputs, target, maxfee_msat, claim_hash)
            except DeskError as e:
                if e.data.get("id") == redemption_id:  # written down as rejected: the claim shows it
                    e.data["claim"] = claim
                raise
            try:
                rec = await self._drive(rec, checked, inputs, target, maxfee_msat, looked)
            except DeskError as e:
                e.data.update(id=redemption_id, claim=claim)
                raise
            except Exception as e:
                # Unexpected, after the ledger holds the redemption: the caller still gets its claim, and
                # recovery takes the redemption from wherever it stopped.
                log.warning("redemption %s failed unexpectedly: %s", redemption_id, type(e).__name__)
                raise DeskError(Code.INTERNAL_ERROR, "internal error; the redemption waits for recovery",
                                {"id": redemption_id, "claim": claim}) from None
        finally:
            self._active.discard(redemption_id)
        return {**await self._public(rec, reveal=True), "claim": claim}

    async def _drive(self, rec: Record, checked: Checked, inputs: list[Proof], target: Target,
                     maxfee_msat: int | None, looked: Payment | None) -> Record:
        if rec.state is State.QUOTED:
            rec = await self.take_custody(rec, inputs)
        if rec.state is State.CUSTODY:
            rec = await self.pay(rec, looked)
        if rec.state is State.PAID and self.config.settle == "immediate":
            rec = await self.settle_one(rec)
        return rec

    async def status(self, redemption_id: str | None = None, claim: str | None = None) -> dict:
        """One redemption: by ``id``, its public fields; by ``claim`` (and ``id``, if given, must match), also its
        change and refund tokens. An id that does not go with the claim is as unknown as a claim of nothing."""
        if redemption_id is None and claim is None:
            raise DeskError(Code.INVALID_PARAMS, "give id, claim, or both")
        if redemption_id is not None and not isinstance(redemption_id, str):
            raise DeskError(Code.INVALID_PARAMS, "id must be a string")
        if claim is None:
            return await self._public(await self._get(redemption_id), reveal=False)
        claim_hash = claims.digest(claims.check(claim))
        with self.timings.measure("sqlite"):
            rec = await self.store.get_by_claim(claim_hash)
        if rec is None or (redemption_id is not None and rec.id != redemption_id):
            raise DeskError(Code.UNKNOWN_REDEMPTION, "no redemption with this claim"
                            + (" and id" if redemption_id is not None else ""))
        return await self._public(rec, reveal=True)

    async def redemptions(self, state: str | None = None, limit: int = 100) -> list[dict]:
        if state is not None and state not in {s.value for s in State}:
            raise DeskError(Code.INVALID_PARAMS, f"unknown state {state!r}")
        if not 1 <= limit <= 10_000:
            raise DeskError(Code.INVALID_PARAMS, "limit must be between 1 and 10000")
        with self.timings.measure("sqlite"):
            recs = await self.store.list([State(state)] if state else None, limit)
        return [await self._public(r, reveal=False) for r in recs]

    async def info(self) -> dict:
        with self.timings.measure("sqlite"):
            counts = await self.store.count_by_state()
            custody = await self.store.custody_by_unit()
            paid = await self.store.totals([State.PAID.value, State.SETTLED.value])
        return {
            "mint": self.config.mint_url, "pools": list(self.config.pools), "p2pk_pubkey": self._p2pk_pub,
            "network": self._node_info.network if self._node_info else None,
            "max_msat": self.config.max_msat, "maxfee_ppm": self.config.maxfee_ppm,
            "maxfee_msat": self.config.maxfee_msat, "min_invoice_life": self.config.min_invoice_life,
            "epoch_budget_msat": self.config.epoch_budget_msat, "settle": self.config.settle,
            "redemptions": counts, "in_flight": self.in_flight(), "custody": custody, "paid": paid,
        }

    # ------------------------------------------------------------------------- 1. parse, 2. destination

    async def _check_token(self, text: str, with_proofs: bool = False) -> Checked:
        return await intake.check_token(text, self.catalog, now=self.now(), own_pubkey=self._p2pk_pub,
                                        worker=self.worker, with_proofs=with_proofs)

    async def _resolve(self, invstring: str, amount_msat: int | None, payer_note: str | None, checked: Checked,
                       maxfee_msat: int | None) -> Target:
        return await self.destinations.resolve(invstring, amount_msat, payer_note, checked, maxfee_msat,
                                               now=self.now())

    async def _quote_destination(self, checked: Checked, invstring: str, amount_msat: int | None,
                                 value_msat: int) -> dict[str, Any]:
        try:
            target = await self._resolve(invstring, amount_msat, None, checked, None)
            plan_units, fee_reserve = reserve.units_needed(checked, target, None, self.config)
            payable = plan_units <= checked.amount
            out: dict[str, Any] = {
                "kind": target.kind, "amount_msat": target.deliver_msat or value_msat, "payable": payable,
                "fee_reserve_msat": fee_reserve, "units_needed": plan_units,
                "cost_msat": checked.value(plan_units),
                # Who keeps the part of the reserve routing does not use (see reserve.py).
                "unused_fee_reserve": reserve.goes_to(checked, target)}
            if not payable:
                out["reason"] = "the token is worth less than the payment and its fee reserve"
            return out
        except DeskError as e:
            return {"kind": None, "amount_msat": amount_msat, "payable": False, "reason": e.message,
                    "code": int(e.code), "fee_reserve_msat": None, "units_needed": None, "cost_msat": None,
                    "unused_fee_reserve": None}

    # ---------------------------------------------------------------------------------------- 3. quote

    async def _create(self, redemption_id: str, checked: Checked, inputs: list[Proof], target: Target,
                      maxfee_msat: int | None, claim_hash: str) -> tuple[Record, Payment | None]:
        """The redemption written down, priced, with ``inputs`` (the token's proofs as the swap will send them), and
        what the node said of its payment hash just before.

        Pricing asks the mint nothing, so the redemption and its plan are one commit: it is born ``quoted``. A
        token the plan refuses is written down ``rejected`` (untouched, and its claims released at once), and the
        refusal raised with its id.
        """
        # An invoice the node has paid, or is paying, is never taken again.
        status = await self.payment_status(target.payment_hash)
        if status is not None and status.status in ("complete", "pending"):
            raise DeskError(Code.DESTINATION_IN_USE, f"this invoice is already {status.status} on the node")
        fields = {
            "id": redemption_id, "mint": checked.token.mint, "unit": checked.token.unit,
            "amount": checked.token.amount, "dest_kind": target.kind, "destination": target.destination,
            "invoice": target.invoice, "invoice_expires_at": target.expires_at,
            "payment_hash": target.payment_hash, "pay_method": target.method,
            "pay_amount_msat": target.pay_amount_msat, "maxfee_msat": maxfee_msat, "bip353": target.address,
            "claim_hash": claim_hash,
        }
        proofs = [(y, json.dumps(p.to_dict())) for y, p in zip(checked.ys, inputs)]
        try:
            plan = await self._plan(checked, target, maxfee_msat)
        except DeskError as e:
            raise await self._write_refused(fields, proofs, target, e) from None
        try:
            priced = _priced(plan, checked, target, self.config)
            rec = await self._write_down(fields, proofs, target, State.QUOTED, priced)
        except BudgetExceeded:
            err = DeskError(Code.EPOCH_BUDGET_EXHAUSTED, "the desk's budget for this epoch is used up",
                            {"unit": checked.token.unit})
            raise await self._write_refused(fields, proofs, target, err) from None
        return rec, status

    async def _write_refused(self, fields: dict[str, Any], proofs: list[tuple[str, str]], target: Target,
                             error: DeskError) -> DeskError:
        """``error``, once the redemption it refuses is written down ``rejected`` (its id in the error's data)."""
        await self._write_down(fields, proofs, target, State.REJECTED,
                               {"error_code": int(error.code), "error": error.message[:300]})
        error.data.setdefault("id", fields["id"])
        return error

    async def _write_down(self, fields: dict[str, Any], proofs: list[tuple[str, str]], target: Target, state: State,
                          moves: dict[str, Any]) -> Record:
        """The first commit of a redemption: written down and moved on to ``state`` at once."""
        self._hook(f"before:->{state}")
        try:
            with self.timings.measure("sqlite"):
                rec = await self.store.create(fields, proofs, target.payment_hash, then=(state, moves))
        except ClaimConflict as e:
            if e.what == "input":
                raise await self._claimed(proofs) from None
            if e.what == "claim":
                raise DeskError(Code.INVALID_PARAMS, "claim already used") from None
            raise DeskError(Code.DESTINATION_IN_USE, "this invoice is already being paid by another redemption") \
                from None
        self._hook(f"after:->{state}")
        self._emit(rec, "")
        return rec

    async def _claimed(self, proofs: list[tuple[str, str]]) -> DeskError:
        """Why a token whose inputs another redemption holds is refused: spent, once that one has paid."""
        with self.timings.measure("sqlite"):
            holders = await self.store.claimed_by([y for y, _ in proofs])
        if holders and holders <= {State.PAID, State.SETTLED}:
            return DeskError(Code.TOKEN_SPENT, "this token was already redeemed")
        return DeskError(Code.TOKEN_IN_USE, "this token is already being redeemed")

    def _signed(self, proof: Proof) -> Proof:
        """Inputs locked to the desk's key get their witness now, so a replayed swap is byte-identical."""
        if conditions.classify(proof.secret).kind != "P2PK":
            return proof
        with self.timings.measure("crypto"):
            return conditions.sign_p2pk(proof, self._p2pk_key)

    async def _plan(self, checked: Checked, target: Target, maxfee_msat: int | None) -> Plan:
        """The units to buy and their split, from the epoch's published rate: the mint is asked nothing yet."""
        epoch = checked.epoch
        out_keyset = checked.output_keyset()
        out_ppk = out_keyset.input_fee_ppk
        swap_fee = checked.swap_fee()
        available = checked.amount - swap_fee
        reserve_amounts: list[int] = []
        payment_units: int | None = None
        rate: tuple[int, int] | None = None
        if target.deliver_msat is None:
            # Whole value: every unit left after the swap fee is bought, the payee bears routing fees.
            units = checked.whole_units()
            amount_msat = checked.value(units)
            policy.check_amount(amount_msat, self.config)
            reserve_msat = policy.fee_reserve(amount_msat, maxfee_msat, self.config)
            custody = _exact(units, out_ppk)
        else:
            reserve_msat = reserve.reserve_for(target, target.deliver_msat, maxfee_msat, self.config)
            need = target.deliver_msat + reserve_msat
            units = policy.units_for(need, epoch, checked.pool_fee_ppm)
            amount_msat = checked.value(units)
            if reserve.returns_reserve(checked, target):
                # The reserve as outputs of its own, so that what routing leaves of it can go back exactly.
                payment_units = policy.units_for(target.deliver_msat, epoch, checked.pool_fee_ppm)
                reserve_amounts = wallet.reserve_amounts(units - payment_units)
                rate = (policy.epoch_net_reward(epoch, checked.pool_fee_ppm), epoch.issued)
                custody = wallet.split_amount(payment_units) + reserve_amounts
            else:
                custody = _exact(units, out_ppk)
        change = available - sum(custody)
        if change >= 0:
            intake.check_outputs(len(custody) + len(wallet.split_amount(change)), await self.catalog.limits())
        if change < 0:
            raise DeskError(Code.INSUFFICIENT_VALUE, "the token is worth less than the payment and its fee reserve",
                            {"units": checked.amount, "units_needed": sum(custody) + swap_fee,
                             "value_msat": checked.value(available)})
        # Refused here, with the token untouched, rather than refunded after custody by ``unpayable``.
        if epoch.redeem_until is not None and \
                epoch.redeem_until - self.now() < self.payment_window() + self.config.min_invoice_life:
            raise DeskError(Code.RATE_REFUSED, "the epoch's redemption window closes too soon",
                            {"expiry": epoch.redeem_until})
        return Plan(units=units, amount_msat=amount_msat, custody_amounts=custody,
                    change_amounts=wallet.split_amount(change), swap_fee=swap_fee, maxfee_msat=reserve_msat,
                    output_keyset=out_keyset.id, reserve_amounts=reserve_amounts, payment_units=payment_units,
                    rate=rate)

    async def _custody_quote(self, rec: Record) -> dict[str, Any] | Record:
        """The melt quote for a redemption in ``custody``: its fields to commit with the move to ``paying``, or
        the redemption refunded (the mint refused the quote) — the custody proofs go back to the caller.

        Asked under the redemption's open reference when there is one (a lost answer, or a crash before the
        quote was committed): the mint answers the same quote to it, so the budget is never held twice. A mint
        that does not answer leaves the redemption in ``custody`` for recovery (MINT_UNAVAILABLE).
        """
        units, unit = rec["quote_units"], rec["unit"]
        request = quote_request(rec["dest_kind"], rec["invoice"])
        try:
            with self.timings.measure("sqlite"):
                ref = await self.store.open_ask(rec.id, unit, units, request) \
                    or await self.store.record_ask(rec.id, unit, units, request)
            quote = await self.ask_quote(ref, unit, units, request)
            try:
                policy.check_rate(quote, units, unit, rec["quote_amount_msat"], self.config)
            except DeskError:
                with self.timings.measure("sqlite"):
                    await self.store.answered(ref, quote.quote)  # so that the refund releases it at once
                raise
        except DeskError as e:
            if e.code is Code.MINT_UNAVAILABLE:
                await self._note(rec, e.code, e.message)
                raise DeskError(e.code, e.message + "; the redemption waits in custody",
                                {"id": rec.id, "state": str(rec.state)}) from None
            return await self.refund(rec, e.code, f"the mint gave no usable quote: {e.message}"[:300])
        return {"quote_id": quote.quote, "quote_expiry": quote.expiry, "answer": (ref, quote.quote)}

    # -------------------------------------------------------------------------------------- 4. custody

    async def take_custody(self, rec: Record, inputs: list[Proof] | None = None) -> Record:
        """Swap the caller's proofs into the desk's outputs; settle what a lost answer left open.

        ``inputs``: the proofs the ledger holds for the redemption, when the caller has them at hand (the call
        that wrote them); otherwise they are read back. On return the redemption is in ``custody``, ``rejected``
        or (outputs unusable) ``refunded``; a mint that gives no answer at all leaves it ``quoted`` and raises
        MINT_UNAVAILABLE.
        """
        if inputs is None:
            with self.timings.measure("sqlite"):
                inputs = [Proof.from_dict(json.loads(p)) for p in await self.store.inputs(rec.id)]
        outputs = self._outputs(rec)
        limits = await self.catalog.limits()
        try:
            intake.check_inputs(len(inputs), limits)
            intake.check_outputs(len(outputs), limits)
        except DeskError as too_many:
            # Recorded before the desk knew the mint's limits: never sent, so never swapped (restore confirms).
            signatures = await self._restore_or_decide(rec, outputs, inputs, too_many)
            return await self._hold(rec, outputs, signatures)
        try:
            signatures = await self._swap(inputs, outputs)
        except MintError as e:
            code = Code.PROOF_INVALID if e.code in NUT_PROOF_INVALID else Code.MINT_REFUSED
            untouched = DeskError(code, f"the mint refused the swap: {e.detail}"[:300], {"mint_code": e.code})
            signatures = await self._restore_or_decide(rec, outputs, inputs, untouched)
        except MintUnavailable:
            untouched = DeskError(Code.MINT_UNAVAILABLE, "the mint did not answer the swap; the token is untouched")
            signatures = await self._restore_or_decide(rec, outputs, inputs, untouched)
        except MintProtocolError as e:
            untouched = DeskError(Code.MINT_REFUSED, f"the mint's swap answer is unusable: {e}"[:300])
            signatures = await self._restore_or_decide(rec, outputs, inputs, untouched)
        return await self._hold(rec, outputs, signatures)

    def _outputs(self, rec: Record) -> list[nut13.Output]:
        with self.timings.measure("crypto"):
            return nut13.derive_outputs(self._seed, rec["keyset_id"], rec["counter_start"],
                                        rec.amounts("custody_amounts") + rec.amounts("change_amounts"))

    async def _swap(self, inputs: list[Proof], outputs: list[nut13.Output]) -> list[BlindSignature]:
        messages = [o.message for o in outputs]
        try:
            with self.timings.measure("mint"):
                return await self.mint.swap(inputs, messages)
        except MintUnavailable:
            # The answer was lost: ask again with the identical request (the same outputs).
            with self.timings.measure("mint"):
                return await self.mint.swap(inputs, messages)

    async def _restore_or_decide(self, rec: Record, outputs: list[nut13.Output], inputs: list[Proof],
                                 untouched: DeskError) -> list[BlindSignature]:
        """After a failed or unclear swap: our signatures if the mint made them, else reject, else wait."""
        try:
            known, signatures = await self.restore([o.message for o in outputs])
            by_b = {m.B_.lower(): s for m, s in zip(known, signatures)}
            if by_b and all(o.message.B_.lower() in by_b for o in outputs):
                return [by_b[o.message.B_.lower()] for o in outputs]
            if by_b:
                # Some of our outputs are signed, so our swap spent the inputs: never "untouched", never "spent
                # elsewhere". A swap is all or nothing, so this is a mint fault for the operator to look at.
                await self._note(rec, Code.MINT_REFUSED, "the mint restored only part of the swap's outputs")
                raise DeskError(Code.MINT_REFUSED, "the mint restored only part of the swap's outputs; the "
                                "redemption waits", {"id": rec.id, "state": str(rec.state)})
            states = {s.state for s in await self.checkstate([crypto.proof_y(p.secret) for p in inputs])}
        except (MintError, MintUnavailable, MintProtocolError):
            states = {"PENDING"}  # nothing learnt: as undecided as a proof the mint holds pending
        if "PENDING" in states:
            await self._note(rec, Code.MINT_UNAVAILABLE, "the swap's outcome is not known yet")
            raise DeskError(Code.MINT_UNAVAILABLE, "the swap's outcome is not known yet; the redemption waits for "
                            "the mint", {"id": rec.id, "state": str(rec.state)})
        if states == {"UNSPENT"}:
            return await self.reject(rec, untouched, raise_it=True)
        # Spent, and not into our outputs: someone else spent (part of) the token.
        return await self.reject(rec, DeskError(Code.TOKEN_SPENT, "the token was already spent"), raise_it=True)

    async def _hold(self, rec: Record, outputs: list[nut13.Output], signatures: list[BlindSignature]) -> Record:
        messages = [o.message for o in outputs]
        secrets_, rs = [o.secret for o in outputs], [o.r for o in outputs]
        try:
            with self.timings.measure("crypto"):
                proofs = await self.mint.unblind_signatures(messages, secrets_, rs, signatures)
        except (MintError, MintUnavailable, MintProtocolError) as e:
            # The inputs are spent but the outputs do not verify: nothing is paid against them. What the mint
            # signed for our blinded messages, at whatever amounts it claims, goes back to the caller unchecked;
            # they may still try it at the mint.
            signed = [replace(m, amount=sig.amount, id=sig.id) for m, sig in zip(messages, signatures)]
            bare = [replace(sig, dleq=None) for sig in signatures]
            try:
                proofs = await self.mint.unblind_signatures(signed, secrets_, rs, bare, require_dleq=False)
            except (MintError, MintUnavailable, MintProtocolError):
                await self._note(rec, Code.MINT_REFUSED, "the mint's signatures for the swap cannot be read")
                raise DeskError(Code.MINT_REFUSED, "the mint's signatures for the swap cannot be read; the "
                                "redemption waits", {"id": rec.id, "state": str(rec.state)}) from None
            return await self._move(rec, State.REFUNDED, refund_token=self._token(rec, proofs),
                                    error_code=int(Code.MINT_REFUSED),
                                    error=f"the mint's signatures are bad: {e}"[:300])
        n = len(rec.amounts("custody_amounts"))
        return await self._move(rec, State.CUSTODY, custody=[json.dumps(p.to_dict()) for p in proofs[:n]],
                                change_token=self._token(rec, proofs[n:]))

    # ------------------------------------------------------------------------------------------ 5. pay

    async def pay(self, rec: Record, looked: Payment | None = None) -> Record:
        """From ``custody``: pay if the destination and the quote still allow it, else refund.

        ``looked``: what the node said of the payment hash moments ago (the call that created the redemption
        asked it), spared a second look. A payment someone starts on the node meanwhile is still never doubled:
        the node refuses a second payment of one hash, and that answer is followed (``_after_pay_error``).
        """
        quote: dict[str, Any] = {}
        if rec["quote_id"] is None:
            asked = await self._custody_quote(rec)
            if isinstance(asked, Record):
                return asked
            quote = asked
        why = self.unpayable(rec, quote.get("quote_expiry", rec["quote_expiry"]))
        if why is not None:
            return await self.refund(rec, Code.DESTINATION_EXPIRED, why)
        status = looked if looked is not None else await self.payment_status(rec["payment_hash"])
        # The quote is committed with the move: a crash before it leaves ``custody``, whose recovery asks again
        # under the same reference.
        moved = await self._advance(rec, State.PAYING, paying_at=self.now(), **quote)
        if moved is None:  # someone else moved it: they drive it, and a second pay call must never go out
            return await self._get(rec.id)
        if status is not None and status.status != "unknown" and status.status != "failed":
            # The node is paying or has paid this hash already: follow that payment, never start another.
            return await self.follow_payment(moved, status)
        return await self.send_payment(moved)

    def unpayable(self, rec: Record, quote_expiry: int | None = None) -> str | None:
        now = self.now()
        quote_expiry = rec["quote_expiry"] if quote_expiry is None else quote_expiry
        # The settlement follows the payment, which may run its whole retry window: a quote that ends first may
        # be refused at the mint (its budget released to others) after the sats have left the node.
        if quote_expiry is not None and quote_expiry - now <= self.payment_window():
            return "the mint's quote expires before the payment could end"
        expires = rec.get("invoice_expires_at")
        if expires is not None and expires - now < self.config.min_invoice_life:
            return "the invoice expires too soon to be paid safely"
        return None

    def payment_window(self) -> int:
        """Seconds a payment may take from its call to its outcome: the node's retries and their grace."""
        return self.config.retry_for + self.config.payment_grace

    async def send_payment(self, rec: Record) -> Record:
        """Make the pay call for a redemption in ``paying`` and record what came of it."""
        label = LABEL_PREFIX + rec.id
        try:
            with self.timings.measure("node"):
                if rec["pay_method"] == "sendamount":
                    payment = await self.node.sendamount(
                        rec["invoice"], amount_msat=rec["pay_amount_msat"], maxfee_msat=rec["maxfee_msat"],
                        retry_for=self.config.retry_for, label=label)
                else:
                    payment = await self.node.xpay(
                        rec["invoice"], amount_msat=rec["pay_amount_msat"], maxfee_msat=rec["maxfee_msat"],
                        retry_for=self.config.retry_for, label=label)
        except NodeUnavailable:
            log.warning("redemption %s: the node's answer was lost; the payment stays in flight", rec.id)
            return rec
        except NodeError as e:
            return await self._after_pay_error(rec, e)
        return await self.follow_payment(rec, payment)

    async def _after_pay_error(self, rec: Record, error: NodeError) -> Record:
        status = await self.payment_status(rec["payment_hash"])
        if status is not None and status.status == "complete":
            return await self.follow_payment(rec, status)
        if error.code == XPAY_ALREADY_PAID:
            # A completed payment exists that the node does not list: unclear, and never a refund.
            return await self._node_paid(rec, "the node answered that this invoice is already paid but lists no "
                                              "completed payment of it; the redemption waits")
        if status is None or status.status == "pending" or error.code == XPAY_IN_PROGRESS:
            return rec  # parts may still be in flight: wait for listpays to decide
        return await self.refund(rec, Code.PAYMENT_FAILED, f"the payment failed: {error.message}"[:300],
                                 node_error=error.code)

    async def follow_payment(self, rec: Record, payment: Payment) -> Record:
        """Record a payment the node reports: complete → paid; anything else keeps it ``paying``.

        Only a payment made under this redemption's label is its own. Another one (someone on this node paid
        the invoice, by hand say) means this redemption did not pay, yet refunding would hand the caller the
        value of an invoice already settled: the operator decides.
        """
        if payment.status != "complete" or payment.preimage is None:
            return rec
        if payment.label != LABEL_PREFIX + rec.id:
            label = "no label" if payment.label is None else f"the label {payment.label[:80]!r}"
            return await self._node_paid(rec, f"the invoice was paid on this node by another payment ({label}), "
                                              "not by this redemption; the operator decides")
        sent = payment.amount_sent_msat
        delivered = payment.amount_msat
        fee = sent - delivered if sent is not None and delivered is not None else None
        # What routing left of the reserve goes into the change token in the same commit as the payment: it is
        # written down before anyone is told, and a recovery reading the node's record computes the same.
        returned = await self._hand_back_reserve(rec, sent)
        return await self._move(rec, State.PAID, preimage=payment.preimage, amount_msat=delivered,
                                amount_sent_msat=sent, fee_msat=fee, **returned)

    async def _hand_back_reserve(self, rec: Record, sent_msat: int | None) -> dict[str, Any]:
        """The fields that hand what routing left of the fee reserve back to the caller, in the change token."""
        back = reserve.unused(rec, sent_msat)
        if back is None:
            return {}
        picked, units = back
        with self.timings.measure("sqlite"):
            custody = [Proof.from_dict(json.loads(p)) for p in await self.store.custody(rec.id)]
        first = len(custody) - len(rec.amounts("reserve_amounts"))
        positions = [first + i for i in picked]
        change = list(parse_token(rec["change_token"]).proofs) if rec.get("change_token") else []
        return {"returned": positions, "returned_units": units,
                "change_token": self._token(rec, change + [custody[p] for p in positions])}

    async def refund(self, rec: Record, code: Code, why: str, node_error: int | None = None) -> Record:
        """Give the custody proofs back as a refund token (only when no payment can still complete)."""
        if rec.get("node_paid"):
            return rec  # the node holds a completed payment of this invoice: never refunded (see ``_node_paid``)
        with self.timings.measure("sqlite"):
            proofs = [Proof.from_dict(json.loads(p)) for p in await self.store.custody(rec.id)]
        message = why if node_error is None else f"{why} (node code {node_error})"
        return await self._move(rec, State.REFUNDED, custody_state="refunded", refund_token=self._token(rec, proofs),
                                error_code=int(code), error=message)

    # ------------------------------------------------------------------------------------------- helpers

    async def _move(self, rec: Record, new: State, **fields: Any) -> Record:
        """Commit ``rec.state → new`` (with ``fields``) before anything it allows happens; if the redemption
        had moved under us, its current record (the caller must then not act as if it had moved it)."""
        moved = await self._advance(rec, new, **fields)
        return moved if moved is not None else await self._get(rec.id)

    async def _advance(self, rec: Record, new: State, **fields: Any) -> Record | None:
        """``_move``, but None when the redemption is no longer in ``rec.state``."""
        point = f"{rec.state}->{new}"
        self._hook("before:" + point)
        try:
            with self.timings.measure("sqlite"):
                moved = await self.store.advance(rec.id, rec.state, new, **fields)
        except StaleState:
            log.warning("redemption %s moved under us; reloading", rec.id)
            return None
        self._hook("after:" + point)
        if new in FINAL:
            await self.release_quotes(rec.id)  # a quote it no longer needs holds part of the epoch's budget
        if new is State.PAYING:
            self._paying.add(rec.id)
        elif rec.state is State.PAYING:
            self._paying.discard(rec.id)
        self._emit(moved, str(rec.state))
        return moved

    async def reject(self, rec: Record, error: DeskError, raise_it: bool = False) -> Any:
        await self._move(rec, State.REJECTED, error_code=int(error.code), error=error.message[:300])
        error.data.setdefault("id", rec.id)
        if raise_it:
            raise error
        return None

    async def _node_paid(self, rec: Record, why: str) -> Record:
        """Keep ``rec`` in ``paying`` for good unless its own completed payment turns up: the node holds a
        completed payment of its hash the desk cannot take as its own, so no later reading may refund it."""
        if not rec.get("node_paid"):  # once: reconciliation comes back to it every few seconds
            log.warning("redemption %s waits: %s", rec.id, why)
        with self.timings.measure("sqlite"):
            await self.store.update(rec.id, node_paid=1, error_code=int(Code.PAYMENT_PENDING), error=why[:300])
        return await self._get(rec.id)

    async def _note(self, rec: Record, code: Code, message: str, **fields: Any) -> None:
        """Why ``rec`` waits, written with any ``fields`` that belong in the same commit."""
        with self.timings.measure("sqlite"):
            await self.store.update(rec.id, error_code=int(code), error=message, **fields)

    def _hook(self, point: str) -> None:
        if self._crash_hook is not None:
            self._crash_hook(point)

    def _token(self, rec: Record, proofs: list[Proof]) -> str | None:
        with self.timings.measure("crypto"):
            return make_token(rec["mint"], rec["unit"], proofs)

    def _emit(self, rec: Record, old: str) -> None:
        if not self._callbacks:
            return
        fields = _event_fields(rec)
        for callback in self._callbacks:
            try:
                callback(rec.id, old, str(rec.state), fields)
            except Exception as e:
                # Its class only: the message or traceback could quote what the callback was handling.
                log.info("an event callback failed: %s", type(e).__name__)

    async def _get(self, redemption_id: str) -> Record:
        if not isinstance(redemption_id, str):
            raise DeskError(Code.INVALID_PARAMS, "id must be a string")
        with self.timings.measure("sqlite"):
            rec = await self.store.get(redemption_id)
        if rec is None:
            raise DeskError(Code.UNKNOWN_REDEMPTION, "no redemption with this id", {"id": redemption_id[:64]})
        return rec

    async def _public(self, rec: Record, reveal: bool) -> dict[str, Any]:
        out = _event_fields(rec)
        if rec.get("bip353"):
            out["bip353"] = rec["bip353"]  # the name the caller gave; the offer paid is what it resolved to
        if rec.state in (State.PAID, State.SETTLED):
            out["payment_preimage"] = rec["preimage"]
        if reveal:
            for key in ("change_token", "refund_token"):
                if rec.get(key):
                    out[key] = rec[key]
        return out

    # --- the mint and the node, with caching and timing ---------------------------------------------------

    async def checkstate(self, ys: list[str]) -> list[ProofState]:
        """NUT-07 for any number of proofs, in requests the mint's input limit allows."""
        step = (await self.catalog.limits()).max_inputs
        states: list[ProofState] = []
        for start in range(0, len(ys), step):
            with self.timings.measure("mint"):
                states += await self.mint.checkstate(ys[start:start + step])
        return states

    async def restore(self, messages: list[BlindedMessage]) -> tuple[list[BlindedMessage], list[BlindSignature]]:
        """NUT-09 for any number of outputs, in requests the mint's output limit allows."""
        step = (await self.catalog.limits()).max_outputs
        known: list[BlindedMessage] = []
        signatures: list[BlindSignature] = []
        for start in range(0, len(messages), step):
            with self.timings.measure("mint"):
                k, sigs = await self.mint.restore(messages[start:start + step])
            known += k
            signatures += sigs
        return known, signatures

    async def _node(self) -> NodeInfo:
        if self._node_info is None:
            try:
                with self.timings.measure("node"):
                    self._node_info = await self.node.getinfo()
            except (NodeError, NodeUnavailable):
                raise DeskError(Code.NODE_UNAVAILABLE, "the Lightning node did not answer") from None
        return self._node_info

    async def payment_status(self, payment_hash: str) -> Payment | None:
        """What the node knows of a payment; None when the node cannot say right now."""
        try:
            with self.timings.measure("node"):
                return await self.node.payment_status(payment_hash)
        except (NodeError, NodeUnavailable):
            return None

    def final(self, rec: Record) -> bool:
        return rec.state in FINAL

    # --------------------------------------------------------------------- the operator's decision (held.py)

    async def resolve(self, redemption_id: str, decision: str, reason: str, who: str | None = None,
                      preimage: str | None = None) -> dict:
        """Decide a redemption held for the operator: ``paid`` records the node's payment (or the preimage given)
        as its own and settles, ``refund`` hands the custody proofs back. Nothing is paid either way."""
        from . import held

        choice = held.check_decision(decision, reason, who, preimage)
        rec = await self._get(redemption_id)
        held.check_held(rec)
        if rec.id in self._active:
            raise DeskError(Code.NOT_HELD, "a call or a reconciliation is handling this redemption right now",
                            {"id": rec.id})
        self._active.add(rec.id)
        try:
            payment = await self.payment_status(rec["payment_hash"])
            if payment is None:
                raise DeskError(Code.NODE_UNAVAILABLE, "the node did not say what it knows of this payment")
            written = held.record(choice, self.now())
            if choice.decision == "paid":
                accepted = held.accepted_payment(rec, payment, choice.preimage)
                returned = await self._hand_back_reserve(rec, accepted.amount_sent_msat)
                moved = await self._advance(rec, State.PAID, preimage=accepted.preimage,
                                            amount_msat=accepted.amount_msat, fee_msat=accepted.fee_msat,
                                            amount_sent_msat=accepted.amount_sent_msat, error_code=None, error=None,
                                            **returned, **written)
                rec = held.moved(moved, rec)
                if self.config.settle == "immediate":
                    rec = await self.settle_one(rec)
            else:
                held.check_refundable(rec, payment, LABEL_PREFIX + rec.id)
                with self.timings.measure("sqlite"):
                    proofs = [Proof.from_dict(json.loads(p)) for p in await self.store.custody(rec.id)]
                moved = await self._advance(rec, State.REFUNDED, custody_state="refunded",
                                            refund_token=self._token(rec, proofs), error_code=int(Code.PAYMENT_FAILED),
                                            error="refunded: the operator found no payment of this redemption",
                                            **written)
                rec = held.moved(moved, rec)
        finally:
            self._active.discard(redemption_id)
        log.info("redemption %s resolved by %s: %s", rec.id, choice.who, choice.decision)
        out = await self._public(rec, reveal=False)
        out["resolution"] = held.public(rec)
        return out


# --- small pure helpers ------------------------------------------------------------------------------------


def _priced(plan: Plan, checked: Checked, target: Target, config: DeskConfig) -> dict[str, Any]:
    """The move to ``quoted``: the plan, its NUT-13 counters and the melt quote's reference (asked once custody
    is taken), within the desk's budget for the epoch."""
    return dict(
        reserve=(plan.output_keyset, len(plan.custody_amounts) + len(plan.change_amounts)),
        ask=(checked.token.unit, plan.units, quote_request(target.kind, target.invoice)),
        budget_msat=config.epoch_budget_msat,
        quote_units=plan.units, quote_amount_msat=plan.amount_msat, swap_fee=plan.swap_fee,
        maxfee_msat=plan.maxfee_msat,
        custody_amounts=json.dumps(plan.custody_amounts), change_amounts=json.dumps(plan.change_amounts),
        reserve_amounts=json.dumps(plan.reserve_amounts) if plan.reserve_amounts else None,
        payment_units=plan.payment_units, rate_net_msat=plan.rate[0] if plan.rate else None,
        rate_issued=plan.rate[1] if plan.rate else None,
        pay_amount_msat=plan.amount_msat if target.method == "sendamount" else target.pay_amount_msat)


def _exact(units: int, fee_ppk: int) -> list[int]:
    try:
        return wallet.exact_amounts(units, fee_ppk)
    except ValueError:
        raise DeskError(Code.INSUFFICIENT_VALUE, "no denominations cover these units with their input fee") \
            from None


def _check_params(amount_msat: Any, maxfee_msat: Any, payer_note: Any) -> None:
    for name, value in (("amount_msat", amount_msat), ("maxfee_msat", maxfee_msat)):
        if value is not None and (type(value) is not int or value < 0):
            raise DeskError(Code.INVALID_PARAMS, f"{name} must be a non-negative integer")
    if amount_msat == 0:
        raise DeskError(Code.INVALID_PARAMS, "amount_msat must be positive")
    if payer_note is not None and (not isinstance(payer_note, str) or len(payer_note) > 512):
        raise DeskError(Code.INVALID_PARAMS, "payer_note must be a string of at most 512 characters")


def _event_fields(rec: Record) -> dict[str, Any]:
    """What anyone may see of a redemption: no tokens, no preimage."""
    out: dict[str, Any] = {
        "id": rec.id, "state": str(rec.state), "unit": rec["unit"], "amount": rec["amount"],
        "value_msat": rec["quote_amount_msat"], "amount_msat": rec["amount_msat"], "fee_msat": rec["fee_msat"],
        "payment_hash": rec["payment_hash"], "destination_kind": rec["dest_kind"], "quote_id": rec["quote_id"],
        "created_at": rec["created_at"], "updated_at": rec["updated_at"],
    }
    if rec.get("error_code") is not None:
        out["error"] = {"code": rec["error_code"], "message": rec["error"]}
    return out
