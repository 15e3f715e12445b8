import os
import stat

import pytest

from hashpool_cln.cashu.amounts import split_amount
from hashpool_cln.desk import wallet


def test_seed_created_private_and_reused(tmp_path):
    path = str(tmp_path / "seed")
    seed = wallet.load_or_create_seed(path)
    assert len(seed) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert wallet.load_or_create_seed(path) == seed


@pytest.mark.parametrize("text", ["zz", "00" * 31, "00" * 65])
def test_bad_seed_files_are_refused(tmp_path, text):
    path = tmp_path / "seed"
    path.write_text(text)
    with pytest.raises(ValueError):
        wallet.load_or_create_seed(str(path))


def test_outputs_are_deterministic_from_seed_and_counter():
    seed = bytes(range(32))
    kid = "00" + "ab" * 7
    a = wallet.derive_outputs(seed, kid, 10, [1, 2, 4])
    b = wallet.derive_outputs(seed, kid, 10, [1, 2, 4])
    c = wallet.derive_outputs(seed, kid, 11, [1, 2, 4])
    assert [o.message for o in a] == [o.message for o in b]
    assert a[1].message.B_ == c[0].message.B_  # counter 11 is counter 11, whatever the batch
    assert [o.message.amount for o in a] == [1, 2, 4]


@pytest.mark.parametrize("units", [1, 2, 3, 7, 100, 1023, 4096])
@pytest.mark.parametrize("ppk", [0, 100, 1000])
def test_exact_amounts_cover_units_plus_their_own_fee(units, ppk):
    parts = wallet.exact_amounts(units, ppk)
    assert all(p & (p - 1) == 0 for p in parts)
    if ppk == 0:
        assert parts == split_amount(units)
    assert sum(parts) - -(-len(parts) * ppk // 1000) == units
