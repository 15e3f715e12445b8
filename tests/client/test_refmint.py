"""MintClient against the reference mint over HTTP on loopback: issue, swap, check, restore, quote, melt."""

from __future__ import annotations

import hashlib
import os

import pytest
from support.refmint import MintHandle

from hashpool_cln.cashu import crypto
from hashpool_cln.cashu.amounts import split_amount
from hashpool_cln.cashu.models import BlindedMessage, BlindSignature, Proof
from hashpool_cln.mintclient import MintClient, MintError


def blinded(keyset_id: str, amounts: list[int]) -> tuple[list[BlindedMessage], list[str], list]:
    outs, secrets, rs = [], [], []
    for amount in amounts:
        secret = os.urandom(32).hex()
        B_, r = crypto.blind(secret.encode())
        outs.append(BlindedMessage(amount=amount, id=keyset_id, B_=B_.format().hex()))
        secrets.append(secret)
        rs.append(r)
    return outs, secrets, rs


async def issue(mint: MintHandle, client: MintClient, leading_zeros: int) -> list[Proof]:
    """ehash worth ``2^leading_zeros`` units of the open epoch, as a miner's wallet would mint it."""
    quote = await mint.share_quote(leading_zeros)
    keyset = next(k for k in await client.keysets() if k.active and k.unit == quote["unit"])
    outs, secrets, rs = blinded(keyset.id, split_amount(quote["amount"]))
    answer = await mint.ok("POST", "/v1/mint/mining_share", {"quote": quote["quote"],
                                                            "outputs": [o.to_dict() for o in outs]})
    sigs = [BlindSignature.from_dict(s) for s in answer["signatures"]]
    return await client.unblind_signatures(outs, secrets, rs, sigs)


@pytest.fixture
async def client(refmint: MintHandle):
    async with MintClient(refmint.url, desk_key=refmint.desk_key, timeout=10) as c:
        yield c


async def test_info_keysets_keys(refmint: MintHandle, client: MintClient) -> None:
    info = await client.info()
    assert isinstance(info.get("name"), str)
    keysets = await client.keysets()
    assert keysets and all(k.keys == {} for k in keysets)
    for meta in keysets:
        keyset = await client.keys(meta.id)  # each verified against its id inside
        assert keyset.unit == meta.unit and keyset.keys and keyset.input_fee_ppk == meta.input_fee_ppk


async def test_issue_swap_checkstate_restore(refmint: MintHandle, client: MintClient) -> None:
    proofs = await issue(refmint, client, 4)
    assert sum(p.amount for p in proofs) == 16
    ys = [crypto.proof_y(p.secret) for p in proofs]
    assert [s.state for s in await client.checkstate(ys)] == ["UNSPENT"] * len(proofs)

    outs, secrets, rs = blinded(proofs[0].id, [8, 4, 2, 1, 1])
    sigs = await client.swap(proofs, outs)
    new = await client.unblind_signatures(outs, secrets, rs, sigs)
    assert sum(p.amount for p in new) == 16
    assert [s.state for s in await client.checkstate(ys)] == ["SPENT"] * len(proofs)

    with pytest.raises(MintError) as e:  # spending the same proofs again
        await client.swap(proofs, blinded(proofs[0].id, [16])[0])
    assert e.value.status == 400 and e.value.code == 11001

    unknown, _, _ = blinded(proofs[0].id, [1])
    known_outs, known_sigs = await client.restore([*outs, *unknown])
    assert [o.B_ for o in known_outs] == [o.B_ for o in outs]
    assert [s.C_ for s in known_sigs] == [s.C_ for s in sigs]
    restored = await client.unblind_signatures(known_outs, secrets, rs, known_sigs)
    assert [p.C for p in restored] == [p.C for p in new]


async def test_epochs_quote_and_melt(refmint: MintHandle, client: MintClient) -> None:
    proofs = await issue(refmint, client, 3)
    unit = (await client.keys(proofs[0].id)).unit
    (open_epoch,) = [e for e in await client.epochs() if e.unit == unit]
    assert open_epoch.state == "open" and open_epoch.issued == 8 and proofs[0].id in open_epoch.keysets
    await refmint.reward(80_000)
    settled = next(e for e in await client.epochs() if e.unit == unit)
    assert settled.state == "settled" and settled.reward_msat == 80_000

    quote = await client.melt_quote_ehash(unit, 8)
    assert quote.amount_msat == 80_000 and quote.state == "UNPAID"
    assert await client.get_melt_quote_ehash(quote.quote) == quote

    preimage = os.urandom(32).hex()
    paid = await client.melt_ehash(quote.quote, proofs, hashlib.sha256(bytes.fromhex(preimage)).hexdigest(),
                                   preimage)
    assert paid.state == "PAID" and paid.quote == quote.quote
    assert {s.state for s in await client.checkstate([crypto.proof_y(p.secret) for p in proofs])} == {"SPENT"}


async def test_authenticated_endpoints_need_the_desk_key(refmint: MintHandle) -> None:
    async with MintClient(refmint.url) as anonymous:
        keysets = await anonymous.keysets()
        with pytest.raises(MintError) as e:
            await anonymous.melt_quote_ehash(keysets[0].unit, 1)
        assert e.value.status == 401
    async with MintClient(refmint.url, desk_key="not-the-key") as wrong:
        with pytest.raises(MintError) as e:
            await wrong.melt_quote_ehash(keysets[0].unit, 1)
        assert e.value.status == 401 and "bad desk bearer key" in e.value.detail
