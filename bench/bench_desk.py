"""Redemption desk: overhead per redemption (1, 64, 1024 proofs) and redemptions/s with 16 callers.

Runs the real desk against the reference mint on loopback and the node stand-in in instant mode. The desk's
own time is the wall time of a redemption less the time spent waiting on the mint (HTTP) and on the node;
the desk's crypto and sqlite time is measured directly (``Desk.timings``). Under concurrency it also counts the
ledger's transactions and the commits to the file that carried them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


async def _run(sizes: list[int], rounds: int, concurrent: int, total: int) -> None:
    from support.ehash import running_ehash
    from support.fakenode import FakeNode
    from support.invoices import make_invoice

    from hashpool_cln.desk.config import DeskConfig
    from hashpool_cln.desk.desk import Desk
    from hashpool_cln.lightning.clnrpc import ClnNode
    from hashpool_cln.mintclient import MintClient

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        async with running_ehash(tmp_path, max_inputs=4096, max_outputs=4096) as ehash:
            node = FakeNode(tmp_path / "rpc", instant=True)
            await node.start()
            mint = MintClient(ehash.direct_url, desk_key=ehash.desk_key, timeout=30)
            config = DeskConfig(mint_url=ehash.url, mint_aliases=(ehash.direct_url,),
                                db_path=str(tmp_path / "desk.sqlite3"), seed_path=str(tmp_path / "seed"),
                                pools=[ehash.pool], max_msat=10**10, maxfee_msat=10**6, min_invoice_life=60)
            desk = Desk(config, ClnNode(node.rpc_path, timeout=30), mint)
            await desk.start()
            try:
                print(f"{'proofs':>7} {'wall ms':>9} {'desk ms':>9} {'crypto':>7} {'sqlite':>7} {'mint':>7} "
                      f"{'node':>7}")
                for size in sizes:
                    tokens = [await ehash.token(amounts=[1] * size if size > 1 else [2048]) for _ in range(rounds)]
                    desk.timings.reset()
                    start = time.perf_counter()
                    for token in tokens:
                        out = await desk.redeem(token, make_invoice(10_000).bolt11)
                        assert out["state"] == "settled", out
                    wall = (time.perf_counter() - start) / rounds
                    t = {k: v / rounds for k, v in desk.timings.seconds.items()}
                    own = wall - t["mint"] - t["node"]
                    print(f"{size:>7} {wall * 1e3:>9.1f} {own * 1e3:>9.1f} {_share(t['crypto'], wall):>7} "
                          f"{_share(t['sqlite'], wall):>7} {_share(t['mint'], wall):>7} {_share(t['node'], wall):>7}")

                tokens = [await ehash.token(amounts=[2048]) for _ in range(total)]
                queue: asyncio.Queue[str] = asyncio.Queue()
                for token in tokens:
                    queue.put_nowait(token)

                async def caller() -> None:
                    while not queue.empty():
                        out = await desk.redeem(queue.get_nowait(), make_invoice(100_000).bolt11)
                        assert out["state"] == "settled", out

                desk.timings.reset()
                commits, syncs = desk.store.commits, desk.store.syncs
                start = time.perf_counter()
                await asyncio.gather(*(caller() for _ in range(concurrent)))
                wall = time.perf_counter() - start
                commits, syncs = desk.store.commits - commits, desk.store.syncs - syncs
                t = desk.timings.seconds
                busy = sum(t.values())
                print(f"\n{total} redemptions, {concurrent} concurrent callers: {total / wall:.1f} redemptions/s "
                      f"({wall:.2f} s)")
                print("work done (summed over overlapping redemptions): "
                      + ", ".join(f"{k} {v:.2f} s ({_share(v, busy)})" for k, v in t.items()))
                print(f"ledger: {commits / total:.1f} transactions committed per redemption, in "
                      f"{syncs / total:.1f} commits to the file (writes waiting together share one)")
            finally:
                await desk.close()
                await mint.close()
                await node.stop()


def _share(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole > 0 else "-"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_desk", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,64,1024", help="proofs per token, comma-separated")
    parser.add_argument("--rounds", type=int, default=5, help="redemptions per size")
    parser.add_argument("--concurrent", type=int, default=16)
    parser.add_argument("--total", type=int, default=160, help="redemptions in the concurrent run")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    asyncio.run(_run(sizes, args.rounds, args.concurrent, args.total))


if __name__ == "__main__":
    main(sys.argv[1:])
