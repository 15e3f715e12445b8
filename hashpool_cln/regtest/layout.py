"""Where the regtest stack keeps everything: one state directory, its ports and addresses in ``stack.json``."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STATE = ROOT / ".state" / "regtest"
STATE_ENV = "HASHPOOL_REGTEST_DIR"


def state_dir() -> Path:
    return Path(os.environ.get(STATE_ENV) or DEFAULT_STATE).resolve()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Settings:
    """Chosen on the first ``up`` and kept, so later runs find the same stack."""

    bitcoind_rpc_port: int
    pool_ln_port: int
    miner_ln_port: int
    mint_port: int
    mint_address: str | None = None  # the wallet address the mint is paid to (the coinbase it watches)
    funds_address: str | None = None  # where other blocks go: the wallet that funds the Lightning nodes

    @classmethod
    def fresh(cls) -> Settings:
        ports: set[int] = set()
        while len(ports) < 4:
            ports.add(free_port())
        a, b, c, d = sorted(ports)
        return cls(a, b, c, d)


@dataclass(frozen=True)
class Layout:
    root: Path

    # bitcoind
    @property
    def bitcoin_dir(self) -> Path:
        return self.root / "bitcoin"

    @property
    def cookie(self) -> Path:
        return self.bitcoin_dir / "regtest" / ".cookie"

    # Lightning nodes
    def ln_dir(self, node: str) -> Path:
        return self.root / node

    def ln_socket(self, node: str) -> Path:
        return self.ln_dir(node) / "regtest" / "lightning-rpc"

    @property
    def plugin_wrapper(self) -> Path:
        return self.ln_dir("pool") / "hashpool-redeem"

    @property
    def desk_db(self) -> Path:
        return self.ln_dir("pool") / "hashpool-desk.sqlite3"

    @property
    def desk_seed(self) -> Path:
        return self.ln_dir("pool") / "hashpool-desk.seed"

    # the mint
    @property
    def mint_dir(self) -> Path:
        return self.root / "mint"

    @property
    def mint_db(self) -> Path:
        return self.mint_dir / "mint.sqlite3"

    @property
    def chainwatch_state(self) -> Path:
        return self.mint_dir / "chainwatch.json"

    # the miner's wallet
    @property
    def wallet_dir(self) -> Path:
        return self.root / "wallet"

    @property
    def wallet_db(self) -> Path:
        return self.wallet_dir / "wallet.sqlite3"

    # bookkeeping
    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    @property
    def settings_file(self) -> Path:
        return self.root / "stack.json"

    def load_settings(self) -> Settings | None:
        try:
            return Settings(**json.loads(self.settings_file.read_text()))
        except FileNotFoundError:
            return None

    def save_settings(self, settings: Settings) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.settings_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(settings), indent=2) + "\n")
        os.replace(tmp, self.settings_file)
