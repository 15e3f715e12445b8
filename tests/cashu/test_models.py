import dataclasses
import pickle

import pytest

from hashpool_cln.cashu.models import DLEQ, Proof, build_dleqs, build_proofs

COLUMNS = (
    [1, 2, 4],
    ["00ad268c4d1f5826", "00ad268c4d1f5826", "01" + "ab" * 32],
    ["s0", "s1", "sécret"],
    ["02" + "11" * 32, "03" + "22" * 32, "02" + "33" * 32],
)


def test_bulk_built_dleqs_are_the_dleqs_the_constructor_makes():
    built = build_dleqs(["0a" * 32, "0b" * 32], ["0c" * 32, "0d" * 32], ["0e" * 32, None])
    assert built == [DLEQ("0a" * 32, "0c" * 32, "0e" * 32), DLEQ("0b" * 32, "0d" * 32)]
    assert all(type(d) is DLEQ for d in built)


def test_bulk_built_proofs_are_the_proofs_the_constructor_makes():
    dleqs = [DLEQ("0a" * 32, "0b" * 32), None, None]
    witnesses = [None, '{"signatures":[]}', None]
    built = build_proofs(*COLUMNS, dleqs, witnesses)
    expected = [Proof(*fields) for fields in zip(*COLUMNS, dleqs, witnesses)]
    assert built == expected
    assert [type(p) for p in built] == [Proof] * 3
    assert [hash(p) for p in built] == [hash(p) for p in expected]
    assert [repr(p) for p in built] == [repr(p) for p in expected]
    assert pickle.loads(pickle.dumps(built)) == expected
    assert dataclasses.replace(built[0], id="x") == dataclasses.replace(expected[0], id="x")


def test_bulk_built_objects_stay_frozen():
    proof = build_proofs(*COLUMNS, [None] * 3, [None] * 3)[0]
    dleq = build_dleqs(["0a" * 32], ["0b" * 32], [None])[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        proof.amount = 8
    with pytest.raises(dataclasses.FrozenInstanceError):
        dleq.e = "00" * 32
    for one in (proof, Proof(*(column[0] for column in COLUMNS))):
        with pytest.raises((AttributeError, TypeError)):  # slots: no attribute beyond the fields
            one.extra = 1

