"""The wallet's one secret: its mnemonic gives the NUT-13 secrets of the Cashu test vectors (so cashu-ts and CDK
wallets derive the same proofs from the same words), BIP39 as the reference implementation computes it, and
owner-only files that are never overwritten."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from mnemonic import Mnemonic

from hashpool_cln.cashu.nut13 import derive_outputs
from hashpool_cln.wallet.seed import (
    SeedError,
    WalletKeys,
    check_mnemonic,
    new_mnemonic,
    read_mnemonic,
    write_secret_file,
)

VECTORS = json.loads((Path(__file__).parents[1] / "cashu" / "vectors" / "nut13.json").read_text())


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_nut13_vectors_from_the_mnemonic(version: str) -> None:
    vector = VECTORS[version]
    keys = WalletKeys(vector["mnemonic"])
    outputs = derive_outputs(keys.seed, vector["keyset_id"], 0, [1] * len(vector["outputs"]))
    for out, expected in zip(outputs, vector["outputs"]):
        assert out.secret == expected["secret"]
        assert out.r.secret.hex() == expected["r"]


def test_the_seed_is_bip39_as_the_reference_library_computes_it() -> None:
    words = new_mnemonic()
    assert WalletKeys(words).seed == Mnemonic("english").to_seed(words)
    assert len(new_mnemonic(256).split()) == 24


def test_keys_differ_by_purpose_and_repr_hides_them() -> None:
    keys = WalletKeys(new_mnemonic())
    assert keys.lock_pubkey != keys.node_id
    assert keys.lock_key.secret.hex() not in repr(keys) and keys.node_key.hex() not in repr(keys)
    assert WalletKeys(" " + "  ".join(check_mnemonic(new_mnemonic()).upper().split()) + "\n")  # spacing, case


@pytest.mark.parametrize("bad", ["", "abandon " * 12, "half depart obvious quality work element tank gorilla view "
                                 "sugar picture picture", "not words at all"])
def test_bad_mnemonics_are_refused(bad: str) -> None:
    with pytest.raises(SeedError):
        WalletKeys(bad)


def test_the_mnemonic_file_is_owner_only_and_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "w" / "mnemonic"
    words = new_mnemonic()
    write_secret_file(path, words + "\n")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    with pytest.raises(FileExistsError):
        write_secret_file(path, new_mnemonic())
    assert read_mnemonic(path) == words
    os.chmod(path, 0o644)
    with pytest.raises(SeedError, match="readable by others"):
        read_mnemonic(path)
    assert [p.name for p in path.parent.iterdir()] == ["mnemonic"]  # no temporary file left behind
