"""The mint client's HTTP/1.1 layer against scripted servers on loopback: framing, kept connections, limits, TLS,
and random answers (well formed ones read exactly; anything else refused with HttpError, never another error)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import random
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hashpool_cln.httpclient import HttpClient, HttpError, NoAnswer, TooLarge
from hashpool_cln.mintclient import MintClient, MintUnavailable

# The request (head and body) → raw bytes to send; None: hang up; (raw, True): send, then hang up. It may be a
# coroutine function.
Answer = Callable[[bytes], Any]


class Server:
    """Each connection reads requests (Content-Length bodies) and sends what ``answer`` makes of each; it keeps
    the connection until ``answer`` says to hang up or the client closes."""

    def __init__(self, answer: Answer, *, tls: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.tls = tls
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for w in self.writers:
            w.close()
        self._server.close()

    @property
    def origin(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                result = self.answer(request)
                if asyncio.iscoroutine(result):
                    result = await result
                if result is None:
                    break
                raw, hang_up = (result, False) if isinstance(result, bytes) else result
                writer.write(raw)
                await writer.drain()
                if hang_up:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def close_idle(self) -> None:
        for w in self.writers:
            w.close()


def ok(body: bytes = b'{"ok":true}', *extra: str) -> bytes:
    head = "\r\n".join(["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *extra])
    return head.encode() + b"\r\n\r\n" + body


def chunked(body: bytes, sizes: list[int], *, ext: bool = False, trailer: bool = False) -> bytes:
    out, i = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"], 0
    for n in sizes:
        part = body[i:i + n]
        if not part:
            break
        out.append(b"%x%s\r\n%s\r\n" % (len(part), b";x=y" if ext else b"", part))
        i += len(part)
    if i < len(body):
        out.append(b"%x\r\n%s\r\n" % (len(body) - i, body[i:]))
    out.append(b"0\r\n" + (b"X-Trailer: 1\r\n" if trailer else b"") + b"\r\n")
    return b"".join(out)


async def test_one_connection_carries_request_after_request() -> None:
    async with Server(lambda req: ok()) as server:
        client = HttpClient(server.origin, max_body=1024)
        for _ in range(5):
            assert (await client.request("POST", "/v1/x", b"{}", {"Accept": "application/json"})).body == b'{"ok":true}'
        assert server.connections == 1
        first = server.requests[0]
        assert first.startswith(b"POST /v1/x HTTP/1.1\r\n")
        assert f"Host: 127.0.0.1:{server.port}\r\n".encode() in first and b"Content-Length: 2\r\n" in first
        client.close()


async def test_concurrent_requests_each_have_a_connection_then_all_are_kept() -> None:
    gate = asyncio.Event()

    async with Server(lambda req: ok()) as server:
        client = HttpClient(server.origin, max_body=1024)

        async def one() -> bytes:
            await gate.wait()
            return (await client.request("GET", "/v1/info")).body

        tasks = [asyncio.ensure_future(one()) for _ in range(6)]
        gate.set()
        assert await asyncio.gather(*tasks) == [b'{"ok":true}'] * 6
        assert server.connections == 6
        await asyncio.gather(*(client.request("GET", "/v1/info") for _ in range(6)))
        assert server.connections == 6  # the six kept ones served the second round
        client.close()


@pytest.mark.parametrize("ext", [False, True])
@pytest.mark.parametrize("trailer", [False, True])
async def test_chunked_answers(ext: bool, trailer: bool) -> None:
    body = b'{"signatures":[' + b",".join(b'"%d"' % i for i in range(300)) + b"]}"
    async with Server(lambda req: chunked(body, [1, 7, 100, 3], ext=ext, trailer=trailer)) as server:
        client = HttpClient(server.origin, max_body=10_000)
        assert (await client.request("GET", "/a")).body == body
        assert (await client.request("GET", "/a")).body == body
        assert server.connections == 1
        client.close()


async def test_connection_close_and_http10_are_not_kept() -> None:
    # The HTTP/1.0 answer has no length: it runs to the end of the connection, which the server closes.
    answers = [ok(b"1", "Connection: close"), (b"HTTP/1.0 200 OK\r\n\r\nto the end", True), ok(b"3")]

    async with Server(lambda req: answers.pop(0)) as server:
        client = HttpClient(server.origin, max_body=1024)
        assert (await client.request("GET", "/")).body == b"1"
        assert (await client.request("GET", "/")).body == b"to the end"
        assert (await client.request("GET", "/")).body == b"3"
        assert server.connections == 3
        client.close()


async def test_interim_answers_are_skipped_and_101_refused() -> None:
    answers = [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + ok(b"final"),
               b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"]
    async with Server(lambda req: answers.pop(0)) as server:
        client = HttpClient(server.origin, max_body=1024)
        assert (await client.request("GET", "/")).body == b"final"
        with pytest.raises(HttpError, match="switched protocols"):
            await client.request("GET", "/")
        client.close()


async def test_a_kept_connection_the_server_closed_while_idle_is_not_used() -> None:
    async with Server(lambda req: ok()) as server:
        client = HttpClient(server.origin, max_body=1024)
        await client.request("POST", "/v1/swap", b"{}")
        server.close_idle()
        await asyncio.sleep(0.1)  # the FIN arrives while the connection is idle
        await client.request("POST", "/v1/swap", b"{}")
        assert server.connections == 2 and len(server.requests) == 2
        client.close()


async def test_a_kept_connection_closed_as_the_request_left_resends_a_get_never_a_post() -> None:
    hang_up = {1}  # the second request on each connection finds the server gone

    def answer(req: bytes) -> bytes | None:
        n = len(server.requests) - 1
        return None if n in hang_up else ok(b"%d" % n)

    async with Server(answer) as server:
        client = HttpClient(server.origin, max_body=1024)
        assert (await client.request("GET", "/v1/keys")).body == b"0"
        assert (await client.request("GET", "/v1/keys")).body == b"2"  # sent again on a new connection
        assert server.connections == 2
        hang_up.add(3)
        with pytest.raises(NoAnswer):
            await client.request("POST", "/v1/melt/ehash", b"{}")
        assert len(server.requests) == 4  # the POST went out once
        client.close()


async def test_an_idle_connection_past_its_time_is_not_used() -> None:
    async with Server(lambda req: ok()) as server:
        client = HttpClient(server.origin, max_body=1024, idle_seconds=0.05)
        await client.request("GET", "/")
        await asyncio.sleep(0.1)
        await client.request("GET", "/")
        assert server.connections == 2
        client.close()


def test_a_connection_of_another_event_loop_is_not_used() -> None:
    accepted = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:  # a thread of its own: each asyncio.run below has a loop of its own
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(conn)
            threading.Thread(target=_answer_each, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    client = HttpClient(f"http://127.0.0.1:{listener.getsockname()[1]}", max_body=1024)
    try:
        assert asyncio.run(client.request("GET", "/")).body == b'{"ok":true}'
        assert asyncio.run(client.request("GET", "/")).body == b'{"ok":true}'
        assert len(accepted) == 2
    finally:
        listener.close()
        for conn in accepted:
            conn.close()


def _answer_each(conn: socket.socket) -> None:
    buf = b""
    while True:
        try:
            data = conn.recv(65536)
        except OSError:
            return
        if not data:
            return
        buf += data
        while b"\r\n\r\n" in buf:
            _, buf = buf.split(b"\r\n\r\n", 1)
            conn.sendall(ok())


async def test_a_request_given_up_closes_its_connection() -> None:
    async def answer(req: bytes) -> bytes:
        if b"/slow" in req:
            await asyncio.sleep(0.5)  # past the caller's deadline: its answer must not reach the next caller
            return ok(b"late")
        return ok(b"mine")

    async with Server(answer) as server:
        client = HttpClient(server.origin, max_body=1024)
        await client.request("GET", "/first")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.request("GET", "/slow"), 0.2)
        await asyncio.sleep(0.5)
        assert (await client.request("GET", "/next")).body == b"mine"
        assert server.connections == 2
        client.close()


@pytest.mark.parametrize(("raw", "error"), [
    (ok(b"x" * 2000), TooLarge),
    (chunked(b"x" * 2000, [600, 600, 600]), TooLarge),
    (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", HttpError),
    (b"SMTP ready\r\n\r\n", HttpError),
    (b"HTTP/1.1 20 OK\r\n\r\n", HttpError),
    (b"HTTP/2 200\r\n\r\n", HttpError),
    (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", HttpError),
    (b"HTTP/1.1 200 OK\r\nA: 1\r\n folded\r\n\r\n", HttpError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", HttpError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", HttpError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n", HttpError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", HttpError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", HttpError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", HttpError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", HttpError),
])
async def test_answers_refused(raw: bytes, error: type[Exception]) -> None:
    async with Server(lambda req: raw) as server:
        client = HttpClient(server.origin, max_body=1024)
        with pytest.raises(error):
            await client.request("GET", "/")
        client.close()


@pytest.mark.parametrize("raw", [b"", b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
                                 b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                                 b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n"])
async def test_answers_cut_short(raw: bytes) -> None:
    async with Server(lambda req: (raw, True)) as server:
        client = HttpClient(server.origin, max_body=1024)
        with pytest.raises(HttpError):
            await client.request("POST", "/", b"{}")
        client.close()


def test_request_lines_and_headers_that_cannot_be_sent() -> None:
    client = HttpClient("http://127.0.0.1:1", max_body=1)
    for method, target, headers in [("GET", "/a b", {}), ("GET", "a", {}), ("G T", "/", {}), ("GET", "/\n", {}),
                                    ("GET", "/", {"Authorization": "Bearer x\r\nX: y"}), ("GET", "/", {"A B": "1"})]:
        with pytest.raises(ValueError):
            asyncio.run(client.request(method, target, None, headers))


def test_host_header_names_the_port_only_when_it_is_not_the_default() -> None:
    assert HttpClient("https://mint.example", max_body=1)._host_header == "mint.example"
    assert HttpClient("https://mint.example:8443", max_body=1)._host_header == "mint.example:8443"
    assert HttpClient("http://[::1]:3338", max_body=1)._host_header == "[::1]:3338"
    assert HttpClient("http://[::1]:80", max_body=1)._host_header == "[::1]"


# ---- TLS --------------------------------------------------------------------------------------------------------

def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_tls_checks_the_certificate() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = _self_signed(Path(tmp))
        served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        served.load_cert_chain(cert, key)
        async with Server(lambda req: ok(b'{"tls":1}'), tls=served) as server:
            trusting = ssl.create_default_context(cafile=str(cert))
            client = HttpClient(server.origin, max_body=1024, ssl_context=trusting)
            assert (await client.request("GET", "/v1/info")).body == b'{"tls":1}'
            assert (await client.request("GET", "/v1/info")).body == b'{"tls":1}'
            assert server.connections == 1
            client.close()

            # The system's roots do not know this certificate: the mint client hears of no answer, only why.
            async with MintClient(f"https://127.0.0.1:{server.port}", timeout=5) as mint:
                with pytest.raises(MintUnavailable, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
                    await mint.info()


# ---- random answers -----------------------------------------------------------------------------------------------

def _well_formed(rng: random.Random) -> tuple[bytes, int, bytes]:
    body = bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 5, 100, 3000])))
    status = rng.choice([200, 201, 400, 404, 500])
    extra = [f"X-{i}: {'v' * rng.randrange(50)}" for i in range(rng.randrange(5))]
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" if rng.random() < 0.2 else b""
    if rng.random() < 0.5:
        sizes = [rng.randrange(1, 200) for _ in range(rng.randrange(1, 30))]
        raw = chunked(body, sizes, ext=rng.random() < 0.3, trailer=rng.random() < 0.3)
        raw = raw.replace(b"200 OK", b"%d Status" % status, 1)
    else:
        head = "\r\n".join([f"HTTP/1.1 {status} Status", f"Content-Length: {len(body)}", *extra])
        raw = head.encode() + b"\r\n\r\n" + body
    return interim + raw, status, body


def _mangled(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randrange(1, 4)):
        kind = rng.randrange(4)
        at = rng.randrange(len(data) + 1)
        if kind == 0 and data:
            del data[at:at + rng.randrange(1, 20)]
        elif kind == 1:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 10)))
        elif kind == 2 and data:
            data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
        else:
            data[at:at] = rng.choice([b"\r\n", b"\r\n\r\n", b":", b"0\r\n", b"Content-Length: 9\r\n"])
    return bytes(data)


async def test_random_answers_in_random_pieces() -> None:
    rng = random.Random(1234)
    for round_ in range(300):
        raw, status, body = _well_formed(rng)
        mangle = round_ % 2 == 1
        if mangle:
            raw = _mangled(rng, raw)
        pieces, i = [], 0
        while i < len(raw):
            n = rng.randrange(1, 400)
            pieces.append(raw[i:i + n])
            i += n

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pieces=pieces) -> None:
            try:
                await reader.readuntil(b"\r\n\r\n")
                for piece in pieces:
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0)
            except ConnectionError:
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = HttpClient(f"http://127.0.0.1:{port}", max_body=2500)
        try:
            answer = await asyncio.wait_for(client.request("GET", "/"), 5)
        except TooLarge:
            assert mangle or len(body) > 2500
        except HttpError:
            assert mangle, raw[:200]
        else:
            if not mangle:
                assert (answer.status, answer.body) == (status, body)
        finally:
            client.close()
            server.close()
