"""Swap throughput of the reference mint against a real nutshell mint, under the same client load.

Both mints run as subprocesses on loopback: ``hashpool-mint serve`` and nutshell's ``mint`` (from
``$HASHPOOL_NUTSHELL_VENV``, default ``.venv-nutshell``; FakeWallet backend, ``sat`` keyset, no input fee).
Each client holds its own proofs of amount 1 (the reference mint's from mining-share quotes, nutshell's from a
FakeWallet-paid mint quote) and swaps them over and over into fresh proofs of amount 1: 1 or 64 proofs per
request, 1 client sequentially or 8 concurrent clients. Reported: proofs per second and the ratio
reference / nutshell per configuration.

Then share issuance at the reference mint as a miner's wallet sweeps it: NUT-20 locked ``ehash`` quotes of 1
unit minted one request per quote (``/v1/mint/ehash``) against NUT-29 batches of ``ISSUE_BATCH`` quotes
(``/v1/mint/ehash/batch``). Reported: quotes minted per second each way and the ratio.

    python bench/bench_mint.py [--duration SECONDS] [--skip-nutshell]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from coincurve import PrivateKey

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hashpool_cln.cashu import crypto  # noqa: E402
from hashpool_cln.cashu.models import BlindedMessage, Proof  # noqa: E402
from hashpool_cln.cashu.nut20 import sign_quote  # noqa: E402
from hashpool_cln.refmint.config import load_auth  # noqa: E402
from hashpool_cln.refmint.shares import random_share_hash  # noqa: E402

CONFIGS = [(1, 1), (64, 1), (1, 8), (64, 8)]  # (proofs per request, concurrent clients)
FUND_BATCH = 512  # proofs of amount 1 minted per funding request
ISSUE_BATCH = 50  # quotes per NUT-29 batch mint
ISSUE_QUOTES = 400  # quotes minted each way


@dataclass
class Target:
    name: str
    url: str
    keyset_id: str
    keys: dict[int, Any]
    issue: Any = None  # () -> {"single": quotes/s, "batch": quotes/s}, for mints that issue ehash


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Refused(RuntimeError):
    """The mint answered with an error."""


async def _json(session: aiohttp.ClientSession, method: str, url: str, body: Any = None,
                headers: dict[str, str] | None = None) -> Any:
    async with session.request(method, url, json=body, headers=headers) as resp:
        data = await resp.json(content_type=None)
        if resp.status != 200:
            raise Refused(f"{method} {url} -> {resp.status}: {data}")
        return data


async def _wait_ready(session: aiohttp.ClientSession, url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mint exited with {proc.returncode}")
        with contextlib.suppress(aiohttp.ClientError, RuntimeError):
            await _json(session, "GET", url + "/v1/keysets")
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"mint at {url} did not come up")


def _spawn(args: list[str], **kw: Any) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _load_keys(session: aiohttp.ClientSession, url: str, unit: str) -> tuple[str, dict[int, Any]]:
    keysets = (await _json(session, "GET", url + "/v1/keysets"))["keysets"]
    kid = next(k["id"] for k in keysets if k["unit"] == unit and k["active"])
    keys = (await _json(session, "GET", f"{url}/v1/keys/{kid}"))["keysets"][0]["keys"]
    return kid, {int(a): crypto.point(k) for a, k in keys.items()}


def _blind(kid: str, n: int) -> tuple[list[dict], list[str], list]:
    outs, secs, rs = [], [], []
    for _ in range(n):
        secret = secrets.token_hex(32)
        B_, r = crypto.blind(secret.encode())
        outs.append({"amount": 1, "id": kid, "B_": B_.format().hex()})
        secs.append(secret)
        rs.append(r)
    return outs, secs, rs


def _unblind(target: Target, sigs: list[dict], secs: list[str], rs: list) -> list[Proof]:
    A = target.keys[1]
    return [Proof(1, target.keyset_id, s, crypto.unblind(crypto.point(sig["C_"]), r, A).format().hex())
            for sig, s, r in zip(sigs, secs, rs)]


# ---------------------------------------------------------------- the two mints


async def _mint(session: aiohttp.ClientSession, target: Target, path: str, quote_id: str,
                amount: int) -> list[Proof]:
    """Mint a paid quote of ``amount`` units (1-unit outputs) into proofs."""
    outs, secs, rs = _blind(target.keyset_id, amount)
    sigs = (await _json(session, "POST", target.url + path, {"quote": quote_id, "outputs": outs}))["signatures"]
    return _unblind(target, sigs, secs, rs)


@contextlib.asynccontextmanager
async def reference_mint(session: aiohttp.ClientSession, workdir: Path) -> AsyncIterator[tuple[Target, Any]]:
    port = _free_port()
    data_dir = workdir / "refmint"
    proc = _spawn([sys.executable, "-m", "hashpool_cln.refmint", "serve", "--port", str(port),
                   "--data-dir", str(data_dir), "--min-difficulty", "0", "--log-level", "WARNING"], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_ready(session, url, proc, 30)
        pool = load_auth(data_dir)["pool"]
        info = await _json(session, "GET", url + "/v1/info")
        kid, keys = await _load_keys(session, url, info["ehash"]["open_unit"])
        target = Target("reference", url, kid, keys)
        target.issue = lambda: measure_issuance(session, url, pool, target)

        async def fund(n: int) -> list[Proof]:
            proofs: list[Proof] = []
            while len(proofs) < n:
                quote = await _json(session, "POST", url + "/v1/mint/quote/mining_share",
                                    {"header_hash": random_share_hash(FUND_BATCH.bit_length() - 1).hex()},
                                    {"Authorization": f"Bearer {pool}"})
                proofs += await _mint(session, target, "/v1/mint/mining_share", quote["quote"], quote["amount"])
            return proofs

        yield target, fund
    finally:
        _stop(proc)


async def measure_issuance(session: aiohttp.ClientSession, url: str, pool: str,
                           target: Target) -> dict[str, float]:
    """Quotes minted per second at the reference mint: one request per quote, and NUT-29 batches."""
    key = PrivateKey()
    pubkey = key.public_key.format().hex()

    async def quotes(n: int) -> list[str]:
        made = []
        for _ in range(n):
            body = {"unit": "hash", "pubkey": pubkey, "header_hash": random_share_hash(0)[::-1].hex()}
            made.append((await _json(session, "POST", url + "/v1/mint/quote/ehash", body,
                                     {"Authorization": f"Bearer {pool}"}))["quote"])
        return made

    async def mint(ids: list[str]) -> None:
        outs, secs, rs = _blind(target.keyset_id, len(ids))
        messages = [BlindedMessage(1, o["id"], o["B_"]) for o in outs]
        signatures = [sign_quote(key, q, messages) for q in ids]
        if len(ids) == 1:
            body: dict[str, Any] = {"quote": ids[0], "outputs": outs, "signature": signatures[0]}
            path = "/v1/mint/ehash"
        else:
            body, path = {"quotes": ids, "outputs": outs, "signatures": signatures}, "/v1/mint/ehash/batch"
        _unblind(target, (await _json(session, "POST", url + path, body))["signatures"], secs, rs)

    rates = {}
    for name, size in (("single", 1), ("batch", ISSUE_BATCH)):
        ids = await quotes(ISSUE_QUOTES)
        start = time.monotonic()
        for i in range(0, len(ids), size):
            await mint(ids[i:i + size])
        rates[name] = len(ids) / (time.monotonic() - start)
    return rates


@contextlib.asynccontextmanager
async def nutshell_mint(session: aiohttp.ClientSession, workdir: Path) -> AsyncIterator[tuple[Target, Any]]:
    venv = Path(os.environ.get("HASHPOOL_NUTSHELL_VENV", ROOT / ".venv-nutshell"))
    exe = venv / "bin" / "mint"
    if not exe.exists():
        raise FileNotFoundError(f"nutshell mint not found at {exe} (python3 dev.py bench prepares it)")
    port = _free_port()
    db_dir = workdir / "nutshell-db"
    db_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINT_", "CASHU_"))}
    env.update({
        "MINT_BACKEND_BOLT11_SAT": "FakeWallet", "MINT_PRIVATE_KEY": secrets.token_hex(32),
        "MINT_DATABASE": str(db_dir), "MINT_LISTEN_HOST": "127.0.0.1", "MINT_LISTEN_PORT": str(port),
        "MINT_INPUT_FEE_PPK": "0", "DEBUG": "FALSE", "LOG_LEVEL": "WARNING",
    })
    run_dir = workdir / "nutshell-run"  # nutshell reads ./.env: give it an empty directory
    run_dir.mkdir()
    proc = _spawn([str(exe)], env=env, cwd=run_dir)
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_ready(session, url, proc, 60)
        kid, keys = await _load_keys(session, url, "sat")
        target = Target("nutshell", url, kid, keys)

        async def fund(n: int) -> list[Proof]:
            proofs: list[Proof] = []
            while len(proofs) < n:
                quote = await _json(session, "POST", url + "/v1/mint/quote/bolt11", {"amount": FUND_BATCH,
                                                                                     "unit": "sat"})
                for _ in range(100):  # FakeWallet marks the invoice paid on its own
                    state = await _json(session, "GET", f"{url}/v1/mint/quote/bolt11/{quote['quote']}")
                    if state.get("state") == "PAID" or state.get("paid"):
                        break
                    await asyncio.sleep(0.05)
                proofs += await _mint(session, target, "/v1/mint/bolt11", quote["quote"], FUND_BATCH)
            return proofs

        yield target, fund
    finally:
        _stop(proc)


# ---------------------------------------------------------------- the load


# A swap refused under load (nutshell answers 400 "failed to acquire database lock" with 8 clients of 64 proofs)
# spent nothing, so the client retries it with fresh outputs; refusals are counted and reported, not hidden.
MAX_REFUSALS = 1000


async def _client(session: aiohttp.ClientSession, target: Target, proofs: list[Proof], batch: int,
                  deadline: float, refusals: list[str]) -> int:
    swapped = 0
    while time.monotonic() < deadline:
        inputs = proofs[:batch]
        outs, secs, rs = _blind(target.keyset_id, batch)
        try:
            sigs = (await _json(session, "POST", target.url + "/v1/swap",
                                {"inputs": [p.to_dict() for p in inputs], "outputs": outs}))["signatures"]
        except Refused as exc:
            refusals.append(str(exc))
            if len(refusals) > MAX_REFUSALS:
                raise
            continue
        proofs = proofs[batch:] + _unblind(target, sigs, secs, rs)
        swapped += batch
    return swapped


async def measure(session: aiohttp.ClientSession, target: Target, fund: Any, batch: int, clients: int,
                  duration: float) -> tuple[float, int]:
    """Proofs swapped per second, and how many swap requests the mint refused meanwhile."""
    wallets = [await fund(batch) for _ in range(clients)]
    refusals: list[str] = []
    await _client(session, target, await fund(batch), batch, time.monotonic() + 0.3, refusals)  # warm up
    refusals.clear()
    start = time.monotonic()
    counts = await asyncio.gather(*(_client(session, target, w, batch, start + duration, refusals)
                                    for w in wallets))
    return sum(counts) / (time.monotonic() - start), len(refusals)


async def run(duration: float, skip_nutshell: bool) -> dict[str, dict[tuple[int, int], float]]:
    results: dict[str, dict[tuple[int, int], float]] = {}
    workdir = Path(tempfile.mkdtemp(prefix="bench-mint-"))
    connector = aiohttp.TCPConnector(limit=64)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            mints = [reference_mint] + ([] if skip_nutshell else [nutshell_mint])
            for start_mint in mints:
                async with start_mint(session, workdir) as (target, fund):
                    results[target.name] = {}
                    for batch, clients in CONFIGS:
                        rate, refused = await measure(session, target, fund, batch, clients, duration)
                        results[target.name][(batch, clients)] = rate
                        note = f" ({refused} swaps refused and retried)" if refused else ""
                        print(f"{target.name:9s} batch {batch:2d} clients {clients}: {rate:8.0f} proofs/s{note}",
                              flush=True)
                    if target.issue is not None:
                        issued = await target.issue()
                        results["issuance"] = {(1, 1): issued["single"], (ISSUE_BATCH, 1): issued["batch"]}
                        print(f"issuance single: {issued['single']:8.0f} quotes/s, batch of {ISSUE_BATCH}: "
                              f"{issued['batch']:8.0f} quotes/s", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def report(results: dict[str, dict[tuple[int, int], float]]) -> str:
    lines = ["", "swap throughput (proofs/s)", f"{'proofs/req':>10} {'clients':>7} {'reference':>10} "
             f"{'nutshell':>10} {'ratio':>6}"]
    for batch, clients in CONFIGS:
        ref = results["reference"][(batch, clients)]
        nut = results.get("nutshell", {}).get((batch, clients))
        ratio = f"{ref / nut:6.2f}" if nut else "     -"
        nut_text = f"{nut:10.0f}" if nut else f"{'-':>10}"
        lines.append(f"{batch:>10} {clients:>7} {ref:10.0f} {nut_text} {ratio}")
    issued = results.get("issuance")
    if issued:
        single, batch = issued[(1, 1)], issued[(ISSUE_BATCH, 1)]
        lines += ["", "share issuance at the reference mint (locked quotes minted/s, one client)",
                  f"{'one per request':>16} {'NUT-29 batch of ' + str(ISSUE_BATCH):>20} {'ratio':>6}",
                  f"{single:16.0f} {batch:20.0f} {batch / single:6.2f}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per configuration")
    parser.add_argument("--skip-nutshell", action="store_true")
    args = parser.parse_args(argv)
    print(report(asyncio.run(run(args.duration, args.skip_nutshell))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
