"""``hashpool-wallet`` as a miner uses it: init, info, config, receive, balance, send, pending, restore from the
words alone, coded errors, files owner-only, and help that says what to do first."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from support.pluginharness import ThreadedMint

from hashpool_cln.cashu.tokens import parse_token
from hashpool_cln.refmint.shares import random_share_hash
from hashpool_cln.wallet.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        code = main(list(args))
    finally:
        sys.stdin = sys.__stdin__
    out, err = capsys.readouterr()
    return code, out, err


def ok_json(capsys: pytest.CaptureFixture[str], *args: str, stdin: str | None = None) -> dict:
    code, out, err = run(capsys, "--json", *args, stdin=stdin)
    assert code == 0, err
    return json.loads(out)


def test_a_miners_first_session(mint: ThreadedMint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(tmp_path / "w")
    created = ok_json(capsys, "--dir", home, "init", "--mint", mint.url)
    assert len(created["lock_pubkey"]) == 66 and len(created["node_id"]) == 66
    for name in ("mnemonic", "wallet.conf"):
        assert stat.S_IMODE(os.stat(Path(home) / name).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    info = ok_json(capsys, "--dir", home, "info")
    assert info["lock_pubkey"] == created["lock_pubkey"] and info["rune"] is None
    words = ok_json(capsys, "--dir", home, "mnemonic")["mnemonic"]
    assert len(words.split()) == 12

    (token,) = mint.issue_settled([48])
    assert ok_json(capsys, "--dir", home, "receive", token) == {"received": 48}
    (row,) = ok_json(capsys, "--dir", home, "balance")["balances"]
    assert (row["unspent"], row["epoch_state"], row["value_msat"]) == (48, "settled", 48_000_000)
    code, table, _ = run(capsys, "--dir", home, "balance")
    assert code == 0 and "UNIT" in table and "48000000" in table

    sent = ok_json(capsys, "--dir", home, "send", "16", "--unit", row["unit"])["token"]
    assert parse_token(sent).amount == 16
    assert [s["state"] for s in ok_json(capsys, "--dir", home, "pending")["sends"]] == ["pending"]
    assert ok_json(capsys, "--dir", home, "config", "--node", "02" + "ab" * 32 + "@127.0.0.1:9735",
                   "--rune", "abc")["rune"] == "set"
    assert "abc" not in (Path(home) / "wallet.conf").read_text().replace("rune = abc", "")

    # The words alone, in a new directory, bring everything back (the sent token too: nobody swapped it).
    other = str(tmp_path / "restored")
    ok_json(capsys, "--dir", other, "init", "--restore", "--mint", mint.url, stdin=words + "\n")
    assert ok_json(capsys, "--dir", other, "restore") == {"restored": {row["unit"]: 48}}


def _share_quote(mint: ThreadedMint, lock_pubkey: str, leading_zeros: int) -> None:
    """What the pool does for each accepted share: a quote locked to the miner's key (pool bearer key)."""
    body = {"header_hash": random_share_hash(leading_zeros)[::-1].hex(), "unit": "hash", "pubkey": lock_pubkey}
    request = urllib.request.Request(f"{mint.url}/v1/mint/quote/ehash", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {mint.handle.pool_key}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200


def test_sweep_collects_the_shares_locked_to_the_wallet(mint: ThreadedMint, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    home = str(tmp_path / "w")
    key = ok_json(capsys, "--dir", home, "init", "--mint", mint.url)["lock_pubkey"]
    for _ in range(25):
        _share_quote(mint, key, 2)
    swept = ok_json(capsys, "--dir", home, "sweep", "--batch", "10")
    assert (swept["quotes_found"], swept["quotes_minted"], swept["batches"]) == (25, 25, 3)
    (row,) = ok_json(capsys, "--dir", home, "balance")["balances"]
    assert (row["unspent"], row["epoch_state"], row["value_msat"]) == (100, "open", None)
    assert ok_json(capsys, "--dir", home, "info")["quotes_minted"] == 25


def test_errors_are_coded_and_say_what_to_do(mint: ThreadedMint, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    home = str(tmp_path / "w")
    code, _, err = run(capsys, "--dir", home, "balance")
    assert code == 1 and err.startswith("error 4000") and "init" in err
    ok_json(capsys, "--dir", home, "init", "--mint", mint.url)
    code, _, err = run(capsys, "--json", "--dir", home, "redeem", "lnbcrt1...")
    assert code == 1 and json.loads(err)["error"]["code"] == 4000 and "--node" in err
    code, _, err = run(capsys, "--dir", home, "receive", "cashuBgarbage")
    assert code == 1 and err.startswith("error 4003")
    code, _, err = run(capsys, "--dir", home, "init")
    assert code == 1 and "already exists" in err
    code, _, err = run(capsys, "--dir", str(tmp_path / "x"), "init", "--restore", stdin="not words at all\n")
    assert code == 1 and "BIP39" in err
    (Path(home) / "wallet.conf").write_text(f"[wallet]\nmint = {mint.url}\nmint_key = secret\n")
    code, _, err = run(capsys, "--dir", home, "balance")
    assert code == 1 and "never a pool or desk key" in err
    assert "Traceback" not in err


def test_help_starts_with_the_first_steps() -> None:
    out = subprocess.run([sys.executable, "-m", "hashpool_cln.wallet", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "first steps:" in out and "hashpool-wallet init" in out and "redeem" in out


def test_watch_reports_a_failed_round_and_goes_on(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import argparse
    import asyncio

    from hashpool_cln.mintclient import MintUnavailable
    from hashpool_cln.wallet.cli import watch

    rounds = iter([MintUnavailable("GET /v1/info: mint unreachable"), ["swept 3 quotes"], asyncio.CancelledError()])

    async def round_() -> list[str]:
        step = next(rounds)
        if isinstance(step, BaseException):
            raise step
        return step

    args = argparse.Namespace(json=False, interval=0.01)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(watch(args, tmp_path, None, round_, lambda lines: lines))
    out, err = capsys.readouterr()
    assert out == "swept 3 quotes\n" and err.startswith("error 4006: GET /v1/info: mint unreachable")


def test_the_progress_bar_shows_only_to_a_terminal_and_only_for_many_quotes(monkeypatch) -> None:
    from hashpool_cln.wallet.cli import ProgressBar

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    bar = ProgressBar()
    for done in (0, 50, 100):
        bar(done, 100)
    bar(3, 5)  # a handful: no bar
    text = screen.getvalue()
    assert text.count("\r") == 3 and "[" + "#" * 15 + "." * 15 + "] 50/100" in text
    assert text.endswith("100/100 quotes\n")
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)
    bar(50, 100)
    assert pipe.getvalue() == ""


def test_mint_failures_keep_their_meaning() -> None:
    from hashpool_cln.mintclient import MintError, MintUnavailable
    from hashpool_cln.wallet.cli import coded

    refused = coded(MintError(400, 20008, "lookup signature invalid"))
    assert (refused.code, refused.data) == (4011, {"mint_code": 20008})
    assert coded(MintUnavailable("POST /v1/swap: no answer")).code == 4006


def test_one_command_at_a_time_per_wallet(mint: ThreadedMint, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl

    from hashpool_cln.wallet import lock

    home = tmp_path / "w"
    ok_json(capsys, "--dir", str(home), "init", "--mint", mint.url)
    monkeypatch.setattr(lock, "WAIT", 0.3)
    with open(home / lock.LOCK_FILE, "a") as other:  # another process, mid-command
        fcntl.flock(other, fcntl.LOCK_EX)
        code, _, err = run(capsys, "--dir", str(home), "balance")
        assert code == 1 and err.startswith("error 4012") and "another hashpool-wallet command" in err
        fcntl.flock(other, fcntl.LOCK_UN)
    assert ok_json(capsys, "--dir", str(home), "balance") == {"balances": []}


def test_json_and_dir_also_go_after_the_command(mint: ThreadedMint, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    home = str(tmp_path / "w")
    assert run(capsys, "init", "--mint", mint.url, "--dir", home, "--json")[0] == 0
    code, out, _ = run(capsys, "balance", "--json", "--dir", home)
    assert code == 0 and json.loads(out) == {"balances": []}
    code, out, _ = run(capsys, "--json", "--dir", home, "balance")  # before it, as well
    assert code == 0 and json.loads(out) == {"balances": []}
