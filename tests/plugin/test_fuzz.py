"""Structure-aware fuzzing of the real plugin process over the plugin protocol.

Hostile requests are generated from a seed: wire-level JSON (bytes that are not UTF-8, truncated or deep JSON,
numbers of thousands of digits, lone surrogates, ids and params of every JSON type), parameters of every method
of every type and shape, and tokens (real ones mutated, forged ones on the mint's real keysets, structures a
parser does not expect) with mutated invoices and names. They go to one plugin process, with the stand-in node
and the reference mint behind it, in bursts. Afterwards: the process is alive and still serves, every request
whose id can be read was answered exactly once, no answer or log line carries a traceback, no log is at error
level, and every error code is a documented one (and never -32603, which would mean a bug).

``HASHPOOL_FUZZ_SEED`` picks the seed (default 9); ``HASHPOOL_FUZZ_LONG=1`` runs 100,000 requests instead of the
normal run's ``NORMAL_COUNT`` (``HASHPOOL_FUZZ_COUNT=N`` runs N).
"""

from __future__ import annotations

import base64
import json
import os
import random
import string
from collections import Counter
from collections.abc import Callable
from typing import Any

import cbor2
import pytest
from support.invoices import make_invoice, make_offer
from support.pluginharness import PluginHarness, assert_clean

from hashpool_cln.cashu.models import DLEQ, Proof
from hashpool_cln.cashu.tokens import make_token, parse_token, serialize_v3
from hashpool_cln.desk.errors import Code

NORMAL_COUNT = 10_000
LONG_COUNT = 100_000
BURST = 250
DOCUMENTED = {int(c) for c in Code} | {-32700, -32600, -32601}
METHODS = ("hashpool-redeem", "hashpool-quote", "hashpool-status", "hashpool-redemptions", "hashpool-info",
           "hashpool-settle", "setconfig")
PARAMS = {
    "hashpool-redeem": ("token", "invstring", "amount_msat", "maxfee_msat", "payer_note", "claim"),
    "hashpool-quote": ("token", "invstring", "amount_msat"),
    "hashpool-status": ("id", "claim"),
    "hashpool-redemptions": ("state", "limit"),
    "hashpool-info": (),
    "hashpool-settle": ("unit",),
    "setconfig": ("config", "val"),
}
NASTY_TEXT = ["", " ", "\u0000", "\ud800", "\udfff@example.com", "₿", "₿alice@example.com", "a" * 5000, "null",
              "²", "٣", "1e309", "-0", "NaN", "lnbc1", "lno1", "cashuB", "cashuA", "cashu:", "../../etc/passwd",
              "\u202e", "\uffff", "%s%s%n", "{}", "[]", "0x10", " 12 ", "12sat", "99999999999999999999999msat",
              "hash_" + "0" * 66, "settled", "paying", "hashpool-max-msat", "hashpool-mint-url"]


class Gen:
    """Hostile requests from one seed: ``next()`` gives (raw bytes, request id or None)."""

    def __init__(self, rng: random.Random, tokens: list[str], keyset: str, unit: str, mint_url: str,
                 invoices: list[str]) -> None:
        self.rng, self.tokens, self.keyset, self.unit, self.mint_url = rng, tokens, keyset, unit, mint_url
        self.invoices = invoices
        self.n = 0

    def next(self) -> tuple[bytes, str | None]:
        self.n += 1
        req_id = f"fz:{self.n}"
        kind = self.rng.random()
        if kind < 0.12:
            return self.wire(req_id)
        method = self.rng.choices(METHODS, weights=(30, 30, 10, 8, 6, 6, 10))[0]
        message = {"jsonrpc": "2.0", "id": req_id, "method": method, "params": self.params(method)}
        try:
            body = json.dumps(message).encode()
        except (ValueError, RecursionError):
            body = json.dumps({"jsonrpc": "2.0", "id": req_id, "method": method, "params": {}}).encode()
        return body, req_id

    # --- values ---

    def value(self, depth: int = 0) -> Any:
        r = self.rng.random()
        if r < 0.15:
            return self.rng.choice(NASTY_TEXT)
        if r < 0.25:
            return self.rng.choice([0, -1, 1, 2**63, 2**64, -(2**63) - 1, 10**30, True, False, None, 0.5, 1e308])
        if r < 0.35 and depth < 3:
            return [self.value(depth + 1) for _ in range(self.rng.randrange(4))]
        if r < 0.42 and depth < 3:
            return {self.text(4): self.value(depth + 1) for _ in range(self.rng.randrange(3))}
        if r < 0.6:
            return self.token()
        if r < 0.75:
            return self.invstring()
        if r < 0.85:
            return "".join(self.rng.choice("0123456789abcdef") for _ in range(self.rng.choice([32, 63, 64, 65])))
        return self.text(self.rng.randrange(40))

    def text(self, length: int) -> str:
        alphabet = string.printable + "\u00e9\u20bf\U0001f600\u0000"
        return "".join(self.rng.choice(alphabet) for _ in range(length))

    def params(self, method: str) -> Any:
        names = PARAMS[method]
        r = self.rng.random()
        if r < 0.04:
            return self.rng.choice(["x", 7, None, True, 1.5])
        if r < 0.2:
            return [self.value() for _ in range(self.rng.randrange(len(names) + 3))]
        out = {}
        for name in names:
            if self.rng.random() < (0.95 if name in ("token", "invstring", "config") else 0.6):
                out[name] = self.typed(name) if self.rng.random() < 0.9 else self.value()
        if self.rng.random() < 0.15:
            out[self.rng.choice(["bogus", "plugin", "request", "reveal_tokens", "\ud800", ""])] = self.value()
        return out

    def typed(self, name: str) -> Any:
        """A value of roughly the right kind for the parameter ``name``, so that deeper checks are reached."""
        rng = self.rng
        if name == "token":
            return self.token()
        if name == "invstring":
            return self.invstring()
        if name in ("amount_msat", "maxfee_msat", "limit", "val"):
            return rng.choice([rng.randrange(0, 10**7), rng.randrange(1, 2000), f"{rng.randrange(10**6)}sat",
                               str(rng.randrange(10**9)), 2**64 - 1, -5])
        if name in ("claim", "id"):
            return "".join(rng.choice("0123456789abcdef") for _ in range(rng.choice([32, 64, 64, 63])))
        if name == "state":
            return rng.choice(["new", "quoted", "custody", "paying", "paid", "settled", "rejected", "refunded", "x"])
        if name == "unit":
            return rng.choice([self.unit, "sat", "hash_" + "ab" * 33 + "_1", ""])
        if name == "config":
            return rng.choice(["hashpool-max-msat", "hashpool-maxfee-ppm", "hashpool-maxfee-msat",
                               "hashpool-min-invoice-life", "hashpool-mint-url", "hashpool-pool", "nope"])
        return self.text(rng.randrange(600))

    # --- tokens and destinations ---

    def token(self) -> str:
        r = self.rng.random()
        base = self.rng.choice(self.tokens)
        if r < 0.3:
            return self.mutate(base)
        if r < 0.5:
            return self.forged()
        if r < 0.65:
            return self.odd_structure()
        if r < 0.75:
            token = parse_token(base)
            return serialize_v3(token) if self.rng.random() < 0.5 else base
        if r < 0.85:
            return base[: self.rng.randrange(len(base))]
        return "cashuB" + base64.urlsafe_b64encode(os.urandom(self.rng.randrange(1, 300))).decode()

    def mutate(self, text: str) -> str:
        chars = list(text)
        for _ in range(self.rng.randrange(1, 6)):
            i = self.rng.randrange(6, len(chars))
            chars[i] = self.rng.choice(string.ascii_letters + string.digits + "-_=+/")
        return "".join(chars)

    def forged(self) -> str:
        from coincurve import PrivateKey

        proofs = []
        for _ in range(self.rng.randrange(1, 6)):
            amount = self.rng.choice([1, 2, 4, 3, 0, 2**62, 2**63])
            c = PrivateKey().public_key.format().hex() if self.rng.random() < 0.8 else "02" + "00" * 32
            dleq = DLEQ(e=os.urandom(32).hex(), s=os.urandom(32).hex(), r=os.urandom(32).hex()) \
                if self.rng.random() < 0.7 else None
            secret = self.rng.choice([os.urandom(32).hex(), '["P2PK",{"nonce":"00","data":"02' + "11" * 32 + '"}]',
                                      '["HTLC",{"nonce":"00","data":"' + "22" * 32 + '"}]', "x"])
            proofs.append(Proof(amount=max(amount, 1), id=self.keyset, secret=secret, C=c, dleq=dleq))
        mint = self.mint_url if self.rng.random() < 0.8 else "http://127.0.0.1:1"
        unit = self.unit if self.rng.random() < 0.8 else self.rng.choice(["sat", "hash", "hash_\u00e9", "usd"])
        try:
            token = make_token(mint, unit, proofs)
        except Exception:
            token = None
        return token if token is not None else self.mutate(self.rng.choice(self.tokens))

    def odd_structure(self) -> str:
        shapes: list[Callable[[], Any]] = [
            lambda: {"t": [{"i": b"\x01" * 33, "p": [{"a": 2**70, "s": "x", "c": b"\x02" * 33}]}], "m": "m", "u": "u"},
            lambda: {"t": "nope", "m": 1, "u": None},
            lambda: [1, 2, 3],
            lambda: {"t": [{"i": b"", "p": [{}] * 3}], "m": self.mint_url, "u": self.unit},
            lambda: {"t": [{"i": bytes.fromhex(self.keyset), "p": [{"a": 1, "s": "s" * 2000, "c": b"\x02" * 33,
                                                                     "d": {"e": b"", "s": 5}}]}],
                     "m": self.mint_url, "u": self.unit},
        ]
        if self.rng.random() < 0.5:
            body = cbor2.dumps(self.rng.choice(shapes)())
            return "cashuB" + base64.urlsafe_b64encode(body).decode().rstrip("=")
        v3 = self.rng.choice([{"token": [{"mint": self.mint_url, "proofs": [{"amount": "1", "id": 5}]}]},
                              {"token": "x"}, {"unit": self.unit}, [None], {"token": [{"proofs": [None]}]}])
        return "cashuA" + base64.urlsafe_b64encode(json.dumps(v3).encode()).decode()

    def invstring(self) -> str:
        r = self.rng.random()
        if r < 0.4:
            return self.rng.choice(self.invoices)
        if r < 0.7:
            return self.mutate(self.rng.choice(self.invoices))
        if r < 0.85:
            return self.rng.choice(["₿", ""]) + self.text(8) + "@" + self.rng.choice(["example.com", "\ud800.com",
                                                                                       "xn--", "a..b", ""])
        return self.rng.choice(["lnbc", "lno", "lni", "lnbcrt", "LNBC"]) + self.text(self.rng.randrange(80))

    # --- wire level ---

    def wire(self, req_id: str) -> tuple[bytes, str | None]:
        head = '{"jsonrpc":"2.0","id":"' + req_id + '","method":"' + self.rng.choice(METHODS) + '","params":'
        r = self.rng.random()
        if r < 0.15:
            return (head + "{\"limit\":" + "9" * self.rng.randrange(4301, 9000) + "}}").encode(), req_id
        if r < 0.3:
            depth = self.rng.randrange(33, 6000)
            return (head + "[" * depth + "]" * depth + "}").encode(), req_id
        if r < 0.4:
            return (head + '{"token":"cashuB').encode() + os.urandom(8) + b'"}}', req_id
        if r < 0.5:
            return (head + '{"id":"\\ud800","unit":"\\udfff"}}').encode(), req_id
        if r < 0.6:
            return (head + self.rng.choice(['"str"', "7", "null", "true", "NaN", "Infinity"]) + "}").encode(), req_id
        if r < 0.7:
            cut = head + '{"token":"abc","invstring":"def"}}'
            return cut[: self.rng.randrange(len(head), len(cut))].encode(), req_id
        if r < 0.8:  # no readable id: answered by nobody, must not break anything
            return self.rng.choice([b"garbage", b"[]", b"{}", os.urandom(20), b'{"id":[1],"method":"x"}',
                                    b'{"jsonrpc":"2.0","method":"shutdown","params":7}']), None
        if r < 0.9:
            return (head.replace('"' + req_id + '"', '"' + req_id + '\\ud800"') + "{}}").encode(), req_id + "\ud800"
        return ('{"jsonrpc":"2.0","id":"' + req_id + '","method":' + self.rng.choice(['5', 'null', '"init"',
                '"getmanifest"', '"hashpool-nope"']) + ',"params":{}}').encode(), req_id


def _count() -> int:
    if os.environ.get("HASHPOOL_FUZZ_COUNT"):
        return int(os.environ["HASHPOOL_FUZZ_COUNT"])
    return LONG_COUNT if os.environ.get("HASHPOOL_FUZZ_LONG") == "1" else NORMAL_COUNT


@pytest.fixture
def fuzz_plugin(harness: PluginHarness, ehash_mint) -> PluginHarness:
    harness.getmanifest()
    assert harness.init({"hashpool-mint-url": ehash_mint.url, "hashpool-mint-key": ehash_mint.desk_key,
                         "hashpool-pool": [ehash_mint.pool]}) is None
    return harness


def test_hostile_requests_never_break_the_plugin(fuzz_plugin: PluginHarness, ehash_mint, node) -> None:
    plugin = fuzz_plugin
    seed = int(os.environ.get("HASHPOOL_FUZZ_SEED", "9"))
    rng = random.Random(seed)
    tokens = ehash_mint.issue_settled([1, 3, 8, 64, 100, 255])
    first = parse_token(tokens[0])
    offer = make_offer(None)
    node.register_offer(offer)
    invoices = [make_invoice(1_000_000).bolt11, make_invoice(None).bolt11, make_invoice(5_000, network="bitcoin")
                .bolt11, make_invoice(1_000, expiry=1).bolt11, offer.text]
    gen = Gen(rng, tokens, first.proofs[0].id, first.unit, first.mint, invoices)

    expected: list[str] = []
    total = _count()
    while gen.n < total:
        burst = []
        for _ in range(min(BURST, total - gen.n)):
            body, req_id = gen.next()
            plugin.send_raw(body)
            if req_id is not None:
                burst.append(req_id)
        for req_id in burst:
            plugin.reply(req_id, timeout=60)
        expected += burst
        assert plugin.alive(), f"the plugin died (seed {seed}, after request {gen.n})"

    codes: Counter[int] = Counter()
    answers: Counter[str] = Counter()
    for raw in plugin.stdout_raw:
        msg = json.loads(raw)
        if "id" in msg and ("result" in msg or "error" in msg):
            answers[str(msg["id"])] += 1
            if "error" in msg:
                codes[msg["error"]["code"]] += 1
                assert set(msg["error"]) <= {"code", "message", "data"}, msg
    wanted = Counter(expected)
    assert all(answers[i] == 1 for i in wanted), [i for i in wanted if answers[i] != 1][:5]
    assert set(codes) <= DOCUMENTED, {c: n for c, n in codes.items() if c not in DOCUMENTED}
    assert -32603 not in codes
    # The process still serves an ordinary call, and said nothing it should not have.
    assert plugin.call("hashpool-info").ok()["mint_reachable"] is True
    assert_clean(plugin)
    if os.environ.get("HASHPOOL_FUZZ_DEBUG"):
        errors = [msg["error"] for msg in map(json.loads, plugin.stdout_raw) if "error" in msg]
        messages = Counter(e["message"][:50] for e in errors)
        print(messages.most_common(25))
    print(f"seed {seed}: {total} requests, {len(expected)} answered, codes {dict(codes.most_common())}")
