"""A small asyncio JSON-RPC 2.0 client for lightningd's unix socket.

Why not pyln's LightningRpc: it blocks, has no timeout and no lock. Here each call has a connection to itself
(lightningd accepts many), so a slow ``xpay`` never holds up a ``decode``, a lost connection affects one call
only, and ``asyncio.wait_for`` gives every call a real deadline without a thread per call. A connection whose
call ended cleanly is kept for a later call (``Connections``): lightningd answers any number of requests on one,
and opening one costs both sides more than a ``decode`` does.

lightningd answers each request with one JSON object followed by a blank line; we read until one complete
object with our id has arrived and do not rely on the separator.
"""

from __future__ import annotations

import asyncio
import codecs
import itertools
import json
import os
import sys
from typing import Any

from hashpool_cln.streams import Connections

# Responses larger than this are refused rather than buffered without end.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# sun_path is 108 bytes on Linux; longer paths are reached through /proc/self/fd (as lightningd's own tools do).
_MAX_SUN_PATH = 100

_ids = itertools.count(1)


class RpcError(Exception):
    """lightningd answered with a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: object = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message
        self.data = data


class RpcUnavailable(Exception):
    """No usable answer: socket missing, connection refused or lost, timeout, or an unreadable answer."""


async def _open(path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if len(os.fsencode(path)) <= _MAX_SUN_PATH or not sys.platform.startswith("linux"):
        return await asyncio.open_unix_connection(path)
    dirfd = os.open(os.path.dirname(path) or ".", os.O_PATH)
    try:
        return await asyncio.open_unix_connection(f"/proc/self/fd/{dirfd}/{os.path.basename(path)}")
    finally:
        os.close(dirfd)


# Idle connections kept: as many as a busy desk has calls in flight at once (sixteen callers, each in an ``xpay``
# while another redemption decodes). With fewer, every burst of payments ends with connections closed that the
# next burst opens again, and an open costs lightningd and the plugin more than the call it carries.
KEEP = 32


def connections(path: str, keep: int = KEEP) -> Connections:
    """Kept connections to the node's socket at ``path`` (lightningd never closes an idle one)."""
    return Connections(lambda: _open(path), keep)


async def _read_response(reader: asyncio.StreamReader, request_id: str) -> tuple[dict[str, Any], bool]:
    """Our answer, and whether nothing but whitespace came after it (the connection can carry another call)."""
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    buf = ""
    size = 0
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            if buf.strip():
                raise RpcUnavailable("connection closed after an incomplete or non-JSON answer")
            raise RpcUnavailable("connection closed before an answer arrived")
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise RpcUnavailable(f"answer larger than {MAX_RESPONSE_BYTES} bytes")
        try:
            buf += utf8.decode(chunk)
        except UnicodeDecodeError:
            raise RpcUnavailable("answer is not UTF-8") from None
        while True:
            buf = buf.lstrip()
            if not buf:
                break
            try:
                obj, end = decoder.raw_decode(buf)
            except json.JSONDecodeError:
                break  # incomplete so far: read more
            buf = buf[end:]
            if isinstance(obj, dict) and obj.get("id") == request_id:
                return obj, not buf.strip() and not utf8.getstate()[0]
            # Anything else (a notification, a stray answer) is not ours: skip it.


async def call(path: str, method: str, params: dict[str, Any] | list[Any], timeout: float,
               connections: Connections | None = None) -> Any:
    """Call ``method`` and return its ``result``; RpcError for error answers, RpcUnavailable otherwise.

    ``connections``: where to take a connection from and give it back to; without it, the call's own."""
    request_id = f"hashpool-cln:{method}#{next(_ids)}"
    request = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
    writer: asyncio.StreamWriter | None = None

    async def exchange() -> dict[str, Any]:
        nonlocal writer
        if connections is None:
            reader, writer = await _open(path)
        else:
            (reader, writer), _ = await connections.take()
        writer.write(request.encode("utf-8"))
        await writer.drain()
        answer, clean = await _read_response(reader, request_id)
        if clean and connections is not None:
            connections.give_back(reader, writer)
            writer = None  # kept: not closed below
        return answer

    try:
        answer = await asyncio.wait_for(exchange(), timeout)
    except asyncio.TimeoutError:
        raise RpcUnavailable(f"no answer within {timeout:g} s") from None
    except FileNotFoundError:
        raise RpcUnavailable(f"socket {path} does not exist") from None
    except ConnectionRefusedError:
        raise RpcUnavailable(f"connection to {path} refused") from None
    except ConnectionError as e:
        raise RpcUnavailable(f"connection lost: {e}") from None
    except OSError as e:
        raise RpcUnavailable(f"cannot reach {path}: {e.strerror or e}") from None
    finally:
        if writer is not None:
            writer.close()
    return _result(answer)


def _result(answer: dict[str, Any]) -> Any:
    if "error" in answer:
        err = answer["error"]
        if not isinstance(err, dict):
            raise RpcUnavailable("error answer without an error object")
        code, message = err.get("code"), err.get("message")
        if not isinstance(code, int) or isinstance(code, bool) or not isinstance(message, str):
            raise RpcUnavailable("error object without an integer code and a message")
        raise RpcError(code, message, err.get("data"))
    if "result" not in answer:
        raise RpcUnavailable("answer has neither result nor error")
    return answer["result"]
