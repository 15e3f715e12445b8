"""What the regtest stack needs installed, checked before anything starts: binaries on PATH and their versions."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

# lightningd v26.06: xpay is the default payer and BOLT12 offers need no experimental flag.
MIN_LIGHTNINGD = (26, 6, 0)
# The oldest Bitcoin Core that Core Lightning v26.06 accepts (its bcli plugin refuses older ones).
MIN_BITCOIND = (22, 0, 0)

WHERE_BITCOIN = "Bitcoin Core: https://bitcoincore.org/en/download/ (or build from https://github.com/bitcoin/bitcoin)"
WHERE_LIGHTNING = ("Core Lightning: https://github.com/ElementsProject/lightning/releases "
                   "(install guide: https://docs.corelightning.org/docs/installation)")


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    version_args: tuple[str, ...]
    minimum: tuple[int, int, int] | None
    where: str
    cln_style: bool = False  # versions written vYY.MM[.patch], as Core Lightning does

    def fmt(self, version: tuple[int, int, int]) -> str:
        major, minor, patch = version
        if self.cln_style:
            return f"v{major}.{minor:02d}" + (f".{patch}" if patch else "")
        return f"{major}.{minor}.{patch}"


TOOLS = (
    Tool("bitcoind", ("-version",), MIN_BITCOIND, WHERE_BITCOIN),
    Tool("bitcoin-cli", ("-version",), None, WHERE_BITCOIN + "; lightningd reads the chain through it"),
    Tool("lightningd", ("--version",), MIN_LIGHTNINGD, WHERE_LIGHTNING, cln_style=True),
)

_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?(rc\d+)?")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``(major, minor, patch)`` from ``bitcoind -version`` or ``lightningd --version`` output.

    A release candidate counts as just below its release (``v26.06rc2`` is older than ``v26.06``).
    """
    match = _VERSION.search(text.splitlines()[0] if text else "")
    if match is None:
        return None
    major, minor, patch = int(match[1]), int(match[2]), int(match[3] or 0)
    if match[4]:
        return (major, minor, patch - 1) if patch else (major, minor - 1, 99) if minor else (major - 1, 99, 99)
    return major, minor, patch


@dataclass(frozen=True, slots=True)
class Found:
    tool: Tool
    path: str | None
    version: tuple[int, int, int] | None
    problem: str | None  # None: usable


def check_tool(tool: Tool, path_env: str | None = None) -> Found:
    path = shutil.which(tool.name, path=path_env)
    if path is None:
        return Found(tool, None, None, f"{tool.name} is not on PATH")
    try:
        out = subprocess.run([path, *tool.version_args], capture_output=True, text=True, timeout=20)
        text = out.stdout.strip() or out.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Found(tool, path, None, f"{path} does not run: {exc}")
    version = parse_version(text)
    if tool.minimum is None:
        return Found(tool, path, version, None)
    if version is None:
        return Found(tool, path, None, f"cannot tell the version of {path} (it says {text[:80]!r})")
    if version < tool.minimum:
        return Found(tool, path, version,
                     f"{path} is version {tool.fmt(version)}; version {tool.fmt(tool.minimum)} or newer is needed")
    return Found(tool, path, version, None)


def check(path_env: str | None = None) -> list[Found]:
    return [check_tool(tool, path_env) for tool in TOOLS]


def problems_report(found: list[Found]) -> str | None:
    """A message naming every missing or too old tool and where to get it; None when all are usable."""
    bad = [f for f in found if f.problem]
    if not bad:
        return None
    lines = ["The regtest stack needs Bitcoin Core and Core Lightning, and cannot start:"]
    for f in bad:
        lines.append(f"  - {f.problem}")
        lines.append(f"      get it from {f.tool.where}")
    lines.append("Put their bin directory first on PATH (for example: PATH=/usr/local/cln/bin:$PATH) and try again.")
    return "\n".join(lines)
