"""A commando client over a direct BOLT8 connection: the wallet talks to the pool's node as a Lightning peer.

The connection is made with pyln-proto's Noise transport (``Noise_XK_secp256k1_ChaChaPoly_SHA256``, BOLT8),
then the BOLT1 ``init`` exchange, then commando's custom messages (CLN ``plugins/commando.c``): a command is
``0x4c4d`` (more to come) ... ``0x4c4f`` (last part), a reply ``0x594b`` ... ``0x594d``; each message is
``u16 type || u64 request id || JSON bytes``, parts of at most 65000 bytes. The command's JSON carries ``id``,
``method``, ``params`` and ``rune``; the reply is a JSON-RPC object with ``result`` or ``error``.

pyln-proto calls itself a testing library. Two of its gaps matter to a wallet and are closed here: it does not
raise when act two's authentication tag fails (the step that proves the node holds its key), and it reads and
writes the socket without looping over short reads and writes. Its handshake and key rotation are checked
against the BOLT8 test vectors in the test suite.

Three outcomes besides a result:

* CommandoUnavailable: no connection, no handshake, no ``init``, or the connection failed before the command's
  last part went out. The node did not run the command.
* CommandoError: the node answered with an error (the desk's JSON-RPC codes pass through unchanged; commando's
  own are ``0x4c50`` and ``0x4c51`` for a refused rune). A rune refused as ``too soon`` (its ``rate=N`` or
  ``per=`` restriction: at least 60/N seconds between two uses) never ran the command; ``too_soon`` tells it.
* OutcomeUnknown: the command went out and no complete answer came back (dropped connection, timeout, garbled
  reply). The node may have run it: ask again by a means that cannot act twice.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from pyln.proto.wire import (
    LightningConnection,
    PrivateKey,
    PublicKey,
    Sha256Mixer,
    decryptWithAD,
    ecdh,
    hkdf_two_keys,
)

MSG_INIT = 16
MSG_ERROR = 17
MSG_PING = 18
MSG_PONG = 19
CMD_CONTINUES = 0x4C4D
CMD_TERM = 0x4C4F
REPLY_CONTINUES = 0x594B
REPLY_TERM = 0x594D
PART_BYTES = 65000  # what commando itself uses: a Lightning message is at most 65535 bytes
MAX_REPLY_BYTES = 32 * 1024 * 1024
COMMANDO_ERROR_REMOTE = 0x4C50
COMMANDO_ERROR_REMOTE_AUTH = 0x4C51
# Optional (odd) bits only, so no node can refuse us for one: data_loss_protect, var_onion_optin,
# option_static_remotekey, payment_secret. A wallet with no channels needs none of them; nodes expect them.
INIT_FEATURES = (1, 9, 13, 15)
DEFAULT_PORT = 9735
DEFAULT_TIMEOUT = 60.0
# A connection left idle longer is made afresh before the next command: meanwhile the node may have pinged us,
# had no answer (nobody reads an idle connection) and hung up, and a command sent into a dead connection would
# end as an outcome unknown instead of a clean retry.
IDLE_RECONNECT = 20.0

_NODE_ID = re.compile(r"^0[23][0-9a-f]{64}$")


class CommandoClientError(Exception):
    """Base of what the commando client raises."""


class CommandoUnavailable(CommandoClientError):
    """No usable connection: the node did not run the command."""


class OutcomeUnknown(CommandoClientError):
    """The command went out and no complete answer came back: the node may have run it."""


class CommandoError(CommandoClientError):
    """The node answered with a JSON-RPC error; ``code``, ``message`` and ``data`` are the answer's."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message
        self.data = data


class HandshakeError(CommandoUnavailable):
    """The BOLT8 handshake failed: wrong node key, bad version, bad tag, or a short read."""


@dataclass(frozen=True, slots=True)
class NodeAddress:
    """A node's ``id@host[:port]``."""

    node_id: str
    host: str
    port: int = DEFAULT_PORT

    @classmethod
    def parse(cls, text: str) -> NodeAddress:
        if not isinstance(text, str) or "@" not in text:
            raise ValueError(f"a node address is <node id>@<host>[:<port>], not {text!r}")
        node_id, _, where = text.strip().partition("@")
        node_id = node_id.lower()
        if not _NODE_ID.match(node_id):
            raise ValueError("the node id must be 66 hex digits (a compressed public key)")
        host, port = where, DEFAULT_PORT
        if where.startswith("["):  # [ipv6]:port
            host, _, rest = where[1:].partition("]")
            if rest.startswith(":"):
                port = _port(rest[1:])
        elif where.count(":") == 1:
            host, _, p = where.partition(":")
            port = _port(p)
        if not host:
            raise ValueError(f"no host in {text!r}")
        return cls(node_id, host, port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.node_id}@{host}:{self.port}"


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"bad port {text!r}")
    return int(text)


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline passed")
        return left


class _ExactSocket:
    """What pyln-proto's connection reads from and writes to: whole reads, whole writes, one deadline."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self.sock = sock
        self.deadline = deadline

    def recv(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            self.sock.settimeout(self.deadline.left())
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                break  # the caller sees the short read
            data += chunk
        return bytes(data)

    def send(self, data: bytes) -> int:
        self.sock.settimeout(self.deadline.left())
        self.sock.sendall(data)
        return len(data)

    def close(self) -> None:
        self.sock.close()


class StrictConnection(LightningConnection):
    """pyln-proto's BOLT8 connection, with act two's tag checked (pyln-proto computes the check, then drops it)."""

    def handshake_act_two_initiator(self, m: bytes) -> None:
        if len(m) != 50:
            raise HandshakeError(f"act two: short read ({len(m)} of 50 bytes)")
        if m[0] != 0:
            raise HandshakeError(f"act two: unsupported handshake version {m[0]}")
        try:
            re_ = PublicKey(m[1:34])
        except Exception:  # the library raises several kinds for a bad point
            raise HandshakeError("act two: the node's ephemeral key is not a valid point") from None
        h = Sha256Mixer(b"")
        h.hash = self.handshake["h"]
        h.update(re_.serializeCompressed())
        ee = ecdh(self.handshake["e"], re_)
        chaining_key, temp_k2 = hkdf_two_keys(salt=self.chaining_key, ikm=ee.data)
        try:
            decryptWithAD(temp_k2, self.nonce(0), h.digest(), m[34:])
        except InvalidTag:
            raise HandshakeError("act two: bad tag; the peer does not hold the node key asked for") from None
        super().handshake_act_two_initiator(m)
        if (self.chaining_key, self.temp_k2) != (chaining_key, temp_k2):
            raise HandshakeError("act two: inconsistent key schedule")


def node_key_pubkey(key: bytes) -> str:
    return PrivateKey(key).public_key().serializeCompressed().hex()


def init_message(features: tuple[int, ...] = INIT_FEATURES) -> bytes:
    """BOLT1 ``init``: empty global features, then ``features`` as a big-endian bitfield, no TLVs."""
    bits = 0
    for bit in features:
        bits |= 1 << bit
    field = bits.to_bytes((bits.bit_length() + 7) // 8, "big") if bits else b""
    return struct.pack("!HH", MSG_INIT, 0) + struct.pack("!H", len(field)) + field


def commando_parts(request_id: int, payload: bytes) -> list[bytes]:
    """The messages that carry one command: parts of at most PART_BYTES, the last one typed CMD_TERM."""
    pieces = [payload[i:i + PART_BYTES] for i in range(0, len(payload), PART_BYTES)] or [b""]
    return [struct.pack("!HQ", CMD_TERM if i == len(pieces) - 1 else CMD_CONTINUES, request_id) + piece
            for i, piece in enumerate(pieces)]


def parse_reply(raw: bytes) -> Any:
    """A commando reply's JSON: the result, or CommandoError; OutcomeUnknown for anything unreadable."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise OutcomeUnknown("the node's reply is not JSON") from None
    if not isinstance(doc, dict):
        raise OutcomeUnknown("the node's reply is not a JSON object")
    err = doc.get("error")
    if err is not None:
        code = rpc_code(err.get("code")) if isinstance(err, dict) else None
        if code is None:
            raise OutcomeUnknown("the node's error reply has no code")
        # The message is shown and stored: a lone surrogate (escaped in the JSON) becomes "?".
        message = str(err.get("message", "")).encode("utf-8", "replace").decode("utf-8")
        return _raise(CommandoError(code, message, err.get("data")))
    if "result" not in doc:
        raise OutcomeUnknown("the node's reply has neither result nor error")
    return doc["result"]


def rpc_code(value: Any) -> int | None:
    """``value`` if it can be a JSON-RPC error code (an integer of 64 bits, not a boolean), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return value
    return None


def too_soon(exc: CommandoError) -> bool:
    """Whether the rune was refused only because it was used too recently: the command did not run."""
    return exc.code == COMMANDO_ERROR_REMOTE_AUTH and exc.message.endswith("too soon")


def _raise(exc: Exception) -> Any:
    raise exc


class CommandoClient:
    """One BOLT8 connection to a node; ``call`` runs a command under a rune. Use as a context manager."""

    def __init__(self, node: NodeAddress, local_key: bytes, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.node = node
        self._key = PrivateKey(local_key)
        self.timeout = timeout
        self._conn: StrictConnection | None = None
        self._raw: _ExactSocket | None = None
        self._last_used = 0.0
        self.remote_features = b""

    def __repr__(self) -> str:  # never shows the key
        return f"CommandoClient({self.node})"

    def __enter__(self) -> CommandoClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def local_id(self) -> str:
        return self._key.public_key().serializeCompressed().hex()

    def connect(self) -> None:
        """TCP, the Noise handshake, then ``init`` both ways; CommandoUnavailable on any failure."""
        self.close()
        deadline = _Deadline(self.timeout)
        try:
            sock = socket.create_connection((self.node.host, self.node.port), timeout=deadline.left())
        except OSError as exc:
            raise CommandoUnavailable(f"cannot reach {self.node.host}:{self.node.port}: {exc}") from None
        # pyln-proto writes a message's length and body apart: without this, Nagle holds the body back until the
        # node acknowledges the length, which a delayed ACK makes tens of milliseconds on every command.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw = _ExactSocket(sock, deadline)
        try:
            conn = StrictConnection(raw, PublicKey(bytes.fromhex(self.node.node_id)), self._key, is_initiator=True)
            conn.shake()
            conn.send_message(init_message())
            self.remote_features = self._await_init(conn)
        except HandshakeError:
            raw.close()
            raise
        except (OSError, ValueError, InvalidTag, struct.error) as exc:
            raw.close()
            raise CommandoUnavailable(f"no Lightning session with {self.node}: {_why(exc)}") from None
        self._conn, self._raw = conn, raw
        self._last_used = time.monotonic()

    def _await_init(self, conn: StrictConnection) -> bytes:
        while True:
            msg = conn.read_message()
            kind = _msg_type(msg)
            if kind == MSG_INIT:
                gflen = struct.unpack("!H", msg[2:4])[0]
                flen = struct.unpack("!H", msg[4 + gflen:6 + gflen])[0]
                return msg[6 + gflen:6 + gflen + flen]
            if kind == MSG_ERROR:
                raise CommandoUnavailable(f"the node refused the connection: {_error_text(msg)}")
            # BOLT1: nothing but init may come first; ignore what an odd type allows us to ignore.

    def close(self) -> None:
        if self._raw is not None:
            try:
                self._raw.close()
            except OSError:
                pass
        self._conn = self._raw = None

    def call(self, method: str, params: dict[str, Any] | list[Any], rune: str, *,
             timeout: float | None = None) -> Any:
        """Run ``method`` on the node under ``rune`` and return its result (see the module's three outcomes)."""
        if self._conn is None or self._raw is None or time.monotonic() - self._last_used > IDLE_RECONNECT:
            self.connect()
        assert self._conn is not None and self._raw is not None
        self._raw.deadline = _Deadline(self.timeout if timeout is None else timeout)
        request_id = secrets.randbits(64)
        payload = json.dumps({"id": f"hashpool-wallet/{request_id:016x}", "method": method, "params": params,
                              "rune": rune}, separators=(",", ":")).encode()
        parts = commando_parts(request_id, payload)
        sent_last = False
        try:
            for i, part in enumerate(parts):
                sent_last = i == len(parts) - 1  # from here on the node may have the whole command
                self._conn.send_message(part)
            reply = self._read_reply(request_id)
            self._last_used = time.monotonic()
            return parse_reply(reply)
        except (OSError, ValueError, InvalidTag, struct.error) as exc:
            self.close()
            if not sent_last:
                raise CommandoUnavailable(f"the connection failed before {method} was sent: {_why(exc)}") from None
            raise OutcomeUnknown(f"no answer to {method} ({_why(exc)}); it may have run") from None

    def _read_reply(self, request_id: int) -> bytes:
        assert self._conn is not None
        body = bytearray()
        while True:
            msg = self._conn.read_message()
            kind = _msg_type(msg)
            if kind == MSG_PING:
                self._pong(msg)
            elif kind == MSG_ERROR:
                raise ConnectionError(f"the node sent an error: {_error_text(msg)}")
            elif kind in (REPLY_CONTINUES, REPLY_TERM) and len(msg) >= 10:
                if struct.unpack("!Q", msg[2:10])[0] != request_id:
                    continue  # a late reply to an earlier call
                body += msg[10:]
                if len(body) > MAX_REPLY_BYTES:
                    raise ValueError(f"reply larger than {MAX_REPLY_BYTES} bytes")
                if kind == REPLY_TERM:
                    return bytes(body)

    def _pong(self, ping: bytes) -> None:
        assert self._conn is not None
        num_pong_bytes = struct.unpack("!H", ping[2:4])[0] if len(ping) >= 4 else 0
        if num_pong_bytes < 65532:  # BOLT1: larger asks get no answer
            self._conn.send_message(struct.pack("!HH", MSG_PONG, num_pong_bytes) + bytes(num_pong_bytes))


def _msg_type(msg: bytes) -> int:
    if len(msg) < 2:
        raise ValueError("a Lightning message shorter than its type")
    return struct.unpack("!H", msg[:2])[0]


def _error_text(msg: bytes) -> str:
    # error: u16 type, channel_id[32], u16 len, data
    if len(msg) < 36:
        return "(malformed error)"
    length = struct.unpack("!H", msg[34:36])[0]
    return msg[36:36 + length].decode("utf-8", "replace")[:300]


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, InvalidTag):
        return "a message failed authentication"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
