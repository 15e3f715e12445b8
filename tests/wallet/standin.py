"""A stand-in for the pool's node as the wallet sees it: a BOLT8 listener (pyln-proto's server side) that does the
``init`` exchange and answers commando commands the way CLN's ``plugins/commando.c`` does.

Each command is handed to ``handler(method, params)``; its result (or a ``StandinError``) becomes the reply. Runes
are checked against ``runes`` (rune -> allowed methods) and ``rates`` (rune -> N of its ``rate=N``), refused as
commando refuses them (code 0x4c51). A rate is what lightningd's ``rate_limit_check`` makes of it: at least 60/N
seconds between two uses of the rune, counted from the last use that passed every check (a refused use does not
count); sooner is ``Invalid rune: Not permitted: too soon``. Faults
for tests: ``split`` (reply parts of that many bytes), ``drop`` (close after reading a command, without a reply),
``ping`` (send a ping before each reply and require the pong), ``offline`` (hang up on every new connection
right after the handshake; ``offline_after_drop`` turns it on when a dropped command has run), and ``reply_hook``
(``hook(conn, request_id, reply_bytes)`` sends whatever it likes instead of the reply; True hangs up after it)
and ``init_hook`` (``hook(conn)``, before ``init`` goes out on a new connection; True hangs up there).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from pyln.proto.wire import LightningServerSocket, PrivateKey

from hashpool_cln.wallet.commando import (
    CMD_CONTINUES,
    CMD_TERM,
    COMMANDO_ERROR_REMOTE_AUTH,
    MSG_INIT,
    MSG_PING,
    MSG_PONG,
    REPLY_CONTINUES,
    REPLY_TERM,
    init_message,
)

NODE_KEY = bytes.fromhex("21" * 32)


class StandinError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


class CommandoStandin:
    def __init__(self, handler: Callable[[str, Any], Any], runes: dict[str, set[str]] | None = None,
                 key: bytes = NODE_KEY, rates: dict[str, int] | None = None) -> None:
        self.handler = handler
        self.runes = runes if runes is not None else {"rune-all": {"*"}}
        self.rates = rates if rates is not None else {}
        self.last_used: dict[str, float] = {}
        self.too_soon = 0  # uses refused for the rate
        self.key = PrivateKey(key)
        self.node_id = self.key.public_key().serializeCompressed().hex()
        self.sock = LightningServerSocket(self.key)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.split = 65000
        self.drop = 0  # commands still to be dropped
        self.drop_method: str | None = None  # only commands of this method are dropped (None: any)
        self.ping = False
        self.offline = False
        self.offline_after_drop = False
        self.pongs = 0
        self.reply_hook: Callable[[Any, int, bytes], bool] | None = None
        self.init_hook: Callable[[Any], bool] | None = None
        self.commands: list[dict[str, Any]] = []
        self.peers: list[str] = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True, name="commando-standin")

    @property
    def address(self) -> str:
        return f"{self.node_id}@127.0.0.1:{self.port}"

    def start(self) -> CommandoStandin:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop = True
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            pass
        self.sock.close()
        self._thread.join(5)

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except Exception:  # a failed handshake (or the stop poke) ends one connection
                continue
            if self._stop:
                break
            # lightningd writes each message whole; pyln-proto writes length and body apart, which Nagle and a
            # delayed ACK would stretch by tens of milliseconds a reply.
            conn.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: Any) -> None:
        try:
            if self.offline:
                return
            self.peers.append(conn.remote_pubkey.serializeCompressed().hex())
            if self.init_hook is not None and self.init_hook(conn):
                return
            conn.send_message(init_message(()))
            while _type(conn.read_message()) != MSG_INIT:
                pass
            parts: dict[int, bytes] = {}
            while True:
                msg = conn.read_message()
                kind = _type(msg)
                if kind not in (CMD_CONTINUES, CMD_TERM):
                    continue
                rid = struct.unpack("!Q", msg[2:10])[0]
                parts[rid] = parts.get(rid, b"") + msg[10:]
                if kind == CMD_TERM:
                    if not self._answer(conn, rid, parts.pop(rid)):
                        return
        except Exception:  # the client went away
            pass
        finally:
            try:
                conn.connection.close()
            except OSError:
                pass

    def _answer(self, conn: Any, rid: int, raw: bytes) -> bool:
        request = json.loads(raw)
        self.commands.append(request)
        if self.drop and self.drop_method in (None, request.get("method")):
            self.drop -= 1
            # Run the command, then vanish: the caller cannot know it ran.
            self._reply_doc(request)
            self.offline = self.offline or self.offline_after_drop
            conn.connection.close()
            return False
        doc = self._reply_doc(request)
        if self.ping:
            conn.send_message(struct.pack("!HH", MSG_PING, 8) + struct.pack("!H", 0))
            while _type(conn.read_message()) != MSG_PONG:
                pass
            self.pongs += 1
        body = json.dumps(doc).encode()
        if self.reply_hook is not None:
            return not self.reply_hook(conn, rid, body)
        pieces = [body[i:i + self.split] for i in range(0, len(body), self.split)]
        for i, piece in enumerate(pieces):
            kind = REPLY_TERM if i == len(pieces) - 1 else REPLY_CONTINUES
            conn.send_message(struct.pack("!HQ", kind, rid) + piece)
        return True

    def _reply_doc(self, request: dict[str, Any]) -> dict[str, Any]:
        base = {"jsonrpc": "2.0", "id": request.get("id")}
        method = request.get("method")
        rune = request.get("rune", "")
        allowed = self.runes.get(rune)
        if allowed is None or ("*" not in allowed and method not in allowed):
            return {**base, "error": {"code": COMMANDO_ERROR_REMOTE_AUTH,
                                      "message": f"Not authorized: method is not one of {sorted(allowed or [])}"}}
        now = time.monotonic()
        if rune in self.rates and rune in self.last_used and now - self.last_used[rune] < 60 / self.rates[rune]:
            self.too_soon += 1
            return {**base, "error": {"code": COMMANDO_ERROR_REMOTE_AUTH,
                                      "message": "Invalid rune: Not permitted: too soon"}}
        self.last_used[rune] = now
        try:
            return {**base, "result": self.handler(method, request.get("params"))}
        except StandinError as exc:
            err = {"code": exc.code, "message": exc.message}
            if exc.data is not None:
                err["data"] = exc.data
            return {**base, "error": err}


def _type(msg: bytes) -> int:
    return struct.unpack("!H", msg[:2])[0]
