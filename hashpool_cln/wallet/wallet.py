"""The wallet's money logic against one mint: keysets, deterministic outputs, swaps with crash recovery, balance,
send, receive and restore. Sweeping share quotes and redeeming at the desk build on the same operations.

Every request that creates signatures is an operation (``store.Operation``) written before it goes out, with
the NUT-13 counters of its outputs. A lost answer is asked again; a crash is finished at the next start by
NUT-09 restore of those very outputs, then NUT-07 checkstate of the inputs: signed means done, unsigned with
unspent inputs means the mint never acted, and nothing is minted or spent twice.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hashpool_cln.cashu.amounts import pick_exact, split_amount
from hashpool_cln.cashu.crypto import proof_y
from hashpool_cln.cashu.errors import CashuError
from hashpool_cln.cashu.keysets import Keyset, input_fee
from hashpool_cln.cashu.models import BlindedMessage, BlindSignature, Proof
from hashpool_cln.cashu.nut13 import Output, derive_outputs
from hashpool_cln.cashu.tokens import make_token, parse_token, resolve_short_ids
from hashpool_cln.ehash import Epoch, quote_amount_msat
from hashpool_cln.mintclient import MintClient, MintError, MintProtocolError, MintUnavailable, MintUnsupported
from hashpool_cln.wallet.errors import Code, WalletError
from hashpool_cln.wallet.seed import WalletKeys
from hashpool_cln.wallet.store import Operation, WalletStore

RESTORE_BATCH = 100
RESTORE_EMPTY_BATCHES = 3  # NUT-13: stop after this many batches in a row with nothing signed
REPLAYS = 2  # how often a request whose answer was lost is sent again, identical, before giving up for now


@dataclass(frozen=True, slots=True)
class UnitBalance:
    unit: str
    unspent: int
    pending: int
    state: str | None  # the epoch's state at the mint; None when the mint lists no such epoch
    value_msat: int | None  # settled epochs only: the unspent units at the epoch's rate

    def to_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "unspent": self.unspent, "pending": self.pending, "epoch_state": self.state,
                "value_msat": self.value_msat}


def epoch_value_msat(epoch: Epoch | None, units: int) -> int | None:
    """What ``units`` of a settled epoch are worth at its published rate; None for any other state."""
    if epoch is None or epoch.state != "settled" or epoch.net_reward_msat is None or epoch.issued <= 0:
        return None
    return quote_amount_msat(units, epoch.net_reward_msat, epoch.issued)


def signed_outputs(outputs: Sequence[Output], known: Sequence[BlindedMessage],
                   signatures: Sequence[BlindSignature]) -> tuple[list[Output], list[BlindSignature]]:
    """What NUT-09 restore found, paired by ``B_`` with our outputs and put back in their order. Amount and keyset
    come from each signature: a mint may echo the outputs as sent (restore asks with placeholder amounts)."""
    position = {o.message.B_: i for i, o in enumerate(outputs)}
    pairs = sorted(((position[m.B_], sig) for m, sig in zip(known, signatures) if m.B_ in position),
                   key=lambda pair: pair[0])
    signed = [Output(BlindedMessage(sig.amount, sig.id, outputs[i].message.B_), outputs[i].secret, outputs[i].r)
              for i, sig in pairs]
    return signed, [sig for _, sig in pairs]


def _indexes(outputs: Sequence[Output], signed: Sequence[Output]) -> list[int]:
    position = {o.message.B_: i for i, o in enumerate(outputs)}
    return [position[o.message.B_] for o in signed]


class Wallet:
    """One mnemonic, one mint, one database. Call ``recover()`` before anything else after opening."""

    def __init__(self, store: WalletStore, keys: WalletKeys, mint: MintClient) -> None:
        self.store = store
        self.keys = keys
        self.mint = mint
        self._keysets: dict[str, Keyset] = {}

    # ---- keysets ----------------------------------------------------------------------------------------

    async def keysets(self, refresh: bool = False) -> dict[str, Keyset]:
        if refresh or not self._keysets:
            listed = await self.mint.keysets()
            await self.store.save_keysets((k.id, k.unit, k.active, k.input_fee_ppk) for k in listed)
            self._keysets = {k.id: k for k in listed}
        return self._keysets

    async def active_keyset(self, unit: str) -> Keyset:
        for refresh in (False, True):
            for k in (await self.keysets(refresh)).values():
                if k.unit == unit and k.active:
                    return k
        raise WalletError(Code.UNKNOWN_UNIT, f"the mint has no active keyset for unit {unit}")

    async def fee(self, proofs: Sequence[Proof]) -> int:
        keysets = await self.keysets()
        return input_fee([p.id for p in proofs], {k: v.input_fee_ppk for k, v in keysets.items()})

    def outputs(self, op: Operation) -> list[Output]:
        return derive_outputs(self.keys.seed, op.keyset_id, op.counter_start, op.amounts)

    # ---- operations -------------------------------------------------------------------------------------

    async def run(self, op: Operation, request: Callable[[list[Output]], Awaitable[list[BlindSignature]]], *,
                  send: tuple[str, str, int, int] | None = None) -> list[Proof]:
        """Send the operation's request (again, identical, if its answer is lost), store what it yields.

        ``send`` = (send id, unit, amount, how many leading outputs make the token): those proofs go into the
        token, pending, in the same transaction. MintError: the mint refused, nothing changed (the operation is
        closed). WalletError OUTCOME_UNKNOWN: no answer; the operation stays open for ``recover()``.
        """
        outputs = self.outputs(op)
        for attempt in range(REPLAYS + 1):
            try:
                signatures = await request(outputs)
                break
            except MintError as exc:
                # A refused replay may mean the first send went through; a mint may also refuse after acting.
                # Either way restore of these very outputs decides, before the inputs are given back. (A first
                # refusal from a mint without NUT-09 stands: it cannot be asked.)
                with contextlib.suppress(*(() if attempt else (MintUnsupported,))):
                    if await self._recover(op, send):
                        return await self._proofs_of(op)
                await self._close_unsigned(op)
                raise WalletError.from_mint(exc) from None
            except (MintUnavailable, MintProtocolError) as exc:
                last = exc
        else:
            raise WalletError(Code.OUTCOME_UNKNOWN, f"{last}; the wallet finishes this at its next command")
        return await self._store(op, outputs, signatures, send)

    async def _store(self, op: Operation, outputs: Sequence[Output], signatures: Sequence[BlindSignature],
                     send: tuple[str, str, int, int] | None) -> list[Proof]:
        proofs = await self._unblind(outputs, signatures)
        if send is None or len(proofs) != len(op.amounts):
            await self.store.finish_operation(op, proofs)
            return proofs
        send_id, unit, amount, count = send
        token = make_token(self.mint.url, unit, proofs[:count]) or ""
        await self.store.finish_operation(op, proofs, pending_for={i: send_id for i in range(count)},
                                          send=(send_id, unit, amount, token))
        return proofs

    async def _unblind(self, outputs: Sequence[Output], signatures: Sequence[BlindSignature]) -> list[Proof]:
        return await self.mint.unblind_signatures([o.message for o in outputs], [o.secret for o in outputs],
                                                  [o.r for o in outputs], signatures)

    async def _proofs_of(self, op: Operation) -> list[Proof]:
        ys = [proof_y(o.secret) for o in self.outputs(op)]
        return [p.proof for p in await self.store.proofs() if p.y in set(ys)]

    async def recover(self) -> int:
        """Finish every operation a crash or a lost answer left open; returns how many were open."""
        ops = await self.store.open_operations()
        for op in ops:
            if not await self._recover(op):
                await self._close_unsigned(op)
        return len(ops)

    async def _recover(self, op: Operation, send: tuple[str, str, int, int] | None = None) -> bool:
        """NUT-09 restore of the operation's outputs; True (and stored) if the mint signed them. After a crash
        (no ``send``) a token being made never reached anyone: all its proofs are the wallet's."""
        outputs = self.outputs(op)
        known, signatures = await self.mint.restore([o.message for o in outputs])
        if not signatures:
            return False
        signed, sigs = signed_outputs(outputs, known, signatures)
        if any(o.message.amount != op.amounts[i] for i, o in zip(_indexes(outputs, signed), signed)):
            raise MintProtocolError("restore: the mint signed other amounts than the operation asked for")
        await self._store(op, signed, sigs, send)
        return True

    async def _close_unsigned(self, op: Operation) -> None:
        """The mint signed none of the outputs: the inputs go back to unspent unless the mint says they are spent
        (then they were spent elsewhere, e.g. a token we had sent)."""
        spent: list[str] = []
        if op.inputs and not op.purpose.get("foreign_inputs"):
            states = await self.mint.checkstate(op.inputs)
            spent = [s.Y for s in states if s.state == "SPENT"]
        await self.store.fail_operation(op, spent=spent)

    # ---- balance ----------------------------------------------------------------------------------------

    async def balance(self) -> list[UnitBalance]:
        keysets = await self.keysets()
        totals: dict[str, list[int]] = {}
        for p in await self.store.proofs():
            unit = keysets[p.proof.id].unit if p.proof.id in keysets else "?"
            entry = totals.setdefault(unit, [0, 0])
            if p.state == "unspent":
                entry[0] += p.proof.amount
            elif p.state == "pending":
                entry[1] += p.proof.amount
        epochs = {e.unit: e for e in await self.mint.epochs()}
        return [UnitBalance(unit, unspent, pending, epochs[unit].state if unit in epochs else None,
                            epoch_value_msat(epochs.get(unit), unspent))
                for unit, (unspent, pending) in sorted(totals.items()) if unspent or pending]

    async def unspent(self, unit: str) -> list[Proof]:
        ids = [k for k, v in (await self.keysets()).items() if v.unit == unit]
        return [p.proof for p in await self.store.proofs(state="unspent", keyset_ids=ids)] if ids else []

    # ---- swaps: send, receive ---------------------------------------------------------------------------

    async def swap(self, inputs: Sequence[Proof], amounts: Sequence[int], unit: str, *,
                   foreign: bool = False, reclaim: dict[str, str | None] | None = None,
                   send: tuple[str, int, int] | None = None) -> list[Proof]:
        """NUT-03 swap of ``inputs`` (the wallet's unspent proofs; a token's when ``foreign``; a token the wallet
        sent when ``reclaim``, which maps each input's Y to what held it pending: it does again if the swap
        fails) into outputs of ``amounts`` in the unit's active keyset."""
        keyset = await self.active_keyset(unit)
        ys = [proof_y(p.secret) for p in inputs]
        purpose = {"foreign_inputs": True} if foreign else {"reclaim": reclaim} if reclaim else None
        op = await self.store.begin_operation(
            f"swap-{secrets.token_hex(8)}", "swap", keyset.id, amounts, inputs=ys, purpose=purpose,
            own_inputs=not foreign, input_state="pending" if reclaim else "unspent")

        async def request(outputs: list[Output]) -> list[BlindSignature]:
            return await self.mint.swap(inputs, [o.message for o in outputs])

        full_send = (send[0], unit, send[1], send[2]) if send else None
        return await self.run(op, request, send=full_send)

    async def send(self, amount: int, unit: str) -> str:
        """A V4 token worth exactly ``amount`` units; its proofs stay pending until the mint says they are spent."""
        if not isinstance(amount, int) or amount <= 0:
            raise WalletError(Code.BAD_AMOUNT, "the amount must be a positive whole number of units")
        proofs = await self.unspent(unit)
        send_id = f"send-{secrets.token_hex(8)}"
        try:
            exact = [proofs[i] for i in pick_exact([p.amount for p in proofs], amount)]
        except ValueError:
            exact = []
        if exact:
            token = make_token(self.mint.url, unit, exact) or ""
            await self.store.add_send(send_id, unit, amount, token, [proof_y(p.secret) for p in exact])
            return token
        chosen = await self.select(proofs, amount, unit)
        change = sum(p.amount for p in chosen) - amount - await self.fee(chosen)
        to_send = split_amount(amount)
        await self.swap(chosen, to_send + split_amount(change), unit, send=(send_id, amount, len(to_send)))
        return next(s["token"] for s in await self.store.sends() if s["id"] == send_id)

    async def select(self, proofs: Sequence[Proof], amount: int, unit: str) -> list[Proof]:
        """Largest first until they cover ``amount`` and the input fee of spending them."""
        chosen: list[Proof] = []
        for p in sorted(proofs, key=lambda p: -p.amount):
            chosen.append(p)
            if sum(c.amount for c in chosen) - await self.fee(chosen) >= amount:
                return chosen
        have = sum(p.amount for p in proofs)
        raise WalletError(Code.INSUFFICIENT_FUNDS, f"{amount} {unit} asked, {have} spendable (less input fees)")

    async def receive(self, text: str) -> int:
        """Swap a token's proofs into the wallet's own; returns the units received."""
        try:
            token = parse_token(text.strip())
        except CashuError as exc:
            raise WalletError(Code.BAD_TOKEN, f"not a Cashu token: {exc}") from None
        if token.mint.rstrip("/") != self.mint.url:
            raise WalletError(Code.WRONG_MINT, f"the token is from {token.mint}, this wallet uses {self.mint.url}")
        try:
            token = resolve_short_ids(token, list((await self.keysets(refresh=True)).keys()))
        except CashuError as exc:
            raise WalletError(Code.BAD_TOKEN, str(exc)) from None
        units = {self._keysets[p.id].unit for p in token.proofs}
        if units != {token.unit}:
            raise WalletError(Code.BAD_TOKEN, f"the token says unit {token.unit}, its keysets are {sorted(units)}")
        ours = {p.y: p for p in await self.store.proofs() if p.state != "spent"}
        ys = [proof_y(p.secret) for p in token.proofs]
        mine = [ours[y] for y in ys if y in ours]
        if any(p.state == "unspent" for p in mine):
            raise WalletError(Code.BAD_TOKEN, "the token holds proofs this wallet already has, spendable")
        own = len(mine) == len(token.proofs)  # a token we sent, taken back
        if mine and not own:
            raise WalletError(Code.BAD_TOKEN, "the token mixes proofs this wallet sent with others'; receive "
                              "them apart")
        amount = token.amount - await self.fee(token.proofs)
        if amount <= 0:
            raise WalletError(Code.BAD_TOKEN, "the token is worth less than the mint's input fee")
        held = {y: ours[y].reserved_for for y in ys} if own else None
        await self.swap(token.proofs, split_amount(amount), token.unit, foreign=not own, reclaim=held)
        if own:
            for send_id in {ours[y].reserved_for for y in ys}:
                if send_id and send_id.startswith("send-"):
                    await self.store.set_send_state(send_id, "reclaimed")
        return amount

    async def check_sends(self) -> list[dict[str, Any]]:
        """NUT-07 for every pending send: a token whose proofs are all spent is marked spent."""
        result = []
        for send in await self.store.sends("pending"):
            held = await self.store.proofs(reserved_for=send["id"])
            states = await self.mint.checkstate([p.y for p in held]) if held else []
            if held and all(s.state == "SPENT" for s in states):
                await self.store.set_proof_states([p.y for p in held], "spent", send["id"])
                await self.store.set_send_state(send["id"], "spent")
                send = {**send, "state": "spent"}
            result.append(send)
        return result

    # ---- restore ----------------------------------------------------------------------------------------

    async def restore(self) -> dict[str, int]:
        """Every proof the mint ever signed for this mnemonic (NUT-09 over NUT-13 counters, every keyset), kept
        if still unspent; counters moved past the last one found. Returns units found per unit."""
        found: dict[str, int] = {}
        for keyset in (await self.keysets(refresh=True)).values():
            proofs, next_counter = await self._restore_keyset(keyset.id)
            if next_counter:
                await self.store.raise_counter(keyset.id, next_counter)
            if not proofs:
                continue
            states = await self.mint.checkstate([proof_y(p.secret) for p in proofs])
            live = [p for p, s in zip(proofs, states) if s.state == "UNSPENT"]
            await self.store.add_proofs(live)
            if live:
                found[keyset.unit] = found.get(keyset.unit, 0) + sum(p.amount for p in live)
        return found

    async def _restore_keyset(self, keyset_id: str) -> tuple[list[Proof], int]:
        proofs: list[Proof] = []
        start, empty, next_counter = 0, 0, 0
        while empty < RESTORE_EMPTY_BATCHES:
            outputs = derive_outputs(self.keys.seed, keyset_id, start, [1] * RESTORE_BATCH)
            known, signatures = await self.mint.restore([o.message for o in outputs])
            if signatures:
                signed, sigs = signed_outputs(outputs, known, signatures)
                proofs += await self._unblind(signed, sigs)
                next_counter = start + max(_indexes(outputs, signed)) + 1
                empty = 0
            else:
                empty += 1
            start += RESTORE_BATCH
        return proofs, next_counter
