"""The justfile's recipes on a fresh clone: they list, they prepare their own environment, and the stack comes up
and goes down where bitcoind and lightningd exist."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JUST = shutil.which("just", path=str(Path(sys.executable).parent)) or shutil.which("just")
RECIPES = {"default", "env", "up", "down", "status", "demo", "clean", "db", "generate-blocks",
           "generate-blocks-to-mint", "redeem", "man"}
STACK_TOOLS = [t for t in ("bitcoind", "bitcoin-cli", "lightningd") if shutil.which(t) is None]

pytestmark = pytest.mark.skipif(JUST is None, reason="just is not installed (it comes with the dev extra: rust-just)")


def _head() -> str | None:
    found = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    return found.stdout.strip() if found.returncode == 0 else None


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """This repository's committed HEAD, cloned into a directory of its own: no .venv, no state."""
    head = _head()
    if head is None:
        pytest.skip("not a git checkout")
    dest = tmp_path_factory.mktemp("fresh") / "hashpool-cln"
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(dest)], check=True)
    subprocess.run(["git", "-C", str(dest), "checkout", "--quiet", head], check=True)
    assert not (dest / ".venv").exists()
    return dest


def just(clone: Path, *args: str, env: dict[str, str] | None = None,
         timeout: float = 600) -> subprocess.CompletedProcess:
    assert JUST is not None
    return subprocess.run([JUST, *args], cwd=clone, capture_output=True, text=True, env=env, timeout=timeout)


def test_just_lists_every_recipe_on_a_fresh_clone(clone: Path) -> None:
    listed = just(clone, "--list", "--unsorted")
    assert listed.returncode == 0, listed.stderr
    names = {line.split()[0] for line in listed.stdout.splitlines()[1:] if line.strip()}
    assert names == RECIPES
    assert any(line.split()[:2] == ["up", 'mode=""'] for line in listed.stdout.splitlines())


def test_every_recipe_prepares_the_environment_first(clone: Path) -> None:
    dumped = just(clone, "--dump", "--dump-format", "json")
    assert dumped.returncode == 0, dumped.stderr
    recipes = json.loads(dumped.stdout)["recipes"]
    using_python = {name for name, r in recipes.items() if name not in ("default", "env")}
    assert using_python == RECIPES - {"default", "env"}
    for name in sorted(using_python):
        assert [d["recipe"] for d in recipes[name]["dependencies"]] == ["env"], name


def test_an_unknown_up_mode_is_refused(clone: Path, fresh_env) -> None:
    refused = just(clone, "up", "turbo", env=fresh_env)
    assert refused.returncode != 0 and "mode must be" in refused.stderr


@pytest.fixture(scope="module")
def fresh_env(clone: Path, tmp_path_factory) -> dict[str, str]:
    """The environment variables under which the clone's recipes make their own virtualenv and regtest state."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "HASHPOOL_VENV", "PYTHONPATH")}
    state = tmp_path_factory.mktemp("regtest")
    env.update(HASHPOOL_REGTEST_DIR=str(state))
    return env


def test_a_recipe_creates_the_environment_it_runs_in(clone: Path, fresh_env) -> None:
    status = just(clone, "status", env=fresh_env)
    assert status.returncode == 0, status.stderr[-3000:]
    assert (clone / ".venv" / "bin" / "python").exists()
    assert "bitcoind" in status.stdout and "stopped" in status.stdout
    # Again: the environment is reused, not rebuilt.
    again = just(clone, "status", env=fresh_env, timeout=120)
    assert again.returncode == 0 and "preparing" not in again.stdout + again.stderr


@pytest.mark.realnode
@pytest.mark.skipif(bool(STACK_TOOLS), reason=f"not on PATH: {', '.join(STACK_TOOLS)}")
@pytest.mark.parametrize("mode", ["", "debug"])
def test_up_and_down_on_a_fresh_clone(clone: Path, fresh_env, mode: str) -> None:
    try:
        up = just(clone, "up", *([mode] if mode else []), env=fresh_env, timeout=900)
        assert up.returncode == 0, (up.stdout + up.stderr)[-3000:]
        status = just(clone, "status", env=fresh_env)
        assert status.stdout.count("running") == 4, status.stdout
        mint_log = Path(fresh_env["HASHPOOL_REGTEST_DIR"]) / "logs" / "mint.log"
        this_start = mint_log.read_text().rsplit("starting mint", 1)[-1]
        assert (" DEBUG " in this_start) is (mode == "debug")
    finally:
        down = just(clone, "down", env=fresh_env, timeout=300)
    assert down.returncode == 0, down.stderr
    assert "running" not in just(clone, "status", env=fresh_env).stdout
