"""Keyset ids v1 and v2 (NUT-02 vectors), id checks, short ids, input fees and the mint's key derivation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from coincurve import PrivateKey

from hashpool_cln.cashu.crypto import point
from hashpool_cln.cashu.errors import KeysetError
from hashpool_cln.cashu.keysets import (
    Keyset,
    derive_keyset_id_v1,
    derive_keyset_id_v2,
    derive_mint_keys,
    input_fee,
    resolve_short_id,
    verify_keyset_id,
)
from hashpool_cln.cashu.nut13 import derive_path

VECTORS = Path(__file__).parent / "vectors"
NUT02 = json.loads((VECTORS / "nut02.json").read_text())


def int_keys(vector: dict) -> dict[int, str]:
    return {int(amount): key for amount, key in vector["keys"].items()}


@pytest.mark.parametrize("vector", NUT02["v1"], ids=lambda v: v["id"])
def test_v1_vectors(vector):
    keys = int_keys(vector)
    assert derive_keyset_id_v1(keys) == vector["id"]
    verify_keyset_id(vector["id"], keys, "sat")


@pytest.mark.parametrize("vector", NUT02["v2"], ids=lambda v: v["id"][:16])
def test_v2_vectors(vector):
    keys = int_keys(vector)
    fee = vector.get("input_fee_ppk", 0)
    expiry = vector.get("final_expiry")
    assert derive_keyset_id_v2(keys, vector["unit"], expiry, input_fee_ppk=fee) == vector["id"]
    verify_keyset_id(vector["id"], keys, vector["unit"], expiry, input_fee_ppk=fee)
    Keyset(vector["id"], vector["unit"], keys, input_fee_ppk=fee, final_expiry=expiry).verify()


def test_v2_id_commits_to_unit_fee_and_expiry():
    vector = NUT02["v2"][0]
    keys, unit, fee, expiry = int_keys(vector), vector["unit"], vector["input_fee_ppk"], vector["final_expiry"]
    base = derive_keyset_id_v2(keys, unit, expiry, input_fee_ppk=fee)
    variants = {
        derive_keyset_id_v2(keys, "usd", expiry, input_fee_ppk=fee),
        derive_keyset_id_v2(keys, unit, expiry + 1, input_fee_ppk=fee),
        derive_keyset_id_v2(keys, unit, None, input_fee_ppk=fee),
        derive_keyset_id_v2(keys, unit, expiry, input_fee_ppk=fee + 1),
        derive_keyset_id_v2(keys, unit, expiry),
    }
    assert base not in variants and len(variants) == 5
    # A zero fee and a zero expiry are left out of the preimage, exactly like absent ones.
    assert derive_keyset_id_v2(keys, unit, 0, input_fee_ppk=0) == derive_keyset_id_v2(keys, unit)


def test_key_order_and_hex_case_do_not_matter():
    vector = NUT02["v2"][1]
    keys = int_keys(vector)
    shuffled = {amount: key.upper() for amount, key in sorted(keys.items(), reverse=True)}
    assert derive_keyset_id_v1(shuffled) == derive_keyset_id_v1(keys)
    assert derive_keyset_id_v2(shuffled, "sat", 2059210353) == vector["id"]


# --- keys that do not match their id ----------------------------------------------------------------------------


def test_keys_not_matching_their_id_are_refused():
    v1 = NUT02["v1"][0]
    keys = int_keys(v1)
    swapped = dict(keys)
    swapped[1], swapped[2] = keys[2], keys[1]
    with pytest.raises(KeysetError) as info:
        verify_keyset_id(v1["id"], swapped, "sat")
    assert info.value.reason == "keyset_id_mismatch"
    missing = {amount: key for amount, key in keys.items() if amount != 8}
    with pytest.raises(KeysetError):
        verify_keyset_id(v1["id"], missing, "sat")
    with pytest.raises(KeysetError):
        verify_keyset_id(v1["id"][:-1] + "0", keys, "sat")


def test_v2_metadata_not_matching_the_id_is_refused():
    vector = NUT02["v2"][0]
    keys = int_keys(vector)
    for unit, expiry, fee in [("usd", 2059210353, 100), ("sat", None, 100), ("sat", 2059210353, 0)]:
        with pytest.raises(KeysetError) as info:
            verify_keyset_id(vector["id"], keys, unit, expiry, input_fee_ppk=fee)
        assert info.value.reason == "keyset_id_mismatch"
    with pytest.raises(KeysetError):
        Keyset(vector["id"], "sat", keys, input_fee_ppk=0, final_expiry=2059210353).verify()


@pytest.mark.parametrize(
    "bad_id",
    ["", "00", "02" + "00" * 7, "00456a94ab4e1c4", "00456a94ab4e1c460", "01" + "00" * 31, "0g456a94ab4e1c46", None],
)
def test_malformed_ids_are_refused(bad_id):
    with pytest.raises(KeysetError) as info:
        verify_keyset_id(bad_id, int_keys(NUT02["v1"][0]), "sat")  # type: ignore[arg-type]
    assert info.value.reason in ("bad_keyset_id", "keyset_id_mismatch")


@pytest.mark.parametrize(
    "keys",
    [
        {},
        {1: "zz"},
        {1: "02" + "00" * 31 + "05"},  # not on the curve
        {0: "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"},
        {-1: "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"},
        {"1": "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"},
        {True: "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"},
    ],
)
def test_bad_keys_are_refused(keys):
    with pytest.raises(KeysetError) as info:
        derive_keyset_id_v1(keys)
    assert info.value.reason == "bad_key"
    with pytest.raises(KeysetError):
        derive_keyset_id_v2(keys, "sat")


def test_bad_metadata_is_refused():
    keys = int_keys(NUT02["v1"][0])
    for kwargs in [{"unit": ""}, {"unit": "sat", "input_fee_ppk": -1}, {"unit": "sat", "final_expiry": -5},
                   {"unit": "sat", "input_fee_ppk": 1.5}, {"unit": "sat", "final_expiry": "2059210353"}]:
        with pytest.raises(KeysetError):
            derive_keyset_id_v2(keys, **kwargs)


# --- Keyset -----------------------------------------------------------------------------------------------------


def test_keyset_public_key_is_parsed_once_and_cached():
    vector = NUT02["v1"][0]
    ks = Keyset(vector["id"], "sat", int_keys(vector))
    first = ks.public_key(4)
    assert first.format().hex() == vector["keys"]["4"]
    assert ks.public_key(4) is first
    with pytest.raises(KeysetError) as info:
        ks.public_key(3)
    assert info.value.reason == "unknown_amount"
    broken = Keyset("00" + "11" * 7, "sat", {1: "02" + "00" * 31 + "05"})
    with pytest.raises(KeysetError) as info:
        broken.public_key(1)
    assert info.value.reason == "bad_key"


# --- fees -------------------------------------------------------------------------------------------------------


def test_input_fee_rounds_the_sum_up():
    fees = {"a": 100, "b": 0, "c": 1000, "d": 1}
    assert input_fee([], fees) == 0
    assert input_fee(["b"] * 50, fees) == 0
    assert input_fee(["a"] * 3, fees) == 1  # the NUT-02 example: ceil(0.3)
    assert input_fee(["a"] * 10, fees) == 1
    assert input_fee(["a"] * 11, fees) == 2
    assert input_fee(["c", "c"], fees) == 2
    assert input_fee(["c", "d"], fees) == 2
    assert input_fee(["d"] * 1000, fees) == 1
    assert input_fee(["d"] * 1001, fees) == 2
    assert input_fee(iter(["a", "c", "d"]), fees) == 2


def test_input_fee_refuses_unknown_keysets_and_bad_fees():
    with pytest.raises(KeysetError) as info:
        input_fee(["a", "x"], {"a": 1})
    assert info.value.reason == "unknown_keyset"
    with pytest.raises(KeysetError):
        input_fee(["a"], {"a": -1})


# --- short ids --------------------------------------------------------------------------------------------------

V2_ID = NUT02["v2"][0]["id"]
V2_OTHER = NUT02["v2"][1]["id"]
V1_ID = NUT02["v1"][0]["id"]


def test_resolve_short_id():
    known = [V1_ID, V2_ID, V2_OTHER]
    assert resolve_short_id(V2_ID[:16], known) == V2_ID
    assert resolve_short_id(V2_ID, known) == V2_ID
    assert resolve_short_id(V1_ID, known) == V1_ID
    assert resolve_short_id(V2_ID[:16].upper(), known) == V2_ID


def test_resolve_short_id_refuses_unknown_and_ambiguous_ids():
    with pytest.raises(KeysetError) as info:
        resolve_short_id(V2_ID[:16], [V1_ID, V2_OTHER])
    assert info.value.reason == "unknown_keyset"
    clash = V2_ID[:16] + "00" * 25
    with pytest.raises(KeysetError) as info:
        resolve_short_id(V2_ID[:16], [V2_ID, clash])
    assert info.value.reason == "ambiguous_keyset"
    # The full id is not ambiguous even when its short form is.
    assert resolve_short_id(V2_ID, [V2_ID, clash]) == V2_ID
    for bad in ["", V2_ID[:15], V2_ID[:17], V2_ID + "0"]:
        with pytest.raises(KeysetError) as info:
            resolve_short_id(bad, [V2_ID])
        assert info.value.reason == "bad_keyset_id"


# --- mint key derivation ----------------------------------------------------------------------------------------


def test_derive_mint_keys_follows_the_documented_bip32_paths():
    seed = b"TEST_PRIVATE_KEY"
    amounts = [2**i for i in range(8)]
    keys = derive_mint_keys(seed, "m/0'/0'/0'", amounts)
    assert list(keys) == amounts
    for i, amount in enumerate(amounts):
        assert keys[amount].secret == derive_path(seed, f"m/0'/0'/0'/{i}'")
        assert isinstance(keys[amount], PrivateKey)
    assert len({k.secret for k in keys.values()}) == len(amounts)
    assert derive_mint_keys(seed, "m/0'/0'/0'", amounts)[4].secret == keys[4].secret
    assert derive_mint_keys(seed, "m/0'/0'/1'", amounts)[4].secret != keys[4].secret
    assert derive_mint_keys(b"another seed", "m/0'/0'/0'", amounts)[4].secret != keys[4].secret


def test_derived_mint_keys_make_a_verifiable_keyset():
    keys = derive_mint_keys(b"seed for a keyset", "m/0'/1'/7'", [1, 2, 4, 8])
    public = {amount: k.public_key.format().hex() for amount, k in keys.items()}
    keyset_id = derive_keyset_id_v2(public, "hash_x_1", 2059210353)
    ks = Keyset(keyset_id, "hash_x_1", public, final_expiry=2059210353)
    ks.verify()
    assert ks.public_key(8).format() == point(public[8]).format()


def test_derive_mint_keys_refuses_bad_amounts_and_paths():
    for amounts in ([1, 1], [0], [-2], [True]):
        with pytest.raises(KeysetError):
            derive_mint_keys(b"seed", "m/0'", amounts)
    with pytest.raises(Exception) as info:
        derive_mint_keys(b"seed", "x/0'", [1])
    assert getattr(info.value, "reason", None) == "bad_path"
