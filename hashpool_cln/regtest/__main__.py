"""``python -m hashpool_cln.regtest demo``: the end-to-end demo on a local regtest stack."""

from __future__ import annotations

import shutil
import sys

NEEDED = {
    "bitcoind": "Bitcoin Core 31 or newer (https://bitcoincore.org/en/download/)",
    "lightningd": "Core Lightning v26.06 or newer (https://github.com/ElementsProject/lightning/releases)",
}


def main(argv: list[str]) -> int:
    missing = {name: where for name, where in NEEDED.items() if shutil.which(name) is None}
    if missing:
        print("hashpool-cln demo: redeems ehash (Cashu tokens for mining shares) for a Lightning payment")
        print("between two regtest Core Lightning nodes. It needs on PATH:")
        for name, where in missing.items():
            print(f"  {name:10}  {where}")
        return 1
    print("hashpool-cln demo: the regtest stack is not available in this version.")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
