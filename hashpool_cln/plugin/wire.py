"""The plugin protocol as this plugin reads and writes it: pyln's ``Plugin`` with a reading that no message can
break.

pyln decodes every message on its stdin loop with a bare ``json.loads`` and dispatches it unguarded: a number of
5,000 digits, an array nested 5,000 deep, bytes that are not UTF-8, a request without ``params`` or a method it
does not know ends the process, and lightningd does not restart a dynamic plugin. Here each message is decoded on
its own, checked, and dispatched inside a guard:

- a message that cannot be decoded or has the wrong shape gets a JSON-RPC error when its id can be read (the
  top-level ``id`` is looked for without decoding the rest), and a log line when it cannot;
- a request whose ``params`` hold what no method takes (text with lone surrogates, integers outside
  [-2^63, 2^64), nesting deeper than ``MAX_DEPTH``) is refused with -32602 before any handler sees it;
- every answer and notification is written even when it holds text that UTF-8 cannot carry: such text is
  replaced by U+FFFD, except in the request id, which is written back escaped exactly as it came.

A message longer than ``LARGE_MESSAGE`` (a token of thousands of proofs) is decoded and checked in a worker
process (``desk.cpu.Worker``), the same way: decoding a megabyte of JSON is one call that holds the interpreter's
lock for milliseconds, and every other request would wait it out. The stdin loop reads on meanwhile, so a large
request may be dispatched after requests that came behind it; each is still answered once.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pyln.client import Plugin
from pyln.client.plugin import Request, RequestState

from hashpool_cln.desk import cpu
from hashpool_cln.desk.errors import Code
from hashpool_cln.plugin.bridge import INTERNAL_ERROR, RequestError, answer

log = logging.getLogger("hashpool.plugin")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = int(Code.INVALID_PARAMS)
# No method takes deeper parameters than a list of objects; tokens arrive as text.
MAX_DEPTH = 32
INT_MIN, INT_MAX = -(2**63), 2**64 - 1
# How much of an undecodable message is searched for its id (ids come first in lightningd's requests).
ID_SCAN_LIMIT = 1 << 20
# Messages longer than this are decoded in the worker process.
LARGE_MESSAGE = 256 * 1024

_SURROGATE = re.compile("[\ud800-\udfff]")
# The structural tokens of JSON text: whole strings, and the punctuation between values.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]')

RawHandler = Callable[[Request, Any], None]


@dataclass(frozen=True)
class Message:
    id: Any  # None: a notification
    method: str
    params: Any
    origin: Any = None


class WireError(Exception):
    """A message that cannot be served: ``code`` and ``message`` for its answer, ``id`` if one could be read."""

    def __init__(self, code: int, message: str, req_id: Any = None, method: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.id = req_id
        self.method = method

    def __reduce__(self) -> tuple:  # it crosses back from the worker process
        return WireError, (self.code, self.message, self.id, self.method)


def messages(stream: Iterable[bytes]) -> Iterator[bytes]:
    """lightningd's messages, as pyln splits them (each ends with a blank line), read line by line: a megabyte
    message is not copied and searched again for every line that follows it."""
    parts: list[bytes] = []
    for line in stream:
        if line == b"\n":
            if parts:
                yield b"".join(parts)
                parts = []
        else:
            parts.append(line)


def decoded(payload: bytes) -> Message | WireError:
    """``decode(payload)``, its WireError returned rather than raised (for the worker process)."""
    try:
        return decode(payload)
    except WireError as exc:
        return exc


def decode(payload: bytes) -> Message:
    """One message from lightningd, decoded and checked; WireError when it cannot be served."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        text = payload.decode("utf-8", errors="replace")
        raise _unreadable(text, "the message is not valid UTF-8") from None
    try:
        obj = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise _unreadable(text, "the message nests too deeply") from None
    except ValueError as exc:  # JSONDecodeError, integers beyond Python's digit limit, NaN/Infinity
        why = "a number in the message has too many digits" if "digits" in str(exc) else "the message is not JSON"
        raise _unreadable(text, why) from None
    if not isinstance(obj, dict):
        raise WireError(INVALID_REQUEST, "a request must be a JSON object")
    req_id = obj.get("id")
    if req_id is not None and not _usable_id(req_id):
        raise WireError(INVALID_REQUEST, "a request id must be a string or an integer")
    method = obj.get("method")
    if not isinstance(method, str) or _SURROGATE.search(method):
        raise WireError(INVALID_REQUEST, "a request must name its method", req_id)
    params = obj.get("params", {})
    if not isinstance(params, (dict, list)):
        raise WireError(INVALID_REQUEST, "params must be an object or an array", req_id, method)
    problem = params_problem(params)
    if problem is not None:
        raise WireError(INVALID_PARAMS, problem, req_id, method)
    return Message(req_id, method, params, obj.get("origin"))


def params_problem(params: Any) -> str | None:
    """Why no method could take ``params`` (None when nothing is wrong); walked without recursion."""
    stack: list[tuple[Any, int]] = [(params, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"params nest deeper than {MAX_DEPTH} levels"
        if isinstance(value, str):
            if not value.isascii() and _SURROGATE.search(value):  # isascii: a megabyte token in microseconds
                return "params hold text that is not valid Unicode (a lone surrogate)"
        elif isinstance(value, bool) or value is None or isinstance(value, float):
            continue
        elif isinstance(value, int):
            if not INT_MIN <= value <= INT_MAX:
                return "params hold an integer beyond 64 bits"
        elif isinstance(value, dict):
            for key, item in value.items():
                if not key.isascii() and _SURROGATE.search(key):
                    return "params hold a name that is not valid Unicode (a lone surrogate)"
                stack.append((item, depth + 1))
        else:
            stack.extend((item, depth + 1) for item in value)
    return None


def top_level(text: str, names: tuple[str, ...] = ("id", "method")) -> dict[str, Any]:
    """The members ``names`` of the JSON object in ``text``, read without decoding the rest (which may be what
    cannot be decoded); members that are missing or unreadable are left out."""
    found: dict[str, Any] = {}
    depth, key, start, last = 0, None, 0, None
    for match in _TOKENS.finditer(text, 0, min(len(text), ID_SCAN_LIMIT)):
        token = match.group()
        if token in ("{", "["):
            depth += 1
        elif token in ("}", "]", ","):
            if depth == 1 and key is not None:
                if key in names:
                    _keep(found, key, text[start:match.start()])
                key = None
            if token != ",":
                depth -= 1
                if depth <= 0:
                    break
        elif token == ":":
            if depth == 1:
                key, start = _text(last), match.end()
        elif depth == 1 and key is None:
            last = token
        if len(found) == len(names):
            break
    return found


def _keep(found: dict[str, Any], key: str, raw: str) -> None:
    raw = raw.strip()
    if not raw or len(raw) > 1024:
        return
    try:
        found[key] = json.loads(raw)
    except (ValueError, RecursionError):
        pass


def _text(token: str | None) -> str | None:
    try:
        return json.loads(token) if token else None
    except ValueError:
        return None


def _unreadable(text: str, why: str) -> WireError:
    members = top_level(text)
    req_id = members.get("id")
    method = members.get("method")
    return WireError(PARSE_ERROR, why, req_id if _usable_id(req_id) else None,
                     method if isinstance(method, str) else "")


def _usable_id(value: Any) -> bool:
    return (isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)
                                       and INT_MIN <= value <= INT_MAX))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def encode(obj: dict[str, Any]) -> bytes:
    """A message as lightningd reads it (UTF-8 JSON and a blank line), whatever text ``obj`` holds."""
    try:
        return (json.dumps(obj, ensure_ascii=False) + "\n\n").encode("utf-8")
    except UnicodeEncodeError:
        pass
    scrubbed = {k: (v if k == "id" else scrub(v)) for k, v in obj.items()}
    # ASCII-only: an id holding a lone surrogate goes back as the escape it came as, so lightningd matches it.
    return (json.dumps(scrubbed, ensure_ascii=True) + "\n\n").encode("ascii")


def scrub(value: Any) -> Any:
    """``value`` with every lone surrogate in its text replaced by U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


class GuardedPlugin(Plugin):
    """pyln's Plugin, reading and writing the protocol as this module says. Methods that carry a ``raw`` handler
    (ours) get the request and its params unbound; pyln's own (``getmanifest``, ``init``) run as pyln runs them,
    inside the same guard."""

    _initialised = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._decoder = cpu.Worker()
        self._dispatch = threading.Lock()  # the stdin loop and the worker's answers take turns

    def run(self) -> None:
        if os.environ.get("LIGHTNINGD_PLUGIN") != "1":
            self.print_usage()
            return
        try:
            for payload in messages(self.stdin.buffer):
                self.handle(payload)
        finally:
            self._decoder.close()

    def handle(self, payload: bytes) -> None:
        """Serve one message (a large one once the worker has decoded it); never raises."""
        if not payload.strip():
            return
        if len(payload) > LARGE_MESSAGE:
            try:
                future = self._decoder.submit(decoded, payload)
            except Exception as exc:  # no worker to be had: decoded here, as a small message is
                log.info("decoding a large message here: %s", type(exc).__name__)
            else:
                future.add_done_callback(lambda done: self._serve(_outcome(done, payload)))
                return
        self._serve(decoded(payload))

    def _serve(self, outcome: Message | WireError) -> None:
        with self._dispatch:
            if isinstance(outcome, WireError):
                self._refuse(outcome)
                return
            message = outcome
            if message.id is None:
                try:
                    self._notification(message)
                except Exception as exc:  # logged by class: its message could quote what the notification held
                    log.warning("notification %s failed: %s", message.method[:64], type(exc).__name__)
                return
            request = Request(plugin=self, req_id=message.id, method=message.method, params=message.params,
                              origin=message.origin)
            try:
                self._request(request, message)
            except Exception as exc:  # a bug of ours or pyln's: the caller still gets its one answer
                log.warning("%s failed unexpectedly: %s", message.method[:64], type(exc).__name__)
                if request.state == RequestState.PENDING:
                    answer(request, error=RequestError(INTERNAL_ERROR, "internal error; see the node's log"))

    def _request(self, request: Request, message: Message) -> None:
        if message.method == "init" and self._initialised:
            answer(request, error=RequestError(INVALID_REQUEST, "the plugin is already initialised"))
            return
        method = self.methods.get(message.method)
        if method is None:
            answer(request, error=RequestError(METHOD_NOT_FOUND, "no such method"))
            return
        raw: RawHandler | None = getattr(method, "raw", None)
        request.background = method.background
        if raw is not None:
            raw(request, message.params)
            return
        try:
            result = self._exec_func(method.func, request)
        except Exception as exc:
            # pyln's own methods: their failures would answer with a traceback; the class name is enough here.
            log.info("%s refused: %s", message.method, type(exc).__name__)
            answer(request, error=RequestError(INVALID_PARAMS, f"bad parameters for {message.method}"))
            return
        if message.method == "init":
            self._initialised = True
        if not method.background:
            answer(request, result)

    def _notification(self, message: Message) -> None:
        if not isinstance(message.params, dict):
            log.info("notification %s ignored: its params are not an object", message.method[:64])
            return
        if message.method not in self.subscriptions and "*" not in self.subscriptions:
            log.debug("notification %s ignored: no subscription", message.method[:64])
            return
        request = Request(plugin=self, req_id=None, method=message.method, params=message.params,
                          origin=message.origin)
        self._dispatch_notification(request)

    def _refuse(self, exc: WireError) -> None:
        if exc.id is None:
            log.info("a message was dropped: %s (no id to answer)", exc.message)
            return
        request = Request(plugin=self, req_id=exc.id, method=exc.method, params=None)
        answer(request, error=RequestError(exc.code, exc.message))

    def _write_locked(self, obj: Any) -> None:
        data = encode(obj)
        with self.write_lock:
            self.stdout.buffer.write(data)
            self.stdout.flush()


def _outcome(done: Any, payload: bytes) -> Message | WireError:
    """What the worker decoded; decoded here instead when the worker died or was stopped."""
    try:
        return done.result()
    except BaseException as exc:  # BrokenExecutor, CancelledError at exit
        log.info("decoding a large message here: %s", type(exc).__name__)
        return decoded(payload)
