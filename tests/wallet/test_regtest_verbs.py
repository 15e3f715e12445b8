"""The regtest verbs for the miner's wallet: ``db wallet`` and ``clean wallet`` (and ``clean cashu`` taking the
wallet with the mint), on a state directory of their own; no bitcoind or lightningd needed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hashpool_cln.regtest.__main__ import main

Regtest = Callable[..., tuple[int, str, str]]


@pytest.fixture
def regtest(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Regtest:
    monkeypatch.setenv("HASHPOOL_REGTEST_DIR", str(tmp_path))

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _fill(state: Path) -> None:
    for path in (state / "wallet" / "wallet.sqlite3", state / "wallet" / "mnemonic", state / "mint" / "mint.sqlite3"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")


def test_clean_wallet_removes_only_the_wallet(regtest: Regtest, tmp_path: Path) -> None:
    _fill(tmp_path)
    code, out, _ = regtest("clean", "wallet")
    assert code == 0 and "miner's wallet" in out
    assert not (tmp_path / "wallet").exists() and (tmp_path / "mint" / "mint.sqlite3").exists()


def test_clean_cashu_takes_the_wallet_with_the_mint(regtest: Regtest, tmp_path: Path) -> None:
    _fill(tmp_path)
    assert regtest("clean", "cashu")[0] == 0
    assert not (tmp_path / "wallet").exists() and not (tmp_path / "mint").exists()


def test_db_wallet_without_a_wallet_says_how_to_get_one(regtest: Regtest) -> None:
    code, _, err = regtest("db", "wallet")
    assert code == 1 and "no wallet database" in err
