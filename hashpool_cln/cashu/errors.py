"""One error type for everything the Cashu core refuses, with a machine-readable reason."""

from __future__ import annotations


class CashuError(ValueError):
    """Input the Cashu core refuses. ``reason`` is a stable short slug, ``str()`` the human text."""

    reason: str = "invalid"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class TokenError(CashuError):
    """A token string that cannot be parsed or breaks a structural rule."""

    reason = "bad_token"


class CryptoError(CashuError):
    """Bad points, scalars or a failed verification."""

    reason = "bad_crypto"


class KeysetError(CashuError):
    """Keys that do not match their keyset id, unknown or ambiguous ids."""

    reason = "bad_keyset"


class ConditionError(CashuError):
    """A NUT-10 secret whose spending condition the desk cannot or will not satisfy."""

    reason = "bad_condition"


class AmountError(CashuError):
    """Non-positive, non-power-of-two or overflowing amounts."""

    reason = "bad_amount"
