"""A small HTTP/1.1 client for one JSON service: kept connections, TLS, a deadline and a bound on every answer.

Why not a general HTTP library: the mint client makes three requests a redemption, and a general client's
machinery (cookies, redirects, proxies, multipart, per-request objects) cost 1.3–1.8 times this client's CPU
per request on loopback (``bench/bench_http.py``), about half of this one's being the kernel's socket work.

It speaks only what a JSON API needs (RFC 9112): a request with a ``Content-Length`` body; an answer framed by
``Content-Length``, ``chunked`` or the connection's end; interim 1xx answers skipped. It sends no
``Accept-Encoding``, so the answer comes as it is. Redirects are not followed (they are answers). An answer
framed two ways (``Transfer-Encoding`` beside ``Content-Length``) is refused, not guessed at.

A connection is kept for the next request only after an answer that was read whole and framed, over HTTP/1.1,
without ``Connection: close``; idle ones are closed after ``IDLE_SECONDS`` (``streams.Connections``). A GET that
fails on a kept connection with no answer is sent once more on a new one: the server may have closed it as the
request left. A POST is never sent twice; the caller learns that its outcome is unknown.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from hashpool_cln.streams import Connections

MAX_HEAD_BYTES = 64 * 1024  # status line and headers; also the longest chunk-size line
IDLE_SECONDS = 15.0  # below the idle timeouts servers use (aiohttp and nginx 75 s)
KEEP = 32  # idle connections kept: more than the desk's callers usually have requests in flight

_STATUS = re.compile(rb"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: [^\r\n]*)?")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LENGTH = re.compile(r"[0-9]{1,18}")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})[ \t]*(?:;[^\r\n]*)?")


class HttpError(Exception):
    """No usable answer: the connection failed or closed early, or the answer is not HTTP/1.1 as this client
    reads it. For a POST the server may have acted."""


class NoAnswer(HttpError):
    """The connection closed before any byte of an answer arrived."""


class TooLarge(HttpError):
    """The answer's body is longer than the caller allows."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes


class HttpClient:
    """Requests to one origin (``scheme://host:port``); ``close()`` when done."""

    def __init__(self, origin: str, *, max_body: int, ssl_context: ssl.SSLContext | None = None,
                 keep: int = KEEP, idle_seconds: float = IDLE_SECONDS) -> None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) origin: {origin!r}")
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        default = 443 if self.tls else 80
        self.port = parts.port or default
        name = f"[{self.host}]" if ":" in self.host else self.host
        self._host_header = name if self.port == default else f"{name}:{self.port}"
        self.max_body = max_body
        self._ssl = ssl_context
        self._connections = Connections(self._open, keep, idle_seconds)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if not self.tls:
            return await asyncio.open_connection(self.host, self.port, limit=MAX_HEAD_BYTES)
        if self._ssl is None:
            self._ssl = ssl.create_default_context()  # the system's roots; checks the name and the chain
        return await asyncio.open_connection(self.host, self.port, ssl=self._ssl, server_hostname=self.host,
                                             limit=MAX_HEAD_BYTES)

    def close(self) -> None:
        self._connections.close()

    async def request(self, method: str, target: str, body: bytes | None = None,
                      headers: Mapping[str, str] | None = None) -> Response:
        """Send ``method target`` (``target``: the path and query) and read the answer. HttpError (TooLarge) when
        there is no usable answer; OSError subclasses pass through; no deadline here (the caller sets one)."""
        head = self._head(method, target, body, headers or {})
        message = head + body if body else head
        for attempt in (1, 2):
            (reader, writer), kept = await self._connections.take()
            reusable = False
            try:
                writer.write(message)
                await writer.drain()
                response, reusable = await _read_response(reader, method, self.max_body)
            except (NoAnswer, OSError):
                if kept and method == "GET" and attempt == 1:
                    continue  # the server closed a kept connection as the request left: once more, anew
                raise
            except asyncio.IncompleteReadError:
                raise HttpError("connection closed before the answer was complete") from None
            finally:
                if reusable:
                    self._connections.give_back(reader, writer)
                else:
                    writer.close()
            return response
        raise AssertionError("unreachable")

    def _head(self, method: str, target: str, body: bytes | None, headers: Mapping[str, str]) -> bytes:
        if not _TOKEN.fullmatch(method) or not target.startswith("/") or not target.isprintable() or " " in target:
            raise ValueError(f"not a request line: {method!r} {target!r}")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host_header}"]
        for name, value in headers.items():
            if not _TOKEN.fullmatch(name) or "\r" in value or "\n" in value:
                raise ValueError(f"header {name!r} cannot be sent")
            lines.append(f"{name}: {value}")
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _read_response(reader: asyncio.StreamReader, method: str,
                         max_body: int) -> tuple[Response, bool]:
    """The final answer, and whether the connection can carry another request."""
    first = True
    while True:
        head = await _read_head(reader, first)
        first = False
        status, minor, fields = _parse_head(head)
        if 100 <= status < 200:
            if status == 101:
                raise HttpError("the server switched protocols")
            continue  # an interim answer (100 Continue, 103 Early Hints): the final one follows
        break
    # Framed answers leave the connection fit for another request, unless the server says it closes it.
    keep = minor == 1 and "close" not in _tokens(fields.get("connection", ""))
    if method == "HEAD" or status in (204, 304):
        return Response(status, b""), keep
    encoding = fields.get("transfer-encoding")
    if encoding is not None:
        codings = _tokens(encoding)
        if codings != ["chunked"]:
            raise HttpError(f"transfer coding {encoding!r} is not supported")
        body = await _read_chunked(reader, max_body)
        return Response(status, body), keep
    length = fields.get("content-length")
    if length is not None:
        if not _LENGTH.fullmatch(length):
            raise HttpError(f"bad Content-Length {length!r}")
        if int(length) > max_body:
            raise TooLarge(f"answer of {length} bytes")
        body = await reader.readexactly(int(length))
        return Response(status, body), keep
    # Neither: the body runs to the end of the connection, which then cannot be kept.
    body = bytearray()
    while len(body) <= max_body:
        more = await reader.read(max_body + 1 - len(body))
        if not more:
            break
        body += more
    if len(body) > max_body:
        raise TooLarge(f"answer longer than {max_body} bytes")
    return Response(status, bytes(body)), False


async def _read_head(reader: asyncio.StreamReader, first: bool) -> bytes:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise HttpError(f"answer's head longer than {MAX_HEAD_BYTES} bytes") from None
    except asyncio.IncompleteReadError as exc:
        if first and not exc.partial:
            raise NoAnswer("connection closed before an answer arrived") from None
        raise HttpError("connection closed inside the answer's head") from None


def _parse_head(head: bytes) -> tuple[int, int, dict[str, str]]:
    lines = head[:-4].split(b"\r\n")
    status = _STATUS.fullmatch(lines[0])
    if status is None:
        raise HttpError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        text = name.decode("latin-1")
        if not colon or not _TOKEN.fullmatch(text):  # also refuses folded lines (a leading space)
            raise HttpError(f"malformed header line {line[:80]!r}")
        key, value_text = text.lower(), value.decode("latin-1").strip(" \t")
        if key in fields:
            if key in ("content-length", "transfer-encoding") and fields[key] != value_text:
                raise HttpError(f"conflicting {text} headers")
            fields[key] = f"{fields[key]}, {value_text}" if key != "content-length" else value_text
        else:
            fields[key] = value_text
    if "transfer-encoding" in fields and "content-length" in fields:
        raise HttpError("both Transfer-Encoding and Content-Length")
    return int(status.group(2)), int(status.group(1)), fields


def _tokens(value: str) -> list[str]:
    return [t.strip().lower() for t in value.split(",") if t.strip()]


async def _read_chunked(reader: asyncio.StreamReader, max_body: int) -> bytes:
    body = bytearray()
    while True:
        line = await _read_line(reader)
        size = _CHUNK_SIZE.fullmatch(line)
        if size is None:
            raise HttpError(f"bad chunk size line {line[:80]!r}")
        n = int(size.group(1), 16)
        if n == 0:
            break
        if len(body) + n > max_body:
            raise TooLarge(f"answer longer than {max_body} bytes")
        body += await reader.readexactly(n)
        if await reader.readexactly(2) != b"\r\n":
            raise HttpError("chunk not followed by CRLF")
    while await _read_line(reader):  # trailer fields, up to the empty line: read and dropped
        pass
    return bytes(body)


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    try:
        return (await reader.readuntil(b"\r\n"))[:-2]
    except asyncio.LimitOverrunError:
        raise HttpError(f"a line of the answer is longer than {MAX_HEAD_BYTES} bytes") from None
