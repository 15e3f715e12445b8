"""What the wallet fuzz found, one case each: a mint or a desk answering what the protocol does not allow, and the
wallet's books staying exact. The mint is the reference mint behind ``support.hostilemint.HostileMint`` with
faults put on cue; the desk's answers go straight to the functions that read them."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from support.hostilemint import HostileMint
from wallet.conftest import issued_token, retargeted, run_cli

from hashpool_cln.cashu.tokens import make_token, parse_token
from hashpool_cln.mintclient import MintProtocolError, MintUnavailable
from hashpool_cln.wallet.commando import CommandoError, OutcomeUnknown, parse_reply
from hashpool_cln.wallet.errors import Code, WalletError
from hashpool_cln.wallet.issuance import Issuance
from hashpool_cln.wallet.redeem import redeem, settle
from hashpool_cln.wallet.sweep import sweep


@pytest.fixture
async def hostile(refmint) -> AsyncIterator[HostileMint]:
    proxy = await HostileMint(refmint.url, random.Random(0), rate=0.0).start()
    yield proxy
    await proxy.stop()


async def _units(wallet) -> dict[str, tuple[int, int]]:
    return {b.unit: (b.unspent, b.pending) for b in await wallet.balance()}


async def test_an_answer_nested_100000_deep_is_no_answer(hostile, open_wallet, mnemonic) -> None:
    wallet = await open_wallet(hostile.url, mnemonic)
    hostile.plan = [("/v1/keysets", "deep")]
    with pytest.raises(MintUnavailable, match="not JSON"):
        await wallet.keysets(refresh=True)
    assert await wallet.keysets(refresh=True)  # the next answer is taken as usual


async def test_a_number_beyond_64_bits_is_refused_before_it_is_stored(refmint, hostile, open_wallet,
                                                                     mnemonic) -> None:
    wallet = await open_wallet(hostile.url, mnemonic)
    token, unit = await issued_token(refmint, 3)

    def huge_fee(doc: dict[str, Any]) -> dict[str, Any]:
        doc["keysets"][0]["input_fee_ppk"] = 10**40
        return doc
    hostile.plan = [("/v1/keysets", huge_fee)]
    with pytest.raises(MintProtocolError, match="larger than 2"):
        await wallet.receive(retargeted(token, hostile.url))
    assert await wallet.receive(retargeted(token, hostile.url)) == 8
    assert await _units(wallet) == {unit: (8, 0)}


async def test_text_with_a_lone_surrogate_is_refused_before_it_is_stored(refmint, hostile, open_wallet,
                                                                        mnemonic) -> None:
    wallet = await open_wallet(hostile.url, mnemonic)
    await refmint.ehash_quote(2, wallet.keys.lock_key)

    def bad_unit(doc: dict[str, Any]) -> dict[str, Any]:
        doc["quotes"][0]["unit"] = "\ud800" + doc["quotes"][0]["unit"]
        return doc
    hostile.plan = [("/pubkey", bad_unit)]
    with pytest.raises(MintProtocolError, match="lone surrogate"):
        await sweep(wallet, Issuance(wallet.mint))
    assert (await sweep(wallet, Issuance(wallet.mint))).minted == 1


async def test_a_batch_mint_answer_with_a_dleq_of_the_wrong_type_is_replayed(refmint, hostile, open_wallet,
                                                                             mnemonic) -> None:
    wallet = await open_wallet(hostile.url, mnemonic)
    for _ in range(3):
        await refmint.ehash_quote(2, wallet.keys.lock_key)

    def bad_dleq(doc: dict[str, Any]) -> dict[str, Any]:
        doc["signatures"][0]["dleq"]["e"] = 5
        return doc
    hostile.plan = [("/v1/mint/ehash/batch", bad_dleq)]
    result = await sweep(wallet, Issuance(wallet.mint))  # the broken answer is a lost one: asked again
    assert result.minted == 3
    assert [u for u, _ in (await _units(wallet)).values()] == [12]


async def test_a_swap_the_mint_refuses_after_acting_is_found_by_restore(refmint, hostile, open_wallet,
                                                                       mnemonic) -> None:
    wallet = await open_wallet(hostile.url, mnemonic)
    token, unit = await issued_token(refmint, 4)
    hostile.plan = [("/v1/swap", "error_after")]  # the mint signed, then the answer says it refused
    assert await wallet.receive(retargeted(token, hostile.url)) == 16
    assert await _units(wallet) == {unit: (16, 0)}


async def test_a_token_not_taken_back_stays_pending_for_its_send(refmint, hostile, open_wallet, mnemonic) -> None:
    wallet = await open_wallet(hostile.url, mnemonic)
    token, unit = await issued_token(refmint, 3)
    await wallet.receive(retargeted(token, hostile.url))
    sent = await wallet.send(3, unit)
    hostile.plan = [("/v1/swap", "refuse")]  # taking it back is refused; the mint did nothing
    with pytest.raises(WalletError) as refused:
        await wallet.receive(sent)
    assert refused.value.code == Code.MINT_REFUSED
    assert await _units(wallet) == {unit: (5, 3)}
    (send,) = await wallet.store.sends()
    assert {p.reserved_for for p in await wallet.store.proofs(state="pending")} == {send["id"]}
    await refmint.swap(list(parse_token(sent).proofs))  # its recipient swaps it after all
    assert [s["state"] for s in await wallet.check_sends()] == ["spent"]
    assert await _units(wallet) == {unit: (5, 0)}


# ---- the desk's answers -----------------------------------------------------------------------------------------

async def _redemption(refmint, wallet, url: str | None = None) -> tuple[str, list[str], str]:
    token, unit = await issued_token(refmint, 4)
    await wallet.receive(token if url is None else retargeted(token, url))
    ys = [p.y for p in await wallet.store.proofs(state="unspent")]
    claim = "ab" * 32
    await wallet.store.begin_redemption(claim, "lnbcrt1...", unit, 16, ys)
    return claim, ys, unit


@pytest.mark.parametrize("answer", [{"state": "paid", "id": [1]}, {"state": "paid", "amount_msat": 2**70},
                                    {"state": "paid", "payment_preimage": "\ud800"}, {"state": "done"},
                                    {"state": "refunded", "error": 5}, "paid", None, [{"state": "paid"}]])
async def test_a_desk_answer_the_wallet_cannot_record_leaves_the_redemption_open(refmint, open_wallet, mnemonic,
                                                                                answer) -> None:
    wallet = await open_wallet(refmint.url, mnemonic)
    claim, _, unit = await _redemption(refmint, wallet)
    with pytest.raises(WalletError) as unknown:
        await settle(wallet, claim, answer)
    assert unknown.value.code == Code.OUTCOME_UNKNOWN and "not a redemption" in unknown.value.message
    ((row),) = await wallet.store.redemptions()
    assert row["state"] == "sending"  # open: the next command asks the desk again
    assert await _units(wallet) == {unit: (0, 16)}


async def test_a_desk_saying_paid_marks_spent_only_what_the_mint_took(refmint, open_wallet, mnemonic) -> None:
    wallet = await open_wallet(refmint.url, mnemonic)
    claim, _, unit = await _redemption(refmint, wallet)
    done = await settle(wallet, claim, {"id": "r1", "state": "paid", "payment_preimage": "00" * 32})
    assert done["state"] == "paid"
    assert await _units(wallet) == {unit: (16, 0)}  # the mint holds them unspent: they are still the wallet's


async def test_a_desk_saying_paid_while_the_mint_holds_the_proofs_pending_leaves_it_open(
        refmint, hostile, open_wallet, mnemonic) -> None:
    wallet = await open_wallet(hostile.url, mnemonic)
    claim, _, unit = await _redemption(refmint, wallet, hostile.url)

    def pending(doc: Any) -> Any:
        return {"states": [{**s, "state": "PENDING"} for s in doc["states"]]}

    hostile.plan = [("/v1/checkstate", pending)]
    with pytest.raises(WalletError) as unknown:
        await settle(wallet, claim, {"id": "r1", "state": "paid", "payment_preimage": "00" * 32})
    assert unknown.value.code == Code.OUTCOME_UNKNOWN and "pending" in unknown.value.message
    ((row),) = await wallet.store.redemptions()
    assert row["state"] == "sending"  # still open: the next command asks the desk and the mint again
    assert await _units(wallet) == {unit: (0, 16)}
    done = await settle(wallet, claim, {"id": "r1", "state": "paid", "payment_preimage": "00" * 32})
    assert done["state"] == "paid" and await _units(wallet) == {unit: (16, 0)}


class NoDesk:
    async def call(self, method: str, params: dict[str, Any]) -> Any:
        raise AssertionError(f"{method} sent")


async def test_a_destination_that_is_not_valid_unicode_is_refused_before_anything(refmint, open_wallet,
                                                                                 mnemonic) -> None:
    wallet = await open_wallet(refmint.url, mnemonic)
    with pytest.raises(WalletError) as refused:
        await redeem(wallet, NoDesk(), "lno1\ud800")
    assert refused.value.code == Code.BAD_DESTINATION
    assert await wallet.store.redemptions() == []


@pytest.mark.parametrize("reply", [b'{"error": {"code": 1180591620717411303424, "message": "x"}}',
                                   b'{"error": {"code": true, "message": "x"}}', b'{"error": {"code": "1"}}'])
def test_a_commando_error_without_a_64_bit_code_is_no_answer(reply: bytes) -> None:
    with pytest.raises(OutcomeUnknown):
        parse_reply(reply)


def test_a_commando_error_message_with_a_lone_surrogate_is_made_text() -> None:
    with pytest.raises(CommandoError) as refused:
        parse_reply(b'{"error": {"code": 3401, "message": "bad \\ud800 mint"}}')
    assert refused.value.message == "bad ? mint" and refused.value.code == 3401
    refused.value.message.encode("utf-8")


async def test_a_token_of_the_wallets_own_spendable_proofs_is_refused_not_swapped(refmint, open_wallet,
                                                                                 mnemonic) -> None:
    wallet = await open_wallet(refmint.url, mnemonic)
    token, unit = await issued_token(refmint, 3)
    await wallet.receive(token)
    held = await wallet.store.proofs(state="unspent")
    # Say a desk hands the wallet's own proofs back as change: swapping them as someone else's would spend them
    # at the mint and leave them counted as spendable here.
    with pytest.raises(WalletError) as refused:
        await wallet.receive(make_token(refmint.url, unit, [p.proof for p in held]) or "")
    assert refused.value.code == Code.BAD_TOKEN
    assert await _units(wallet) == {unit: (8, 0)}
    states = await wallet.mint.checkstate([p.y for p in held])
    assert {s.state for s in states} == {"UNSPENT"}


# ---- the command line ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("setting", [["--rune", "rune\ud800"], ["--mint", "http://127.0.0.1:1/\ud800"],
                                     ["--rune", "two words"], ["--rune", "rune;rm"]])
async def test_a_setting_that_is_not_utf8_or_base64_is_refused_with_4000(tmp_path, setting) -> None:
    directory = str(tmp_path / "w")
    assert (await run_cli(["--dir", directory, "init", "--mint", "http://127.0.0.1:1"]))[0] == 0
    before = (tmp_path / "w" / "wallet.conf").read_text()
    code, _, err = await run_cli(["--dir", directory, "config", *setting])
    assert code == 1 and err.startswith("error 4000: "), err
    assert (tmp_path / "w" / "wallet.conf").read_text() == before


@pytest.mark.parametrize("args", [["sweep", "--batch", "-3"], ["sweep", "--batch", "0"],
                                  ["sweep", "--watch", "--interval", "0"], ["sweep", "--watch", "--interval", "-1"],
                                  ["autopay", "lno1x", "--watch", "--interval", "nan"],
                                  ["autopay", "lno1x", "--watch", "--interval", "inf"]])
async def test_a_batch_or_interval_that_is_not_positive_is_a_usage_error(tmp_path, args) -> None:
    code, _, err = await run_cli(["--dir", str(tmp_path / "none"), *args])
    assert code == 2 and "error: argument" in err, err


async def test_a_refusal_from_a_mint_without_restore_stands(refmint, hostile, open_wallet, mnemonic) -> None:
    wallet = await open_wallet(hostile.url, mnemonic)
    token, unit = await issued_token(refmint, 3)
    await wallet.receive(retargeted(token, hostile.url))
    hostile.plan = [("/v1/swap", "refuse"), ("/v1/restore", "status404")]
    with pytest.raises(WalletError) as refused:
        await wallet.send(3, unit)
    assert refused.value.code == Code.MINT_REFUSED
    assert await _units(wallet) == {unit: (8, 0)} and await wallet.store.open_operations() == []


class QuoteDesk:
    """A desk whose hashpool-quote says the destination cannot be paid, with ``code``; it is sent nothing else."""

    def __init__(self, code: Any) -> None:
        self.code = code

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        assert method == "hashpool-quote", method
        return {"destination": {"payable": False, "code": self.code, "reason": "cannot route"}}


@pytest.mark.parametrize("code", [10**30, True, "3420", None, 3420])
async def test_a_quoted_refusal_keeps_its_code_only_if_it_is_a_json_rpc_code(refmint, open_wallet, mnemonic,
                                                                            code) -> None:
    wallet = await open_wallet(refmint.url, mnemonic)
    unit, proofs = await refmint.settled_epoch(1_000_000, 3)
    await wallet.receive(make_token(refmint.url, unit, proofs) or "")
    with pytest.raises(WalletError) as refused:
        await redeem(wallet, QuoteDesk(code), "lno1qgsq", unit=unit)
    assert refused.value.code == (3420 if code == 3420 else Code.INSUFFICIENT_FUNDS)
    assert refused.value.message == "cannot route" and await _units(wallet) == {unit: (8, 0)}
