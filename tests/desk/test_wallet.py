import os
import stat

import pytest

from hashpool_cln.cashu.amounts import split_amount
from hashpool_cln.cashu.nut13 import derive_outputs
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
    os.chmod(path, 0o600)
    with pytest.raises(ValueError) as e:
        wallet.load_or_create_seed(str(path))
    assert str(tmp_path) not in str(e.value)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o666])
def test_a_seed_file_open_to_others_is_refused_and_left_as_it_is(tmp_path, mode):
    from hashpool_cln.desk.files import FileRefused

    path = tmp_path / "seed"
    path.write_text("ab" * 32)
    os.chmod(path, mode)
    with pytest.raises(FileRefused) as e:
        wallet.load_or_create_seed(str(path))
    assert "open to others" in str(e.value) and str(tmp_path) not in str(e.value)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode
    os.chmod(path, 0o600)
    assert wallet.load_or_create_seed(str(path)) == bytes.fromhex("ab" * 32)


def test_a_directory_open_to_others_is_made_owner_only(tmp_path, caplog):
    from hashpool_cln.desk.files import private_dir

    loose = tmp_path / "data"
    loose.mkdir()
    os.chmod(loose, 0o775)
    private_dir(loose)
    assert stat.S_IMODE(os.stat(loose).st_mode) == 0o700
    assert "made owner-only" in caplog.text
    private_dir(tmp_path / "new" / "deeper")
    assert stat.S_IMODE(os.stat(tmp_path / "new" / "deeper").st_mode) == 0o700


def test_outputs_are_deterministic_from_seed_and_counter():
    seed = bytes(range(32))
    kid = "00" + "ab" * 7
    a = derive_outputs(seed, kid, 10, [1, 2, 4])
    b = derive_outputs(seed, kid, 10, [1, 2, 4])
    c = derive_outputs(seed, kid, 11, [1, 2, 4])
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
