"""Driving cashu-ts from pytest, and reading the reference mint's own records (see conftest.py)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.refmint import MintHandle

from hashpool_cln.cashu.keysets import input_fee

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "driver.mjs"
PACKAGE = "@cashu/cashu-ts"
FEE_PPK = 100  # per input, parts per thousand: two inputs cost 1 unit, eleven cost 2
NODE_TIMEOUT = 60.0


def fee(n_inputs: int, ppk: int = FEE_PPK) -> int:
    """The NUT-02 input fee of ``n_inputs`` proofs of one keyset charging ``ppk``."""
    return input_fee(["keyset"] * n_inputs, {"keyset": ppk})


def p2pk_secret(pubkey: str) -> str:
    """A NUT-11 P2PK secret locked to ``pubkey`` (SIG_INPUTS), as the NUT-10 well-known secret JSON."""
    return json.dumps(["P2PK", {"nonce": os.urandom(16).hex(), "data": pubkey, "tags": [["sigflag", "SIG_INPUTS"]]}],
                      separators=(",", ":"))


def _pinned_version() -> str:
    lock = json.loads((HERE / "package-lock.json").read_text())
    return lock["packages"][f"node_modules/{PACKAGE}"]["version"]


def _installed_version() -> str | None:
    manifest = HERE / "node_modules" / PACKAGE / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.exists() else None


def why_not_runnable() -> str | None:
    """Why cashu-ts cannot run here (no node, no install, a stale install), or None when it can."""
    if shutil.which("node") is None:
        return "node is not on PATH: the cashu-ts interoperability tests need it"
    installed, pinned = _installed_version(), _pinned_version()
    if installed is None:
        return f"{PACKAGE} is not installed in tests/interop/node_modules (python3 dev.py test installs it)"
    if installed != pinned:
        return f"{PACKAGE} {installed} is installed, the lockfile pins {pinned} (python3 dev.py test reinstalls it)"
    return None


class MintState:
    """The mint's own records, read from its sqlite file (read-only), independent of its HTTP answers."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
        try:
            return conn.execute(sql, tuple(args)).fetchall()
        finally:
            conn.close()

    def spent(self, ys: Sequence[str]) -> list[bool]:
        """For each Y (hex), whether the mint recorded it as spent."""
        marks = ",".join("?" * len(ys))
        found = {row[0].lower() for row in self._rows(f"SELECT y FROM proofs_used WHERE y IN ({marks})", ys)}
        return [y.lower() in found for y in ys]

    def keysets(self) -> dict[str, tuple[str, int, dict[str, str]]]:
        """Keyset id -> (unit, input_fee_ppk, keys)."""
        return {kid: (unit, fee, json.loads(keys))
                for kid, unit, fee, keys in self._rows("SELECT id, unit, input_fee_ppk, keys FROM keysets")}

    def issued(self, quotes: Sequence[str]) -> list[bool]:
        """For each share quote id, whether the mint recorded it as issued (minted)."""
        marks = ",".join("?" * len(quotes))
        found = {q for q, issued in self._rows(f"SELECT quote, issued FROM share_quotes WHERE quote IN ({marks})",
                                               quotes) if issued}
        return [q in found for q in quotes]

    def signed(self, blinded: Sequence[str]) -> list[bool]:
        """For each B_ (hex), whether the mint ever signed it."""
        marks = ",".join("?" * len(blinded))
        found = {row[0].lower() for row in self._rows(f"SELECT b_ FROM promises WHERE b_ IN ({marks})", blinded)}
        return [b.lower() in found for b in blinded]


@dataclass
class Mint:
    handle: MintHandle
    state: MintState
    unit: str


@dataclass
class CashuTs:
    """cashu-ts, one Node process per scenario, bound to one mint and unit."""

    mint_url: str
    unit: str

    async def run(self, scenario: str, **job: Any) -> dict[str, Any]:
        proc = await asyncio.create_subprocess_exec(
            "node", str(DRIVER), scenario, cwd=HERE,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        payload = json.dumps({"mint": self.mint_url, "unit": self.unit, **job}).encode()
        try:
            out, err = await asyncio.wait_for(proc.communicate(payload), NODE_TIMEOUT)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError(f"cashu-ts {scenario}: no answer within {NODE_TIMEOUT:g} s") from None
        assert proc.returncode == 0, f"cashu-ts {scenario} exited {proc.returncode}: {err.decode()}"
        return json.loads(out)

    async def ok(self, scenario: str, **job: Any) -> dict[str, Any]:
        answer = await self.run(scenario, **job)
        assert "error" not in answer, f"cashu-ts {scenario} failed: {answer['error']}"
        return answer

    async def refused(self, scenario: str, **job: Any) -> dict[str, Any]:
        """The error cashu-ts threw (name, code, status, message); fails if it threw none."""
        answer = await self.run(scenario, **job)
        assert "error" in answer, f"cashu-ts {scenario} succeeded where the mint should refuse: {answer}"
        return answer["error"]
