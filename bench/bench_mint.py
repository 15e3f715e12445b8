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

Then the mint's cost per redemption: 16 concurrent callers (one kept-alive HTTP/1.1 connection each, as the
desk's client) send the desk's requests for redemptions of 1-proof tokens whose fee reserve goes back (swap, a
melt quote, and a partial melt of the units kept where the mint's info says ``partial_melt``; elsewhere a release
and a second quote before the melt, as the desk does) to ``hashpool-mint serve``; reported: the server
process's CPU (from /proc) per redemption and redemptions per second, medians over rounds. ``--before DIR``
serves a second mint from another checkout beside it, rounds interleaved, for a before/after comparison in one
run (``--before`` alone: this checkout's mint without partial melts, so the desk's mix before them);
``--profile FILE`` runs this checkout's mint under cProfile.

    python bench/bench_mint.py [--duration SECONDS] [--skip-nutshell] [--mix-only] [--before [DIR]]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import statistics
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
sys.path.insert(0, str(ROOT / "tests"))

from hashpool_cln.cashu import crypto  # noqa: E402
from hashpool_cln.cashu.amounts import split_amount  # noqa: E402
from hashpool_cln.cashu.models import BlindedMessage, Proof  # noqa: E402
from hashpool_cln.cashu.nut20 import sign_quote  # noqa: E402
from hashpool_cln.refmint.config import load_auth  # noqa: E402
from hashpool_cln.refmint.shares import random_share_hash  # noqa: E402
from hashpool_cln.regtest.layout import free_port  # noqa: E402

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


def _blind(kid: str, amounts: list[int]) -> tuple[list[dict], list[str], list]:
    outs, secs, rs = [], [], []
    for amount in amounts:
        secret = secrets.token_hex(32)
        B_, r = crypto.blind(secret.encode())
        outs.append({"amount": amount, "id": kid, "B_": B_.format().hex()})
        secs.append(secret)
        rs.append(r)
    return outs, secs, rs


def _unblind(target: Target, sigs: list[dict], secs: list[str], rs: list) -> list[Proof]:
    return [Proof(sig["amount"], target.keyset_id, s,
                  crypto.unblind(crypto.point(sig["C_"]), r, target.keys[sig["amount"]]).format().hex())
            for sig, s, r in zip(sigs, secs, rs)]


# ---------------------------------------------------------------- the two mints


async def _mint(session: aiohttp.ClientSession, target: Target, path: str, quote_id: str,
                amount: int) -> list[Proof]:
    """Mint a paid quote of ``amount`` units (1-unit outputs) into proofs."""
    outs, secs, rs = _blind(target.keyset_id, [1] * amount)
    sigs = (await _json(session, "POST", target.url + path, {"quote": quote_id, "outputs": outs}))["signatures"]
    return _unblind(target, sigs, secs, rs)


@contextlib.asynccontextmanager
async def reference_mint(session: aiohttp.ClientSession, workdir: Path) -> AsyncIterator[tuple[Target, Any]]:
    port = free_port()
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
        outs, secs, rs = _blind(target.keyset_id, [1] * len(ids))
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


# Resolved now: the mint is started from another directory, where a relative path would name nothing.
NUTSHELL_VENV = Path(os.environ.get("HASHPOOL_NUTSHELL_VENV", ROOT / ".venv-nutshell")).resolve()


@contextlib.asynccontextmanager
async def nutshell_mint(session: aiohttp.ClientSession, workdir: Path) -> AsyncIterator[tuple[Target, Any]]:
    exe = NUTSHELL_VENV / "bin" / "mint"
    if not exe.exists():
        raise FileNotFoundError(f"nutshell mint not found at {exe} (python3 dev.py bench prepares it)")
    port = free_port()
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
        outs, secs, rs = _blind(target.keyset_id, [1] * batch)
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


# ---------------------------------------------------------------- the desk's per-redemption request mix

# What the desk asks per redemption of a 1-proof token (counted through a proxy in front of the mint): the custody
# swap (1 input of 2048, the payment, fee-reserve and change outputs), a melt quote under a reference for the
# payment and reserve, then, the reserve returned, the melt of the payment's units against that quote (a partial
# melt); at a mint without partial melts, the quote's release and a quote for the payment alone before the melt.
MIX_TOKEN = 2048
MIX_PAY = 1000  # units, and sats: the settled epoch is worth 1 sat a unit
MIX_RESERVE = 10
MIX_CLIENTS = 16
# ``--before`` without a checkout: this one's mint, serving whole melts only
NO_PARTIAL = Path("<no partial melts>")
MIX_REQUESTS = {True: 3, False: 5}  # HTTP requests per redemption, with and without partial melts


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far, from /proc (threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class MixMint:
    """A reference mint served by one checkout, with a settled epoch and a bank of 2048-unit proofs."""

    name: str
    proc: subprocess.Popen
    target: Target
    desk_auth: dict[str, str]
    unit: str
    bank: list[Proof]
    partial: bool  # the mint settles a quote for fewer units (its info's ``ehash.partial_melt``)


@contextlib.asynccontextmanager
async def mix_mint(session: aiohttp.ClientSession, workdir: Path, name: str, checkout: Path, proofs: int,
                   profile: Path | None = None, extra: tuple[str, ...] = ()) -> AsyncIterator[MixMint]:
    """``hashpool-mint serve`` from ``checkout`` at its default log level (under cProfile when ``profile``), with
    ``proofs`` 2048-unit proofs of a settled epoch worth 1 sat a unit."""
    port = free_port()
    data_dir = workdir / f"mix-{name}"
    prefix = [sys.executable] + (["-m", "cProfile", "-o", str(profile)] if profile else [])
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    proc = _spawn([*prefix, "-m", "hashpool_cln.refmint", "serve", "--port", str(port), "--data-dir",
                   str(data_dir), "--min-difficulty", "0", "--final-confirmations", "1", *extra], cwd=checkout,
                  env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_ready(session, url, proc, 30)
        auth = load_auth(data_dir)
        pool = {"Authorization": f"Bearer {auth['pool']}"}
        ehash = (await _json(session, "GET", url + "/v1/info"))["ehash"]
        unit = ehash["open_unit"]
        kid, keys = await _load_keys(session, url, unit)
        target = Target(name, url, kid, keys)
        bank_bits = (proofs * MIX_TOKEN).bit_length()  # one share worth them all
        quote = await _json(session, "POST", url + "/v1/mint/quote/mining_share",
                            {"header_hash": random_share_hash(bank_bits).hex()}, pool)
        outs, secs, rs = _blind(kid, [1 << bank_bits])
        sigs = (await _json(session, "POST", url + "/v1/mint/mining_share",
                            {"quote": quote["quote"], "outputs": outs}))["signatures"]
        big = _unblind(target, sigs, secs, rs)
        await _json(session, "POST", url + "/v1/admin/reward", {
            "height": 1, "block_hash": secrets.token_hex(32), "reward_msat": (1 << bank_bits) * 1000,
            "confirmations": 1}, pool)
        bank = await _cut(session, target, big, proofs)
        yield MixMint(name, proc, target, {"Authorization": f"Bearer {auth['desk']}"}, unit, bank,
                      ehash.get("partial_melt") is True)
    finally:
        _stop(proc)


async def _cut(session: aiohttp.ClientSession, target: Target, proofs: list[Proof], n: int) -> list[Proof]:
    """``n`` proofs of ``MIX_TOKEN`` units cut from ``proofs`` (swaps of up to 500 outputs)."""
    cut: list[Proof] = []
    rest = proofs
    while len(cut) < n:
        total = sum(p.amount for p in rest)
        take = min(500, n - len(cut))
        amounts = [MIX_TOKEN] * take + split_amount(total - take * MIX_TOKEN)
        outs, secs, rs = _blind(target.keyset_id, amounts)
        sigs = (await _json(session, "POST", target.url + "/v1/swap",
                            {"inputs": [p.to_dict() for p in rest], "outputs": outs}))["signatures"]
        got = _unblind(target, sigs, secs, rs)
        cut += got[:take]
        rest = got[take:]
    return cut


@dataclass
class Redemption:
    """What one redemption sends, made before the clock starts: its token, invoice and the swap's outputs."""

    token: Proof
    invoice: Any  # support.invoices.Invoice
    outs: list[dict]
    secs: list[str]
    rs: list


def _redemptions(mint: MixMint, n: int) -> list[Redemption]:
    from support.invoices import make_invoice

    amounts = split_amount(MIX_PAY) + split_amount(MIX_RESERVE) + split_amount(MIX_TOKEN - MIX_PAY - MIX_RESERVE)
    made = []
    for _ in range(n):
        outs, secs, rs = _blind(mint.target.keyset_id, amounts)
        made.append(Redemption(mint.bank.pop(), make_invoice(MIX_PAY * 1000), outs, secs, rs))
    return made


async def _redeem(session: aiohttp.ClientSession, mint: MixMint, r: Redemption) -> None:
    """The mint's side of one redemption, in the desk's order."""
    url, auth = mint.target.url, mint.desk_auth
    sigs = (await _json(session, "POST", url + "/v1/swap",
                        {"inputs": [r.token.to_dict()], "outputs": r.outs}))["signatures"]
    pay = len(split_amount(MIX_PAY))
    custody = _unblind(mint.target, sigs[:pay], r.secs[:pay], r.rs[:pay])
    quote = {"method": "ehash", "unit": mint.unit, "request": r.invoice.bolt11}
    melt = await _json(session, "POST", url + "/v1/melt/quote/ehash",
                       {**quote, "amount": MIX_PAY + MIX_RESERVE, "reference": secrets.token_hex(8)}, auth)
    body = {"inputs": [p.to_dict() for p in custody],
            "payment": {"payment_hash": r.invoice.payment_hash, "preimage": r.invoice.preimage}}
    if mint.partial:
        body["amount"] = MIX_PAY
    else:
        await _json(session, "POST", url + "/v1/melt/quote/ehash/release", {"quote": melt["quote"]}, auth)
        melt = await _json(session, "POST", url + "/v1/melt/quote/ehash",
                           {**quote, "amount": MIX_PAY, "reference": secrets.token_hex(8)}, auth)
    paid = await _json(session, "POST", url + "/v1/melt/ehash", {"quote": melt["quote"], **body}, auth)
    if paid.get("state") != "PAID":
        raise Refused(f"melt answered {paid}")


async def mix_phase(session: aiohttp.ClientSession, mint: MixMint, n: int, clients: int) -> tuple[float, float]:
    """``n`` redemptions by ``clients`` concurrent callers: (mint CPU ms per redemption, redemptions/s)."""
    queue = _redemptions(mint, n)

    async def caller() -> None:
        while queue:
            await _redeem(session, mint, queue.pop())

    cpu, start = _cpu_seconds(mint.proc.pid), time.monotonic()
    await asyncio.gather(*(caller() for _ in range(clients)))
    wall = time.monotonic() - start
    return (_cpu_seconds(mint.proc.pid) - cpu) * 1e3 / n, n / wall


async def run_mix(checkouts: dict[str, tuple[Path, tuple[str, ...]]], rounds: int, per_round: int, clients: int,
                  profile: Path | None) -> tuple[dict[str, list[tuple[float, float]]], dict[str, bool]]:
    """Rounds of ``per_round`` redemptions, arm after arm, so that load on the machine falls on every arm alike
    (each arm: a checkout and the arguments its mint is served with); the samples, and which arms melt partly."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in checkouts}
    workdir = Path(tempfile.mkdtemp(prefix="bench-mint-mix-"))
    try:
        async with contextlib.AsyncExitStack() as stack:
            # one connection per caller, kept alive between requests, as the desk's aiohttp session does
            session = await stack.enter_async_context(
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)))
            mints = [await stack.enter_async_context(
                mix_mint(session, workdir, name, path, (rounds + 1) * per_round, profile if i == 0 else None, extra))
                for i, (name, (path, extra)) in enumerate(checkouts.items())]
            for mint in mints:
                await mix_phase(session, mint, per_round // 4, clients)  # warm up
            for _ in range(rounds):
                for mint in mints:
                    samples[mint.name].append(await mix_phase(session, mint, per_round, clients))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return samples, {mint.name: mint.partial for mint in mints}


def report_mix(samples: dict[str, list[tuple[float, float]]], partial: dict[str, bool], clients: int) -> str:
    lines = ["", f"desk's request mix per redemption, {clients} concurrent callers (partial: swap, melt quote, "
             "partial melt; requote: swap, 2 melt quotes, release, melt)",
             f"{'mint':>10} {'mix':>8} {'CPU ms/redemption':>18} {'redemptions/s':>14} {'requests/s':>11} "
             f"{'rounds':>6}"]
    medians = {}
    for name, got in samples.items():
        cpu = statistics.median(c for c, _ in got)
        rate = statistics.median(r for _, r in got)
        medians[name] = (cpu, rate)
        mix = "partial" if partial[name] else "requote"
        lines.append(f"{name:>10} {mix:>8} {cpu:18.2f} {rate:14.1f} {rate * MIX_REQUESTS[partial[name]]:11.0f} "
                     f"{len(got):>6}")
    if "before" in medians and "this" in medians:
        (cb, rb), (ct, rt) = medians["before"], medians["this"]
        lines.append(f"this / before: CPU {ct / cb:.2f}x, redemptions/s {rt / rb:.2f}x")
    return "\n".join(lines)


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
    parser.add_argument("--mix-only", action="store_true", help="only the per-redemption cost")
    parser.add_argument("--before", type=Path, nargs="?", const=NO_PARTIAL,
                        help="another checkout whose mint is measured beside this one; alone: this checkout's "
                             "mint without partial melts")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the per-redemption cost")
    parser.add_argument("--per-round", type=int, default=160, help="redemptions per round and mint")
    parser.add_argument("--clients", type=int, default=MIX_CLIENTS)
    parser.add_argument("--profile", type=Path, help="cProfile output of this checkout's mint (per-redemption run)")
    args = parser.parse_args(argv)
    if not args.mix_only:
        print(report(asyncio.run(run(args.duration, args.skip_nutshell))))
    checkouts: dict[str, tuple[Path, tuple[str, ...]]] = {"this": (ROOT, ())}
    if args.before is NO_PARTIAL:
        checkouts["before"] = (ROOT, ("--no-partial-melt",))
    elif args.before is not None:
        checkouts["before"] = (args.before.resolve(), ())
    samples, partial = asyncio.run(run_mix(checkouts, args.rounds, args.per_round, args.clients, args.profile))
    print(report_mix(samples, partial, args.clients))
    return 0


if __name__ == "__main__":
    sys.exit(main())
