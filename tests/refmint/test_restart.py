"""``hashpool-mint serve`` as a process: stopping it and starting another on the same data dir keeps
keys, epochs, the spent set, signed outputs and quotes; its secret files are private."""

from __future__ import annotations

import os
import stat

import aiohttp
from support.refmint import MintProcess, ys

from hashpool_cln.refmint.miner import blind_outputs


async def test_restart_keeps_everything(tmp_path) -> None:
    data_dir = tmp_path / "mint"
    args = ("--min-difficulty", "0", "--input-fee-ppk", "100")
    first = MintProcess(data_dir, *args)
    await first.start()
    async with aiohttp.ClientSession() as session:
        mint = await first.handle(session)
        spent = await mint.issue(4, count=2)
        kept = await mint.issue(3)
        await mint.swap(spent, [16, 8, 4, 2, 1])  # 32 in, fee ceil(2 * 100 / 1000) = 1
        share = await mint.share_quote(2)
        await mint.reward(10_000)
        melt_quote = await mint.ok("POST", "/v1/melt/quote/ehash", {"unit": share["unit"], "amount": 2}, role="desk")
        share_after = await mint.ok("GET", f"/v1/mint/quote/mining_share/{share['quote']}")
        assert share_after["expiry"] is not None and share_after["state"] == "PAID"
        before = {p: await mint.ok("GET", p) for p in ("/v1/keysets", "/v1/keys", "/v1/ehash/epochs")}
        info_before = await mint.ok("GET", "/v1/info")
    assert await first.stop() == 0

    second = MintProcess(data_dir, *args)
    await second.start()
    try:
        async with aiohttp.ClientSession() as session:
            mint = await second.handle(session)
            for path, body in before.items():
                assert await mint.ok("GET", path) == body, path
            assert (await mint.ok("GET", "/v1/info"))["pubkey"] == info_before["pubkey"]
            states = (await mint.ok("POST", "/v1/checkstate", {"Ys": ys(spent) + ys(kept)}))["states"]
            assert [s["state"] for s in states] == ["SPENT"] * len(spent) + ["UNSPENT"] * len(kept)
            outs = blind_outputs(spent[0].id, [16, 8, 4, 2, 1]).outputs
            again = await mint.call("POST", "/v1/swap", {"inputs": [p.to_dict() for p in spent],
                                                         "outputs": [o.to_dict() for o in outs]})
            assert again.code == 11001
            assert await mint.ok("GET", f"/v1/mint/quote/mining_share/{share['quote']}") == share_after
            assert await mint.ok("GET", f"/v1/melt/quote/ehash/{melt_quote['quote']}", role="desk") == melt_quote
            # the kept proofs still swap (keys came back from the seed), minus the fee
            fresh = await mint.swap(kept, [4, 2, 1])
            assert sum(p.amount for p in fresh) == 7
    finally:
        assert await second.stop() == 0

    for name in ("seed", "auth.json", "pool_key", "mint.sqlite3"):
        mode = stat.S_IMODE(os.stat(data_dir / name).st_mode)
        assert mode == 0o600, (name, oct(mode))
    assert stat.S_IMODE(os.stat(data_dir).st_mode) == 0o700
