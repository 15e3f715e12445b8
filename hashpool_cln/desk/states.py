"""The life of a redemption as data: its states and the only moves between them (DESIGN §2).

    new → quoted → custody → paying → paid → settled
    new, quoted → rejected        (nothing happened: the caller's token is untouched)
    quoted → refunded             (custody taken but its outputs are unusable: they are handed back)
    custody, paying → refunded    (the payment cannot or did not happen: the custody proofs go back)

A redemption is written ``new`` and moved on to ``quoted`` or ``rejected`` in the same commit (the desk prices
before it writes); a ledger of an earlier version may still hold one in ``new``.
"""

from __future__ import annotations

from enum import Enum


class State(str, Enum):
    NEW = "new"
    QUOTED = "quoted"
    CUSTODY = "custody"
    PAYING = "paying"
    PAID = "paid"
    SETTLED = "settled"
    REJECTED = "rejected"
    REFUNDED = "refunded"

    def __str__(self) -> str:
        return self.value


TRANSITIONS: frozenset[tuple[State, State]] = frozenset({
    (State.NEW, State.QUOTED),
    (State.NEW, State.REJECTED),
    (State.QUOTED, State.CUSTODY),
    (State.QUOTED, State.REJECTED),
    (State.QUOTED, State.REFUNDED),
    (State.CUSTODY, State.PAYING),
    (State.CUSTODY, State.REFUNDED),
    (State.PAYING, State.PAID),
    (State.PAYING, State.REFUNDED),
    (State.PAID, State.SETTLED),
})

# No further move: the token's fate is decided and recorded.
FINAL: frozenset[State] = frozenset({State.SETTLED, State.REJECTED, State.REFUNDED})
# The token's proofs are no longer claimed: the caller holds them again (untouched, or as a refund).
RELEASED: frozenset[State] = frozenset({State.REJECTED, State.REFUNDED})


class IllegalTransition(Exception):
    """A move the state machine does not allow: a bug, never a caller's mistake."""


def transition(old: State | str, new: State | str) -> State:
    """Check the move ``old → new`` and return the new state; raise IllegalTransition otherwise."""
    old_s, new_s = State(old), State(new)
    if (old_s, new_s) not in TRANSITIONS:
        raise IllegalTransition(f"{old_s} → {new_s} is not a legal move")
    return new_s
