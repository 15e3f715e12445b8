"""MintClient against a misbehaving mint: every fault gives its own typed, clearly worded error."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from client.fakemint import UNIT, FakeMint, json_response, make_keyset

from hashpool_cln.cashu import crypto
from hashpool_cln.cashu.models import BlindedMessage, Proof
from hashpool_cln.mintclient import (
    MintClient,
    MintError,
    MintLimits,
    MintProtocolError,
    MintUnavailable,
    MintUnsupported,
    ProofState,
    check_mint_url,
)


@pytest.fixture
async def mint() -> AsyncIterator[FakeMint]:
    m = await FakeMint().start()
    yield m
    await m.stop()


@pytest.fixture
async def client(mint: FakeMint) -> AsyncIterator[MintClient]:
    async with MintClient(mint.url, desk_key="desk-secret", timeout=2.0) as c:
        yield c


def outputs(keyset_id: str, amounts: list[int]) -> tuple[list[BlindedMessage], list[str], list[Any]]:
    secrets, rs, outs = [], [], []
    for i, amount in enumerate(amounts):
        secret = f"secret-{i}-{amount}"
        B_, r = crypto.blind(secret.encode())
        outs.append(BlindedMessage(amount=amount, id=keyset_id, B_=B_.format().hex()))
        secrets.append(secret)
        rs.append(r)
    return outs, secrets, rs


PROOF = Proof(amount=8, id="01" + "00" * 32, secret="s", C="02" + "11" * 32)


# ---- URLs -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["https://mint.example.com", "https://mint.example.com:3338/cashu/",
                                 "http://127.0.0.1:3338", "http://127.5.6.7", "http://localhost:3338",
                                 "http://[::1]:3338", "https://mint.example.com/pool%20one/"])
def test_accepted_urls(url: str) -> None:
    assert MintClient(url).url == url.rstrip("/")


@pytest.mark.parametrize(("url", "why"), [
    ("http://mint.example.com", "refusing plain http to mint.example.com"),
    ("http://10.0.0.5:3338", "refusing plain http"),
    ("http://[::2]:3338", "refusing plain http"),
    ("ftp://127.0.0.1", "must be http"),
    ("https://", "must be http"),
    ("https://user:pw@mint.example.com", "credentials"),
    ("https://mint.example.com/?x=1", "query"),
    ("https://mint.example.com:99999", "bad port"),
    ("https://mint.example.com:x1", "bad port"),
    ("https://mint.example.com/a b", "plain URL characters"),
    ("https://mint.example.com/a%zz", "plain URL characters"),
    ("https://mint.example.com/\u00e9", "plain URL characters"),
])
def test_refused_urls(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_mint_url(url)


def test_repr_hides_the_desk_key() -> None:
    assert "desk-secret" not in repr(MintClient("https://m.example", desk_key="desk-secret"))


# ---- no answer --------------------------------------------------------------------------------------------------

async def test_mint_down() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    async with MintClient(f"http://127.0.0.1:{port}", timeout=2.0) as c:
        with pytest.raises(MintUnavailable, match=r"GET /v1/keysets: mint unreachable"):
            await c.keysets()
        with pytest.raises(MintUnavailable, match=r"POST /v1/swap: mint unreachable .*the outcome is unknown"):
            await c.swap([PROOF], [])


async def test_slow_past_the_timeout(mint: FakeMint) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return json_response({"states": []})

    mint.override("POST", "/v1/checkstate", slow)
    async with MintClient(mint.url, timeout=0.2) as c:
        with pytest.raises(MintUnavailable,
                           match=r"POST /v1/checkstate: no answer within 0\.2 s; the outcome is unknown"):
            await c.checkstate(["02" + "22" * 32])


async def test_500_with_and_without_error_body(mint: FakeMint, client: MintClient) -> None:
    mint.answer("POST", "/v1/swap", {"detail": "database is locked", "code": 11000}, status=500)
    with pytest.raises(MintError) as e:
        await client.swap([PROOF], [])
    assert (e.value.status, e.value.code, e.value.detail) == (500, 11000, "database is locked")

    async def crash(request: web.Request) -> web.Response:
        return web.Response(text="<h1>Internal Server Error</h1>", status=500, content_type="text/html")

    mint.override("POST", "/v1/swap", crash)
    with pytest.raises(MintUnavailable, match=r"POST /v1/swap: HTTP 500 answer is not JSON; the outcome is unknown"):
        await client.swap([PROOF], [])
    mint.answer("POST", "/v1/swap", {"oops": True}, status=502)
    with pytest.raises(MintUnavailable, match="HTTP 502 without a Cashu error body"):
        await client.swap([PROOF], [])


async def test_cashu_error_body(mint: FakeMint, client: MintClient) -> None:
    mint.answer("POST", "/v1/swap", {"detail": "Token already spent.", "code": 11001}, status=400)
    with pytest.raises(MintError, match=r"mint refused \(HTTP 400, code 11001\): Token already spent.") as e:
        await client.swap([PROOF], [])
    assert e.value.code == 11001
    mint.answer("POST", "/v1/swap", {"detail": [{"loc": ["body"], "msg": "field required"}]}, status=422)
    with pytest.raises(MintProtocolError, match="HTTP 422 with an answer that is not a Cashu error body"):
        await client.swap([PROOF], [])


async def test_garbage_json(mint: FakeMint, client: MintClient) -> None:
    async def garbage(request: web.Request) -> web.Response:
        return web.Response(text='{"keysets": [', content_type="application/json")

    mint.override("GET", "/v1/keysets", garbage)
    with pytest.raises(MintUnavailable, match=r"GET /v1/keysets: HTTP 200 answer is not JSON$"):
        await client.keysets()


# ---- malformed answers ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "answer", "call", "message"), [
    ("GET", "/v1/keysets", {"keysets": [{"id": "01" + "00" * 32, "unit": "sat", "active": "yes"}]},
     lambda c: c.keysets(), "keysets[0]: active is not a boolean"),
    ("GET", "/v1/keysets", {"keysets": {"id": "x"}}, lambda c: c.keysets(), "keysets: keysets is not a list"),
    ("GET", "/v1/keysets", [1, 2], lambda c: c.keysets(), "keysets: expected an object"),
    ("POST", "/v1/checkstate", {"states": [{"Y": "02" + "22" * 32, "state": "BURNT"}]},
     lambda c: c.checkstate(["02" + "22" * 32]), "unknown state 'BURNT'"),
    ("POST", "/v1/checkstate", {"states": [{"Y": "03" + "22" * 32, "state": "SPENT"}]},
     lambda c: c.checkstate(["02" + "22" * 32]), "states do not answer the Ys asked"),
    ("POST", "/v1/swap", {"signatures": [{"amount": "8", "id": "01" + "00" * 32, "C_": "02" + "33" * 32}]},
     lambda c: c.swap([PROOF], []), "swap.signatures[0]: amount is not a non-negative integer"),
    ("POST", "/v1/swap", {"signatures": [{"amount": 8, "id": "01" + "00" * 32, "C_": "02" + "3g" * 32}]},
     lambda c: c.swap([PROOF], []), "swap.signatures[0]: C_ is not 66 hex characters"),
    # Digits of another script are digits to str.isdigit, never hex.
    ("POST", "/v1/swap", {"signatures": [{"amount": 8, "id": "01" + "00" * 32, "C_": "02" + "\u0663" * 64}]},
     lambda c: c.swap([PROOF], []), "swap.signatures[0]: C_ is not 66 hex characters"),
    ("POST", "/v1/swap", {"signatures": [{"amount": 8, "id": "01" + "00" * 32, "C_": "02" + "33" * 31,
                                          "dleq": {"e": "00" * 32, "s": "11" * 31 + "x1"}}]},
     lambda c: c.swap([PROOF], []), "swap.signatures[0]: C_ is not 66 hex characters"),
    ("POST", "/v1/swap", {"signatures": [{"amount": 8, "id": "01" + "00" * 32, "C_": "02" + "33" * 32,
                                          "dleq": {"e": "00" * 32, "s": "11" * 31 + "x1"}}]},
     lambda c: c.swap([PROOF], []), "swap.signatures[0].dleq: s is not 64 hex characters"),
    ("GET", "/v1/ehash/epochs", {"epochs": [{"unit": UNIT, "pool": "02", "height": "840000", "state": "open",
                                             "block_hash": None, "issued": 1, "reward_msat": 1, "redeemed_msat": 0,
                                             "redeem_until": None, "keysets": []}]},
     lambda c: c.epochs(), "epochs[0]: height is not a non-negative integer"),
    ("POST", "/v1/melt/quote/ehash", {"quote": "q", "unit": UNIT, "amount": 8, "amount_msat": 1.5,
                                      "state": "UNPAID", "expiry": 1},
     lambda c: c.melt_quote_ehash(UNIT, 8), "amount_msat is not a non-negative integer"),
    ("POST", "/v1/melt/quote/ehash", {"quote": "q", "unit": UNIT, "amount": 16, "amount_msat": 1,
                                      "state": "UNPAID", "expiry": 1},
     lambda c: c.melt_quote_ehash(UNIT, 8), "melt quote is for 16"),
    ("POST", "/v1/melt/ehash", {"quote": "other", "unit": UNIT, "amount": 8, "amount_msat": 1,
                                "state": "PAID", "expiry": 1},
     lambda c: c.melt_ehash("q1", [PROOF], "00" * 32, "11" * 32), "the mint answered for other"),
    ("POST", "/v1/restore", {"outputs": [{"amount": 1, "id": "01" + "00" * 32, "B_": "02" + "44" * 32}],
                             "signatures": [{"amount": 1, "id": "01" + "00" * 32, "C_": "02" + "55" * 32}]},
     lambda c: c.restore([]), "outputs that were not asked for"),
])
async def test_malformed_answers(mint: FakeMint, client: MintClient, method: str, path: str, answer: Any,
                                 call: Any, message: str) -> None:
    mint.answer(method, path, answer)
    with pytest.raises(MintProtocolError, match=re.escape(message)):
        await call(client)


async def test_signature_count_must_match(mint: FakeMint, client: MintClient) -> None:
    outs, _, _ = outputs(mint.keyset_id, [1, 2])

    async def one_short(request: web.Request) -> web.Response:
        body = await request.json()
        return json_response({"signatures": [mint.sign(body["outputs"][0])]})

    mint.override("POST", "/v1/swap", one_short)
    with pytest.raises(MintProtocolError, match="swap: 1 signatures for 2 outputs"):
        await client.swap([PROOF], outs)


# ---- keys -------------------------------------------------------------------------------------------------------

async def test_keys_verified_and_cached(mint: FakeMint, client: MintClient) -> None:
    keyset = await client.keys(mint.keyset_id)
    assert keyset.unit == UNIT and keyset.input_fee_ppk == 100 and keyset.keys[4] == mint.public[4]
    assert await client.keys(mint.keyset_id) is keyset
    assert sum(1 for r in mint.requests if r[1].startswith("/v1/keys/")) == 1


async def test_keys_not_matching_their_id(mint: FakeMint, client: MintClient) -> None:
    _, _, other_public = make_keyset(seed=b"another mint")
    mint.answer("GET", f"/v1/keys/{mint.keyset_id}", {"keysets": [{
        "id": mint.keyset_id, "unit": UNIT, "active": True, "input_fee_ppk": 100,
        "keys": {str(a): k for a, k in other_public.items()}}]})
    with pytest.raises(MintProtocolError, match=f"keys for keyset {mint.keyset_id} do not match its id"):
        await client.keys(mint.keyset_id)


async def test_keys_fee_taken_from_keysets_when_missing(mint: FakeMint, client: MintClient) -> None:
    mint.answer("GET", f"/v1/keys/{mint.keyset_id}", {"keysets": [{
        "id": mint.keyset_id, "unit": UNIT, "keys": {str(a): k for a, k in mint.public.items()}}]})
    keyset = await client.keys(mint.keyset_id)
    assert keyset.input_fee_ppk == 100 and keyset.active


async def test_keys_bad_entries(mint: FakeMint, client: MintClient) -> None:
    mint.answer("GET", f"/v1/keys/{mint.keyset_id}", {"keysets": [{
        "id": mint.keyset_id, "unit": UNIT, "input_fee_ppk": 100, "keys": {"1.5": mint.public[1]}}]})
    with pytest.raises(MintProtocolError, match=r"bad key entry '1\.5'"):
        await client.keys(mint.keyset_id)
    with pytest.raises(ValueError, match="not a keyset id"):
        await client.keys("../../v1/info")


# ---- signatures and DLEQ ----------------------------------------------------------------------------------------

async def test_swap_and_unblind_honest(mint: FakeMint, client: MintClient) -> None:
    outs, secrets, rs = outputs(mint.keyset_id, [1, 4, 32])
    sigs = await client.swap([PROOF], outs)
    proofs = await client.unblind_signatures(outs, secrets, rs, sigs)
    for proof, secret in zip(proofs, secrets):
        assert crypto.verify(mint.private[proof.amount], crypto.point(proof.C), secret.encode())
        assert proof.dleq is not None and proof.dleq.r is not None
        assert crypto.dleq_verify_proof(secret.encode(), crypto.point(proof.C), crypto.scalar(proof.dleq.r),
                                        bytes.fromhex(proof.dleq.e), bytes.fromhex(proof.dleq.s),
                                        crypto.point(mint.public[proof.amount]))
    swap_request = next(r for r in mint.requests if r[1] == "/v1/swap")
    assert "dleq" not in swap_request[3]["inputs"][0]


async def test_bad_dleq_is_refused(mint: FakeMint, client: MintClient) -> None:
    outs, secrets, rs = outputs(mint.keyset_id, [2, 8])

    async def tagging(request: web.Request) -> web.Response:
        body = await request.json()
        # The second output is signed with another amount's key: a mint tagging it.
        sigs = [mint.sign(body["outputs"][0]), mint.sign(body["outputs"][1], key_amount=16)]
        return json_response({"signatures": sigs})

    mint.override("POST", "/v1/swap", tagging)
    sigs = await client.swap([PROOF], outs)
    with pytest.raises(MintProtocolError, match=r"signature 1 \(amount 8\): DLEQ proof does not verify"):
        await client.unblind_signatures(outs, secrets, rs, sigs)


async def test_missing_dleq(mint: FakeMint, client: MintClient) -> None:
    outs, secrets, rs = outputs(mint.keyset_id, [1])

    async def no_dleq(request: web.Request) -> web.Response:
        body = await request.json()
        sig = mint.sign(body["outputs"][0])
        del sig["dleq"]
        return json_response({"signatures": [sig]})

    mint.override("POST", "/v1/swap", no_dleq)
    sigs = await client.swap([PROOF], outs)
    with pytest.raises(MintProtocolError, match="carries no DLEQ proof"):
        await client.unblind_signatures(outs, secrets, rs, sigs)
    (proof,) = await client.unblind_signatures(outs, secrets, rs, sigs, require_dleq=False)
    assert crypto.verify(mint.private[1], crypto.point(proof.C), secrets[0].encode())


async def test_signature_for_another_output(mint: FakeMint, client: MintClient) -> None:
    outs, _, _ = outputs(mint.keyset_id, [1])

    async def wrong_amount(request: web.Request) -> web.Response:
        body = await request.json()
        return json_response({"signatures": [{**mint.sign(body["outputs"][0]), "amount": 2}]})

    mint.override("POST", "/v1/swap", wrong_amount)
    with pytest.raises(MintProtocolError, match="signature 0 is for 2 in keyset"):
        await client.swap([PROOF], outs)


# ---- authentication and the happy paths of the small endpoints --------------------------------------------------

async def test_bearer_key_only_on_authenticated_endpoints(mint: FakeMint, client: MintClient) -> None:
    q = await client.melt_quote_ehash(UNIT, 8, request="lnbcrt1...")
    assert q.amount_msat == 8000 and q.state == "UNPAID"
    await client.keysets()
    (quote_req,) = [r for r in mint.requests if r[1] == "/v1/melt/quote/ehash"]
    assert quote_req[2]["Authorization"] == "Bearer desk-secret"
    # CDK's custom melt-quote body: method and request named, the ehash fields beside them
    assert quote_req[3] == {"method": "ehash", "unit": UNIT, "amount": 8, "request": "lnbcrt1..."}
    assert all("Authorization" not in r[2] for r in mint.requests if r[1] == "/v1/keysets")


async def test_checkstate(mint: FakeMint, client: MintClient) -> None:
    ys = ["02" + "22" * 32, "03" + "33" * 32]
    assert await client.checkstate(ys) == [ProofState(Y=y, state="UNSPENT") for y in ys]


async def test_limits_are_read_once_and_default_to_1000(mint: FakeMint, client: MintClient) -> None:
    mint.answer("GET", "/v1/info", {"name": "cdk-like mint", "nuts": {}})
    assert await client.limits() == MintLimits(1000, 1000)
    mint.answer("GET", "/v1/info", {"limits": {"max_inputs": 3, "max_outputs": 4}})
    assert await client.limits() == MintLimits(1000, 1000)  # cached: /v1/info is read once
    assert sum(1 for m, p, _, _ in mint.requests if p == "/v1/info") == 1
    async with MintClient(mint.url) as fresh:
        assert await fresh.limits() == MintLimits(3, 4)
    mint.answer("GET", "/v1/info", {"limits": {"max_inputs": 5}})
    async with MintClient(mint.url) as partial:
        assert await partial.limits() == MintLimits(5, 1000)
    for bad in ({"max_inputs": "5"}, {"max_inputs": 0}, {"max_outputs": -1}, [], "1000"):
        mint.answer("GET", "/v1/info", {"limits": bad})
        async with MintClient(mint.url) as liar:
            with pytest.raises(MintProtocolError):
                await liar.limits()


async def test_release_and_reference_answers_are_checked(mint: FakeMint, client: MintClient) -> None:
    quote = {"quote": "q1", "unit": UNIT, "amount": 3, "amount_msat": 3000, "state": "EXPIRED", "expiry": 5}
    mint.answer("POST", "/v1/melt/quote/ehash/release", quote)
    assert (await client.release_melt_quote_ehash("q1")).state == "EXPIRED"
    sent = [b for m, p, _, b in mint.requests if p == "/v1/melt/quote/ehash/release"]
    assert sent == [{"quote": "q1"}]
    with pytest.raises(MintProtocolError):
        await client.release_melt_quote_ehash("q2")  # answered for another quote
    mint.answer("POST", "/v1/melt/quote/ehash/release", {**quote, "state": "UNPAID"})
    with pytest.raises(MintProtocolError):
        await client.release_melt_quote_ehash("q1")  # a released quote cannot still be unpaid
    mint.answer("POST", "/v1/melt/quote/ehash/release", {"detail": "quote is already paid", "code": 20006}, 400)
    with pytest.raises(MintError) as info:
        await client.release_melt_quote_ehash("q1")
    assert info.value.code == 20006
    await client.melt_quote_ehash(UNIT, 3, reference="abc_-9")
    assert [b for m, p, _, b in mint.requests if p == "/v1/melt/quote/ehash"][-1]["reference"] == "abc_-9"
    mint.answer("POST", "/v1/melt/quote/ehash", {**quote, "state": "UNPAID", "reference": "other"})
    with pytest.raises(MintProtocolError):
        await client.melt_quote_ehash(UNIT, 3, reference="abc_-9")
    for bad in ("", "x" * 65, "a b", "ü"):
        with pytest.raises(ValueError):
            await client.melt_quote_ehash(UNIT, 3, reference=bad)


@pytest.mark.parametrize("returned_amount", [0, 1, None])
async def test_restore_pairs_by_b_and_takes_amount_and_keyset_from_the_signature(
        mint: FakeMint, client: MintClient, returned_amount: int | None) -> None:
    """NUT-09 promises outputs and signatures in pairs, not that the outputs repeat the signed amount: nutshell
    returns them as sent, cashu-ts sends amount 0."""
    asked, _, _ = outputs(mint.keyset_id, [4, 8, 2])
    sent = [{**o.to_dict(), "amount": 0} for o in asked]  # a seed-only restore does not know the amounts

    async def as_sent(request: web.Request) -> web.Response:
        body = await request.json()
        known = [body["outputs"][2], body["outputs"][0]]
        sigs = [mint.sign({**o, "amount": a}) for o, a in zip(known, (2, 4))]
        if returned_amount is None:
            known = [{"B_": o["B_"]} for o in known]
        else:
            known = [{**o, "amount": returned_amount} for o in known]
        return json_response({"outputs": known, "signatures": sigs})

    mint.override("POST", "/v1/restore", as_sent)
    found, sigs = await client.restore([BlindedMessage(0, o.id, o.B_) for o in asked])
    assert [(o.B_, o.amount, o.id) for o in found] == [(asked[2].B_, 2, mint.keyset_id),
                                                      (asked[0].B_, 4, mint.keyset_id)]
    assert [s.amount for s in sigs] == [2, 4]
    assert [b["outputs"] for m, p, _, b in mint.requests if p == "/v1/restore"] == [sent]


async def test_restore_refuses_unpaired_or_repeated_outputs(mint: FakeMint, client: MintClient) -> None:
    asked, _, _ = outputs(mint.keyset_id, [4, 8])
    sig = mint.sign(asked[0].to_dict())
    mint.answer("POST", "/v1/restore", {"outputs": [asked[0].to_dict()], "signatures": [sig, sig]})
    with pytest.raises(MintProtocolError, match="2 signatures for 1 outputs"):
        await client.restore(asked)
    mint.answer("POST", "/v1/restore", {"outputs": [asked[0].to_dict()] * 2, "signatures": [sig, sig]})
    with pytest.raises(MintProtocolError, match="returned an output twice"):
        await client.restore(asked)


async def test_an_endpoint_the_mint_does_not_serve_is_unsupported(mint: FakeMint, client: MintClient) -> None:
    """A mint of another dialect (CDK's routes only) answers 404 for the release: the client says so precisely."""
    mint.answer("POST", "/v1/melt/quote/ehash/release", {"detail": "Not Found", "code": 0}, status=404)
    with pytest.raises(MintUnsupported, match="does not serve"):
        await client.release_melt_quote_ehash("q1")

    async def plain(request: web.Request) -> web.Response:
        return web.Response(text="Method Not Allowed", status=405)

    mint.override("POST", "/v1/melt/quote/ehash/release", plain)
    with pytest.raises(MintUnsupported):
        await client.release_melt_quote_ehash("q1")
    with pytest.raises(MintError) as refused:  # a refusal of a request it read is a 400 with its code
        mint.answer("POST", "/v1/melt/quote/ehash", {"detail": "unknown unit", "code": 11013}, status=400)
        await client.melt_quote_ehash(UNIT, 1)
    assert refused.value.code == 11013 and not isinstance(refused.value, MintUnsupported)
    sent = [b for m, p, _, b in mint.requests if p == "/v1/melt/quote/ehash"][-1]
    assert sent == {"method": "ehash", "request": "", "unit": UNIT, "amount": 1}


async def test_cdk_shaped_settlement_answers(mint: FakeMint, client: MintClient) -> None:
    """A CDK mint answers MeltQuoteCustomResponse with the processor's extra fields flattened in."""
    cdk_quote = {"quote": "0190f1e2-aaaa-7000-8000-000000000001", "method": "ehash", "amount": 8, "fee_reserve": 0,
                 "state": "UNPAID", "expiry": 2_000_000_000, "request": "lnbcrt1x", "unit": UNIT, "amount_msat": 8000}
    mint.answer("POST", "/v1/melt/quote/ehash", cdk_quote)
    q = await client.melt_quote_ehash(UNIT, 8, "lnbcrt1x", reference="rid")
    assert (q.quote, q.amount_msat, q.request, q.reference) == (cdk_quote["quote"], 8000, "lnbcrt1x", None)
    paid = {**cdk_quote, "state": "PAID", "payment_preimage": "22" * 32}
    mint.answer("POST", "/v1/melt/ehash", paid)
    melted = await client.melt_ehash(cdk_quote["quote"], [PROOF], "11" * 32, "22" * 32)
    assert melted.state == "PAID" and melted.payment_preimage == "22" * 32
    sent = [b for m, p, _, b in mint.requests if p == "/v1/melt/ehash"][-1]
    assert set(sent) == {"quote", "inputs", "payment"}  # CDK's MeltRequest fields, and our proof beside them
