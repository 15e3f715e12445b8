"""Wire objects of NUT-00: proofs, blinded messages, blind signatures, DLEQ proofs.

Fields keep their wire names and hex encodings so that JSON round-trips are exact; crypto code converts
to points where it needs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class DLEQ:
    """NUT-12 proof: ``e`` and ``s`` (hex scalars); ``r`` (hex blinding factor) only on proofs."""

    e: str
    s: str
    r: str | None = None

    def to_dict(self) -> dict[str, str]:
        d = {"e": self.e, "s": self.s}
        if self.r is not None:
            d["r"] = self.r
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DLEQ:
        return cls(e=d["e"], s=d["s"], r=d.get("r"))


@dataclass(frozen=True, slots=True)
class Proof:
    """An unblinded token ``(amount, id, secret, C)`` with optional witness and DLEQ."""

    amount: int
    id: str
    secret: str
    C: str
    dleq: DLEQ | None = None
    witness: str | None = None

    def to_dict(self, include_dleq: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {"amount": self.amount, "id": self.id, "secret": self.secret, "C": self.C}
        if self.dleq is not None and include_dleq:
            d["dleq"] = self.dleq.to_dict()
        if self.witness is not None:
            d["witness"] = self.witness
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Proof:
        dleq = d.get("dleq")
        return cls(
            amount=d["amount"],
            id=d["id"],
            secret=d["secret"],
            C=d["C"],
            dleq=DLEQ.from_dict(dleq) if dleq else None,
            witness=d.get("witness"),
        )


@dataclass(frozen=True, slots=True)
class BlindedMessage:
    """An output a wallet asks the mint to sign: ``B_`` is the blinded secret (hex point)."""

    amount: int
    id: str
    B_: str

    def to_dict(self) -> dict[str, Any]:
        return {"amount": self.amount, "id": self.id, "B_": self.B_}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BlindedMessage:
        return cls(amount=d["amount"], id=d["id"], B_=d["B_"])


@dataclass(frozen=True, slots=True)
class BlindSignature:
    """The mint's answer to a BlindedMessage: ``C_`` (hex point) with an optional DLEQ ``(e, s)``."""

    amount: int
    id: str
    C_: str
    dleq: DLEQ | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"amount": self.amount, "id": self.id, "C_": self.C_}
        if self.dleq is not None:
            d["dleq"] = self.dleq.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BlindSignature:
        dleq = d.get("dleq")
        return cls(amount=d["amount"], id=d["id"], C_=d["C_"], dleq=DLEQ.from_dict(dleq) if dleq else None)


@dataclass(frozen=True, slots=True)
class Token:
    """A decoded token: one mint, one unit, proofs possibly from several keysets."""

    mint: str
    unit: str
    proofs: tuple[Proof, ...]
    memo: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def amount(self) -> int:
        return sum(p.amount for p in self.proofs)

    @property
    def keyset_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.id for p in self.proofs))
