"""The desk's local rules as pure functions (the end-to-end refusals are in test_refusals.py)."""

import pytest

from hashpool_cln.desk import policy
from hashpool_cln.desk.config import DeskConfig
from hashpool_cln.desk.errors import Code, DeskError
from hashpool_cln.ehash import EhashQuote, Epoch
from hashpool_cln.lightning.port import Destination

POOL = "02" + "11" * 32
UNIT = f"hash_{POOL}_100"
NOW = 1_700_000_000


def config(**kw) -> DeskConfig:
    base = dict(mint_url="http://127.0.0.1:3338", db_path="x", seed_path="y", pools=[POOL], max_msat=1_000_000)
    return DeskConfig(**{**base, **kw})


def epoch(**kw) -> Epoch:
    base = dict(unit=UNIT, pool=POOL, height=100, block_hash=None, state="settled", issued=3,
                reward_msat=1_000_000, redeemed_msat=0, redeem_until=None, keysets=())
    return Epoch(**{**base, **kw})


def dest(**kw) -> Destination:
    base = dict(kind="bolt11", invstring="lnbcrt1", network="regtest", amount_msat=1000, payment_hash="aa" * 32,
                payee=None, created_at=NOW, expires_at=NOW + 3600)
    return Destination(**{**base, **kw})


def code_of(fn, *args) -> Code:
    with pytest.raises(DeskError) as e:
        fn(*args)
    return e.value.code


def test_mint_must_be_served_trailing_slash_and_case_ignored():
    policy.check_mint("HTTP://127.0.0.1:3338/", config())
    policy.check_mint("https://alias", config(mint_aliases=("https://alias/",)))
    assert code_of(policy.check_mint, "http://127.0.0.1:3339", config()) is Code.UNKNOWN_MINT


@pytest.mark.parametrize("unit", ["sat", f"hash_{'03' + '22' * 32}_100", "hash_zz_1", "hash"])
def test_unit_refusals(unit):
    assert code_of(policy.check_unit, unit, config()) is Code.UNIT_NOT_ALLOWED


def test_legacy_unit_only_when_allowed():
    assert policy.check_unit("hash", config(allow_legacy_unit=True)).is_legacy


@pytest.mark.parametrize("state", ["open", "provisional", "final", "closed"])
def test_only_settled_epochs(state):
    assert code_of(policy.check_epoch, UNIT, epoch(state=state), NOW) is Code.EPOCH_NOT_REDEEMABLE


def test_epoch_missing_or_past_its_window():
    assert code_of(policy.check_epoch, UNIT, None, NOW) is Code.EPOCH_NOT_REDEEMABLE
    assert code_of(policy.check_epoch, UNIT, epoch(redeem_until=NOW), NOW) is Code.EPOCH_NOT_REDEEMABLE
    assert policy.check_epoch(UNIT, epoch(redeem_until=NOW + 1), NOW).unit == UNIT


def test_destination_rules():
    cfg = config(min_invoice_life=120)
    policy.check_destination(dest(), "regtest", NOW, cfg)
    assert code_of(policy.check_destination, dest(network="bitcoin"), "regtest", NOW, cfg) is Code.WRONG_NETWORK
    assert code_of(policy.check_destination, dest(expires_at=NOW), "regtest", NOW, cfg) is Code.DESTINATION_EXPIRED
    assert code_of(policy.check_destination, dest(expires_at=NOW + 119), "regtest", NOW, cfg) \
        is Code.DESTINATION_EXPIRED
    offer = dest(kind="bolt12_offer", payment_hash=None)
    assert code_of(policy.check_destination, offer.__class__(**{**_d(offer), "recurring": True}), "regtest", NOW,
                   cfg) is Code.DESTINATION_UNSUPPORTED
    assert code_of(policy.check_destination, offer.__class__(**{**_d(offer), "currency": "EUR"}), "regtest", NOW,
                   cfg) is Code.DESTINATION_UNSUPPORTED


def _d(x) -> dict:
    return {f: getattr(x, f) for f in x.__slots__}


def test_fee_reserve_is_min_of_ppm_and_absolute_cap():
    cfg = config(maxfee_ppm=10_000, maxfee_msat=5_000)
    assert policy.fee_reserve(100_000, None, cfg) == 1_000  # 1 %
    assert policy.fee_reserve(100_001, None, cfg) == 1_001  # rounded up
    assert policy.fee_reserve(10_000_000, None, cfg) == 5_000  # capped
    assert policy.fee_reserve(100_000, 500, cfg) == 500  # the caller may allow less
    assert code_of(policy.fee_reserve, 100_000, 1_001, cfg) is Code.FEE_TOO_HIGH


def test_amount_limits():
    assert code_of(policy.check_amount, 1_000_001, config()) is Code.OVER_LIMIT
    policy.check_amount(1_000_000, config())


def test_units_for_is_the_exact_integer_ceiling():
    e = epoch(issued=3, reward_msat=1_000_000)  # 333333.33 msat a unit
    for amount in (1, 333_333, 333_334, 999_999, 1_000_000):
        units = policy.units_for(amount, e, 0)
        assert policy.epoch_value(units, e, 0) >= amount
        assert units == 1 or policy.epoch_value(units - 1, e, 0) < amount


def test_pool_fee_lowers_the_value():
    e = epoch(issued=10, reward_msat=1_000_000)
    assert policy.epoch_value(10, e, 20_000) == 980_000


def test_rate_sanity():
    e = epoch(issued=4, reward_msat=1_000_000)
    good = EhashQuote(quote="q", unit=UNIT, amount=2, amount_msat=500_000, state="UNPAID", expiry=NOW + 600)
    expected = policy.epoch_value(2, e, 0)
    policy.check_rate(good, 2, UNIT, expected, config())
    off = EhashQuote(quote="q", unit=UNIT, amount=2, amount_msat=500_002, state="UNPAID", expiry=NOW + 600)
    assert code_of(policy.check_rate, off, 2, UNIT, expected, config()) is Code.RATE_REFUSED
    other = EhashQuote(quote="q", unit=UNIT, amount=3, amount_msat=750_000, state="UNPAID", expiry=NOW + 600)
    assert code_of(policy.check_rate, other, 2, UNIT, expected, config()) is Code.RATE_REFUSED
