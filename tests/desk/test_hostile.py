"""A hostile caller's tokens, one class each: refused with the right code, and nothing held at the mint."""

from __future__ import annotations

import dataclasses
import secrets

import pytest
from coincurve import PrivateKey
from support.invoices import make_invoice

from hashpool_cln.cashu import crypto
from hashpool_cln.cashu.models import DLEQ, Proof, Token
from hashpool_cln.cashu.tokens import make_token, parse_token, serialize_v4
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
        forged = make_token(ehash.url, ehash.unit, forged_proofs(keyset, [1 << 20, 1 << 21], with_dleq=with_dleq))
        err = await refused(desk.redeem(forged, make_invoice(1_000_000).bolt11))
        assert err.code is Code.PROOF_INVALID, err.message
        assert (await desk.status(err.data["id"]))["state"] == "rejected"
    # The swap proved them forged; no melt quote was ever asked.
    assert ehash.proxy.seen["/v1/melt/quote/ehash"] == 0 and ehash.proxy.seen["/v1/swap"] == 5
    assert await budget_free_msat(ehash)  # nothing of the epoch's reward is held
    assert (await desk.redeem(await ehash.token(400), make_invoice(100_000).bolt11))["state"] == "settled"


async def test_a_genuine_token_without_its_dleq_is_redeemed(desk, ehash, node):
    # What cashu-ts and other wallets send: proofs without NUT-12 DLEQ. The swap proves them.
    token = parse_token(await ehash.token(100))
    bare = Token(mint=token.mint, unit=token.unit, proofs=tuple(dataclasses.replace(p, dleq=None)
                                                                  for p in token.proofs))
    assert (await desk.redeem(serialize_v4(bare), make_invoice(10_000).bolt11))["state"] == "settled"
    assert set(await ehash.states(token.proofs)) == {"SPENT"}


async def test_a_token_beyond_what_the_epoch_issued_is_refused(desk, ehash, node):
    keyset = parse_token(await ehash.token(1)).proofs[0].id
    # Four proofs of 2^62: a total beyond sqlite's integer range, and beyond any epoch's units.
    huge = make_token(ehash.url, ehash.unit, forged_proofs(keyset, [1 << 62] * 4, with_dleq=True))
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
        inv = make_invoice(100_000)
        out = await desk.redeem(await ehash.token(400), inv.bolt11)
        # Refused after custody: the custody proofs go back as a refund, nothing is paid.
        assert out["state"] == "refunded" and out["error"]["code"] == Code.EPOCH_BUDGET_EXHAUSTED
        assert node.complete_count(inv.payment_hash) == 0
        assert set(await ehash.states(out["refund_token"])) == {"UNSPENT"}
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
    fresh = make_token(ehash.url, settled["unit"], proofs)
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


async def test_quote_answers_lost_for_good_are_asked_again_under_the_same_reference(desk, ehash, node):
    assert await budget_free_msat(ehash)
    ehash.proxy.fault("/v1/melt/quote/ehash", "drop_after", times=2)
    node.fee_msat = 1_000  # routing uses the whole reserve: no second quote for fewer units
    token = await ehash.token(400)
    inv = make_invoice(100_000)
    err = await refused(desk.redeem(token, inv.bolt11))
    # The mint made a quote whose answer never came: the redemption waits in custody, nothing paid.
    assert err.code is Code.MINT_UNAVAILABLE and (await desk.status(err.data["id"]))["state"] == "custody"
    assert node.complete_count(inv.payment_hash) == 0
    assert await desk.store.quotes_to_release() == []  # the open ask stays: it is the redemption's reference
    from hashpool_cln.desk.recovery import reconcile

    await reconcile(desk)
    assert (await desk.status(err.data["id"]))["state"] == "settled"
    assert ehash.proxy.seen["/v1/melt/quote/ehash"] == 3  # one reference throughout: one quote at the mint
    assert await desk.store.quotes_to_release() == []
    assert node.complete_count(inv.payment_hash) == 1


async def test_a_refunded_redemption_gives_its_quote_back(desk, ehash, node):
    from support.fakenode import Outcome

    inv = make_invoice(100_000)
    node.script(inv.payment_hash, Outcome.fail(205))
    out = await desk.redeem(await ehash.token(400), inv.bolt11)
    assert out["state"] == "refunded"
    assert (await ehash.client.get_melt_quote_ehash(out["quote_id"])).state == "EXPIRED"
    assert await budget_free_msat(ehash)


async def test_a_mint_without_the_release_route_leaves_the_quote_to_expire(desk, ehash, node, monkeypatch):
    from support.fakenode import Outcome

    from hashpool_cln.mintclient import MintUnsupported

    calls = []

    async def unsupported(quote_id):
        calls.append(quote_id)
        raise MintUnsupported("release: the mint does not serve this endpoint (HTTP 404)")

    monkeypatch.setattr(desk.mint, "release_melt_quote_ehash", unsupported)
    inv = make_invoice(100_000)
    node.script(inv.payment_hash, Outcome.fail(205))
    assert (await desk.redeem(await ehash.token(400), inv.bolt11))["state"] == "refunded"
    assert len(calls) == 1
    # Dropped, not retried at every reconciliation for ever.
    assert await desk.store.quotes_to_release() == []
    assert await desk.release_quotes() == 0 and len(calls) == 1


async def test_a_token_spent_elsewhere_gives_its_quote_back(desk, ehash, node):
    token = await ehash.token(400)
    err_token = parse_token(token)
    await ehash.mint.swap(list(err_token.proofs), [256, 128, 16])  # the owner spends it first, elsewhere
    err = await refused(desk.redeem(token, make_invoice(100_000).bolt11))
    assert err.code is Code.TOKEN_SPENT
    rec = await desk.status(err.data["id"])
    assert rec["state"] == "rejected" and rec["quote_id"] is None  # refused at the swap, before any quote
    assert ehash.proxy.seen["/v1/melt/quote/ehash"] == 0
    assert await budget_free_msat(ehash)


# --- no token and no mint answer wedges the desk -----------------------------------------------------------------


async def thousand_and_one(ehash) -> str:
    """A genuine token of 1,001 proofs (cut in two swaps: the mint signs at most 1,000 outputs in one)."""
    proofs = await ehash.proofs([1] * 500) + await ehash.proofs([1] * 501)
    return make_token(ehash.url, ehash.unit, proofs)


async def test_a_token_beyond_the_mints_input_limit_is_refused_before_any_mint_call(desk, ehash, node):
    info = await ehash.client.info()
    assert info["limits"] == {"max_inputs": 1000, "max_outputs": 1000}
    token = await thousand_and_one(ehash)
    for call in (desk.redeem(token, make_invoice(100_000).bolt11), desk.quote(token)):
        err = await refused(call)
        assert err.code is Code.TOO_MANY_PROOFS and err.data == {"proofs": 1001, "max_inputs": 1000}
        assert "1000" in err.message
    assert ehash.proxy.seen["/v1/melt/quote/ehash"] == 0 and ehash.proxy.seen["/v1/swap"] == 0
    assert await desk.redemptions() == []


async def test_a_redemption_over_the_limit_left_by_an_older_desk_wedges_nothing(make_desk, ehash, node, monkeypatch):
    """An older desk (which did not know the mint's limits) wrote down a 1,001-proof redemption and died before
    its swap; another caller's payment was in flight. The desk starts, serves, leaves the big token untouched
    with a coded reason, and moves the other redemption on."""
    from support.crash import Crasher
    from support.fakenode import Outcome

    from hashpool_cln.desk.desk import Crash
    from hashpool_cln.desk.recovery import reconcile
    from hashpool_cln.mintclient import MintLimits

    other_inv = make_invoice(100_000)
    node.script(other_inv.payment_hash, Outcome.PENDING_THEN_COMPLETE)
    first = await make_desk()
    other = await first.redeem(await ehash.token(400), other_inv.bolt11)
    assert other["state"] == "paying"
    await first.close()

    big = await thousand_and_one(ehash)
    crasher = Crasher("after:->quoted")
    older = await crasher.desk(make_desk.config(), node, ehash)

    async def no_limits():
        return MintLimits(max_inputs=5000, max_outputs=5000)

    monkeypatch.setattr(older.catalog, "limits", no_limits)
    with pytest.raises(Crash):
        await older.redeem(big, make_invoice(100_000).bolt11)
    await crasher.bury()

    node.resolve(other_inv.payment_hash)
    restarted = await make_desk()  # starts: recovery isolates what it cannot finish
    assert (await restarted.info())["redemptions"]
    rows = {r["amount"]: r for r in await restarted.redemptions()}
    assert rows[1001]["state"] == "rejected" and rows[1001]["error"]["code"] == int(Code.TOO_MANY_PROOFS)
    big_proofs = parse_token(big).proofs
    assert set(await ehash.states(big_proofs[:500]) + await ehash.states(big_proofs[500:])) == {"UNSPENT"}
    await reconcile(restarted)
    assert (await restarted.status(other["id"]))["state"] in ("paid", "settled")
    assert node.complete_count(other_inv.payment_hash) == 1
    fresh = await restarted.redeem(await ehash.token(400), make_invoice(100_000).bolt11)
    assert fresh["state"] == "settled"


async def test_one_failing_redemption_never_stops_the_others(make_desk, ehash, node, monkeypatch):
    from support.fakenode import Outcome

    from hashpool_cln.desk.recovery import reconcile

    invs = [make_invoice(100_000) for _ in range(2)]
    desk = await make_desk()
    outs = []
    for inv in invs:
        node.script(inv.payment_hash, Outcome.PENDING_THEN_COMPLETE)
        outs.append(await desk.redeem(await ehash.token(400), inv.bolt11))
    assert [o["state"] for o in outs] == ["paying", "paying"]
    for inv in invs:
        node.resolve(inv.payment_hash)
    real = desk.follow_payment

    async def breaks_on_the_first(rec, payment):
        if rec.id == outs[0]["id"]:
            raise KeyError("an answer nobody foresaw")
        return await real(rec, payment)

    monkeypatch.setattr(desk, "follow_payment", breaks_on_the_first)
    await reconcile(desk)
    assert (await desk.status(outs[0]["id"]))["state"] == "paying"
    assert (await desk.status(outs[1]["id"]))["state"] == "settled"
    monkeypatch.setattr(desk, "follow_payment", real)
    await reconcile(desk)
    assert (await desk.status(outs[0]["id"]))["state"] == "settled"


async def test_checkstate_and_restore_stay_within_the_mints_limits(desk, ehash, node, monkeypatch):
    from hashpool_cln.mintclient import MintLimits

    async def small():
        return MintLimits(max_inputs=3, max_outputs=2)

    monkeypatch.setattr(desk.catalog, "limits", small)
    seen = []
    real_check, real_restore = desk.mint.checkstate, desk.mint.restore

    async def check(ys):
        seen.append(("checkstate", len(ys)))
        return await real_check(ys)

    async def restore(outputs):
        seen.append(("restore", len(outputs)))
        return await real_restore(outputs)

    monkeypatch.setattr(desk.mint, "checkstate", check)
    monkeypatch.setattr(desk.mint, "restore", restore)
    proofs = await ehash.proofs([1] * 7)
    states = await desk.checkstate([crypto.proof_y(p.secret) for p in proofs])
    assert [s.state for s in states] == ["UNSPENT"] * 7
    from hashpool_cln.cashu.nut13 import derive_outputs

    outputs = derive_outputs(b"\1" * 32, proofs[0].id, 0, [1] * 5)
    known, sigs = await desk.restore([o.message for o in outputs])
    assert known == [] and sigs == []
    assert seen == [("checkstate", 3), ("checkstate", 3), ("checkstate", 1), ("restore", 2), ("restore", 2),
                    ("restore", 1)]
