"""The regtest stack: bitcoind with a wallet, the reference mint watching the chain, the pool's Core Lightning
node running the redemption plugin, a miner's node, and a funded channel pool -> miner. All on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coincurve import PrivateKey
from pyln.client import LightningRpc, RpcError

from hashpool_cln.refmint.chainwatch import BitcoinRPC, ChainError, RpcAuth
from hashpool_cln.regtest import procs
from hashpool_cln.regtest.layout import ROOT, Layout, Settings

NODES = ("pool", "miner")
WALLET = "hashpool"
MATURITY = 101  # blocks before the first coinbase can be spent
CONFIRMATIONS = 3  # the mint's finality depth on regtest
CHANNEL_SATS = 5_000_000
PUSH_MSAT = 500_000_000  # to the miner, so the channel has room both ways
POOL_ONCHAIN_BTC = "1"
DESK_MAX_MSAT = 100_000_000
MIN_DIFFICULTY = 8  # leading zero bits a simulated share needs to earn 1 unit
MINT_MARKER = "hashpool_cln.refmint"


def _private_write(path: Path, text: str) -> None:
    """Write a file that holds secrets: created (or reset) to mode 0600 before any byte goes in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


class Bitcoin:
    """Blocking calls to bitcoind for the orchestration, on the chain watcher's JSON-RPC client."""

    def __init__(self, layout: Layout, settings: Settings, wallet: str | None = None) -> None:
        url = f"http://127.0.0.1:{settings.bitcoind_rpc_port}/" + (f"wallet/{wallet}" if wallet else "")
        self._rpc = BitcoinRPC(url, RpcAuth(cookie_file=layout.cookie), timeout=120)
        self._loop = asyncio.new_event_loop()

    def __call__(self, method: str, *params: Any) -> Any:
        return self._loop.run_until_complete(self._rpc.call(method, *params))

    def close(self) -> None:
        self._loop.run_until_complete(self._rpc.close())
        self._loop.close()


@dataclass
class Stack:
    layout: Layout
    tools: dict[str, str]  # binary name -> absolute path (from the preflight check)

    # ----- settings and clients -------------------------------------------------------------------------------
    def settings(self) -> Settings:
        settings = self.layout.load_settings()
        if settings is None:
            settings = Settings.fresh()
            self.layout.save_settings(settings)
        return settings

    def bitcoin(self, wallet: bool = False) -> Bitcoin:
        return Bitcoin(self.layout, self.settings(), WALLET if wallet else None)

    def node(self, name: str) -> LightningRpc:
        return LightningRpc(str(self.layout.ln_socket(name)))

    def mint_url(self) -> str:
        return f"http://127.0.0.1:{self.settings().mint_port}"

    # ----- up / down -----------------------------------------------------------------------------------------
    def up(self) -> None:
        """Start whatever is not running and bring the stack to a usable state; safe to run again."""
        self.layout.root.mkdir(parents=True, exist_ok=True)
        self.start_bitcoind()
        self.prepare_wallet()
        self.start_mint()
        for name in NODES:
            self._start_lightningd(name)
        self._fund_and_connect()

    def down(self) -> list[str]:
        """Stop everything this stack started (nodes first, bitcoind last); names what was stopped."""
        stopped = []
        for name, marker in (("pool", "lightningd"), ("miner", "lightningd"), ("mint", MINT_MARKER),
                             ("bitcoind", "bitcoind")):
            if procs.stop(self.layout, name, marker, timeout=60):
                stopped.append(name)
        return stopped

    def running(self) -> dict[str, int | None]:
        return {name: procs.running_pid(self.layout, name, marker) for name, marker in
                (("bitcoind", "bitcoind"), ("mint", MINT_MARKER), ("pool", "lightningd"), ("miner", "lightningd"))}

    # ----- bitcoind -------------------------------------------------------------------------------------------
    def _bitcoind_ready(self) -> bool:
        btc = self.bitcoin()
        try:
            btc("getblockcount")
            return True
        except ChainError:
            return False
        finally:
            btc.close()

    def start_bitcoind(self) -> None:
        if procs.running_pid(self.layout, "bitcoind", "bitcoind") is None:
            settings = self.settings()
            self.layout.bitcoin_dir.mkdir(parents=True, exist_ok=True)
            (self.layout.bitcoin_dir / "bitcoin.conf").write_text(
                "regtest=1\nserver=1\nlisten=0\nfallbackfee=0.00001\ntxindex=1\n"
                f"[regtest]\nrpcbind=127.0.0.1\nrpcallowip=127.0.0.1\nrpcport={settings.bitcoind_rpc_port}\n")
            pid = procs.start(self.layout, "bitcoind",
                              [self.tools["bitcoind"], f"-datadir={self.layout.bitcoin_dir}", "-printtoconsole"])
            procs.wait_until("bitcoind", self._bitcoind_ready, 120, self.layout.log_file("bitcoind"),
                             alive=lambda: procs.running_pid(self.layout, "bitcoind", "bitcoind") == pid)
        procs.wait_until("bitcoind", self._bitcoind_ready, 120, self.layout.log_file("bitcoind"))

    def prepare_wallet(self) -> None:
        btc = self.bitcoin()
        try:
            if WALLET not in btc("listwallets"):
                try:
                    btc("loadwallet", WALLET)
                except ChainError:
                    btc("createwallet", WALLET)
        finally:
            btc.close()
        settings = self.settings()
        wallet = self.bitcoin(wallet=True)
        try:
            if settings.mint_address is None:
                settings.mint_address = wallet("getnewaddress", "mint", "bech32")
                settings.funds_address = wallet("getnewaddress", "funds", "bech32")
                self.layout.save_settings(settings)
            height = wallet("getblockcount")
            if height < MATURITY:
                wallet("generatetoaddress", MATURITY - height, settings.funds_address)
        finally:
            wallet.close()

    def mine(self, count: int, address: str | None = None) -> list[str]:
        """Mine ``count`` blocks (to the funding address unless told) and let the nodes catch up."""
        settings = self.settings()
        btc = self.bitcoin()
        try:
            hashes = btc("generatetoaddress", count, address or settings.funds_address)
            height = btc("getblockcount")
        finally:
            btc.close()
        self.wait_synced(height)
        return hashes

    def wait_synced(self, height: int) -> None:
        for name in NODES:
            if procs.running_pid(self.layout, name, "lightningd") is not None:
                rpc = self.node(name)
                procs.wait_until(f"{name} node at height {height}", lambda r=rpc: r.getinfo()["blockheight"] >= height,
                                 60, self.layout.log_file(name))

    # ----- the mint ----------------------------------------------------------------------------------------------
    def _mint_ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.mint_url() + "/v1/info", timeout=2) as resp:
                return resp.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def start_mint(self) -> None:
        if procs.running_pid(self.layout, "mint", MINT_MARKER) is None:
            settings = self.settings()
            btc = self.bitcoin()
            try:
                height = btc("getblockcount")
            finally:
                btc.close()
            argv = [sys.executable, "-m", MINT_MARKER, "serve", "--data-dir", str(self.layout.mint_dir),
                    "--port", str(settings.mint_port), "--final-confirmations", str(CONFIRMATIONS),
                    "--start-height", str(height), "--min-difficulty", str(MIN_DIFFICULTY),
                    "--bitcoin-rpc-url", f"http://127.0.0.1:{settings.bitcoind_rpc_port}/",
                    "--bitcoin-rpc-cookie", str(self.layout.cookie),
                    "--receive-address", str(settings.mint_address),
                    "--chainwatch-state", str(self.layout.chainwatch_state), "--poll-interval", "0.5"]
            pid = procs.start(self.layout, "mint", argv, cwd=ROOT)
            procs.wait_until("the mint", self._mint_ready, 60, self.layout.log_file("mint"),
                             alive=lambda: procs.running_pid(self.layout, "mint", MINT_MARKER) == pid)
        procs.wait_until("the mint", self._mint_ready, 60, self.layout.log_file("mint"))

    def stop_mint(self) -> bool:
        return procs.stop(self.layout, "mint", MINT_MARKER)

    def mint_secrets(self) -> tuple[str, str]:
        """The desk's bearer key and the pool's public key (hex), from the mint's data directory."""
        auth = json.loads((self.layout.mint_dir / "auth.json").read_text())
        pool_key = PrivateKey(bytes.fromhex((self.layout.mint_dir / "pool_key").read_text().strip()))
        return auth["desk"], pool_key.public_key.format().hex()

    # ----- Lightning nodes ----------------------------------------------------------------------------------------
    def _write_plugin_wrapper(self) -> Path:
        # lightningd runs a plugin through its shebang; this wrapper pins the interpreter to this environment.
        wrapper = self.layout.plugin_wrapper
        wrapper.parent.mkdir(parents=True, exist_ok=True)
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{ROOT / "plugin" / "hashpool-redeem.py"}" "$@"\n')
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return wrapper

    def _ln_config(self, name: str) -> str:
        settings = self.settings()
        port = settings.pool_ln_port if name == "pool" else settings.miner_ln_port
        lines = [
            "network=regtest",
            f"alias=hashpool-{name}",
            f"bitcoin-datadir={self.layout.bitcoin_dir}",
            f"bitcoin-rpcport={settings.bitcoind_rpc_port}",
            "bitcoin-rpcconnect=127.0.0.1",
            f"bitcoin-cli={self.tools['bitcoin-cli']}",
            f"bind-addr=127.0.0.1:{port}",
            "log-level=debug",
            "dev-bitcoind-poll=1",
            "dev-fast-gossip",
            "funding-confirms=1",
        ]
        if name == "pool":
            desk_key, pool_pubkey = self.mint_secrets()
            lines += [
                f"plugin={self._write_plugin_wrapper()}",
                f"hashpool-mint-url={self.mint_url()}",
                f"hashpool-mint-key={desk_key}",
                f"hashpool-db={self.layout.desk_db}",
                f"hashpool-seed-file={self.layout.desk_seed}",
                f"hashpool-pool={pool_pubkey}",
                f"hashpool-max-msat={DESK_MAX_MSAT}",
            ]
        return "\n".join(lines) + "\n"

    def _ln_ready(self, name: str) -> bool:
        if not self.layout.ln_socket(name).exists():
            return False
        try:
            self.node(name).getinfo()
            return True
        except (OSError, RpcError, ValueError):
            return False

    def _start_lightningd(self, name: str) -> None:
        if procs.running_pid(self.layout, name, "lightningd") is None:
            ln_dir = self.layout.ln_dir(name)
            ln_dir.mkdir(parents=True, exist_ok=True)
            _private_write(ln_dir / "config", self._ln_config(name))  # holds the desk's mint key
            env = dict(os.environ)
            env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), str(Path(self.tools["lightningd"]).parent),
                                           env.get("PATH", "")])
            pid = procs.start(self.layout, name,
                              [self.tools["lightningd"], "--developer", f"--lightning-dir={ln_dir}"], env=env)
            procs.wait_until(f"the {name} node", lambda: self._ln_ready(name), 90, self.layout.log_file(name),
                             alive=lambda: procs.running_pid(self.layout, name, "lightningd") == pid)
        procs.wait_until(f"the {name} node", lambda: self._ln_ready(name), 90, self.layout.log_file(name))

    # ----- funds and the channel -------------------------------------------------------------------------------------
    def channel(self) -> dict[str, Any] | None:
        """The pool's channel with the miner, if any."""
        miner_id = self.node("miner").getinfo()["id"]
        channels = self.node("pool").listpeerchannels(miner_id)["channels"]
        live = [c for c in channels if c["state"] in ("CHANNELD_AWAITING_LOCKIN", "CHANNELD_NORMAL",
                                                        "DUALOPEND_AWAITING_LOCKIN", "DUALOPEND_OPEN_COMMITTED")]
        return live[0] if live else None

    def _fund_and_connect(self) -> None:
        pool, miner = self.node("pool"), self.node("miner")
        settings = self.settings()
        miner_id = miner.getinfo()["id"]
        # lightningd answers its JSON-RPC before it listens for peers (connectd starts listening last).
        procs.wait_until("the miner node's peer port", lambda: _listening(settings.miner_ln_port), 60,
                         self.layout.log_file("miner"))
        pool.connect(miner_id, "127.0.0.1", settings.miner_ln_port)
        if self.channel() is None:
            if not [o for o in pool.listfunds()["outputs"] if o["status"] == "confirmed"]:
                wallet = self.bitcoin(wallet=True)
                try:
                    address = pool.newaddr()
                    wallet("sendtoaddress", address.get("p2tr") or address["bech32"], POOL_ONCHAIN_BTC)
                finally:
                    wallet.close()
                self.mine(1)
                procs.wait_until("the pool node's on-chain funds",
                                 lambda: any(o["status"] == "confirmed" for o in pool.listfunds()["outputs"]),
                                 60, self.layout.log_file("pool"))
            pool.fundchannel(miner_id, CHANNEL_SATS, push_msat=PUSH_MSAT)
        if self.channel()["state"] != "CHANNELD_NORMAL":
            self.mine(6)  # funding depth, and deep enough for the channel to be announced
            procs.wait_until("the pool -> miner channel", self._channel_normal, 90, self.layout.log_file("pool"))

    def _channel_normal(self) -> bool:
        channel = self.channel()
        if channel is None or channel["state"] != "CHANNELD_NORMAL":
            return False
        pool_id = self.node("pool").getinfo()["id"]
        theirs = self.node("miner").listpeerchannels(pool_id)["channels"]
        return any(c["state"] == "CHANNELD_NORMAL" for c in theirs)

    def _settled(self) -> bool:
        """No HTLC in flight on either node's channels (balances are final)."""
        return all(not c.get("htlcs") for name in NODES for c in self.node(name).listpeerchannels()["channels"])

    def balances(self) -> dict[str, dict[str, int]]:
        """Each node's channel balance and confirmed on-chain funds, in msat, once no HTLC is in flight."""
        procs.wait_until("the channel to settle its HTLCs", self._settled, 30, self.layout.log_file("pool"))
        out = {}
        for name in NODES:
            funds = self.node(name).listfunds()
            out[name] = {
                "channel_msat": sum(int(c["our_amount_msat"]) for c in funds["channels"]
                                    if c.get("state") == "CHANNELD_NORMAL"),
                "onchain_msat": sum(int(o["amount_msat"]) for o in funds["outputs"] if o["status"] == "confirmed"),
            }
        return out


def _listening(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
