"""HTTP to the mint: CPU per request of the mint client's own HTTP/1.1 client against aiohttp's, on loopback.

The server is aiohttp's (as the reference mint serves), in a process of its own, answering a POST of a swap's
size (one input, 13 outputs) with a swap's answer (13 signatures with DLEQ proofs). Each arm makes its requests
on kept connections, one caller at a time and then 16 at once; the arms take turns round by round (the order
turned each round) so that load on the shared machine falls on both alike. The figure is the client's CPU per
request (the event loop's thread, ``time.thread_time``: its own work and the kernel's for its sockets), median
over the rounds, and the wall time per request beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from hashpool_cln.regtest.layout import free_port

ROOT = Path(__file__).resolve().parent.parent
SERVE = "--serve"
BODY = {"inputs": [{"amount": 2048, "id": "01" + "ab" * 32, "secret": "5e" * 32, "C": "02" + "cd" * 32}],
        "outputs": [{"amount": 1 << i, "id": "01" + "ab" * 32, "B_": "02" + "ef" * 32} for i in range(13)]}
ANSWER = {"signatures": [{"amount": 1 << i, "id": "01" + "ab" * 32, "C_": "03" + "12" * 32,
                          "dleq": {"e": "34" * 32, "s": "56" * 32}} for i in range(13)]}


def serve(port: int) -> None:
    from aiohttp import web

    answer = json.dumps(ANSWER).encode()

    async def swap(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=answer, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/swap", swap)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, handle_signals=True)


def _wait(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the HTTP server did not start")


Request = Callable[[], Awaitable[object]]


async def ours(url: str) -> tuple[Request, Callable[[], Awaitable[None]]]:
    from hashpool_cln.httpclient import HttpClient

    client = HttpClient(url, max_body=16 * 1024 * 1024)
    headers = {"Accept": "application/json", "Content-Type": "application/json"}

    async def request() -> object:
        body = json.dumps(BODY, separators=(",", ":")).encode()
        resp = await asyncio.wait_for(client.request("POST", "/v1/swap", body, headers), 10)
        return json.loads(resp.body)

    async def close() -> None:
        client.close()

    return request, close


async def theirs(url: str) -> tuple[Request, Callable[[], Awaitable[None]]]:
    import aiohttp

    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def request() -> object:
        # As the mint client used it: JSON body, the answer read in bounded chunks, no redirects.
        async with session.request("POST", url + "/v1/swap", json=BODY, headers={"Accept": "application/json"},
                                   allow_redirects=False) as resp:
            data = bytearray()
            async for chunk in resp.content.iter_chunked(65536):
                data += chunk
            return json.loads(bytes(data))

    return request, session.close


async def measure(make: Callable[[str], Awaitable[tuple[Request, Callable[[], Awaitable[None]]]]], url: str,
                  n: int, callers: int) -> tuple[float, float]:
    """CPU and wall seconds per request for ``n`` requests by ``callers`` callers at once (after a warm-up)."""
    request, close = await make(url)
    try:
        await asyncio.gather(*(request() for _ in range(callers)))  # connections open, code paths warm
        left = n

        async def caller() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await request()

        cpu, wall = time.thread_time(), time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(callers)))
        return (time.thread_time() - cpu) / n, (time.perf_counter() - wall) / n
    finally:
        await close()


def main(argv: list[str]) -> None:
    if argv[:1] == [SERVE]:
        serve(int(argv[1]))
        return
    parser = argparse.ArgumentParser(prog="bench_http", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per arm and round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, SERVE, str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        _wait(port)
        url = f"http://127.0.0.1:{port}"
        arms = {"ours (httpclient)": ours, "aiohttp": theirs}
        print(f"{'callers':>7} {'client':<18} {'CPU us/request':>15} {'wall us/request':>16}")
        for callers in (1, 16):
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in arms}
            order = list(arms)
            for _ in range(args.rounds):
                for name in order:
                    samples[name].append(asyncio.run(measure(arms[name], url, args.requests, callers)))
                order = order[1:] + order[:1]
            cpu = {name: statistics.median(s[0] for s in samples[name]) for name in arms}
            for name in arms:
                wall = statistics.median(s[1] for s in samples[name])
                print(f"{callers:>7} {name:<18} {cpu[name] * 1e6:>15.0f} {wall * 1e6:>16.0f}")
            print(f"{callers:>7} {'aiohttp / ours':<18} {cpu['aiohttp'] / cpu['ours (httpclient)']:>15.2f}")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main(sys.argv[1:])
