#!/usr/bin/env python3
"""Run the benchmarks: every ``bench/bench_<name>.py`` module, or the ones named.

    bench/run.py                 all benchmarks
    bench/run.py cashu mint      only bench_cashu.py and bench_mint.py
    bench/run.py fairness        only bench_fairness.py (small calls while a 4,000-proof token is quoted)
    bench/run.py --list          names and one-line descriptions
    bench/run.py cashu -- --sizes 1,64   options after ``--`` go to each benchmark's ``main``

A benchmark module exposes ``main(argv: list[str]) -> None`` and a docstring whose first line describes it.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

BENCH_DIR = Path(__file__).resolve().parent
PREFIX = "bench_"


def discover() -> dict[str, Path]:
    """Benchmark name -> module file, sorted by name."""
    return {p.stem[len(PREFIX):]: p for p in sorted(BENCH_DIR.glob(f"{PREFIX}*.py"))}


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{PREFIX}{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look modules up by name
    spec.loader.exec_module(module)
    if not callable(getattr(module, "main", None)):
        raise ImportError(f"{path.name} has no main(argv)")
    return module


def describe(path: Path) -> str:
    """First docstring line, read without importing the module (imports can be slow)."""
    doc = ast.get_docstring(ast.parse(path.read_text()))
    return doc.strip().splitlines()[0] if doc else ""


def main(argv: list[str]) -> int:
    if "--" in argv:
        split = argv.index("--")
        argv, extra = argv[:split], argv[split + 1:]
    else:
        extra = []
    found = discover()
    if "--list" in argv or "-h" in argv or "--help" in argv:
        print(__doc__.strip() if "--list" not in argv else "benchmarks:")
        for name, path in found.items():
            print(f"  {name:12s} {describe(path)}")
        return 0
    names = argv or list(found)
    unknown = [n for n in names if n not in found]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(found) or 'none'}", file=sys.stderr)
        return 2
    # Benchmarks import the package and the tests' helpers the same way the test suite does.
    for extra_path in (BENCH_DIR.parent, BENCH_DIR.parent / "tests"):
        if str(extra_path) not in sys.path:
            sys.path.insert(0, str(extra_path))
    outcomes: dict[str, str] = {}
    for name in names:
        print(f"== {name}: {describe(found[name])}", flush=True)
        started = time.perf_counter()
        try:
            load(name, found[name]).main(list(extra))
        except (Exception, SystemExit) as exc:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            outcomes[name] = f"FAILED after {time.perf_counter() - started:.1f} s: {type(exc).__name__}: {exc}"
        else:
            outcomes[name] = f"ok in {time.perf_counter() - started:.1f} s"
        print(f"== {name} {outcomes[name]}\n", flush=True)
    print("== summary")
    for name, outcome in outcomes.items():
        print(f"  {name:12s} {outcome}")
    return 1 if any(o.startswith("FAILED") for o in outcomes.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
