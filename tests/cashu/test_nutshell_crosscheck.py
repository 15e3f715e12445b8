"""Cross-checks against nutshell (the reference Cashu implementation) on random inputs.

BDHKE and DLEQ run in-process against ``cashu.core.crypto.b_dhke`` (installed in the main environment without
its dependencies). Keyset ids, the mint's key derivation and NUT-13 secrets need nutshell's ``bip32``
dependency, so they are computed in one batch by a subprocess in the nutshell virtualenv.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

import pytest
from coincurve import PrivateKey, PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from hashpool_cln.cashu.crypto import (
    N,
    blind,
    dleq_create,
    dleq_verify,
    dleq_verify_proof,
    hash_e,
    hash_to_curve,
    sign,
    unblind,
    verify,
)
from hashpool_cln.cashu.keysets import derive_keyset_id_v1, derive_keyset_id_v2, derive_mint_keys
from hashpool_cln.cashu.nut13 import derive_path, derive_secret

ROOT = Path(__file__).resolve().parents[2]
scalars = st.integers(min_value=1, max_value=N - 1).map(lambda k: PrivateKey(k.to_bytes(32, "big")))
secret_texts = st.text(max_size=80)

# nutshell's ``secp`` module patches operators onto coincurve's PublicKey when imported. Keep that patch to
# the tests of this module so no other test runs against a modified class.
_PATCHED = ("__add__", "__neg__", "__sub__", "__mul__", "__eq__", "to_data")


@pytest.fixture(scope="module")
def nut():
    saved = {name: PublicKey.__dict__.get(name) for name in _PATCHED}
    from cashu.core.crypto import b_dhke, secp

    for name in _PATCHED:  # re-apply in case an earlier import was undone by this fixture
        setattr(PublicKey, name, getattr(secp.PublicKeyExt, name))
    yield b_dhke
    for name, value in saved.items():
        if value is None:
            delattr(PublicKey, name)
        else:
            setattr(PublicKey, name, value)


def hx(p: PublicKey) -> str:
    return p.format().hex()


def as_key(b: bytes) -> PrivateKey:
    return PrivateKey(b)


# --- BDHKE ------------------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(message=st.binary(max_size=128))
def test_same_hash_to_curve(nut, message):
    assert hx(hash_to_curve(message)) == hx(nut.hash_to_curve(message))


@settings(max_examples=40, deadline=None)
@given(secret=secret_texts, r=scalars)
def test_same_blinded_message(nut, secret, r):
    ours, _ = blind(secret.encode(), r)
    theirs, _ = nut.step1_alice(secret, r)
    assert hx(ours) == hx(theirs)


@settings(max_examples=40, deadline=None)
@given(secret=secret_texts, a=scalars)
def test_each_side_unblinds_the_others_signatures(nut, secret, a):
    A = a.public_key
    # nutshell's wallet, our mint
    B_, r = nut.step1_alice(secret)
    C = nut.step3_alice(sign(B_, a), r, A)
    assert nut.verify(a, C, secret) and verify(a, C, secret.encode())
    # our wallet, nutshell's mint
    B_, r = blind(secret.encode())
    C_, _, _ = nut.step2_bob(B_, a)
    C = unblind(C_, r, A)
    assert verify(a, C, secret.encode()) and nut.verify(a, C, secret)


@settings(max_examples=40, deadline=None)
@given(secret=secret_texts, a=scalars)
def test_nutshell_dleq_verifies_here(nut, secret, a):
    A = a.public_key
    B_, r = nut.step1_alice(secret)
    C_, e, s = nut.step2_bob(B_, a)  # random nonce
    assert dleq_verify(B_, C_, e.secret, s.secret, A)
    C = nut.step3_alice(C_, r, A)
    assert dleq_verify_proof(secret.encode(), C, r, e.secret, s.secret, A)
    assert not dleq_verify(B_, C_, s.secret, e.secret, A)
    assert not dleq_verify_proof(secret.encode() + b"x", C, r, e.secret, s.secret, A)


@settings(max_examples=40, deadline=None)
@given(secret=secret_texts, a=scalars)
def test_our_dleq_verifies_in_nutshell(nut, secret, a):
    A = a.public_key
    B_, r = blind(secret.encode())
    C_ = sign(B_, a)
    e, s = dleq_create(a, B_, C_)
    assert nut.alice_verify_dleq(B_, C_, as_key(e), as_key(s), A)
    C = unblind(C_, r, A)
    assert nut.carol_verify_dleq(secret, r, C, as_key(e), as_key(s), A)
    other = PrivateKey()
    assert not nut.alice_verify_dleq(B_, C_, as_key(e), as_key(s), other.public_key)


@settings(max_examples=30, deadline=None)
@given(points=st.lists(scalars, min_size=1, max_size=5))
def test_same_hash_e(nut, points):
    pubs = [k.public_key for k in points]
    assert hash_e(*pubs) == nut.hash_e(*pubs)


# --- keyset ids, mint keys, NUT-13 (nutshell virtualenv) ----------------------------------------------------------

_NUTSHELL_SCRIPT = r"""
import asyncio, json, sys
from bip32 import BIP32
from coincurve import PublicKey
from cashu.core.crypto.keys import derive_keys, derive_keyset_id, derive_keyset_id_v2
from cashu.wallet.secrets import WalletSecrets

job = json.load(sys.stdin)
out = {"v1": [], "v2": [], "mint_keys": [], "secrets": [], "paths": []}
for ks in job["keysets"]:
    keys = {int(a): PublicKey(bytes.fromhex(k)) for a, k in ks["keys"].items()}
    out["v1"].append(derive_keyset_id(keys))
    out["v2"].append(derive_keyset_id_v2(keys, ks["unit"], ks["final_expiry"], ks["input_fee_ppk"]))
for mk in job["mint_keys"]:
    keys = derive_keys(mk["seed"], mk["derivation"], mk["amounts"])
    out["mint_keys"].append({str(a): k.secret.hex() for a, k in keys.items()})
for sd in job["secrets"]:
    wallet = WalletSecrets.__new__(WalletSecrets)
    wallet.seed = bytes.fromhex(sd["seed"])
    wallet.bip32 = BIP32.from_seed(wallet.seed)
    secret, r, _ = asyncio.run(wallet.generate_determinstic_secret(sd["counter"], sd["keyset_id"]))
    out["secrets"].append([secret.hex(), r.hex()])
for p in job["paths"]:
    out["paths"].append(BIP32.from_seed(bytes.fromhex(p["seed"])).get_privkey_from_path(p["path"]).hex())
json.dump(out, sys.stdout)
"""


def _nutshell_python() -> Path:
    # Resolved here: nutshell's python runs from a directory of its own, where a relative path would name nothing.
    venv = Path(os.environ.get("HASHPOOL_NUTSHELL_VENV", ROOT / ".venv-nutshell")).resolve()
    python = venv / "bin" / "python"
    if not python.exists():
        pytest.fail(f"nutshell virtualenv missing at {venv}: run `python3 dev.py test` once to create it")
    return python


def _random_job(rng: random.Random) -> dict:
    def pubkey() -> str:
        return PublicKey.from_secret(rng.randrange(1, N).to_bytes(32, "big")).format().hex()

    keysets = []
    for _ in range(25):
        amounts = sorted(rng.sample([2**i for i in range(64)], rng.randint(1, 20)))
        keysets.append({
            "keys": {str(a): pubkey() for a in amounts},
            "unit": rng.choice(["sat", "usd", "hash", f"hash_{pubkey()}_{rng.randint(1, 10**6)}"]),
            "final_expiry": rng.choice([None, rng.randint(1, 2**40)]),
            "input_fee_ppk": rng.choice([0, 0, rng.randint(1, 5000)]),
        })
    mint_keys = [
        {"seed": "".join(rng.choice("abcdefXYZ_0123") for _ in range(rng.randint(8, 40))),
         "derivation": f"m/0'/{rng.randint(0, 3)}'/{rng.randint(0, 2**31 - 1)}'",
         "amounts": [2**i for i in range(rng.randint(1, 12))]}
        for _ in range(5)
    ]
    seeds = [rng.randbytes(64).hex() for _ in range(3)]
    v1_ids = ["00" + rng.randbytes(7).hex() for _ in range(3)]
    v2_ids = ["01" + rng.randbytes(32).hex() for _ in range(3)]
    secrets = [
        {"seed": seed, "keyset_id": kid, "counter": rng.choice([0, 1, rng.randint(0, 2**31 - 1)])}
        for seed in seeds for kid in v1_ids + v2_ids
    ]
    paths = [
        {"seed": rng.randbytes(rng.choice([16, 32, 64])).hex(),
         "path": "m" + "".join(f"/{rng.randint(0, 2**31 - 1)}{rng.choice(['', chr(39)])}"
                               for _ in range(rng.randint(0, 6)))}
        for _ in range(15)
    ]
    return {"keysets": keysets, "mint_keys": mint_keys, "secrets": secrets, "paths": paths}


@pytest.fixture(scope="module")
def nutshell_batch(tmp_path_factory):
    seed = random.SystemRandom().randrange(2**32)
    job = _random_job(random.Random(seed))
    # A scratch directory as cwd: nutshell's settings read ./.env.
    proc = subprocess.run(
        [str(_nutshell_python()), "-c", _NUTSHELL_SCRIPT],
        input=json.dumps(job), capture_output=True, text=True, timeout=120,
        cwd=tmp_path_factory.mktemp("nutshell"), env={"PATH": os.environ.get("PATH", ""), "HOME": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return seed, job, json.loads(proc.stdout)


def test_keyset_ids_agree_with_nutshell(nutshell_batch):
    seed, job, theirs = nutshell_batch
    for ks, v1, v2 in zip(job["keysets"], theirs["v1"], theirs["v2"], strict=True):
        keys = {int(a): k for a, k in ks["keys"].items()}
        assert derive_keyset_id_v1(keys) == v1, f"random seed {seed}"
        ours = derive_keyset_id_v2(keys, ks["unit"], ks["final_expiry"], input_fee_ppk=ks["input_fee_ppk"])
        assert ours == v2, f"random seed {seed}: {ks['unit']} {ks['final_expiry']} {ks['input_fee_ppk']}"


def test_mint_keys_agree_with_nutshell(nutshell_batch):
    seed, job, theirs = nutshell_batch
    for mk, expected in zip(job["mint_keys"], theirs["mint_keys"], strict=True):
        ours = derive_mint_keys(mk["seed"].encode(), mk["derivation"], mk["amounts"])
        assert {str(a): k.secret.hex() for a, k in ours.items()} == expected, f"random seed {seed}"


def test_nut13_secrets_agree_with_nutshell(nutshell_batch):
    seed, job, theirs = nutshell_batch
    for sd, (secret, r) in zip(job["secrets"], theirs["secrets"], strict=True):
        ours_secret, ours_r = derive_secret(bytes.fromhex(sd["seed"]), sd["keyset_id"], sd["counter"])
        assert ours_secret == secret, f"random seed {seed}: {sd['keyset_id']} {sd['counter']}"
        # nutshell keeps the raw HMAC for r; NUT-13 reduces it mod n (equal unless the digest is >= n).
        assert int.from_bytes(ours_r.secret, "big") == int(r, 16) % N


def test_bip32_paths_agree_with_nutshells_bip32(nutshell_batch):
    seed, job, theirs = nutshell_batch
    for p, expected in zip(job["paths"], theirs["paths"], strict=True):
        assert derive_path(bytes.fromhex(p["seed"]), p["path"]).hex() == expected, f"random seed {seed}: {p}"

