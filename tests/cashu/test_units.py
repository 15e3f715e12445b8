import pytest
from hypothesis import given
from hypothesis import strategies as st

from hashpool_cln.cashu.errors import CashuError
from hashpool_cln.cashu.units import EpochUnit, format_unit, is_ehash_unit, parse_unit

POOL = "02" + "ab" * 32
POOL3 = "03" + "0f" * 32


def test_parse_epoch_units():
    assert parse_unit(f"hash_{POOL}_840000") == EpochUnit(POOL, 840000, 0)
    assert parse_unit(f"hash_{POOL3}_0") == EpochUnit(POOL3, 0, 0)
    assert parse_unit(f"hash_{POOL}_840000_2") == EpochUnit(POOL, 840000, 2)


def test_legacy_unit():
    unit = parse_unit("hash")
    assert unit == EpochUnit("", 0, 0)
    assert unit.is_legacy
    assert str(unit) == "hash"
    assert format_unit("", 0) == "hash"


@pytest.mark.parametrize("unit", ["sat", "msat", "usd", "HASH", "hashes", "", "Hash_x"])
def test_non_ehash_units_are_none(unit):
    assert parse_unit(unit) is None
    assert not is_ehash_unit(unit)


@pytest.mark.parametrize(
    "unit",
    [
        "hash_",
        "hash_XYZ",
        f"hash_{POOL}",
        f"hash_{POOL}_",
        f"hash_{POOL.upper()}_1",  # pool keys are lowercase
        f"hash_04{'ab' * 32}_1",  # not a compressed key prefix
        f"hash_{POOL[:-2]}_1",  # 64 hex characters
        f"hash_{POOL}_01",  # leading zero in height
        f"hash_{POOL}_1_0",  # suffix starts at 1
        f"hash_{POOL}_1_01",
        f"hash_{POOL}_1_2_3",
        f"hash_{POOL}_-1",
        f"hash_{POOL}_1\n",
        f"hash_{POOL}_١",  # non-ASCII digit
        f"hash_{POOL}_{2**32}",
        f"hash_{POOL}_1_{2**32}",
    ],
)
def test_malformed_ehash_units_raise(unit):
    with pytest.raises(CashuError) as info:
        parse_unit(unit)
    assert info.value.reason == "bad_unit"
    assert not is_ehash_unit(unit)


def test_is_ehash_unit():
    assert is_ehash_unit("hash")
    assert is_ehash_unit(f"hash_{POOL}_1_3")
    assert not is_ehash_unit(None)
    assert not is_ehash_unit(5)


def test_parse_unit_refuses_non_strings():
    with pytest.raises(CashuError):
        parse_unit(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pool", "height", "suffix"),
    [
        ("02zz", 1, 0),
        (POOL.upper(), 1, 0),
        (POOL, -1, 0),
        (POOL, 1, -1),
        (POOL, True, 0),
        (POOL, 1.0, 0),
        (POOL, 2**32, 0),
        ("", 5, 0),
        (None, 1, 0),
    ],
)
def test_format_refuses(pool, height, suffix):
    with pytest.raises(CashuError) as info:
        format_unit(pool, height, suffix)
    assert info.value.reason == "bad_unit"


pools = st.tuples(st.sampled_from("23"), st.text("0123456789abcdef", min_size=64, max_size=64)).map(
    lambda t: "0" + t[0] + t[1]
)


@given(pools, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_format_parse_round_trip(pool, height, suffix):
    unit = format_unit(pool, height, suffix)
    assert parse_unit(unit) == EpochUnit(pool, height, suffix)
    assert str(EpochUnit(pool, height, suffix)) == unit
    assert unit.endswith(f"_{height}_{suffix}" if suffix else f"_{height}")
