"""Integer amount helpers: Cashu denominations and overflow-checked sums.

Amounts (ecash units and msat alike) are Python ints. ``bool`` is an ``int`` subclass and ``float`` silently
loses precision above 2**53, so both are refused explicitly instead of being coerced.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import AmountError

U64_MAX = 2**64 - 1


def _require_int(value: object, what: str) -> int:
    if type(value) is not int:
        # Exact type check: bool (an int subclass), float, Decimal and numeric strings are all refused.
        raise AmountError(f"{what} must be an integer, not {type(value).__name__}", reason="not_integer")
    return value


def is_power_of_two(n: object) -> bool:
    """True for the positive powers of two (1, 2, 4, ...); False for anything else, including bools and floats."""
    return type(n) is int and n > 0 and n & (n - 1) == 0


def split_amount(n: int) -> list[int]:
    """Split ``n`` into the distinct powers of two that sum to it, ascending (``13 -> [1, 4, 8]``, ``0 -> []``).

    Raises AmountError for non-integers, negative values and values above 2**64 - 1.
    """
    _require_int(n, "amount")
    if n < 0:
        raise AmountError(f"amount must not be negative, got {n}", reason="negative")
    if n > U64_MAX:
        raise AmountError(f"amount {n} exceeds 2**64 - 1", reason="overflow")
    return [1 << bit for bit in range(n.bit_length()) if n >> bit & 1]


def checked_sum(values: Iterable[int], limit: int = U64_MAX) -> int:
    """Sum non-negative integers, refusing any running total above ``limit``.

    Raises AmountError (reason ``not_integer``, ``negative`` or ``overflow``) instead of returning a total that
    the mint or the node could not represent.
    """
    _require_int(limit, "limit")
    total = 0
    for value in values:
        _require_int(value, "amount")
        if value < 0:
            raise AmountError(f"amount must not be negative, got {value}", reason="negative")
        total += value
        if total > limit:
            raise AmountError(f"sum of amounts exceeds the limit {limit}", reason="overflow")
    return total


def pick_exact(amounts: list[int], target: int) -> list[int]:
    """Indices into ``amounts`` (powers of two) whose values sum to exactly ``target``: largest first, which for
    powers of two finds a subset whenever one exists. ValueError when none does."""
    picked, left = [], target
    for i in sorted(range(len(amounts)), key=lambda i: -amounts[i]):
        if amounts[i] <= left:
            picked.append(i)
            left -= amounts[i]
    if left:
        raise ValueError(f"no subset of the amounts sums to {target}")
    return sorted(picked)
