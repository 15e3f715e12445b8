"""The commando client: pyln-proto's handshake against the BOLT8 test vectors, and calls against a stand-in node
that speaks BOLT8 and commando (split replies, pings, refused runes, a connection dropped mid-call)."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Iterator

import pytest
from pyln.proto.wire import LightningConnection, PrivateKey, PublicKey
from wallet.standin import CommandoStandin, StandinError

from hashpool_cln.wallet.commando import (
    COMMANDO_ERROR_REMOTE_AUTH,
    PART_BYTES,
    CommandoClient,
    CommandoError,
    CommandoUnavailable,
    HandshakeError,
    NodeAddress,
    OutcomeUnknown,
    StrictConnection,
    commando_parts,
    init_message,
    too_soon,
)
from hashpool_cln.wallet.redeem import CommandoDesk

# lightning/bolts 08-transport.md, "Initiator Tests" and "Message Encryption Tests".
RS_PUB = "028d7500dd4c12685d1f568b4c2b5048e8534b873319f3a8daa612b469132ec7f7"
LS_PRIV = "11" * 32
E_PRIV = "12" * 32
ACT1 = ("00036360e856310ce5d294e8be33fc807077dc56ac80d95d9cd4ddbd21325eff73f70df6086551151f58b8afe6c195782c6a")
ACT2 = ("0002466d7fcae563e5cb09a0d1870bb580344804617879a14949cf22285f1bae3f276e2470b93aac583c9ef6eafca3f730ae")
ACT3 = ("00b9e3a702e93e3a9948c2ed6e5fd7590a6e1c3a0344cfc9d5b57357049aa22355361aa02e55a8fc28fef5bd6d71ad0c3822"
        "8dc68b1c466263b47fdf31e560e139ba")
SK = "969ab31b4d288cedf6218839b27a3e2140827047f2c0f01bf5c04435d43511a9"
RK = "bb9020b8965f4df047e07f955f3c4b88418984aadc5cdb35096b9ea8fa5c3442"
MESSAGES = {
    0: "cf2b30ddf0cf3f80e7c35a6e6730b59fe802473180f396d88a8fb0db8cbcf25d2f214cf9ea1d95",
    1: "72887022101f0b6753e0c7de21657d35a4cb2a1f5cde2650528bbc8f837d0f0d7ad833b1a256a1",
    500: "178cb9d7387190fa34db9c2d50027d21793c9bc2d40b1e14dcf30ebeeeb220f48364f7a4c68bf8",
    501: "1b186c57d44eb6de4c057c49940d79bb838a145cb528d6e8fd26dbe50a60ca2c104b56b60e45bd",
    1000: "4a2f3cc3b5e78ddb83dcb426d9863d9d9a723b0337c89dd0b005d89f8d3c05c52b76b29b740f09",
    1001: "2ecd8c8a5629d0d02ab457a0fdd0f7b90a192cd46be5ecb6ca570bfc5e268338b1a16cf4ef2d36",
}


class ScriptedSocket:
    """Plays the responder's bytes and records what the initiator writes."""

    def __init__(self, incoming: bytes) -> None:
        self.incoming = incoming
        self.sent: list[bytes] = []

    def recv(self, n: int) -> bytes:
        data, self.incoming = self.incoming[:n], self.incoming[n:]
        return data

    def send(self, data: bytes) -> int:
        self.sent.append(bytes(data))
        return len(data)


def _initiator(act2: str) -> tuple[StrictConnection, ScriptedSocket]:
    sock = ScriptedSocket(bytes.fromhex(act2))
    conn = StrictConnection(sock, PublicKey(bytes.fromhex(RS_PUB)), PrivateKey(bytes.fromhex(LS_PRIV)),
                            is_initiator=True)
    conn.handshake["e"] = PrivateKey(bytes.fromhex(E_PRIV))
    return conn, sock


def test_handshake_matches_the_bolt8_initiator_vectors() -> None:
    conn, sock = _initiator(ACT2)
    conn.shake()
    assert sock.sent[0].hex() == ACT1
    assert sock.sent[1].hex() == ACT3
    assert (conn.sk.hex(), conn.rk.hex()) == (SK, RK)


def test_message_encryption_and_key_rotation_match_the_vectors() -> None:
    conn, sock = _initiator(ACT2)
    conn.shake()
    del sock.sent[:]
    for _ in range(1002):
        conn.send_message(b"hello")
    # Each message goes out as two writes: the encrypted length, then the encrypted body.
    for n, expected in MESSAGES.items():
        assert (sock.sent[2 * n] + sock.sent[2 * n + 1]).hex() == expected, n


@pytest.mark.parametrize("act2, why", [
    (ACT2[:-2], "(?i)short read"),
    ("01" + ACT2[2:], "version"),
    ("0004" + ACT2[4:], "valid point"),
    (ACT2[:-2] + "af", "bad tag"),
])
def test_bad_act_two_is_refused(act2: str, why: str) -> None:
    conn, _ = _initiator(act2)
    with pytest.raises((HandshakeError, ValueError), match=why):
        conn.shake()


def test_plain_pyln_proto_accepts_a_bad_act_two_tag_which_is_why_the_check_is_ours() -> None:
    sock = ScriptedSocket(bytes.fromhex(ACT2[:-2] + "af"))
    conn = LightningConnection(sock, PublicKey(bytes.fromhex(RS_PUB)), PrivateKey(bytes.fromhex(LS_PRIV)),
                               is_initiator=True)
    conn.shake()  # no error: an impostor would only be noticed at the first message
    assert len(sock.sent) == 2


def test_commands_are_split_into_commando_parts() -> None:
    payload = b"x" * (2 * PART_BYTES + 5)
    parts = commando_parts(7, payload)
    assert [struct.unpack("!H", p[:2])[0] for p in parts] == [0x4C4D, 0x4C4D, 0x4C4F]
    assert all(struct.unpack("!Q", p[2:10])[0] == 7 for p in parts)
    assert b"".join(p[10:] for p in parts) == payload
    assert init_message(()) == bytes.fromhex("0010" "0000" "0000")


@pytest.mark.parametrize("text, expected", [
    ("02" + "ab" * 32 + "@127.0.0.1:9736", ("127.0.0.1", 9736)),
    ("03" + "cd" * 32 + "@pool.example", ("pool.example", 9735)),
    ("02" + "ab" * 32 + "@[::1]:19846", ("::1", 19846)),
])
def test_node_addresses(text: str, expected: tuple[str, int]) -> None:
    addr = NodeAddress.parse(text)
    assert (addr.host, addr.port) == expected
    assert NodeAddress.parse(str(addr)) == addr


@pytest.mark.parametrize("bad", ["nope", "02ab@host", "04" + "ab" * 32 + "@h", "02" + "ab" * 32 + "@h:0"])
def test_bad_node_addresses(bad: str) -> None:
    with pytest.raises(ValueError):
        NodeAddress.parse(bad)


# ---- against the stand-in node ----------------------------------------------------------------------------

def _echo(method: str, params: object) -> object:
    if method == "fail":
        raise StandinError(3440, "payment failed", {"id": "r1", "claim": "ab" * 32})
    if method == "big":
        return {"blob": "y" * 200_000}
    return {"method": method, "params": params}


@pytest.fixture
def node() -> Iterator[CommandoStandin]:
    standin = CommandoStandin(_echo, runes={"rune-all": {"*"}, "rune-quote": {"hashpool-quote"}, "rune-fast": {"*"},
                                            "rune-slow": {"*"}}, rates={"rune-fast": 240, "rune-slow": 1}).start()
    try:
        yield standin
    finally:
        standin.stop()


def _client(node: CommandoStandin, timeout: float = 10.0) -> CommandoClient:
    return CommandoClient(NodeAddress.parse(node.address), b"\x07" * 32, timeout=timeout)


def test_a_call_returns_the_result_and_our_node_id_is_the_peer(node: CommandoStandin) -> None:
    with _client(node) as client:
        assert client.call("hashpool-quote", {"token": "t"}, "rune-all") == {
            "method": "hashpool-quote", "params": {"token": "t"}}
        assert client.call("second", ["a", 1], "rune-all") == {"method": "second", "params": ["a", 1]}
    assert node.peers == [client.local_id]
    assert [c["method"] for c in node.commands] == ["hashpool-quote", "second"]
    assert all(c["id"].startswith("hashpool-wallet/") for c in node.commands)


def test_the_connection_sends_each_write_at_once(node: CommandoStandin) -> None:
    """A BOLT8 message leaves as two writes (length, then body): with Nagle on, the body would wait for the node's
    (delayed) acknowledgement of the length on every command."""
    import socket

    with _client(node) as client:
        client.call("x", {}, "rune-all")
        assert client._raw.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_a_reply_split_over_many_messages_is_put_back_together(node: CommandoStandin) -> None:
    node.split = 1000
    with _client(node) as client:
        assert client.call("big", {}, "rune-all") == {"blob": "y" * 200_000}


def test_a_large_command_goes_out_in_parts(node: CommandoStandin) -> None:
    with _client(node) as client:
        token = "cashuB" + "z" * 150_000
        assert client.call("hashpool-redeem", {"token": token}, "rune-all")["params"]["token"] == token


def test_pings_during_a_call_are_answered(node: CommandoStandin) -> None:
    node.ping = True
    with _client(node) as client:
        assert client.call("x", {}, "rune-all")["method"] == "x"
    assert node.pongs == 1


def test_errors_pass_through_with_code_and_data(node: CommandoStandin) -> None:
    with _client(node) as client:
        with pytest.raises(CommandoError) as err:
            client.call("fail", {}, "rune-all")
        assert (err.value.code, err.value.data["id"]) == (3440, "r1")
        with pytest.raises(CommandoError) as refused:
            client.call("hashpool-redemptions", {}, "rune-quote")
        assert refused.value.code == COMMANDO_ERROR_REMOTE_AUTH
        assert client.call("hashpool-quote", {}, "rune-quote")["method"] == "hashpool-quote"


def test_a_connection_dropped_mid_call_is_outcome_unknown(node: CommandoStandin) -> None:
    node.drop = 1
    client = _client(node)
    with pytest.raises(OutcomeUnknown, match="may have run"):
        client.call("hashpool-redeem", {"token": "t"}, "rune-all")
    assert len(node.commands) == 1  # the node did get it
    # The next call reconnects by itself.
    assert client.call("hashpool-status", {"claim": "c"}, "rune-all")["method"] == "hashpool-status"
    client.close()


def test_a_silent_node_times_out_as_outcome_unknown() -> None:
    standin = CommandoStandin(lambda method, params: time.sleep(3) or {}).start()
    try:
        client = _client(standin, timeout=1.0)
        with pytest.raises(OutcomeUnknown, match="timed out"):
            client.call("slow", {}, "rune-all")
    finally:
        standin.stop()


def test_no_listener_or_the_wrong_node_key_is_unavailable(node: CommandoStandin) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(CommandoUnavailable, match="cannot reach"):
        CommandoClient(NodeAddress(node.node_id, "127.0.0.1", port), b"\x07" * 32, timeout=2).connect()
    impostor = NodeAddress("02" + "11" * 32, "127.0.0.1", node.port)  # not the key the listener holds
    with pytest.raises(CommandoUnavailable):
        CommandoClient(impostor, b"\x07" * 32, timeout=2).connect()
    assert node.commands == []


def test_an_idle_connection_is_made_afresh_before_the_next_command(node: CommandoStandin, monkeypatch) -> None:
    from hashpool_cln.wallet import commando

    client = _client(node)
    client.call("first", {}, "rune-all")
    monkeypatch.setattr(commando, "IDLE_RECONNECT", 0.0)
    client.call("second", {}, "rune-all")
    client.close()
    assert len(node.peers) == 2  # two BOLT8 sessions, one per command


def test_a_rune_rate_is_a_minimum_interval_between_uses(node: CommandoStandin) -> None:
    # rate=240: a quarter of a second between two uses, as lightningd counts it (not 240 uses in any minute).
    with _client(node) as client:
        assert client.call("a", {}, "rune-fast")["method"] == "a"
        with pytest.raises(CommandoError) as refused:
            client.call("b", {}, "rune-fast")
        assert (refused.value.code, refused.value.message) == (0x4C51, "Invalid rune: Not permitted: too soon")
        assert too_soon(refused.value)
        time.sleep(0.3)
        assert client.call("c", {}, "rune-fast")["method"] == "c"
    assert [c["method"] for c in node.commands] == ["a", "b", "c"]
    assert node.too_soon == 1


def test_other_refusals_are_not_too_soon(node: CommandoStandin) -> None:
    with _client(node) as client:
        with pytest.raises(CommandoError) as refused:
            client.call("hashpool-redemptions", {}, "rune-quote")
        assert not too_soon(refused.value)
        with pytest.raises(CommandoError) as failed:
            client.call("fail", {}, "rune-all")
        assert not too_soon(failed.value)


def test_the_desk_link_waits_out_a_rune_rate(node: CommandoStandin) -> None:
    async def two_calls() -> list[object]:
        desk = CommandoDesk(NodeAddress.parse(node.address), b"\x07" * 32, "rune-fast", timeout=10)
        try:
            return [await desk.call("first", {}), await desk.call("second", {})]
        finally:
            desk.close()

    first, second = asyncio.run(two_calls())
    assert (first, second) == ({"method": "first", "params": {}}, {"method": "second", "params": {}})
    assert node.too_soon == 1
    assert [c["method"] for c in node.commands] == ["first", "second", "second"]


def test_the_desk_link_gives_up_on_a_rate_it_cannot_wait_for(node: CommandoStandin) -> None:
    async def two_calls() -> None:
        desk = CommandoDesk(NodeAddress.parse(node.address), b"\x07" * 32, "rune-slow", timeout=10, rate_wait=1.0)
        try:
            await desk.call("first", {})
            await desk.call("second", {})
        finally:
            desk.close()

    started = time.monotonic()
    with pytest.raises(CommandoError) as refused:
        asyncio.run(two_calls())
    assert too_soon(refused.value)
    assert time.monotonic() - started < 5
    assert 2 <= node.too_soon <= 3  # tried again within the second it was given, then the refusal stands
