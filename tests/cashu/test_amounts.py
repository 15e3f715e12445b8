from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hashpool_cln.cashu.amounts import U64_MAX, checked_sum, is_power_of_two, split_amount
from hashpool_cln.cashu.errors import AmountError, CashuError


@pytest.mark.parametrize("n", [1, 2, 4, 1024, 2**63])
def test_powers_of_two(n):
    assert is_power_of_two(n)


@pytest.mark.parametrize("n", [0, -1, -2, 3, 6, 1023, 2**63 + 1, True, 1.0, 2.0, "2", None, Decimal(2)])
def test_not_powers_of_two(n):
    assert not is_power_of_two(n)


def test_split_examples():
    assert split_amount(0) == []
    assert split_amount(1) == [1]
    assert split_amount(13) == [1, 4, 8]
    assert split_amount(U64_MAX) == [1 << i for i in range(64)]


@given(st.integers(min_value=0, max_value=U64_MAX))
def test_split_sums_back_to_distinct_ascending_powers(n):
    parts = split_amount(n)
    assert sum(parts) == n
    assert all(is_power_of_two(p) for p in parts)
    assert parts == sorted(set(parts))


@pytest.mark.parametrize(
    ("value", "reason"),
    [(True, "not_integer"), (1.0, "not_integer"), ("3", "not_integer"), (-1, "negative"), (U64_MAX + 1, "overflow")],
)
def test_split_refuses(value, reason):
    with pytest.raises(AmountError) as info:
        split_amount(value)
    assert info.value.reason == reason
    assert isinstance(info.value, CashuError)


def test_checked_sum():
    assert checked_sum([]) == 0
    assert checked_sum([1, 2, 3]) == 6
    assert checked_sum(iter([U64_MAX])) == U64_MAX
    assert checked_sum([5, 5], limit=10) == 10


@pytest.mark.parametrize(
    ("values", "limit", "reason"),
    [
        ([U64_MAX, 1], U64_MAX, "overflow"),
        ([6, 5], 10, "overflow"),
        ([1, -1], U64_MAX, "negative"),
        ([1, False], U64_MAX, "not_integer"),
        ([1, 0.5], U64_MAX, "not_integer"),
        ([Decimal(1)], U64_MAX, "not_integer"),
        ([1], 1.5, "not_integer"),
    ],
)
def test_checked_sum_refuses(values, limit, reason):
    with pytest.raises(AmountError) as info:
        checked_sum(values, limit=limit)
    assert info.value.reason == reason
