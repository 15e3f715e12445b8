import hashlib
import json
from pathlib import Path

import pytest
from coincurve import PrivateKey, PublicKeyXOnly
from hypothesis import given, settings
from hypothesis import strategies as st

from hashpool_cln.cashu.conditions import (
    P2PKLock,
    classify,
    p2pk_lock,
    require_spendable,
    sign_p2pk,
    verify_p2pk_witness,
)
from hashpool_cln.cashu.errors import CashuError, ConditionError
from hashpool_cln.cashu.models import Proof

VECTORS = json.loads((Path(__file__).parent / "vectors" / "nut11.json").read_text())
C = "02698c4e2b5f9534cd0687d87513c759790cf829aa5739184a3e3735471fbda904"
KEY = PrivateKey(bytes.fromhex("99" * 32))
OWN = KEY.public_key.format().hex()
OTHER = PrivateKey(bytes.fromhex("77" * 32)).public_key.format().hex()
THIRD = PrivateKey(bytes.fromhex("55" * 32)).public_key.format().hex()
NOW = 1_700_000_000


def flip_parity(key: str) -> str:
    return ("03" if key[:2] == "02" else "02") + key[2:]


def secret(kind="P2PK", data=OWN, tags=None, nonce="00" * 16) -> str:
    body = {"nonce": nonce, "data": data}
    if tags is not None:
        body["tags"] = tags
    return json.dumps([kind, body], separators=(",", ":"))


def proof(secret_text: str, witness=None) -> Proof:
    return Proof(amount=8, id="009a1f293253e41e", secret=secret_text, C=C, witness=witness)


def reason_of(p: Proof, own=(OWN,)) -> str | None:
    try:
        require_spendable(p, own)
    except ConditionError as exc:
        assert str(exc)
        return exc.reason
    return None


# --------------------------------------------------------------------------------------------- NUT-11 vectors


@pytest.mark.parametrize(
    "vector", VECTORS["sig_inputs"] + VECTORS["transaction_inputs"], ids=lambda v: v["description"][:60]
)
def test_nut11_vectors(vector):
    p = Proof.from_dict(vector["proof"])
    assert verify_p2pk_witness(p, vector["now"]) is vector["verify"]
    assert reason_of(p, vector["own_pubkeys"]) == vector["require_spendable"]


def test_nut11_refund_vectors_depend_on_time():
    past, future = VECTORS["sig_inputs"][7], VECTORS["sig_inputs"][8]
    assert verify_p2pk_witness(Proof.from_dict(past["proof"]), now=21) is False  # lock not yet expired at 21
    assert verify_p2pk_witness(Proof.from_dict(past["proof"]), now=22) is True
    assert verify_p2pk_witness(Proof.from_dict(future["proof"]), now=99999999999 + 1) is True


# --------------------------------------------------------------------------------------------- classify


@pytest.mark.parametrize(
    "text",
    [
        "407915bc212be61a77e3e6d2aeb4c727980bda51cd06a6afc29e2861768a7837",
        "1" * 5000,  # valid JSON number; too many digits for int() must not matter
        "[abc",
        "[]",
        '["P2PK"]',
        '[1, {"data": "x"}]',
        '["P2PK", "data"]',
        '["P2PK", {"data": "x"}, 3]',
        '"P2PK"',
        '{"kind": "P2PK"}',
        "[" * 10000,
    ],
)
def test_plain_secrets(text):
    assert classify(text).kind == "plain"
    assert reason_of(proof(text)) is None


def test_classify_well_known():
    text = secret(tags=[["sigflag", "SIG_INPUTS"], ["pubkeys"]], nonce="abc")
    cond = classify(" " + text)
    assert (cond.kind, cond.data, cond.nonce) == ("P2PK", OWN, "abc")
    assert cond.tags == (("sigflag", "SIG_INPUTS"), ("pubkeys",))
    assert cond.tag("sigflag") == ("SIG_INPUTS",)
    assert cond.tag("pubkeys") == ()
    assert cond.tag("locktime") is None
    assert classify(secret("HTLC", data="ab" * 32)).kind == "HTLC"
    assert classify(secret("DLC", data="x")).kind == "DLC"


@pytest.mark.parametrize(
    "text",
    [
        '["P2PK", {"nonce": "n"}]',
        '["P2PK", {"nonce": "n", "data": 5}]',
        '["P2PK", {"nonce": 5, "data": "x"}]',
        '["", {"nonce": "n", "data": "x"}]',
        '["P2PK", {"nonce": "n", "data": "x", "tags": "sigflag"}]',
        '["P2PK", {"nonce": "n", "data": "x", "tags": [[]]}]',
        '["P2PK", {"nonce": "n", "data": "x", "tags": [["locktime", 1765300829]]}]',
        '["P2PK", {"nonce": "n", "data": "x", "tags": [["locktime", ""]]}]',
        '["P2PK", {"nonce": "n", "data": "x", "tags": ["locktime"]}]',
        '["P2PK", {"nonce": "n", "data": "a", "data": "b"}]',  # which data wins differs between parsers
        '["P2PK", {"nonce": "n", "data": "x", "tags": [["n_sigs", NaN]]}]',
    ],
)
def test_malformed_well_known_secrets(text):
    with pytest.raises(ConditionError) as info:
        classify(text)
    assert info.value.reason == "malformed_secret"
    assert reason_of(proof(text)) == "malformed_secret"


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.text('[]{}",:PK2HTLCdatnoceg 0123456789')))
def test_classify_only_raises_condition_error(text):
    try:
        cond = classify(text)
    except ConditionError as exc:
        assert exc.reason == "malformed_secret"
    else:
        assert isinstance(cond.kind, str)
    try:
        require_spendable(proof(text), [OWN])
    except ConditionError:
        pass
    assert verify_p2pk_witness(proof(text)) in (True, False)


# --------------------------------------------------------------------------------------------- require_spendable


def test_accepts_own_single_key():
    assert reason_of(proof(secret())) is None
    assert reason_of(proof(secret(tags=[["sigflag", "SIG_INPUTS"]]))) is None
    # NUT-11 compares keys by x coordinate, in any case
    assert reason_of(proof(secret(data=flip_parity(OWN).upper()[:2] + OWN[2:].upper()))) is None
    assert reason_of(proof(secret()), own=[flip_parity(OWN)]) is None
    assert reason_of(proof(secret(tags=[["pubkeys"]]))) is None  # a pubkeys tag without values adds no key


def test_accepts_locktime_and_refund_paths():
    # our key's signature stays valid after the lock expires; refund keys only add a second way to spend
    assert reason_of(proof(secret(tags=[["locktime", "21"]]))) is None
    assert reason_of(proof(secret(tags=[["locktime", "99999999999"], ["refund", OTHER]]))) is None
    assert reason_of(proof(secret(tags=[["locktime", "1"], ["refund", OTHER, THIRD], ["n_sigs_refund", "2"]]))) is None
    assert reason_of(proof(secret(tags=[["locktime", "not a time"]]))) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (secret("HTLC", data="ab" * 32), "htlc"),
        (secret("HTLC", data="ab" * 32, tags=[["pubkeys", OWN]]), "htlc"),
        (secret("DLC", data=OWN), "unknown_condition"),
        (secret("p2pk", data=OWN), "unknown_condition"),
        (secret(tags=[["sigflag", "SIG_ALL"]]), "sig_all"),
        (secret(tags=[["pubkeys", OTHER]]), "multisig"),
        (secret(tags=[["pubkeys", OTHER], ["n_sigs", "1"]]), "multisig"),
        (secret(tags=[["pubkeys", OTHER], ["n_sigs", "2"]]), "multisig"),
        (secret(data=OTHER), "foreign_key"),
        (secret(data=OTHER, tags=[["locktime", "1"], ["refund", OWN]]), "foreign_key"),
        (secret(data="02zz"), "malformed_p2pk"),
        (secret(data="04" + OWN[2:]), "malformed_p2pk"),
        (secret(tags=[["sigflag", "SIG_SOME"]]), "malformed_p2pk"),
        (secret(tags=[["sigflag", "SIG_INPUTS", "SIG_ALL"]]), "malformed_p2pk"),
        (secret(tags=[["sigflag", "SIG_INPUTS"], ["sigflag", "SIG_INPUTS"]]), "malformed_p2pk"),
        (secret(tags=[["locktime", "1"], ["locktime", "2"]]), "malformed_p2pk"),
        (secret(tags=[["n_sigs", "0"]]), "malformed_p2pk"),
        (secret(tags=[["n_sigs", "2"]]), "malformed_p2pk"),  # more than the one key available
        (secret(tags=[["n_sigs", "-1"]]), "malformed_p2pk"),
        (secret(tags=[["n_sigs", "one"]]), "malformed_p2pk"),
        (secret(tags=[["pubkeys", flip_parity(OWN)]]), "malformed_p2pk"),  # same x coordinate twice
        (secret(tags=[["pubkeys", OTHER, OTHER]]), "malformed_p2pk"),
        (secret(tags=[["refund", OTHER, flip_parity(OTHER)]]), "malformed_p2pk"),
        (secret(tags=[["refund", "nope"]]), "malformed_p2pk"),
        (secret(tags=[["n_sigs_refund", "1"]]), "malformed_p2pk"),  # no refund keys
        (secret(tags=[["refund", OTHER], ["n_sigs_refund", "2"]]), "malformed_p2pk"),
        ('["P2PK", {"nonce": "n"}]', "malformed_secret"),
    ],
)
def test_refusal_reasons(text, reason):
    assert reason_of(proof(text)) == reason


def test_refusals_are_cashu_errors():
    with pytest.raises(CashuError):
        require_spendable(proof(secret(data=OTHER)), [OWN])


def test_p2pk_lock_fields():
    lock = p2pk_lock(
        classify(secret(tags=[["pubkeys", OTHER.upper()], ["n_sigs", "2"], ["locktime", "100"], ["refund", THIRD]]))
    )
    assert lock == P2PKLock(
        pubkeys=(OWN, OTHER), n_sigs=2, sigflag="SIG_INPUTS", locktime=100, refund=(THIRD,), n_sigs_refund=1
    )
    assert lock.is_multisig


# --------------------------------------------------------------------------------------------- signing


def test_sign_p2pk_makes_a_bip340_witness_the_lock_accepts():
    p = proof(secret(tags=[["sigflag", "SIG_INPUTS"]]))
    assert not verify_p2pk_witness(p)
    signed = sign_p2pk(p, KEY)
    assert (signed.amount, signed.id, signed.secret, signed.C) == (p.amount, p.id, p.secret, p.C)
    witness = json.loads(signed.witness)
    assert list(witness) == ["signatures"] and len(witness["signatures"]) == 1
    sig = bytes.fromhex(witness["signatures"][0])
    message = hashlib.sha256(p.secret.encode()).digest()
    assert PublicKeyXOnly(bytes.fromhex(OWN[2:])).verify(sig, message)
    assert verify_p2pk_witness(signed)
    # a signature on another secret does not carry over
    other = proof(secret(nonce="11" * 16), witness=signed.witness)
    assert not verify_p2pk_witness(other)


def test_sign_p2pk_replaces_an_old_witness():
    p = proof(secret(), witness='{"signatures":["' + "00" * 64 + '"]}')
    assert not verify_p2pk_witness(p)
    assert verify_p2pk_witness(sign_p2pk(p, KEY))


def test_sign_p2pk_refuses():
    with pytest.raises(ConditionError) as info:
        sign_p2pk(proof(secret(data=OTHER)), KEY)
    assert info.value.reason == "foreign_key"
    with pytest.raises(ConditionError) as info:
        sign_p2pk(proof("ab" * 32), KEY)
    assert info.value.reason == "unknown_condition"
    with pytest.raises(ConditionError) as info:
        sign_p2pk(proof(secret(tags=[["n_sigs", "0"]])), KEY)
    assert info.value.reason == "malformed_p2pk"
    with pytest.raises(ConditionError) as info:
        sign_p2pk(proof(secret(tags=[["sigflag", "SIG_ALL"]])), KEY)
    assert info.value.reason == "sig_all"


@pytest.mark.parametrize(
    "witness",
    [
        None,
        "",
        "{",
        "[]",
        '{"signatures": "ab"}',
        '{"signatures": [5]}',
        '{"signatures": ["zz"]}',
        '{"preimage": "00"}',
    ],
)
def test_verify_rejects_bad_witnesses(witness):
    assert verify_p2pk_witness(proof(secret(), witness=witness)) is False


def test_verify_expired_lock_without_refund_needs_no_signature():
    assert verify_p2pk_witness(proof(secret(tags=[["locktime", "100"]])), now=101) is True
    assert verify_p2pk_witness(proof(secret(tags=[["locktime", "100"]])), now=100) is False


def test_verify_is_false_for_sig_all_plain_and_htlc():
    sig_all = secret(tags=[["sigflag", "SIG_ALL"]])
    signature = KEY.sign_schnorr(hashlib.sha256(sig_all.encode()).digest()).hex()
    assert verify_p2pk_witness(proof(sig_all, witness=json.dumps({"signatures": [signature]}))) is False
    assert verify_p2pk_witness(proof("ab" * 32)) is False
    assert verify_p2pk_witness(proof(secret("HTLC", data="ab" * 32))) is False
