"""NUT-13 deterministic secrets (v1 BIP32 and v2 HMAC vectors), BIP32 and BIP39 vectors, and refusals."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest
from coincurve import PrivateKey

from hashpool_cln.cashu.crypto import N, blind, sign, unblind, verify
from hashpool_cln.cashu.errors import CashuError, CryptoError, KeysetError
from hashpool_cln.cashu.nut13 import (
    bip32_master,
    derive_path,
    derive_secret,
    keyset_id_int,
    parse_path,
    seed_from_mnemonic,
)

VECTORS = Path(__file__).parent / "vectors"
NUT13 = json.loads((VECTORS / "nut13.json").read_text())
BIP32 = json.loads((VECTORS / "nut13_bip32.json").read_text())
BIP39 = json.loads((VECTORS / "nut13_bip39.json").read_text())


@pytest.mark.parametrize("vector", NUT13["keyset_id_int"], ids=lambda v: v["keyset_id"][:16])
def test_keyset_id_int_vectors(vector):
    assert keyset_id_int(vector["keyset_id"]) == vector["int"]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_secret_and_r_vectors(version):
    data = NUT13[version]
    seed = seed_from_mnemonic(data["mnemonic"])
    assert len(data["outputs"]) == 5
    for out in data["outputs"]:
        secret, r = derive_secret(seed, data["keyset_id"], out["counter"])
        assert secret == out["secret"], out["counter"]
        assert r.secret.hex() == out["r"], out["counter"]


def test_v1_vectors_follow_the_listed_paths():
    data = NUT13["v1"]
    seed = seed_from_mnemonic(data["mnemonic"])
    for path, out in zip(data["paths"], data["outputs"], strict=True):
        assert derive_path(seed, path + "/0").hex() == out["secret"]
        assert derive_path(seed, path + "/1").hex() == out["r"]


def test_v2_secret_is_the_raw_hmac_and_r_its_reduction():
    seed = bytes(range(64))
    keyset_id = NUT13["v2"]["keyset_id"]
    counter = 2**40 + 3
    secret, r = derive_secret(seed, keyset_id, counter)
    msg = b"Cashu_KDF_HMAC_SHA256" + bytes.fromhex(keyset_id) + counter.to_bytes(8, "big")
    assert secret == hmac.new(seed, msg + b"\x00", hashlib.sha256).hexdigest()
    expected_r = int.from_bytes(hmac.new(seed, msg + b"\x01", hashlib.sha256).digest(), "big") % N
    assert int.from_bytes(r.secret, "big") == expected_r


def test_derived_outputs_complete_a_blind_signature_round_trip():
    seed = seed_from_mnemonic(NUT13["v2"]["mnemonic"])
    mint_key = PrivateKey()
    for keyset_id in (NUT13["v1"]["keyset_id"], NUT13["v2"]["keyset_id"]):
        secret, r = derive_secret(seed, keyset_id, 7)
        B_, _ = blind(secret.encode(), r)
        C = unblind(sign(B_, mint_key), r, mint_key.public_key)
        assert verify(mint_key, C, secret.encode())
        # Same inputs, same output: what NUT-09 restore relies on.
        assert derive_secret(seed, keyset_id, 7)[0] == secret
        assert derive_secret(seed, keyset_id, 8)[0] != secret


def test_outputs_differ_by_keyset_counter_and_seed():
    seed = seed_from_mnemonic(NUT13["v1"]["mnemonic"])
    seen = set()
    for keyset_id in (NUT13["v1"]["keyset_id"], "00" + "ab" * 7, NUT13["v2"]["keyset_id"]):
        for counter in range(3):
            seen.add(derive_secret(seed, keyset_id, counter)[0])
    seen.add(derive_secret(seed_from_mnemonic("other words"), NUT13["v2"]["keyset_id"], 0)[0])
    assert len(seen) == 10


# --- BIP32 and BIP39 --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", list(BIP32["private_keys"]))
def test_bip32_vector_1(path):
    assert derive_path(bytes.fromhex(BIP32["seed"]), path).hex() == BIP32["private_keys"][path]


def test_parse_path():
    assert parse_path("m") == []
    assert parse_path("m/0'/1/2h/2147483647H") == [2**31, 1, 2**31 + 2, 2**32 - 1]
    for bad in ["", "0/1", "m/", "m/x", "m/-1", "m/2147483648", "m/1''", "m//1", "m/\u0661"]:
        with pytest.raises(CryptoError) as info:
            parse_path(bad)
        assert info.value.reason == "bad_path"


@pytest.mark.parametrize("vector", BIP39["vectors"], ids=lambda v: v["mnemonic"][:12])
def test_bip39_vectors(vector):
    assert seed_from_mnemonic(vector["mnemonic"], vector["passphrase"]).hex() == vector["seed"]


def test_mnemonic_whitespace_and_normalization():
    words = NUT13["v1"]["mnemonic"]
    seed = seed_from_mnemonic(words)
    assert seed_from_mnemonic("  " + words.replace(" ", "\n ") + "\n") == seed
    assert seed_from_mnemonic(words, "pass") != seed
    # NFKD: a precomposed and a decomposed accent give the same seed.
    assert seed_from_mnemonic(words, "caf\u00e9") == seed_from_mnemonic(words, "cafe\u0301")
    for bad in ["", "   \n"]:
        with pytest.raises(CryptoError):
            seed_from_mnemonic(bad)


# --- refusals ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keyset_id", ["", "02" + "00" * 7, "00" + "00" * 8, "01" + "00" * 8, "0g" + "00" * 7, "00zz" + "00" * 6, None]
)
def test_derive_secret_refuses_bad_keyset_ids(keyset_id):
    with pytest.raises(KeysetError) as info:
        derive_secret(b"\x01" * 64, keyset_id, 0)  # type: ignore[arg-type]
    assert info.value.reason == "bad_keyset_id"


@pytest.mark.parametrize(
    ("keyset_id", "counter"),
    [("009a1f293253e41e", -1), ("009a1f293253e41e", 2**31), ("009a1f293253e41e", 1.0), ("009a1f293253e41e", True),
     (NUT13["v2"]["keyset_id"], 2**64), (NUT13["v2"]["keyset_id"], "3")],
)
def test_derive_secret_refuses_bad_counters(keyset_id, counter):
    with pytest.raises(CryptoError) as info:
        derive_secret(b"\x01" * 64, keyset_id, counter)
    assert info.value.reason == "bad_counter"


def test_largest_counters_are_accepted():
    assert derive_secret(b"\x01" * 64, "009a1f293253e41e", 2**31 - 1)[0]
    assert derive_secret(b"\x01" * 64, NUT13["v2"]["keyset_id"], 2**64 - 1)[0]


def test_empty_seed_is_refused():
    for keyset_id in ("009a1f293253e41e", NUT13["v2"]["keyset_id"]):
        with pytest.raises(CashuError):
            derive_secret(b"", keyset_id, 0)
    with pytest.raises(CryptoError):
        bip32_master(b"")
