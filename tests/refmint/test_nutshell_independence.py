"""An independent implementation (nutshell's ``cashu.core.crypto.b_dhke``) blinds, unblinds and checks the DLEQ
proofs of this mint's signatures, and the mint accepts the proofs it unblinded."""

from __future__ import annotations

import os

import pytest

b_dhke = pytest.importorskip("cashu.core.crypto.b_dhke")
from coincurve import PrivateKey, PublicKey  # noqa: E402

from hashpool_cln.cashu.amounts import split_amount  # noqa: E402
from hashpool_cln.cashu.models import Proof  # noqa: E402


def _nutshell_outputs(kid: str, amounts: list[int]) -> tuple[list[dict], list[str], list[PrivateKey]]:
    outs, secrets, rs = [], [], []
    for amount in amounts:
        secret = os.urandom(32).hex()
        B_, r = b_dhke.step1_alice(secret)
        outs.append({"amount": amount, "id": kid, "B_": B_.format().hex()})
        secrets.append(secret)
        rs.append(r)
    return outs, secrets, rs


async def test_nutshell_unblinds_and_verifies_dleq(refmint) -> None:
    quote = await refmint.share_quote(6)
    kid = await refmint.keyset_id(quote["unit"])
    keys = (await refmint.ok("GET", f"/v1/keys/{kid}"))["keysets"][0]["keys"]
    outs, secrets, rs = _nutshell_outputs(kid, split_amount(quote["amount"]))
    answer = await refmint.ok("POST", "/v1/mint/mining_share", {"quote": quote["quote"], "outputs": outs})

    proofs = []
    for out, secret, r, sig in zip(outs, secrets, rs, answer["signatures"]):
        A = PublicKey(bytes.fromhex(keys[str(sig["amount"])]))
        B_ = PublicKey(bytes.fromhex(out["B_"]))
        C_ = PublicKey(bytes.fromhex(sig["C_"]))
        e = PrivateKey(bytes.fromhex(sig["dleq"]["e"]))
        s = PrivateKey(bytes.fromhex(sig["dleq"]["s"]))
        assert b_dhke.alice_verify_dleq(B_, C_, e, s, A)
        C = b_dhke.step3_alice(C_, r, A)
        assert b_dhke.carol_verify_dleq(secret, r, C, e, s, A)
        # a tampered proof does not verify: the check can fail
        assert not b_dhke.alice_verify_dleq(B_, C_, s, e, A)
        proofs.append(Proof(amount=sig["amount"], id=kid, secret=secret, C=C.format().hex()))

    # the mint accepts what nutshell unblinded, and signs a swap whose DLEQ nutshell checks again
    outs2, secrets2, rs2 = _nutshell_outputs(kid, [64])
    swapped = await refmint.ok("POST", "/v1/swap", {"inputs": [p.to_dict() for p in proofs], "outputs": outs2})
    sig = swapped["signatures"][0]
    A = PublicKey(bytes.fromhex(keys["64"]))
    C = b_dhke.step3_alice(PublicKey(bytes.fromhex(sig["C_"])), rs2[0], A)
    assert b_dhke.carol_verify_dleq(secrets2[0], rs2[0], C, PrivateKey(bytes.fromhex(sig["dleq"]["e"])),
                                    PrivateKey(bytes.fromhex(sig["dleq"]["s"])), A)
