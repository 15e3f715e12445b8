"""The mint's chain watcher: block rewards paid to the mint's receive script open, finalise and dissolve epochs.

The watcher reads the chain from bitcoind over JSON-RPC and drives the ledger through three events
(``RewardSink``), following Hashpool's epoch design:

* a coinbase paying the mint's script at height H opens the boundary ``hash_<pool>_H`` **provisionally**;
* once the boundary block has ``confirmations`` confirmations (H itself counts as one) it becomes **final**;
* if the boundary block leaves the best chain before that, the boundary is **dissolved** (the epoch it closed
  is reopened), unless the replacement chain pays the mint at the same height: then it is the same boundary
  **re-mined**, and ``reward_seen`` is called again for H with the new block hash.

Its cursor (last processed height, a window of recent block hashes, the boundaries it tracks) is a small JSON
file written atomically after every step, so a restarted mint resumes from where it stopped and replays every
block it missed, in order. A crash between a ledger call and the cursor write replays that call once:
the ledger's events must be idempotent by (height, block hash).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, Protocol

import aiohttp

log = logging.getLogger("hashpool.chainwatch")

SATS_PER_BTC = 100_000_000
MSAT_PER_SAT = 1000
HASH_WINDOW = 144  # recent block hashes kept for reorg detection; deeper reorgs are reported, not repaired
STATE_VERSION = 1


class ChainError(Exception):
    """Base of the watcher's chain-reading errors."""


class ChainUnavailable(ChainError):
    """bitcoind did not answer (down, warming up, refused the credentials, or answered garbage)."""


class ChainRPCError(ChainError):
    """bitcoind answered a call with a JSON-RPC error."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: {message} (code {code})")
        self.method = method
        self.code = code
        self.message = message


# bitcoind's "not ready yet" answers: the watcher waits them out like an outage.
_WARMUP_CODES = {-28}


def btc_to_msat(value: Any) -> int:
    """A bitcoind amount (a JSON number of BTC with at most 8 decimals, parsed as Decimal or int) in msat."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise ChainUnavailable(f"bitcoind sent an amount that is not a number: {value!r}")
    try:
        sats = Decimal(value) * SATS_PER_BTC
    except InvalidOperation as exc:
        raise ChainUnavailable(f"bitcoind sent an unreadable amount: {value!r}") from exc
    if sats != sats.to_integral_value() or sats < 0:
        raise ChainUnavailable(f"bitcoind sent an amount that is not a whole number of satoshis: {value!r}")
    return int(sats) * MSAT_PER_SAT


@dataclass(frozen=True, slots=True)
class RpcAuth:
    """bitcoind credentials: a cookie file (read at every call: bitcoind rewrites it on restart) or user/password."""

    user: str | None = None
    password: str | None = None
    cookie_file: Path | None = None

    def header(self) -> str:
        """The ``Authorization`` header value (HTTP basic auth, as bitcoind expects)."""
        user, password = self._credentials()
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def _credentials(self) -> tuple[str, str]:
        if self.cookie_file is not None:
            try:
                user, _, password = self.cookie_file.read_text().strip().partition(":")
            except OSError as exc:
                raise ChainUnavailable(f"cannot read bitcoind's cookie file {self.cookie_file}: {exc}") from exc
            return user, password
        if self.user is None or self.password is None:
            raise ChainUnavailable("no bitcoind credentials configured (a cookie file or a user and password)")
        return self.user, self.password


class BitcoinRPC:
    """A small asyncio client of bitcoind's JSON-RPC over HTTP (version 1.0 requests, as bitcoin-cli sends)."""

    def __init__(self, url: str, auth: RpcAuth, *, timeout: float = 30.0) -> None:
        self.url = url
        self.auth = auth
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._next_id = 0

    async def __aenter__(self) -> BitcoinRPC:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, method: str, *params: Any) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        self._next_id += 1
        body = {"jsonrpc": "1.0", "id": self._next_id, "method": method, "params": list(params)}
        try:
            async with self._session.post(self.url, json=body, headers={"Authorization": self.auth.header()}) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise ChainUnavailable(f"bitcoind at {self.url} did not answer {method}: {exc or type(exc).__name__}") \
                from exc
        if status in (401, 403):
            raise ChainUnavailable(f"bitcoind at {self.url} refused the credentials (HTTP {status})")
        try:
            # Amounts stay exact: bitcoind writes them as JSON numbers with 8 decimals.
            answer = json.loads(text, parse_float=Decimal)
        except ValueError as exc:
            raise ChainUnavailable(f"bitcoind answered {method} with HTTP {status} and no JSON") from exc
        if not isinstance(answer, dict):
            raise ChainUnavailable(f"bitcoind answered {method} with a malformed body")
        error = answer.get("error")
        if error:
            code = error.get("code", 0) if isinstance(error, dict) else 0
            message = str(error.get("message", error)) if isinstance(error, dict) else str(error)
            if code in _WARMUP_CODES:
                raise ChainUnavailable(f"bitcoind is not ready: {message}")
            raise ChainRPCError(method, code, message)
        if status != 200:
            raise ChainUnavailable(f"bitcoind answered {method} with HTTP {status}")
        return answer.get("result")


@dataclass(frozen=True, slots=True)
class Reward:
    """A block whose coinbase pays the mint: ``reward_msat`` is the sum of its outputs to the mint's script."""

    height: int
    block_hash: str
    reward_msat: int

    def to_dict(self) -> dict[str, Any]:
        return {"height": self.height, "block_hash": self.block_hash, "reward_msat": self.reward_msat}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reward:
        return cls(height=int(d["height"]), block_hash=str(d["block_hash"]), reward_msat=int(d["reward_msat"]))


class RewardSink(Protocol):
    """What the watcher asks of the ledger. Each call must be idempotent for the same block."""

    async def reward_seen(self, reward: Reward) -> None:
        """A new boundary: close the open epoch and open ``hash_<pool>_<height>``; the reward is provisional."""
        ...

    async def reward_remined(self, old: Reward, new: Reward) -> None:
        """A reorg replaced the provisional boundary block ``old`` with ``new``, which pays the mint at the same
        height: the same boundary re-mined (its confirmation clock restarts with ``new``)."""
        ...

    async def reward_final(self, reward: Reward) -> None:
        """The boundary block has the configured confirmations: the reward is final."""
        ...

    async def reward_orphaned(self, reward: Reward) -> None:
        """The boundary block left the best chain before finality: dissolve the boundary."""
        ...


def coinbase_reward_msat(block: dict[str, Any], script_hex: str) -> int:
    """The sum, in msat, of the coinbase outputs of ``block`` (``getblock`` verbosity 2) paying ``script_hex``."""
    try:
        coinbase = block["tx"][0]
        if "coinbase" not in coinbase["vin"][0]:
            raise ChainUnavailable(f"block {block.get('hash')}: its first transaction is not a coinbase")
        outputs = coinbase["vout"]
        return sum(btc_to_msat(out["value"]) for out in outputs
                   if out["scriptPubKey"]["hex"].lower() == script_hex)
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ChainUnavailable(f"bitcoind sent a block without the expected coinbase fields: {exc!r}") from exc


EventKind = Literal["seen", "remined", "final", "orphaned", "orphaned_final"]


@dataclass(frozen=True, slots=True)
class WatchEvent:
    kind: EventKind
    reward: Reward


@dataclass
class WatchState:
    """The watcher's cursor: the last processed block, recent hashes, and the boundaries it still tracks."""

    height: int | None = None  # None: never synced
    hashes: dict[int, str] = field(default_factory=dict)
    pending: dict[int, Reward] = field(default_factory=dict)  # provisional boundaries by height
    final: dict[int, Reward] = field(default_factory=dict)  # recent final boundaries, to report deep reorgs

    @classmethod
    def load(cls, path: Path) -> WatchState:
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise ChainError(f"the watcher's state file {path} is unreadable: {exc}") from exc
        if raw.get("version") != STATE_VERSION:
            raise ChainError(f"the watcher's state file {path} has an unknown version {raw.get('version')!r}")
        return cls(
            height=raw["height"],
            hashes={int(h): v for h, v in raw["hashes"].items()},
            pending={int(h): Reward.from_dict(v) for h, v in raw["pending"].items()},
            final={int(h): Reward.from_dict(v) for h, v in raw["final"].items()},
        )

    def save(self, path: Path) -> None:
        raw = {
            "version": STATE_VERSION,
            "height": self.height,
            "hashes": {str(h): v for h, v in sorted(self.hashes.items())},
            "pending": {str(h): r.to_dict() for h, r in sorted(self.pending.items())},
            "final": {str(h): r.to_dict() for h, r in sorted(self.final.items())},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(raw, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def forget_above(self, height: int) -> None:
        self.hashes = {h: v for h, v in self.hashes.items() if h <= height}
        self.height = height

    def trim(self) -> None:
        if self.height is None:
            return
        floor = self.height - HASH_WINDOW
        self.hashes = {h: v for h, v in self.hashes.items() if h > floor}
        self.final = {h: r for h, r in self.final.items() if h > floor}


@dataclass(frozen=True, slots=True)
class ChainWatchConfig:
    """Where the chain is, what pays the mint, and when a boundary is final.

    ``receive_script`` is the scriptPubKey (hex) the mint is paid to; ``receive_address`` may be given instead
    and is resolved through bitcoind's ``validateaddress``. ``start_height``: the first block scanned on the very
    first start (default: only blocks mined after it).
    """

    rpc_url: str
    state_path: Path
    auth: RpcAuth
    receive_script: str | None = None
    receive_address: str | None = None
    confirmations: int = 6
    poll_interval: float = 5.0
    start_height: int | None = None
    rpc_timeout: float = 30.0

    def __post_init__(self) -> None:
        if (self.receive_script is None) == (self.receive_address is None):
            raise ValueError("give exactly one of receive_script and receive_address")
        if self.receive_script is not None:
            try:
                bytes.fromhex(self.receive_script)
            except ValueError as exc:
                raise ValueError(f"receive_script is not hex: {self.receive_script!r}") from exc
            if not self.receive_script:
                raise ValueError("receive_script is empty")
        if not 1 <= self.confirmations < HASH_WINDOW:
            raise ValueError(f"confirmations must be between 1 and {HASH_WINDOW - 1}")
        if self.poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        if self.start_height is not None and self.start_height < 0:
            raise ValueError("start_height must not be negative")


class ChainWatcher:
    """Follows the best chain and turns rewards to the mint's script into ledger events, in chain order."""

    def __init__(self, config: ChainWatchConfig, sink: RewardSink, rpc: BitcoinRPC | None = None,
                 on_event: Callable[[WatchEvent], None] | None = None) -> None:
        self.config = config
        self.sink = sink
        self.rpc = rpc or BitcoinRPC(config.rpc_url, config.auth, timeout=config.rpc_timeout)
        self.on_event = on_event
        self.script: str | None = config.receive_script.lower() if config.receive_script else None
        self.state = WatchState.load(config.state_path)
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        await self.rpc.close()

    async def resolve_script(self) -> str:
        if self.script is None:
            info = await self.rpc.call("validateaddress", self.config.receive_address)
            if not isinstance(info, dict) or not info.get("isvalid") or not info.get("scriptPubKey"):
                raise ValueError(f"bitcoind does not accept the mint's receive address {self.config.receive_address}")
            self.script = str(info["scriptPubKey"]).lower()
        return self.script

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Sync every ``poll_interval`` seconds until ``stop`` is set; chain outages are logged and waited out."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await self.sync()
            except ChainError as exc:
                log.warning("chain watcher: %s", exc)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.poll_interval)

    async def sync(self) -> list[WatchEvent]:
        """Bring the ledger up to the current best chain; returns what happened, in order."""
        async with self._lock:
            events: list[WatchEvent] = []
            await self.resolve_script()
            tip = int(await self.rpc.call("getblockcount"))
            cursor = self.state.height if self.state.height is not None else await self._first_start(tip)
            if cursor == tip and self.state.hashes.get(tip) == await self.rpc.call("getbestblockhash"):
                return events
            fork = await self._fork_point(cursor, tip)
            if fork < cursor:
                await self._unwind(fork, tip, events)
            await self._advance(fork, tip, events)
            await self._finalise(events)
            return events

    async def _first_start(self, tip: int) -> int:
        start = self.config.start_height if self.config.start_height is not None else tip + 1
        start = min(start, tip + 1)
        self.state.height = start - 1
        if start > 0:
            self.state.hashes[start - 1] = await self.rpc.call("getblockhash", start - 1)
        self.state.save(self.config.state_path)
        log.info("chain watcher: first start, scanning from height %d", start)
        return start - 1

    async def _fork_point(self, cursor: int, tip: int) -> int:
        """The highest height whose recorded hash is still in the best chain."""
        height = min(cursor, tip)
        known = [h for h in self.state.hashes if h <= height]
        if not known:
            return height
        lowest = min(known)
        while height >= lowest:
            recorded = self.state.hashes.get(height)
            if recorded is not None and recorded == await self.rpc.call("getblockhash", height):
                return height
            height -= 1
        log.error("chain watcher: reorg deeper than the %d blocks remembered; resuming below height %d",
                  HASH_WINDOW, lowest)
        return lowest - 1

    async def _unwind(self, fork: int, tip: int, events: list[WatchEvent]) -> None:
        """Handle boundaries above ``fork`` that left the best chain: re-mined at their height, or dissolved."""
        for height in sorted(h for h in self.state.final if h > fork):
            reward = self.state.final.pop(height)
            log.error("chain watcher: final epoch boundary at height %d (%s) left the best chain",
                      height, reward.block_hash)
            self._emit(events, WatchEvent("orphaned_final", reward))
        orphaned = sorted(h for h in self.state.pending if h > fork)
        replacements: dict[int, Reward] = {}
        for height in orphaned:
            if height <= tip:
                block = await self._block_at(height)
                if block is not None:
                    msat = coinbase_reward_msat(block, self.script or "")
                    if msat:
                        replacements[height] = Reward(height, block["hash"], msat)
        # A boundary can only be kept (re-mined) if every later orphaned boundary is too: dissolving an epoch
        # beneath one that stays would splice the middle out of the chain of epochs.
        dissolve_from = next((h for h in orphaned if h not in replacements), None)
        for height in sorted(orphaned, reverse=True):
            if dissolve_from is None or height < dissolve_from:
                continue
            reward = self.state.pending[height]
            await self.sink.reward_orphaned(reward)
            del self.state.pending[height]
            self.state.save(self.config.state_path)
            self._emit(events, WatchEvent("orphaned", reward))
        for height in orphaned:
            if dissolve_from is not None and height >= dissolve_from:
                break
            reward = replacements[height]
            await self.sink.reward_remined(self.state.pending[height], reward)
            self.state.pending[height] = reward
            self.state.save(self.config.state_path)
            self._emit(events, WatchEvent("remined", reward))
        self.state.forget_above(fork)
        self.state.save(self.config.state_path)

    async def _block_at(self, height: int) -> dict[str, Any] | None:
        try:
            block_hash = await self.rpc.call("getblockhash", height)
        except ChainRPCError as exc:
            if exc.code == -8:  # height out of range: the chain got shorter meanwhile
                return None
            raise
        return await self.rpc.call("getblock", block_hash, 2)

    async def _advance(self, cursor: int, tip: int, events: list[WatchEvent]) -> None:
        """Process every block after ``cursor`` up to ``tip``, one at a time, persisting after each."""
        for height in range(cursor + 1, tip + 1):
            block = await self._block_at(height)
            if block is None:
                return
            if height > 0 and block.get("previousblockhash") != self.state.hashes.get(height - 1):
                log.info("chain watcher: the chain changed during the scan at height %d; next pass resumes", height)
                return
            msat = coinbase_reward_msat(block, self.script or "")
            known = self.state.pending.get(height)
            if msat and (known is None or known.block_hash != block["hash"]):
                reward = Reward(height, block["hash"], msat)
                await self.sink.reward_seen(reward)
                self.state.pending[height] = reward
                self._emit(events, WatchEvent("seen", reward))
            self.state.hashes[height] = block["hash"]
            self.state.height = height
            await self._finalise(events)
            self.state.trim()
            self.state.save(self.config.state_path)

    async def _finalise(self, events: list[WatchEvent]) -> None:
        if self.state.height is None:
            return
        for height in sorted(self.state.pending):
            if self.state.height - height + 1 < self.config.confirmations:
                break
            reward = self.state.pending[height]
            await self.sink.reward_final(reward)
            del self.state.pending[height]
            self.state.final[height] = reward
            self.state.save(self.config.state_path)
            self._emit(events, WatchEvent("final", reward))

    def _emit(self, events: list[WatchEvent], event: WatchEvent) -> None:
        r = event.reward
        log.info("chain watcher: %s boundary at height %d block %s reward %d msat",
                 event.kind, r.height, r.block_hash, r.reward_msat)
        events.append(event)
        if self.on_event is not None:
            self.on_event(event)


class LedgerSink:
    """Drives the reference mint's ``Ledger`` (``apply_reward`` / ``confirm`` / ``dissolve``) from watcher events.

    ``final_confirmations`` is the ledger's finality depth; the watcher must use the same number. The ledger
    answers a repeated event for a block it already handled with ``REWARD_REFUSED``: such answers are logged,
    not raised, so a replay after a crash (or a reward the ledger refuses) never stalls the watcher.
    """

    def __init__(self, ledger: Any, final_confirmations: int) -> None:
        self.ledger = ledger
        self.final_confirmations = final_confirmations

    async def _tolerating_refusal(self, what: str, call: Any) -> None:
        from hashpool_cln.refmint.errors import Code, MintError

        try:
            await call
        except MintError as exc:
            if exc.code != Code.REWARD_REFUSED:
                raise
            log.warning("chain watcher: the ledger refused %s: %s", what, exc.detail)

    async def reward_seen(self, reward: Reward) -> None:
        await self._tolerating_refusal(
            f"the reward at height {reward.height}",
            self.ledger.apply_reward(reward.height, reward.block_hash, reward.reward_msat, 1))

    async def reward_remined(self, old: Reward, new: Reward) -> None:
        # The reference ledger knows rewards by block: a re-mined boundary is the old reward dissolved and the
        # new block's reward applied at the same height, which the ledger recognises as the same boundary (it
        # keeps the epoch the boundary opened and gives the new reward to the epoch it closed).
        await self.reward_orphaned(old)
        await self.reward_seen(new)

    async def reward_final(self, reward: Reward) -> None:
        await self._tolerating_refusal(
            f"finality of the reward at height {reward.height}",
            self.ledger.confirm(reward.block_hash, self.final_confirmations))

    async def reward_orphaned(self, reward: Reward) -> None:
        await self._tolerating_refusal(
            f"dissolving the reward at height {reward.height}", self.ledger.dissolve(reward.block_hash))


class BackgroundWatcher:
    """Runs a ``ChainWatcher`` as a task of a long-lived asyncio program (the mint's server)."""

    def __init__(self, watcher: ChainWatcher) -> None:
        self.watcher = watcher
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.watcher.run(self._stop), name="chainwatch")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        await self.watcher.close()


def add_arguments(parser: Any) -> None:
    """The watcher's command-line options (an ``argparse`` parser or group); off unless --bitcoin-rpc-url."""
    parser.add_argument("--bitcoin-rpc-url", help="bitcoind JSON-RPC URL, e.g. http://127.0.0.1:18443/ "
                        "(turns the chain watcher on)")
    parser.add_argument("--bitcoin-rpc-cookie", type=Path, help="bitcoind's .cookie file")
    parser.add_argument("--bitcoin-rpc-user", help="bitcoind rpcuser (with --bitcoin-rpc-password)")
    parser.add_argument("--bitcoin-rpc-password", help="bitcoind rpcpassword")
    parser.add_argument("--receive-address", help="the address block rewards pay the mint at")
    parser.add_argument("--receive-script", help="the scriptPubKey (hex) block rewards pay the mint at")
    parser.add_argument("--chainwatch-state", type=Path, help="the watcher's cursor file "
                        "(default: chainwatch.json in the data directory)")
    parser.add_argument("--chainwatch-start-height", type=int, help="on the very first start, scan from this height "
                        "(default: only blocks mined afterwards)")
    parser.add_argument("--poll-interval", type=float, default=5.0, help="seconds between chain polls")


def config_from_args(args: Any, data_dir: Path, confirmations: int) -> ChainWatchConfig | None:
    """The watcher's configuration from ``add_arguments`` options; None when no bitcoind URL is given.

    Raises ValueError naming the option that is missing or wrong.
    """
    if not args.bitcoin_rpc_url:
        return None
    if args.bitcoin_rpc_cookie is not None:
        auth = RpcAuth(cookie_file=args.bitcoin_rpc_cookie)
    elif args.bitcoin_rpc_user and args.bitcoin_rpc_password:
        auth = RpcAuth(user=args.bitcoin_rpc_user, password=args.bitcoin_rpc_password)
    else:
        raise ValueError("--bitcoin-rpc-url needs --bitcoin-rpc-cookie or --bitcoin-rpc-user and "
                         "--bitcoin-rpc-password")
    if not args.receive_address and not args.receive_script:
        raise ValueError("--bitcoin-rpc-url needs --receive-address or --receive-script")
    return ChainWatchConfig(
        rpc_url=args.bitcoin_rpc_url, auth=auth,
        state_path=args.chainwatch_state or data_dir / "chainwatch.json",
        receive_address=args.receive_address or None, receive_script=args.receive_script or None,
        confirmations=confirmations, poll_interval=args.poll_interval, start_height=args.chainwatch_start_height,
    )


def attach(app: Any, config: ChainWatchConfig, ledger_key: Any) -> None:
    """Run the watcher inside an aiohttp mint app, driving the ledger found at ``app[ledger_key]``.

    Append it after the ledger's own cleanup context: it starts once the ledger is open and stops before the
    ledger closes.
    """

    async def watching(app: Any) -> Any:
        background = BackgroundWatcher(ChainWatcher(config, LedgerSink(app[ledger_key], config.confirmations)))
        await background.start()
        try:
            yield
        finally:
            await background.stop()

    app.cleanup_ctx.append(watching)
