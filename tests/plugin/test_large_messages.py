"""Messages beyond ``wire.LARGE_MESSAGE`` are decoded in the worker process with the same outcomes as small ones,
and the stdin loop splits messages as pyln does."""

from __future__ import annotations

import io
import json
import random

from support.pluginharness import PluginHarness, assert_clean

from hashpool_cln.plugin import wire
from tests.plugin.test_wire import HOSTILE, _raw, _still_serves, plugin  # noqa: F401  (the fixture)


def _large(body: str) -> str:
    """``body`` with blanks after its opening brace, past the size the worker process decodes: the same message."""
    assert body.startswith("{")
    return "{" + " " * wire.LARGE_MESSAGE + body[1:]


def test_a_large_message_gets_the_answer_a_small_one_gets(plugin: PluginHarness) -> None:  # noqa: F811
    for what, body, code in HOSTILE:
        req_id = json.loads(body[:body.index(',"method"')] + "}")["id"]
        small = _raw(plugin, req_id, body)
        large = _raw(plugin, req_id + "L", _large(body.replace(f'"id":"{req_id}"', f'"id":"{req_id}L"')))
        assert large == small and small["code"] == code, what
    # a well-formed large request reaches its method; a large notification is read and ignored
    req = {"jsonrpc": "2.0", "id": "big", "method": "hashpool-redemptions", "params": {"state": "paid", "limit": 5}}
    plugin.send_raw(_large(json.dumps({"jsonrpc": "2.0", "method": "hashpool-none", "params": {}})).encode())
    plugin.send_raw(_large(json.dumps(req)).encode())
    assert plugin.reply("big").ok() == {"redemptions": []}
    # not UTF-8, or no id to answer under: answered or logged and dropped, as small ones are
    utf8 = _raw(plugin, "u1L", _large('{"jsonrpc":"2.0","id":"u1L","method":"hashpool-quote","params":'
                                      '{"token":"cashuB').encode() + b'\xff\xfe"}}')
    assert utf8["code"] == -32700 and "UTF-8" in utf8["message"]
    before = len(plugin.logs())
    plugin.send_raw(_large('{"jsonrpc":"2.0","id":{"a":1},"method":"hashpool-info","params":{}}').encode())
    plugin.wait_for(lambda: [line for line in plugin.logs()[before:] if "dropped" in line], 20, "the drop")
    _still_serves(plugin)
    assert_clean(plugin)


def test_large_and_small_requests_interleaved_are_each_answered_once(plugin: PluginHarness) -> None:  # noqa: F811
    ids = []
    for n in range(12):
        req_id = f"m{n}"
        body = json.dumps({"jsonrpc": "2.0", "id": req_id, "method": "hashpool-redemptions", "params": {}})
        plugin.send_raw((_large(body) if n % 3 == 0 else body).encode())
        ids.append(req_id)
    for req_id in ids:
        assert plugin.reply(req_id, timeout=30).ok() == {"redemptions": []}
    answered = [json.loads(raw).get("id") for raw in plugin.stdout_raw if '"id"' in raw[:80]]
    assert all(answered.count(i) == 1 for i in ids)
    assert_clean(plugin)


def _pyln_split(data: bytes) -> list[bytes]:
    """How pyln's ``Plugin.run`` cuts its stdin into messages (non-blank ones, stripped)."""
    partial, out = b"", []
    for line in io.BytesIO(data):
        partial += line
        msgs = partial.split(b"\n\n")
        if len(msgs) < 2:
            continue
        out += [m for m in msgs[:-1] if m.strip()]
        partial = msgs[-1]
    return [m.strip() for m in out]


def test_messages_are_split_as_pyln_splits_them() -> None:
    rng = random.Random(5)
    for _ in range(300):
        parts = []
        for _ in range(rng.randint(0, 6)):
            body = json.dumps({"id": rng.randint(0, 9), "params": ["x" * rng.randint(0, 40)]})
            if rng.random() < 0.2:
                body = body.replace(",", ",\n")  # a message over several lines
            parts.append(body.encode() + b"\n" * rng.randint(2, 4) + b" " * rng.randint(0, 1))
        data = b"".join(parts)
        ours = [m.strip() for m in wire.messages(io.BytesIO(data)) if m.strip()]
        assert ours == _pyln_split(data), data


def test_a_large_message_is_answered_when_its_worker_was_killed(plugin: PluginHarness) -> None:  # noqa: F811
    import os
    import signal
    from pathlib import Path

    from tests.plugin.test_redeem import _children

    def large(req_id: str) -> bytes:
        return _large(json.dumps({"jsonrpc": "2.0", "id": req_id, "method": "hashpool-redemptions",
                                  "params": {}})).encode()

    assert plugin.proc is not None
    plugin.send_raw(large("k1"))
    assert plugin.reply("k1").ok() == {"redemptions": []}
    # the worker processes, not multiprocessing's resource tracker
    workers = [pid for pid in _children(plugin.proc.pid)
               if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert workers
    for pid in workers:  # as when the host's out-of-memory killer picks them
        os.kill(pid, signal.SIGKILL)
    for req_id in ("k2", "k3", "k4"):  # decoded here while the worker is gone, then by a new one
        plugin.send_raw(large(req_id))
        assert plugin.reply(req_id, timeout=60).ok() == {"redemptions": []}
    _still_serves(plugin)
    assert plugin.alive()
    assert any("decoding a large message here" in line for line in plugin.logs())
    assert_clean(plugin)
