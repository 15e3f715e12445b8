"""MintClient against a real nutshell mint (cashu 0.20, FakeWallet, a ``sat`` keyset standing in for ehash, an
input fee): info and limits, keysets, swap with fees, checkstate, and a restore from the seed alone (NUT-09 +
NUT-13: outputs made from a seed, lost, found again from the seed).

nutshell runs from ``$HASHPOOL_NUTSHELL_VENV`` (``python3 dev.py test`` prepares it) as one subprocess for the
whole module; without that virtualenv the module skips and says why.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from coincurve import PrivateKey
from interop.harness import FEE_PPK, fee, p2pk_secret

from hashpool_cln.cashu import conditions, crypto, nut13
from hashpool_cln.cashu.amounts import split_amount
from hashpool_cln.cashu.keysets import Keyset
from hashpool_cln.cashu.models import BlindedMessage, BlindSignature, Proof
from hashpool_cln.mintclient import DEFAULT_LIMIT, MintClient, MintError, MintLimits
from hashpool_cln.refmint.miner import Blinded, blind_outputs
from hashpool_cln.regtest.layout import free_port

pytestmark = [pytest.mark.nutshell, pytest.mark.asyncio(loop_scope="module")]

ROOT = Path(__file__).resolve().parents[2]
# Resolved: the suite starts nutshell from directories of its own, where a relative path would name nothing.
NUTSHELL_VENV = Path(os.environ.get("HASHPOOL_NUTSHELL_VENV", ROOT / ".venv-nutshell")).resolve()
START_TIMEOUT = 60.0


def ys(proofs: Sequence[Proof]) -> list[str]:
    return [crypto.proof_y(p.secret) for p in proofs]


@dataclass
class Nutshell:
    url: str
    client: MintClient
    session: aiohttp.ClientSession
    keyset: Keyset

    async def fund(self, amount: int, amounts: Sequence[int] | None = None, chosen: Sequence[str] = ()) -> list[Proof]:
        """``amount`` sat minted through a BOLT11 quote that FakeWallet pays by itself (the first outputs get
        the ``chosen`` secrets, the others random ones)."""
        quote = await self._post("/v1/mint/quote/bolt11", {"amount": amount, "unit": "sat"})
        for _ in range(200):
            async with self.session.get(f"{self.url}/v1/mint/quote/bolt11/{quote['quote']}") as resp:
                if (await resp.json()).get("state") == "PAID":
                    break
            await asyncio.sleep(0.05)
        blinded = blind_outputs(self.keyset.id, list(amounts) if amounts is not None else split_amount(amount),
                                chosen)
        answer = await self._post("/v1/mint/bolt11", {"quote": quote["quote"],
                                                      "outputs": [o.to_dict() for o in blinded.outputs]})
        return await self.unblind(blinded, [BlindSignature.from_dict(s) for s in answer["signatures"]])

    async def unblind(self, blinded: Blinded, sigs: Sequence[BlindSignature]) -> list[Proof]:
        return await self.client.unblind_signatures(blinded.outputs, blinded.secrets, blinded.rs, sigs)

    async def _post(self, path: str, body: dict) -> dict:
        async with self.session.post(self.url + path, json=body) as resp:
            answer = await resp.json()
            assert resp.status == 200, answer
            return answer


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


async def _wait_listening(session: aiohttp.ClientSession, url: str, proc: asyncio.subprocess.Process,
                          log: Path) -> None:
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    while asyncio.get_running_loop().time() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"nutshell exited with {proc.returncode}:\n{_tail(log)}")
        try:
            async with session.get(url + "/v1/info") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"nutshell did not answer within {START_TIMEOUT:g} s:\n{_tail(log)}")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def nutshell(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Nutshell]:
    exe = NUTSHELL_VENV / "bin" / "mint"
    if not exe.exists():
        pytest.skip(f"nutshell's mint is not installed at {exe} (python3 dev.py test prepares it)")
    work = tmp_path_factory.mktemp("nutshell")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINT_", "CASHU_"))}
    env.update({
        "MINT_BACKEND_BOLT11_SAT": "FakeWallet", "MINT_PRIVATE_KEY": secrets.token_hex(32),
        "MINT_DATABASE": str(work / "db"), "MINT_LISTEN_HOST": "127.0.0.1", "MINT_LISTEN_PORT": str(port),
        "MINT_INPUT_FEE_PPK": str(FEE_PPK), "DEBUG": "FALSE", "LOG_LEVEL": "WARNING",
    })
    (work / "db").mkdir()
    log = work / "nutshell.log"
    # nutshell reads ./.env: it runs in an empty directory of its own
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(str(exe), env=env, cwd=work, stdout=out,
                                                    stderr=asyncio.subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    client = MintClient(url, timeout=30)
    try:
        await _wait_listening(session, url, proc, log)
        meta = next(k for k in await client.keysets() if k.unit == "sat" and k.active)
        yield Nutshell(url, client, session, await client.keys(meta.id))
    finally:
        await client.close()
        await session.close()
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()


async def test_info_limits_and_keysets(nutshell: Nutshell) -> None:
    info = await nutshell.client.info()
    assert "limits" not in info  # nutshell does not say: the client takes CDK's 1000 of each
    assert await nutshell.client.limits() == MintLimits(DEFAULT_LIMIT, DEFAULT_LIMIT) == MintLimits(1000, 1000)
    # keys() checked nutshell's keys against their id; the fee is the one nutshell was started with
    assert nutshell.keyset.input_fee_ppk == FEE_PPK and nutshell.keyset.unit == "sat"
    assert sorted(nutshell.keyset.keys)[:3] == [1, 2, 4]


async def test_an_unknown_keyset_is_a_coded_refusal(nutshell: Nutshell) -> None:
    with pytest.raises(MintError) as e:
        await nutshell.client.keys("00ffffffffffffff")
    assert (e.value.status, e.value.code) == (400, 12001)


async def test_swap_pays_the_input_fee(nutshell: Nutshell) -> None:
    proofs = await nutshell.fund(64, [32, 16, 8, 4, 2, 1, 1])
    kid = nutshell.keyset.id
    # the fee unpaid: refused, nothing spent
    unbalanced = blind_outputs(kid, split_amount(64))
    with pytest.raises(MintError) as e:
        await nutshell.client.swap(proofs, unbalanced.outputs)
    # nutshell 0.20 codes this 11000 (NUT-00 lists 11005 for unbalanced): the client passes on what it said
    assert e.value.status == 400 and e.value.code == 11000 and f"fees ({fee(7)})" in e.value.detail
    assert {s.state for s in await nutshell.client.checkstate(ys(proofs))} == {"UNSPENT"}
    # seven inputs cost ceil(0.7) = 1: 63 out
    balanced = blind_outputs(kid, split_amount(64 - fee(7)))
    new = await nutshell.unblind(balanced, await nutshell.client.swap(proofs, balanced.outputs))
    assert sum(p.amount for p in new) == 63
    # spent once, refused the second time with 11001
    again = blind_outputs(kid, split_amount(63))
    with pytest.raises(MintError) as e:
        await nutshell.client.swap(proofs, again.outputs)
    assert e.value.status == 400 and e.value.code == 11001


async def test_checkstate_answers_each_y_in_order(nutshell: Nutshell) -> None:
    proofs = await nutshell.fund(8, [4, 2, 1, 1])
    out = blind_outputs(nutshell.keyset.id, [2])
    await nutshell.client.swap(proofs[1:3], out.outputs)  # 2 + 1 in, 2 out: 1 of fee
    states = await nutshell.client.checkstate(ys(proofs))
    assert [s.Y for s in states] == ys(proofs)
    assert [s.state for s in states] == ["UNSPENT", "SPENT", "SPENT", "UNSPENT"]


async def test_p2pk_signed_here_is_accepted_by_nutshell(nutshell: Nutshell) -> None:
    """ehash locked to the desk's key (NUT-11), signed by this project's conditions module, spent at nutshell."""
    key = PrivateKey()
    (locked,) = await nutshell.fund(4, [4], chosen=[p2pk_secret(key.public_key.format().hex())])
    out = blind_outputs(nutshell.keyset.id, split_amount(4 - fee(1)))
    with pytest.raises(MintError) as e:  # unsigned: nutshell refuses
        await nutshell.client.swap([locked], out.outputs)
    assert e.value.status == 400
    assert [s.state for s in await nutshell.client.checkstate(ys([locked]))] == ["UNSPENT"]
    await nutshell.client.swap([conditions.sign_p2pk(locked, key)], out.outputs)
    assert [s.state for s in await nutshell.client.checkstate(ys([locked]))] == ["SPENT"]


async def test_restore_of_remembered_outputs(nutshell: Nutshell) -> None:
    proofs = await nutshell.fund(16, [8, 8])
    out = blind_outputs(nutshell.keyset.id, [8, 4, 2, 1])
    sigs = await nutshell.client.swap(proofs, out.outputs)
    stranger = blind_outputs(nutshell.keyset.id, [1]).outputs
    known, restored = await nutshell.client.restore([*out.outputs, *stranger])
    assert [o.B_ for o in known] == [o.B_ for o in out.outputs]
    assert [s.C_ for s in restored] == [s.C_ for s in sigs]


def _from_seed(seed: bytes, kid: str, counters: range, amounts: Sequence[int]) -> Blinded:
    """Outputs of NUT-13 secrets ``counters`` with the amounts given (a wallet that has only its seed does not
    know them)."""
    out = Blinded([], [], [])
    for counter, amount in zip(counters, amounts):
        secret, r = nut13.derive_secret(seed, kid, counter)
        B_, r = crypto.blind(secret.encode(), r)
        out.outputs.append(BlindedMessage(amount=amount, id=kid, B_=B_.format().hex()))
        out.secrets.append(secret)
        out.rs.append(r)
    return out


@pytest.mark.parametrize("placeholder", [1, 0], ids=["amount-1 (nutshell's wallet)", "amount-0 (cashu-ts)"])
async def test_restore_from_the_seed_alone(nutshell: Nutshell, placeholder: int) -> None:
    seed = os.urandom(64)
    kid = nutshell.keyset.id
    proofs = await nutshell.fund(16, [8, 8])
    amounts = split_amount(16 - fee(2))  # 8, 4, 2, 1 at counters 0..3
    made = _from_seed(seed, kid, range(len(amounts)), amounts)
    kept = await nutshell.unblind(made, await nutshell.client.swap(proofs, made.outputs))
    del made  # the outputs are lost: only the seed is left

    # what a seed-only wallet sends: counters 0..9 (a gap past the last used), amounts unknown (a placeholder)
    asked = _from_seed(seed, kid, range(10), [placeholder] * 10)
    known, signatures = await nutshell.client.restore(asked.outputs)
    assert [o.B_ for o in known] == [o.B_ for o in asked.outputs[: len(amounts)]]
    assert [s.amount for s in signatures] == amounts and {s.id for s in signatures} == {kid}
    # the amount and keyset of each output are the signature's (NUT-09 answers by B_)
    outputs = [replace(o, amount=s.amount, id=s.id) for o, s in zip(known, signatures)]
    restored = await nutshell.client.unblind_signatures(outputs, asked.secrets[: len(known)], asked.rs[: len(known)],
                                                        signatures)
    assert [(p.secret, p.C, p.amount) for p in restored] == [(p.secret, p.C, p.amount) for p in kept]
    # and the restored proofs spend
    final = blind_outputs(kid, split_amount(sum(amounts) - fee(len(restored))))
    await nutshell.client.swap(restored, final.outputs)
    assert {s.state for s in await nutshell.client.checkstate(ys(kept))} == {"SPENT"}
