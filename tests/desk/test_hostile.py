"""A hostile caller's tokens, one class each: refused with the right code, and nothing held at the mint."""

from __future__ import annotations

import dataclasses
import secrets

import pytest
from coincurve import PrivateKey
from support.invoices import make_invoice

from hashpool_cln.cashu import crypto
from hashpool_cln.cashu.models import DLEQ, Proof, Token
from hashpool_cln.cashu.tokens import parse_token, serialize_v4
from hashpool_cln.desk.errors import Code, DeskError
from hashpool_cln.mintclient import MintError


async def refused(coro) -> DeskError:
    with pytest.raises(DeskError) as e:
        await coro
    return e.value


def forged_proofs(keyset_id: str, amounts: list[int], *, with_dleq: bool) -> list[Proof]:
    """Proofs of made-up signatures on a real keyset: any point as C, and (optionally) a made-up DLEQ."""
    proofs = []
    for amount in amounts:
        c = PrivateKey().public_key.format().hex()
        dleq = DLEQ(e=secrets.token_hex(32), s=secrets.token_hex(32), r=secrets.token_hex(32)) if with_dleq else None
        proofs.append(Proof(amount=amount, id=keyset_id, secret=secrets.token_hex(32), C=c, dleq=dleq))
    return proofs


async def all_units(ehash) -> int:
    return next(e for e in await ehash.client.epochs() if e.unit == ehash.unit).issued


async def budget_free_msat(ehash) -> bool:
    """Whether the epoch's whole net reward can still be quoted at the mint (HTTP, the desk's key): true only when
    no quote holds any of it (and nothing was redeemed yet). The probe quote is released at once."""
    try:
        quote = await ehash.client.melt_quote_ehash(ehash.unit, await all_units(ehash))
    except MintError as e:
        assert e.code == 51002, e
        return False
    await ehash.client.release_melt_quote_ehash(quote.quote)
    return True


@pytest.mark.parametrize("with_dleq", [False, True], ids=["no dleq", "made-up dleq"])
async def test_forged_tokens_hold_no_budget(desk, ehash, node, with_dleq):
    keyset = parse_token(await ehash.token(1)).proofs[0].id
    assert await budget_free_msat(ehash)
    for _ in range(5):
        forged = serialize_v4(Token(mint=ehash.url, unit=ehash.unit,
                                    proofs=tuple(forged_proofs(keyset, [1 << 20, 1 << 21], with_dleq=with_dleq))))
        err = await refused(desk.redeem(forged, make_invoice(1_000_000).bolt11))
        assert err.code is Code.PROOF_INVALID, err.message
    assert ehash.proxy.seen["/v1/melt/quote/ehash"] == 0 and ehash.proxy.seen["/v1/swap"] == 0
    assert await budget_free_msat(ehash)  # nothing of the epoch's reward is held
    assert (await desk.redeem(await ehash.token(400), make_invoice(100_000).bolt11))["state"] == "settled"


async def test_a_genuine_token_without_its_dleq_is_refused_before_any_mint_call(desk, ehash, node):
    token = parse_token(await ehash.token(100))
    bare = Token(mint=token.mint, unit=token.unit, proofs=tuple(dataclasses.replace(p, dleq=None)
                                                                  for p in token.proofs))
    err = await refused(desk.redeem(serialize_v4(bare), make_invoice(10_000).bolt11))
    assert err.code is Code.PROOF_INVALID and err.data["reason"] == "no_dleq"
    assert ehash.proxy.seen["/v1/melt/quote/ehash"] == 0
    assert set(await ehash.states(token.proofs)) == {"UNSPENT"}


async def test_a_token_beyond_what_the_epoch_issued_is_refused(desk, ehash, node):
    keyset = parse_token(await ehash.token(1)).proofs[0].id
    # Four proofs of 2^62: a total beyond sqlite's integer range, and beyond any epoch's units.
    huge = serialize_v4(Token(mint=ehash.url, unit=ehash.unit,
                              proofs=tuple(forged_proofs(keyset, [1 << 62] * 4, with_dleq=True))))
    for call in (desk.redeem(huge, make_invoice(10_000).bolt11), desk.quote(huge)):
        err = await refused(call)
        assert err.code is Code.PROOF_INVALID, err.message
    assert await desk.redemptions() == []


async def test_a_settled_token_again_is_spent_not_in_use(desk, ehash, node):
    token = await ehash.token(400)
    assert (await desk.redeem(token, make_invoice(100_000).bolt11))["state"] == "settled"
    err = await refused(desk.redeem(token, make_invoice(100_000).bolt11))
    assert err.code is Code.TOKEN_SPENT


async def test_the_mints_budget_refusal_is_3422(desk, ehash, node):
    held = await ehash.client.melt_quote_ehash(ehash.unit, await all_units(ehash))
    try:
        err = await refused(desk.redeem(await ehash.token(400), make_invoice(100_000).bolt11))
        assert err.code is Code.EPOCH_BUDGET_EXHAUSTED and err.data["mint_code"] == 51002
        assert (await desk.status(err.data["id"]))["state"] == "rejected"
    finally:
        await ehash.client.release_melt_quote_ehash(held.quote)


async def test_a_swap_the_mint_refuses_as_unverifiable_is_3406(desk, ehash, node, monkeypatch):
    async def refuse(*args, **kwargs):
        raise MintError(400, 10001, "proof could not be verified")

    monkeypatch.setattr(desk.mint, "swap", refuse)
    token = await ehash.token(400)
    err = await refused(desk.redeem(token, make_invoice(100_000).bolt11))
    assert err.code is Code.PROOF_INVALID
    assert (await desk.status(err.data["id"]))["state"] == "rejected"
    assert set(await ehash.states(token)) == {"UNSPENT"}


async def test_a_keyset_made_after_the_last_read_is_found_at_once(desk, ehash, node):
    # The desk reads the mint's keysets (cached for 30 s); the mint then settles a new epoch with a new keyset.
    await desk.quote(await ehash.token(8))
    proofs = await ehash.issue(10)
    settled = (await ehash.mint.reward(1_024 * 1_000, confirmations=1))[0]
    assert settled["unit"] != ehash.unit and settled["state"] == "settled"
    fresh = serialize_v4(Token(mint=ehash.url, unit=settled["unit"], proofs=tuple(proofs)))
    desk.config = dataclasses.replace(desk.config, max_msat=10_000_000_000)
    quoted = await desk.quote(fresh)
    assert quoted["unit"] == settled["unit"] and quoted["amount"] == 1_024


async def test_made_up_keyset_ids_do_not_make_the_desk_hammer_the_mint(desk, ehash, node):
    await desk.quote(await ehash.token(8))
    before = ehash.proxy.seen["/v1/keysets"]
    for _ in range(20):
        forged = Token(mint=ehash.url, unit=ehash.unit,
                       proofs=tuple(forged_proofs("01" + secrets.token_hex(32), [1], with_dleq=True)))
        err = await refused(desk.quote(serialize_v4(forged)))
        assert err.code is Code.KEYSET_REFUSED
    assert ehash.proxy.seen["/v1/keysets"] - before <= 2


def test_y_of_a_forged_proof_is_still_a_point() -> None:
    # The forged proofs above are well-formed: only the mint's key could tell them apart, which DLEQ does.
    proof = forged_proofs("01" + "00" * 32, [1], with_dleq=True)[0]
    assert len(crypto.proof_y(proof.secret)) == 66


# --- no quote the desk no longer needs holds budget --------------------------------------------------------------


async def test_a_lost_quote_answer_is_asked_again_and_holds_the_budget_once(desk, ehash, node):
    ehash.proxy.fault("/v1/melt/quote/ehash", "drop_after")  # the mint makes the quote, its answer is lost
    node.fee_msat = 1_000  # routing uses the whole reserve: no second quote for fewer units
    out = await desk.redeem(await ehash.token(400), make_invoice(100_000).bolt11)
    assert out["state"] == "settled"
    assert ehash.proxy.seen["/v1/melt/quote/ehash"] == 2  # the same reference twice: one quote at the mint
    assert await desk.store.quotes_to_release() == []


async def test_quote_answers_lost_for_good_are_found_and_released(desk, ehash, node):
    assert await budget_free_msat(ehash)
    ehash.proxy.fault("/v1/melt/quote/ehash", "drop_after", times=2)
    ehash.proxy.fault("/v1/melt/quote/ehash/release", "drop_before")
    token = await ehash.token(400)
    err = await refused(desk.redeem(token, make_invoice(100_000).bolt11))
    assert err.code is Code.MINT_UNAVAILABLE and (await desk.status(err.data["id"]))["state"] == "rejected"
    # The mint made a quote whose answer never came; releasing it failed too. Reconciling finds it again by its
    # reference (no new budget held) and releases it.
    assert len(await desk.store.quotes_to_release()) == 1
    assert not await budget_free_msat(ehash)
    from hashpool_cln.desk.recovery import reconcile

    await reconcile(desk)
    assert await desk.store.quotes_to_release() == []
    assert await budget_free_msat(ehash)
    assert set(await ehash.states(token)) == {"UNSPENT"}


async def test_a_refunded_redemption_gives_its_quote_back(desk, ehash, node):
    from support.fakenode import Outcome

    inv = make_invoice(100_000)
    node.script(inv.payment_hash, Outcome.fail(205))
    out = await desk.redeem(await ehash.token(400), inv.bolt11)
    assert out["state"] == "refunded"
    assert (await ehash.client.get_melt_quote_ehash(out["quote_id"])).state == "EXPIRED"
    assert await budget_free_msat(ehash)


async def test_a_token_spent_elsewhere_gives_its_quote_back(desk, ehash, node):
    token = await ehash.token(400)
    err_token = parse_token(token)
    await ehash.mint.swap(list(err_token.proofs), [256, 128, 16])  # the owner spends it first, elsewhere
    err = await refused(desk.redeem(token, make_invoice(100_000).bolt11))
    assert err.code is Code.TOKEN_SPENT
    rec = await desk.status(err.data["id"])
    assert rec["state"] == "rejected"
    assert (await ehash.client.get_melt_quote_ehash(rec["quote_id"])).state == "EXPIRED"
    assert await budget_free_msat(ehash)
