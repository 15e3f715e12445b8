#!/usr/bin/env python3
"""Set-up and entry points for a fresh checkout, using nothing but the Python that runs this file.

    python3 dev.py demo      the main job: a real ehash redemption on a regtest stack
    python3 dev.py test      lint and the whole test suite
    python3 dev.py bench     the benchmarks
    python3 dev.py lint      ruff only
    python3 dev.py env       create (or reuse) .venv and print its Python (--quiet: not); the justfile's recipes
                             call it

Each command creates (or reuses) ``.venv`` with the package installed from this checkout, and, for the
interoperability tests and benchmarks, ``.venv-nutshell`` with the reference Cashu implementation
(nutshell). The two cannot share one environment: nutshell pins old cryptography and coincurve releases.
``test`` also installs the cashu-ts wallet (npm, from ``tests/interop/package-lock.json``) when node is present.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("HASHPOOL_VENV", ROOT / ".venv"))
# Resolved: the suite starts nutshell from directories of its own, where a relative path would name nothing.
NUTSHELL_VENV = Path(os.environ.get("HASHPOOL_NUTSHELL_VENV", ROOT / ".venv-nutshell")).resolve()

# nutshell 0.21 does not resolve (a breez-sdk pin); 0.20 needs marshmallow<4 (environs) and limits<4 (its mint).
NUTSHELL_REQUIREMENTS = ["cashu==0.20.0", "marshmallow<4", "limits<4"]
# Only its pure crypto module is imported in the main environment, for cross-checks; it needs just coincurve.
NUTSHELL_CRYPTO = "cashu==0.20.0"
# The cashu-ts interoperability tests: npm packages pinned by a committed lockfile.
INTEROP = ROOT / "tests" / "interop"


def _run(*cmd: str | Path, **kw) -> None:
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def _python(env: Path) -> Path:
    return env / "bin" / "python"


def _ensure_venv(env: Path, requirements: list[str], stamp_parts: list[str]) -> Path:
    """Create ``env`` and install ``requirements`` unless an identical install is already there."""
    stamp = hashlib.sha256("\n".join(stamp_parts + requirements).encode()).hexdigest()
    stamp_file = env / ".hashpool-stamp"
    if stamp_file.exists() and stamp_file.read_text() == stamp and _python(env).exists():
        return _python(env)
    print(f"dev.py: preparing {env.name} ...", flush=True)
    venv.EnvBuilder(with_pip=True, clear=not _python(env).exists()).create(env)
    pip = [_python(env), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _run(*pip, "--upgrade", "pip")
    _run(*pip, *requirements)
    stamp_file.write_text(stamp)
    return _python(env)


def main_env() -> Path:
    files = [(ROOT / f).read_text() for f in ("setup.cfg", "pyproject.toml")]
    py = _ensure_venv(VENV, ["-e", f"{ROOT}[test,dev]"], files)
    probe = subprocess.run([py, "-c", "import cashu.core.crypto.b_dhke"], capture_output=True)
    if probe.returncode != 0:
        _run(py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
             NUTSHELL_CRYPTO)
    return py


def nutshell_env() -> Path:
    return _ensure_venv(NUTSHELL_VENV, NUTSHELL_REQUIREMENTS, [])


def interop_packages() -> None:
    """``npm ci`` the cashu-ts suite's packages from its lockfile, unless that lockfile is already installed."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        print("dev.py: node/npm not found: the cashu-ts interoperability tests will be skipped", flush=True)
        return
    lock = INTEROP / "package-lock.json"
    stamp = hashlib.sha256(lock.read_bytes()).hexdigest()
    stamp_file = INTEROP / "node_modules" / ".hashpool-stamp"
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        print("dev.py: cashu-ts packages up to date (tests/interop/package-lock.json unchanged)", flush=True)
        return
    print("dev.py: installing the cashu-ts packages (npm ci) ...", flush=True)
    # --ignore-scripts: nothing from the registry runs at install time; cashu-ts asks for node 22.4 but
    # works on node 20, so the engine check only warns.
    code = subprocess.call(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                           cwd=INTEROP)
    if code != 0:
        print(f"dev.py: npm ci failed (exit code {code}): the cashu-ts interoperability tests will be skipped",
              flush=True)
        return
    stamp_file.write_text(stamp)


def _env_with_tools(py: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{py.parent}{os.pathsep}{env.get('PATH', '')}"
    env["HASHPOOL_NUTSHELL_VENV"] = str(NUTSHELL_VENV)
    return env


def cmd_lint(extra: list[str]) -> int:
    py = main_env()
    return subprocess.call([py, "-m", "ruff", "check", ROOT, *extra], cwd=ROOT)


def cmd_test(extra: list[str]) -> int:
    py = main_env()
    nutshell_env()
    interop_packages()
    if subprocess.call([py, "-m", "ruff", "check", ROOT], cwd=ROOT) != 0:
        return 1
    return subprocess.call([py, "-m", "pytest", *extra], cwd=ROOT, env=_env_with_tools(py))


def cmd_bench(extra: list[str]) -> int:
    py = main_env()
    nutshell_env()
    return subprocess.call([py, ROOT / "bench" / "run.py", *extra], cwd=ROOT, env=_env_with_tools(py))


def cmd_demo(extra: list[str]) -> int:
    py = main_env()
    return subprocess.call([py, "-m", "hashpool_cln.regtest", "demo", *extra], cwd=ROOT,
                           env=_env_with_tools(py))


def cmd_env(extra: list[str]) -> int:
    py = main_env()
    if "--quiet" not in extra:
        print(py)
    return 0


COMMANDS = {"demo": cmd_demo, "test": cmd_test, "bench": cmd_bench, "lint": cmd_lint, "env": cmd_env}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.strip())
        return 2
    try:
        return COMMANDS[argv[0]](argv[1:])
    except subprocess.CalledProcessError as exc:
        print(f"dev.py: {' '.join(map(str, exc.cmd))} failed with exit code {exc.returncode}", file=sys.stderr)
        return exc.returncode or 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
