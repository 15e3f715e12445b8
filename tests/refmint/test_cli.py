"""``hashpool-mint`` from the command line: keys, shares (a real cashuB token), reward."""

from __future__ import annotations

import asyncio
import json
import sys

import aiohttp
from coincurve import PrivateKey
from support.refmint import MintProcess, ys

from hashpool_cln.cashu.tokens import parse_token


async def _run(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "hashpool_cln.refmint", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_cli_keys_shares_reward(tmp_path) -> None:
    data_dir = tmp_path / "mint"
    mint = MintProcess(data_dir, "--min-difficulty", "8")
    url = await mint.start()
    try:
        code, out, err = await _run("keys", "--data-dir", str(data_dir))
        assert code == 0, err
        keys = json.loads(out)
        assert set(keys) == {"pool", "desk"} and keys["pool"] != keys["desk"]

        code, out, err = await _run("shares", "--url", url, "--count", "3", "--min-leading-zeros", "10",
                                    "--data-dir", str(data_dir))
        assert code == 0, err
        token = parse_token(out.strip())
        assert out.startswith("cashuB") and token.mint == url and token.amount == 12  # 3 x 2^(10-8)
        assert token.unit.startswith("hash_") and all(p.dleq is not None for p in token.proofs)

        lock = PrivateKey()
        code, out, err = await _run("shares", "--url", url, "--count", "1", "--min-leading-zeros", "9",
                                    "--pool-auth", keys["pool"], "--pubkey", lock.secret.hex())
        assert code == 0, err
        locked = parse_token(out.strip())
        assert locked.amount == 2

        async with aiohttp.ClientSession() as session:
            handle = await mint.handle(session)
            states = (await handle.ok("POST", "/v1/checkstate", {"Ys": ys(token.proofs + locked.proofs)}))["states"]
            assert {s["state"] for s in states} == {"UNSPENT"}

            code, out, err = await _run("reward", "--url", url, "--height", "7", "--reward-msat", "14000",
                                        "--data-dir", str(data_dir))
            assert code == 0, err
            epochs = json.loads(out)["epochs"]
            assert epochs[0]["unit"] == token.unit and epochs[0]["state"] == "settled" and epochs[0]["issued"] == 14
            assert epochs[-1]["height"] == 7 and epochs[-1]["state"] == "open"
            quote = await handle.ok("POST", "/v1/melt/quote/ehash", {"unit": token.unit, "amount": 12}, role="desk")
            assert quote["amount_msat"] == 12_000

        code, out, err = await _run("shares", "--url", url, "--count", "1", "--min-leading-zeros", "4",
                                    "--pool-auth", keys["pool"])
        assert code == 1 and "11006" in err and "Traceback" not in err
        code, out, err = await _run("shares", "--url", url, "--count", "1", "--pool-auth", "wrong")
        assert code == 1 and "30002" in err
    finally:
        assert await mint.stop() == 0


async def test_cli_serves_partial_melts_unless_told_not_to(tmp_path) -> None:
    for args, expected in (((), True), (("--no-partial-melt",), False)):
        mint = MintProcess(tmp_path / f"mint-{expected}", *args)
        url = await mint.start()
        try:
            async with aiohttp.ClientSession() as session, session.get(url + "/v1/info") as resp:
                assert (await resp.json())["ehash"]["partial_melt"] is expected
        finally:
            assert await mint.stop() == 0
