"""Structure-aware fuzzing of the miner's wallet: everything it takes from outside, on its real code paths.

* The mint's answers: the wallet talks to ``support.hostilemint.HostileMint``, a loopback proxy in front of the
  real reference mint that corrupts some answers (wrong types, missing fields, cut or doubled lists, bad points,
  wrong DLEQ, flipped B_, huge numbers, lone surrogates, deep nesting, stalls, 5xx, refusals after acting) while
  the wallet receives real and mutated tokens, sends, sweeps share quotes, restores and checks its sends.
* The CLI: ``hashpool-wallet`` run in-process against the same proxy, with hostile arguments, and with broken
  config and mnemonic files.
* The desk: ``redeem``/``autopay`` through ``CommandoDesk`` to a BOLT8 stand-in whose answers and errors take
  any shape, whose commando messages arrive split, garbled, under another request id, or never.

Properties: no exception but the wallet's own (``WalletError`` with a documented code, or the mint client's
errors, which the CLI codes) leaves a wallet call, and the CLI exits 0, 1 (``error <code>: ...`` with a documented
code, never 1: a bug) or 2 (usage); no call outlives its deadline; nothing secret (mnemonic, seed, keys, rune,
claim secrets, the secrets of unspent proofs) reaches stdout, stderr or a log. Afterwards, against the honest
mint, the wallet's books are exact: every proof it holds as unspent or pending is one the mint holds unspent
and whose DLEQ verifies, every proof it holds as spent the mint holds spent, and every output of its mnemonic
the mint signed and still holds unspent is in the wallet.

``HASHPOOL_FUZZ_SEED`` picks the seed (default 3); ``HASHPOOL_FUZZ_LONG=1`` runs ``LONG_STEPS`` steps per part
instead of ``NORMAL_STEPS`` (``HASHPOOL_FUZZ_COUNT=N`` runs N).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import os
import random
import re
import sqlite3
import struct
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from mnemonic import Mnemonic
from support.hostilemint import HOSTILE_VALUES, HostileMint
from support.refmint import MintHandle
from wallet.conftest import issued_token, retargeted, run_cli
from wallet.standin import CommandoStandin, StandinError

from hashpool_cln.cashu import crypto
from hashpool_cln.cashu.crypto import proof_y
from hashpool_cln.cashu.errors import CashuError
from hashpool_cln.cashu.nut13 import derive_outputs
from hashpool_cln.cashu.tokens import make_token, parse_token, serialize_v3, serialize_v4
from hashpool_cln.mintclient import MintClient, MintClientError
from hashpool_cln.wallet import redeem as redeem_module
from hashpool_cln.wallet.commando import REPLY_CONTINUES, REPLY_TERM, NodeAddress
from hashpool_cln.wallet.errors import Code, WalletError
from hashpool_cln.wallet.issuance import Issuance
from hashpool_cln.wallet.redeem import CommandoDesk, autopay, redeem, resolve_open
from hashpool_cln.wallet.seed import WalletKeys
from hashpool_cln.wallet.store import WalletStore
from hashpool_cln.wallet.sweep import sweep
from hashpool_cln.wallet.wallet import Wallet, signed_outputs

NORMAL_STEPS = 60
LONG_STEPS = 3000
SEED = int(os.environ.get("HASHPOOL_FUZZ_SEED", "3"))
CLIENT_TIMEOUT = 0.3  # the wallet's deadline per mint request in these runs
STEP_DEADLINE = 30.0  # no wallet call may take longer, whatever the mint or the desk does
DOCUMENTED = {int(c) for c in Code}
NASTY = ["", " ", "\x00", "\ud800", "₿", "a" * 5000, "null", "1e309", "-1", "cashuA", "cashuB", "cashuBo2F0",
         "lnbc1", "lno1", "lnbcrt10u1", "alice@example.com", "\u202e", "%s%n", "{}", "[]", "../../etc/passwd"]


def _steps() -> int:
    if os.environ.get("HASHPOOL_FUZZ_COUNT"):
        return int(os.environ["HASHPOOL_FUZZ_COUNT"])
    return LONG_STEPS if os.environ.get("HASHPOOL_FUZZ_LONG") == "1" else NORMAL_STEPS


class Findings:
    """What broke a property, with enough to replay it (seed, step, call)."""

    def __init__(self, part: str, *, passes_codes: bool = False) -> None:
        self.part = part
        self.passes_codes = passes_codes  # the desk's codes pass through the wallet: any 64-bit JSON-RPC code
        self.items: list[str] = []
        self.outcomes: dict[str, int] = {}

    async def call(self, step: int, what: str, make: Callable[[], Awaitable[Any]]) -> Any:
        started = time.monotonic()
        try:
            result = await asyncio.wait_for(make(), STEP_DEADLINE)
        except asyncio.TimeoutError:
            self.items.append(f"seed {SEED} {self.part} step {step} {what}: still running after {STEP_DEADLINE} s")
            return None
        except WalletError as exc:
            self.count(f"WalletError {exc.code}")
            if not (exc.code in DOCUMENTED or (self.passes_codes and -(2**63) <= exc.code < 2**63)):
                self.items.append(f"seed {SEED} {self.part} step {step} {what}: undocumented code {exc.code}")
            return None
        except MintClientError as exc:  # the CLI reports these with a wallet code (cli.coded)
            self.count(type(exc).__name__)
            return None
        except Exception as exc:  # any other exception is a bug
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if "hashpool_cln" in f.filename]
            tb = "".join(traceback.format_list(frames[-3:]))
            self.items.append(f"seed {SEED} {self.part} step {step} {what}: {type(exc).__name__}: {exc}\n{tb}")
            return None
        finally:  # wait_for cannot stop a thread (the commando client's): the clock can still tell
            if STEP_DEADLINE + 1 < time.monotonic() - started:
                self.items.append(f"seed {SEED} {self.part} step {step} {what}: returned past its deadline")
        self.count("ok")
        return result

    def count(self, key: str) -> None:
        self.outcomes[key] = self.outcomes.get(key, 0) + 1

    def check(self) -> None:
        assert not self.items, f"{len(self.items)} findings:\n" + "\n".join(self.items[:8])


# ---- hostile input: tokens and text ---------------------------------------------------------------------------

def mutated_token(rng: random.Random, text: str) -> str:
    """A real token, changed: in its text, or in one field of a proof, re-encoded as V3 or V4."""
    how = rng.randrange(10)
    if how == 0:
        return text[: rng.randrange(len(text))]
    if how == 1:
        i = rng.randrange(6, len(text))
        return text[:i] + rng.choice("A_-+/=\ud800é0") + text[i + 1:]
    if how == 2:
        return rng.choice(NASTY)
    token = parse_token(text)
    proofs = list(token.proofs)
    i = rng.randrange(len(proofs))
    p = proofs[i]
    field = rng.choice(("amount", "secret", "C", "id", "dup", "unit", "mint", "dleq", "none"))
    if field == "amount":
        proofs[i] = dataclasses.replace(p, amount=rng.choice((p.amount * 2, 2**63, 3)))
    elif field == "secret":
        proofs[i] = dataclasses.replace(p, secret=rng.choice(("", "x" * 600, os.urandom(32).hex())))
    elif field == "C":
        proofs[i] = dataclasses.replace(p, C=rng.choice(("02" + "ff" * 32, proofs[-1 - i].C)))
    elif field == "id":
        proofs[i] = dataclasses.replace(p, id="00" + os.urandom(7).hex())
    elif field == "dup":
        proofs.append(p)
    elif field == "dleq" and p.dleq is not None:
        proofs[i] = dataclasses.replace(p, dleq=dataclasses.replace(p.dleq, e=os.urandom(32).hex()))
    unit = "sat" if field == "unit" else token.unit
    mint = "http://127.0.0.1:1" if field == "mint" else token.mint
    changed = dataclasses.replace(token, proofs=tuple(proofs), unit=unit, mint=mint)
    try:
        return serialize_v3(changed) if rng.random() < 0.3 else serialize_v4(changed)
    except (CashuError, ValueError, TypeError, OverflowError):
        return text[::-1]


# ---- the oracle: the wallet's books against the honest mint ---------------------------------------------------

def _operations(db: Path, keyset_id: str) -> list[tuple[str, str, str, int, str]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT kind, state, purpose, counter_start, amounts FROM operations WHERE keyset_id = ?",
                            (keyset_id,)).fetchall()


async def audit(store: WalletStore, keys: WalletKeys, mint_url: str, db: Path) -> list[str]:
    """Everything wrong with the wallet's books, by the honest mint; an empty list when they are exact."""
    problems: list[str] = []
    async with MintClient(mint_url) as honest:
        wallet = Wallet(store, keys, honest)
        await wallet.recover()
        await wallet.check_sends()
        held = await store.proofs()
        states = {}
        for i in range(0, len(held), 500):
            chunk = held[i:i + 500]
            states.update({p.y: s.state for p, s in zip(chunk, await honest.checkstate([p.y for p in chunk]))})
        for p in held:
            truth = states[p.y]
            if p.state in ("unspent", "pending") and truth != "UNSPENT":
                problems.append(f"{p.state} proof {p.y[:16]} (amount {p.proof.amount}, for {p.reserved_for}) is "
                                f"{truth} at the mint")
            if p.state == "spent" and truth != "SPENT":
                problems.append(f"spent proof {p.y[:16]} (amount {p.proof.amount}) is {truth} at the mint")
            if p.state != "spent" and not await _dleq_ok(honest, p.proof):
                problems.append(f"proof {p.y[:16]} does not verify against the mint's key")
        live = {p.y for p in held if p.state in ("unspent", "pending")}
        signed = await _signed_live(honest, store, keys)
        if live - set(signed):
            problems.append(f"{len(live - set(signed))} proofs held are none of this mnemonic's outputs")
        for keyset_id, counter in sorted(signed[y] for y in set(signed) - live):
            ops = [f"{kind} {state} {purpose}" for kind, state, purpose, start, amounts in _operations(db, keyset_id)
                   if start <= counter < start + len(json.loads(amounts))]
            problems.append(f"output {counter} of keyset {keyset_id[:10]} is unspent at the mint, not in the wallet "
                            f"(operation: {ops})")
    return problems


async def _dleq_ok(mint: MintClient, proof: Any) -> bool:
    if proof.dleq is None or proof.dleq.r is None:
        return False
    keyset = await mint.keys(proof.id)
    return crypto.dleq_verify_proof(proof.secret.encode(), crypto.point(proof.C), crypto.scalar(proof.dleq.r),
                                    bytes.fromhex(proof.dleq.e), bytes.fromhex(proof.dleq.s),
                                    keyset.public_key(proof.amount))


async def _signed_live(mint: MintClient, store: WalletStore, keys: WalletKeys) -> dict[str, tuple[str, int]]:
    """The Ys of every output of this mnemonic, up to each keyset's counter, that the mint signed and holds
    unspent (NUT-09 restore over exactly the counters the wallet used), with their keyset and counter."""
    found: dict[str, tuple[str, int]] = {}
    for keyset in await mint.keysets():
        used = await store.counter(keyset.id)
        for start in range(0, used, 100):
            outputs = derive_outputs(keys.seed, keyset.id, start, [1] * min(100, used - start))
            counters = {proof_y(o.secret): start + i for i, o in enumerate(outputs)}
            known, sigs = await mint.restore([o.message for o in outputs])
            ys = [proof_y(o.secret) for o in signed_outputs(outputs, known, sigs)[0]]
            if ys:
                found |= {y: (keyset.id, counters[y]) for y, s in zip(ys, await mint.checkstate(ys))
                          if s.state == "UNSPENT"}
    return found


def assert_no_secret_logged(caplog: Any, secrets: list[str]) -> None:
    """The wallet's side (the mint in these tests is the reference mint, in this process) logged no secret."""
    for record in caplog.records:
        if record.name.startswith("hashpool_cln") and not record.name.startswith("hashpool_cln.refmint"):
            assert not any(s in record.getMessage() for s in secrets), record.name


def seeded_mnemonic(rng: random.Random) -> str:
    """The run's mnemonic, from its seed: the same outputs, secrets and answers at every replay."""
    return Mnemonic("english").to_mnemonic(rng.randbytes(16))


def secrets_of(keys: WalletKeys, words: str) -> list[str]:
    return [words, keys.seed.hex(), keys.lock_key.secret.hex(), keys.node_key.hex()]


async def test_the_audit_sees_books_that_do_not_match_the_mint(refmint: MintHandle, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    words = seeded_mnemonic(rng)
    keys = WalletKeys(words)
    store = await WalletStore.open(tmp_path / "audit.sqlite3")
    try:
        async with MintClient(refmint.url) as mint:
            wallet = Wallet(store, keys, mint)
            token, _ = await issued_token(refmint, 2, 3)  # 12 units: kept as 8 + 4
            await wallet.receive(token)
            assert await audit(store, keys, refmint.url, tmp_path / "audit.sqlite3") == []
            first, second = await store.proofs()
            await store.set_proof_states([first.y], "spent")  # a proof the mint holds unspent, written off
            await refmint.swap([second.proof])  # one spent elsewhere, still counted
            problems = await audit(store, keys, refmint.url, tmp_path / "audit.sqlite3")
    finally:
        await store.close()
    assert problems[0].startswith("spent proof") and problems[0].endswith("(amount 8) is UNSPENT at the mint")
    assert problems[1].startswith("unspent proof") and problems[1].endswith("is SPENT at the mint")
    assert any("is unspent at the mint, not in the wallet" in p for p in problems), problems


# ---- part 1: the wallet's money operations against a hostile mint ---------------------------------------------

async def _hostile(refmint: MintHandle, rng: random.Random) -> HostileMint:
    return await HostileMint(refmint.url, rng, rate=0.35, stall_s=CLIENT_TIMEOUT * 2).start()


async def test_hostile_mint_never_breaks_the_wallet(refmint: MintHandle, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="hashpool_cln")
    rng = random.Random(SEED)
    hostile = await _hostile(refmint, random.Random(SEED + 1))
    words = seeded_mnemonic(rng)
    keys = WalletKeys(words)
    store = await WalletStore.open(tmp_path / "fuzz.sqlite3")
    wallet = Wallet(store, keys, MintClient(hostile.url, timeout=CLIENT_TIMEOUT))
    findings = Findings("mint")
    given: list[str] = []  # tokens made by others, as given to the wallet
    sent: list[str] = []  # tokens the wallet made
    units: list[str] = []
    try:
        for step in range(_steps()):
            op = rng.choice(("receive", "receive", "receive", "send", "send", "sweep", "check_sends", "restore",
                             "balance", "recover", "spend_sent", "receive_sent"))
            if op == "receive":
                token, unit = await issued_token(refmint, rng.choice((0, 1, 2, 3)), rng.choice((1, 2)))
                units.append(unit)
                token = retargeted(token, hostile.url)
                text = token if rng.random() < 0.6 else mutated_token(rng, token)
                given.append(text)
                await findings.call(step, "receive", lambda t=text: wallet.receive(t))
            elif op == "receive_sent" and sent:
                text = rng.choice(sent)
                await findings.call(step, "receive (own token)", lambda t=text: wallet.receive(t))
            elif op == "send":
                unit = rng.choice(units) if units and rng.random() < 0.9 else rng.choice(NASTY)
                amount = rng.choice((1, 2, 3, 5, 7, 0, -1, 10**30))

                async def send(amount: int = amount, unit: str = unit) -> None:
                    sent.append(await wallet.send(amount, unit))
                await findings.call(step, f"send {amount}", send)
            elif op == "spend_sent" and sent:  # the recipient swaps a token the wallet sent
                proofs = parse_token(rng.choice(sent)).proofs
                with contextlib.suppress(AssertionError, CashuError):
                    await refmint.swap(list(proofs))
            elif op == "sweep":
                for _ in range(rng.randrange(4)):
                    await refmint.ehash_quote(rng.choice((1, 2, 4)), keys.lock_key)
                await findings.call(step, "sweep", lambda: sweep(wallet, Issuance(wallet.mint),
                                                                 batch_size=rng.choice((None, 1, 2))))
            elif op == "check_sends":
                await findings.call(step, "check_sends", wallet.check_sends)
            elif op == "restore":
                await findings.call(step, "restore", wallet.restore)
            elif op == "balance":
                await findings.call(step, "balance", wallet.balance)
            elif op == "recover":
                await findings.call(step, "recover", wallet.recover)
        assert_no_secret_logged(caplog, secrets_of(keys, words) + [p.proof.secret for p in await store.proofs()])
        problems = await audit(store, keys, refmint.url, tmp_path / "fuzz.sqlite3")
        held = sum(p.proof.amount for p in await store.proofs() if p.state != "spent")
    finally:
        await wallet.mint.close()
        await store.close()
        await hostile.stop()
    print(f"seed {SEED}: {findings.outcomes}; {len(hostile.faults)} corrupted answers; {held} units held")
    if os.environ.get("HASHPOOL_FUZZ_DEBUG"):
        print(sorted(collections.Counter(hostile.faults).items()))
    findings.check()
    assert not problems, f"seed {SEED}: " + "; ".join(problems[:8])
    assert hostile.faults and held, "the fuzz tested nothing: no answer corrupted, or nothing received"


# ---- part 2: the CLI -------------------------------------------------------------------------------------------

_ERROR_LINE = re.compile(r"^error (-?\d+): \S")


def cli_argv(rng: random.Random, directory: Path, tokens: list[str], units: list[str]) -> list[str]:
    base = ["--dir", str(directory)] + (["--json"] if rng.random() < 0.5 else [])
    pick = rng.randrange(14)
    if pick >= 12:  # settings are read back by every command: worth more tries
        pick = 7
    if pick == 0:
        return [*base, "balance"]
    if pick == 1:
        return [*base, "receive", rng.choice(tokens) if tokens else "x"]
    if pick == 2:
        return [*base, "send", rng.choice(("1", "3", "0", "-4", "99999999999999999999", "x")), "--unit",
                rng.choice(units) if units and rng.random() < 0.8 else rng.choice(NASTY)]
    if pick == 3:
        return [*base, "pending"]
    if pick == 4:
        return [*base, "restore"]
    if pick == 5:
        return [*base, "sweep", *rng.choice(([], ["--batch", "1"], ["--batch", "0"], ["--batch", "-3"],
                                             ["--interval", rng.choice(("0", "-1", "nan", "inf", "1e309"))]))]
    if pick == 6:
        return [*base, "info"]
    if pick == 7:
        value = rng.choice([*NASTY, "http://127.0.0.1:1/\ud800", "02" + "ab" * 32 + "@\ud800", "rune\ud800", "a b",
                            "https://mint.example", "02" + "ab" * 32 + "@127.0.0.1:9735", "cnVuZQ=="])
        return [*base, "config", rng.choice(("--mint", "--node", "--rune")), value]
    if pick == 8:
        return [*base, "redemptions"]
    if pick == 9:
        return [*base, rng.choice(("redeem", "autopay")), rng.choice(NASTY)]
    if pick == 10:
        return [*base, rng.choice(("balance", "nope", "send", "--json", "-", "--dir")), rng.choice(NASTY)]
    return [*base, "receive", rng.choice(NASTY)]


def check_cli(findings: Findings, step: int, argv: list[str], result: tuple[int, str, str],
              secrets: list[str]) -> None:
    code, out, err = result
    what = f"seed {SEED} cli step {step} {argv[2:]!r:.120}"
    if code not in (0, 1, 2):
        findings.items.append(f"{what}: exit status {code}")
    if "Traceback" in out + err:
        findings.items.append(f"{what}: a traceback: {err[-300:]}")
    if "mnemonic" not in argv and any(s and s in out + err for s in secrets):  # showing the words is its job
        findings.items.append(f"{what}: a secret in the output")
    if code == 1 and "--json" not in argv:
        line = err.strip()
        match = _ERROR_LINE.match(line)
        if match is None or "\n" in line:
            findings.items.append(f"{what}: error output is not one line 'error <code>: <message>': {err[-200:]!r}")
        elif int(match.group(1)) == 1 or (int(match.group(1)) not in DOCUMENTED and int(match.group(1)) < 3400):
            findings.items.append(f"{what}: {line[:300]}")
    if code == 1 and "--json" in argv:
        try:
            error = json.loads(err.strip().splitlines()[-1])["error"]
            if error["code"] == 1 or (error["code"] not in DOCUMENTED and error["code"] < 3400):
                findings.items.append(f"{what}: {error}")
        except (ValueError, KeyError, IndexError, TypeError):
            findings.items.append(f"{what}: --json error output is not {{\"error\": ...}}: {err[-200:]!r}")
    findings.count(f"exit {code}")


async def test_hostile_cli_input_and_mint_never_break_the_cli(refmint: MintHandle, tmp_path: Path) -> None:
    rng = random.Random(SEED + 2)
    hostile = await _hostile(refmint, random.Random(SEED + 3))
    hostile.stalls = False  # the CLI's own deadline is the default (10 s): stalls would only slow the run
    directory = tmp_path / "wallet"
    findings = Findings("cli")
    try:
        code, _out, err = await run_cli(["--dir", str(directory), "--json", "init", "--mint", hostile.url])
        assert code == 0, err
        words = (directory / "mnemonic").read_text().strip()
        keys = WalletKeys(words)
        tokens: list[str] = []
        units: list[str] = []
        for step in range(max(10, _steps() // 3)):
            if rng.random() < 0.4:
                token, unit = await issued_token(refmint, rng.choice((0, 2)))
                units.append(unit)
                token = retargeted(token, hostile.url)
                tokens.append(token if rng.random() < 0.7 else mutated_token(rng, token))
            if rng.random() < 0.2:
                await refmint.ehash_quote(2, keys.lock_key)
            argv = cli_argv(rng, directory, tokens, units)
            result = await run_cli(argv)
            unspent = [p.proof.secret for p in await _unspent_of(directory)]
            check_cli(findings, step, argv, result, secrets_of(keys, words) + ([] if "send" in argv else unspent))
        store = await WalletStore.open(directory / "wallet.sqlite3")
        try:
            problems = await audit(store, keys, refmint.url, directory / "wallet.sqlite3")
        finally:
            await store.close()
    finally:
        await hostile.stop()
    print(f"seed {SEED}: {findings.outcomes}")
    findings.check()
    assert not problems, f"seed {SEED}: " + "; ".join(problems[:8])


async def _unspent_of(directory: Path) -> list[Any]:
    store = await WalletStore.open(directory / "wallet.sqlite3")
    try:
        return await store.proofs(state="unspent")
    finally:
        await store.close()


BROKEN_CONFIGS: list[bytes] = [b"\xff\xfe garbage", b"[wallet]\nmint = ftp://x\n", b"[wallet]\nmint\n",
                               b"[wallet]\ndesk_key = abc\n", b"no section\n", b"[wallet]\nnode = 02@\n",
                               b"[wallet]\nrune = two words\n", b"[wallet]\nmint = http://example.com\n",
                               b"[wallet]\nmint = \xed\xa0\x80\n", b"[wallet]\n" + b"a" * 100_000 + b" = 1\n",
                               b"[wallet]\nmint = http://127.0.0.1:1\nmint = http://127.0.0.1:2\n"]
BROKEN_MNEMONICS: list[bytes] = [b"\xff\xfe\x00", b"", b"abandon " * 12, b"x" * 100_000, b"\xed\xa0\x80"]


@pytest.mark.parametrize("which", ["config", "mnemonic", "directory"])
async def test_broken_files_get_a_coded_error(tmp_path: Path, which: str) -> None:
    findings = Findings(which)
    for step, content in enumerate(BROKEN_CONFIGS if which == "config" else BROKEN_MNEMONICS):
        directory = tmp_path / f"w{step}"
        code, _, err = await run_cli(["--dir", str(directory), "init", "--mint", "http://127.0.0.1:1"])
        assert code == 0, err
        words = (directory / "mnemonic").read_text().strip()
        if which == "config":
            (directory / "wallet.conf").write_bytes(content)
        elif which == "mnemonic":
            (directory / "mnemonic").chmod(0o600)
            (directory / "mnemonic").write_bytes(content)
        else:  # the files replaced by directories: unreadable in another way
            (directory / ("mnemonic" if step % 2 else "wallet.conf")).unlink()
            (directory / ("mnemonic" if step % 2 else "wallet.conf")).mkdir()
        for command in (["balance"], ["info"], ["--json", "mnemonic"], ["config"]):
            argv = ["--dir", str(directory), *command]
            check_cli(findings, step, argv, await run_cli(argv), [words] if which != "mnemonic" else [])
    findings.check()


# ---- part 3: the desk over commando ----------------------------------------------------------------------------

RUNE = "rune-fuzz"


class HostileDesk:
    """The answers of a desk that may say anything: results and errors of any shape, for every method."""

    def __init__(self, rng: random.Random, own_tokens: list[str]) -> None:
        self.rng = rng
        self.own_tokens = own_tokens  # tokens of the wallet's own pending proofs, handed back as change

    def value(self) -> Any:
        return self.rng.choice((*HOSTILE_VALUES, *NASTY[:6], self.rng.choice(self.own_tokens or ["x"])))

    def __call__(self, method: str, params: Any) -> Any:
        r = self.rng
        claim = params.get("claim") if isinstance(params, dict) else None
        if r.random() < 0.3:
            data = r.choice((None, {"claim": claim, "state": r.choice(("paying", "refunded", "paid", 5)),
                                    "id": self.value()}, self.value(), {"claim": claim}))
            raise StandinError(r.choice((3401, 3450, 19537, -32602, 0, 2**70, -1, 4002)), r.choice(
                ("refused", "Invalid rune: Not permitted: too soon", "", "\ud800")), data)
        if method == "hashpool-quote":
            return r.choice(({"destination": {"payable": r.choice((True, False, None)), "code": self.value(),
                                              "reason": self.value(), "units_needed": self.value()}},
                             {"destination": self.value()}, self.value(), {"destination": {"units_needed": 1}}))
        fields = ("id", "amount_msat", "payment_hash", "payment_preimage", "change_token", "refund_token",
                  "error")
        answer = {k: self.value() for k in fields if r.random() < 0.5}
        answer["state"] = r.choice(("paid", "settled", "refunded", "rejected", "paying", "custody", "unknown",
                                    "sending", None, 7, "PAID"))
        return r.choice((answer, answer, self.value()))


def raw_fault(rng: random.Random) -> Callable[[Any, int, bytes], bool] | None:
    """Sometimes, a reply that breaks commando: garbled, split, another id, a BOLT1 error, or none at all (the
    stand-in's ``reply_hook``: True hangs up after it)."""
    kind = rng.choice((None, None, None, "garbled", "tiny_parts", "other_id", "error_msg", "short", "silent",
                       "unterminated"))
    if kind is None:
        return None

    def fault(conn: Any, rid: int, body: bytes) -> bool:
        if kind == "garbled":
            conn.send_message(struct.pack("!HQ", REPLY_TERM, rid) + os.urandom(40))
        elif kind == "tiny_parts":
            for i in range(0, len(body), 3):
                last = i + 3 >= len(body)
                conn.send_message(struct.pack("!HQ", REPLY_TERM if last else REPLY_CONTINUES, rid) + body[i:i + 3])
        elif kind == "other_id":
            conn.send_message(struct.pack("!HQ", REPLY_TERM, rid ^ 1) + body)
        elif kind == "error_msg":
            conn.send_message(struct.pack("!H", 17) + bytes(32) + struct.pack("!H", 4) + b"nope")
        elif kind == "short":
            conn.send_message(struct.pack("!H", REPLY_TERM) + b"\x00")
        elif kind == "unterminated":
            conn.send_message(struct.pack("!HQ", REPLY_CONTINUES, rid) + body[:10])
        return kind not in ("tiny_parts", "silent")  # hang up after garbage; stay (and say nothing) when silent
    return fault


def init_fault(rng: random.Random) -> Callable[[Any], bool] | None:
    """Sometimes, a node that breaks BOLT1 before ``init``: a BOLT1 error, a cut ``init``, a ping first, silence."""
    kind = rng.choice((None, None, None, "error", "short_init", "ping_first", "silent", "hang_up"))
    if kind is None:
        return None

    def fault(conn: Any) -> bool:
        if kind == "error":
            conn.send_message(struct.pack("!H", 17) + bytes(32) + struct.pack("!H", 2) + b"no")
        elif kind == "short_init":
            conn.send_message(struct.pack("!HH", 16, 5) + b"\x01")
        elif kind == "ping_first":
            conn.send_message(struct.pack("!HHH", 18, 4, 0))
            return False  # then init as usual: a ping before it is ignored
        elif kind == "silent":
            time.sleep(1.0)
        return True
    return fault


async def test_hostile_desk_never_breaks_the_wallet(refmint: MintHandle, open_wallet, tmp_path: Path,
                                                    monkeypatch, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="hashpool_cln")
    monkeypatch.setattr(redeem_module, "STATUS_PAUSE", 0.01)
    rng = random.Random(SEED + 4)
    words = seeded_mnemonic(rng)
    wallet = await open_wallet(refmint.url, words)
    own: list[str] = []
    desk_answers = HostileDesk(random.Random(SEED + 5), own)  # its own stream: it answers from another thread
    standin = CommandoStandin(lambda m, p: desk_answers(m, p), runes={RUNE: {"*"}}).start()
    desk = CommandoDesk(NodeAddress.parse(standin.address), wallet.keys.node_key, RUNE, timeout=0.5,
                        rate_wait=0.2)
    findings = Findings("desk", passes_codes=True)
    claims: list[str] = []
    try:
        for step in range(max(10, _steps() // 2)):
            if not await wallet.store.proofs(state="unspent") or rng.random() < 0.1:  # ehash of a settled epoch
                unit, proofs = await refmint.settled_epoch(1_000_000, rng.choice((2, 3)), 2)
                await wallet.receive(make(refmint.url, unit, proofs))
            standin.reply_hook, standin.init_hook = raw_fault(rng), init_fault(rng)
            own[:] = [make(refmint.url, await _unit(wallet, p.proof.id), [p.proof])
                      for p in (await wallet.store.proofs(state="pending"))[:1]]
            op = rng.choice(("redeem", "redeem", "autopay", "resolve"))
            destination = rng.choice([*NASTY, "lnbcrt10u1pfake", "lno1qgsq", "miner@pool.example"])
            if op == "redeem":
                amount = rng.choice((None, None, 1, 10**30, -5, 0))
                await findings.call(step, f"redeem {destination[:20]!r}", lambda d=destination, a=amount: redeem(
                    wallet, desk, d, amount_msat=a, unit=rng.choice((None, None, "\ud800", "hash"))))
            elif op == "autopay":
                await findings.call(step, "autopay", lambda d=destination: autopay(wallet, desk, d))
            else:
                await findings.call(step, "resolve", lambda: resolve_open(wallet, desk))
            claims += [r["claim"] for r in await wallet.store.redemptions() if r["claim"] not in claims]
        assert_no_secret_logged(caplog, secrets_of(wallet.keys, words) + claims)
        problems = await audit(wallet.store, wallet.keys, refmint.url, tmp_path / "wallet.sqlite3")
    finally:
        desk.close()
        standin.stop()
    print(f"seed {SEED}: {findings.outcomes}; {len(standin.commands)} commands")
    findings.check()
    assert not problems, f"seed {SEED}: " + "; ".join(problems[:8])


def make(url: str, unit: str, proofs: Any) -> str:
    return make_token(url, unit, list(proofs)) or ""


async def _unit(wallet: Wallet, keyset_id: str) -> str:
    return (await wallet.keysets())[keyset_id].unit
