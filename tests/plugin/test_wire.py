"""The plugin process survives any single message, and answers every request it can read the id of, once.

Messages are written to the real process byte for byte, as a hostile caller's params reach it through lightningd
(which forwards them verbatim) or as a broken peer would write them.
"""

from __future__ import annotations

import json

import pytest
from support.pluginharness import PluginHarness, assert_clean

POOL = "02" + "aa" * 32
OPTIONS = {"hashpool-mint-url": "http://127.0.0.1:9", "hashpool-pool": [POOL]}


@pytest.fixture
def plugin(harness: PluginHarness) -> PluginHarness:
    harness.getmanifest()
    harness.init(OPTIONS)
    return harness


def _raw(plugin: PluginHarness, req_id: str, body: str | bytes) -> dict:
    """Send ``body`` (a whole message, its id ``req_id``) and return the error it is answered with."""
    plugin.send_raw(body if isinstance(body, bytes) else body.encode("utf-8"))
    reply = plugin.reply(req_id, timeout=20)
    assert reply.error is not None, reply.raw
    assert set(reply.error) <= {"code", "message", "data"}, reply.error
    return reply.error


def _still_serves(plugin: PluginHarness) -> None:
    assert plugin.call("hashpool-redemptions", {}).ok() == {"redemptions": []}


HOSTILE = [
    # (what, message, code)
    ("a 5,000-digit integer", '{"jsonrpc":"2.0","id":"w1","method":"hashpool-redemptions","params":{"limit":'
     + "9" * 5000 + "}}", -32700),
    ("params nested 5,000 deep", '{"jsonrpc":"2.0","id":"w2","method":"hashpool-quote","params":{"token":'
     + "[" * 5000 + "]" * 5000 + "}}", -32700),
    ("nesting deeper than any method takes", '{"jsonrpc":"2.0","id":"w3","method":"hashpool-quote","params":'
     '{"token":' + "[" * 40 + "]" * 40 + "}}", -32602),
    ("a lone surrogate in the invstring", '{"jsonrpc":"2.0","id":"w4","method":"hashpool-quote","params":'
     '{"token":"cashuBxyz","invstring":"\\ud800@example.com"}}', -32602),
    ("a lone surrogate in a parameter name", '{"jsonrpc":"2.0","id":"w5","method":"hashpool-status","params":'
     '{"\\udfff":1}}', -32602),
    ("an integer beyond 64 bits", '{"jsonrpc":"2.0","id":"w6","method":"hashpool-redeem","params":'
     '{"token":"t","invstring":"i","amount_msat":' + str(2**64) + "}}", -32602),
    ("params that are a string", '{"jsonrpc":"2.0","id":"w7","method":"hashpool-info","params":"all"}', -32600),
    ("params that are a number", '{"jsonrpc":"2.0","id":"w8","method":"hashpool-info","params":7}', -32600),
    ("NaN", '{"jsonrpc":"2.0","id":"w9","method":"hashpool-redemptions","params":{"limit":NaN}}', -32700),
    ("no such method", '{"jsonrpc":"2.0","id":"w10","method":"hashpool-steal","params":{}}', -32601),
    ("a method that is not text", '{"jsonrpc":"2.0","id":"w11","method":["hashpool-info"],"params":{}}', -32600),
    ("pyln's injected names as parameters", '{"jsonrpc":"2.0","id":"w12","method":"hashpool-status","params":'
     '{"plugin":1,"request":2}}', -32602),
    ("truncated JSON", '{"jsonrpc":"2.0","id":"w13","method":"hashpool-info","params":{"a":', -32700),
    ("a second init", '{"jsonrpc":"2.0","id":"w14","method":"init","params":{}}', -32600),
    ("getmanifest with bad params", '{"jsonrpc":"2.0","id":"w15","method":"getmanifest","params":[1,2,3]}',
     -32602),
]


@pytest.mark.parametrize(("what", "message", "code"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_message_gets_its_coded_answer_and_the_next_is_served(plugin: PluginHarness, what: str,
                                                                         message: str, code: int) -> None:
    req_id = json.loads(message[:message.index(',"method"')] + "}")["id"]
    error = _raw(plugin, req_id, message)
    assert error["code"] == code, (what, error)
    assert "Traceback" not in json.dumps(error)
    _still_serves(plugin)


def test_invalid_utf8_is_answered_when_the_id_can_be_read(plugin: PluginHarness) -> None:
    body = b'{"jsonrpc":"2.0","id":"u1","method":"hashpool-quote","params":{"token":"cashuB\xff\xfe"}}'
    error = _raw(plugin, "u1", body)
    assert error["code"] == -32700 and "UTF-8" in error["message"]
    _still_serves(plugin)


def test_a_lone_surrogate_in_the_id_is_answered_under_that_id(plugin: PluginHarness) -> None:
    # lightningd hands the caller's id back as it came: the answer must carry the same escape.
    plugin.send_raw(b'{"jsonrpc":"2.0","id":"cli:x\\ud800#1","method":"hashpool-status","params":{"id":"abc"}}')
    reply = plugin.reply("cli:x\ud800#1", timeout=20)
    assert reply.error is not None and reply.error["code"] == 3450
    assert any("\\ud800" in raw for raw in plugin.stdout_raw)
    # and a request that holds one elsewhere gets a message that can be encoded
    plugin.send_raw(b'{"jsonrpc":"2.0","id":"s2","method":"hashpool-settle","params":{"unit":"hash_\\ud800"}}')
    error = plugin.reply("s2", timeout=20).error
    assert error is not None and error["code"] == -32602
    assert "\ud800" not in error["message"]
    _still_serves(plugin)


def test_messages_without_a_readable_id_are_logged_and_dropped(plugin: PluginHarness) -> None:
    before = len(plugin.logs())
    for body in (b"not json", b"[1,2,3]", b'{"jsonrpc":"2.0","id":' + b"1" * 5000 + b',"method":"x"}', b"\xff\xfe",
                 b'{"jsonrpc":"2.0","id":{"a":1},"method":"hashpool-info","params":{}}',
                 b'{"jsonrpc":"2.0","method":"shutdown","params":"now"}',
                 b'{"jsonrpc":"2.0","method":"no-such-topic","params":{}}'):
        plugin.send_raw(body)
    _still_serves(plugin)
    dropped = [line for line in plugin.logs()[before:] if "dropped" in line]
    assert len(dropped) == 6, plugin.logs()[before:]  # all but the notification of no topic
    assert plugin.alive()


def test_a_request_without_params_is_served(plugin: PluginHarness) -> None:
    plugin.send_raw(b'{"jsonrpc":"2.0","id":"np","method":"hashpool-redemptions"}')
    assert plugin.reply("np", timeout=20).ok() == {"redemptions": []}


def test_many_hostile_messages_at_once_each_answered_once(plugin: PluginHarness) -> None:
    bodies = [m for _, m, _ in HOSTILE if '"init"' not in m]
    ids = []
    for round_ in range(3):
        for body in bodies:
            req_id = json.loads(body[:body.index(',"method"')] + "}")["id"]
            unique = f"{req_id}.{round_}"
            plugin.send_raw(body.replace(f'"id":"{req_id}"', f'"id":"{unique}"').encode())
            ids.append(unique)
    for req_id in ids:
        plugin.reply(req_id, timeout=30)
    answered = [json.loads(raw).get("id") for raw in plugin.stdout_raw if '"id"' in raw[:80]]
    assert all(answered.count(i) == 1 for i in ids)
    _still_serves(plugin)
    assert_clean(plugin)


def test_encode_writes_what_utf8_cannot_carry() -> None:
    from hashpool_cln.plugin.wire import encode

    data = encode({"jsonrpc": "2.0", "id": "x\ud800", "error": {"code": 3410, "message": "bad \udfff name",
                                                                 "data": {"\ud801": ["\udc00"]}}})
    text = data.decode("utf-8")  # strict: it is valid UTF-8
    assert text.endswith("\n\n")
    back = json.loads(text)
    assert back["id"] == "x\ud800"  # the id exactly as it came, escaped
    assert back["error"]["message"] == "bad \ufffd name" and back["error"]["data"] == {"\ufffd": ["\ufffd"]}
    plain = encode({"jsonrpc": "2.0", "id": 1, "result": {"name": "₿alice"}})
    assert "₿alice" in plain.decode("utf-8")


@pytest.mark.parametrize(("text", "found"), [
    ('{"jsonrpc":"2.0","id":"a","method":"m","params":{"id":"inner"}}', {"id": "a", "method": "m"}),
    ('{"params":{"id":"inner","x":[1,{"id":2}]},"method":"m","id":7}', {"id": 7, "method": "m"}),
    ('{"id":"a\\"b","params":' + "[" * 9000, {"id": 'a"b'}),
    ('{"method":"m","params":{"a":' + "1" * 5000 + '},"id":"late"}', {"id": "late", "method": "m"}),
    ('["id","x"]', {}),
    ('{"id":' + "9" * 5000 + "}", {}),
    ("not json at all", {}),
])
def test_the_top_level_id_is_found_without_decoding_the_rest(text: str, found: dict) -> None:
    from hashpool_cln.plugin.wire import top_level

    assert top_level(text) == found
