"""A stand-in bitcoind: a scriptable regtest chain served over bitcoind's JSON-RPC (HTTP, basic auth, 1.0 errors).

It answers getblockcount, getblockhash, getblock (verbosity 2), getbestblockhash and validateaddress with
Bitcoin Core's result shapes, amounts written as JSON numbers with eight decimals, and errors the way
Core 1.0-style replies carry them (HTTP 500 or 404 with ``{"result": null, "error": {...}}``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal

from aiohttp import web

SUBSIDY_SATS = 50 * 100_000_000
WITNESS_COMMITMENT = "6a24aa21a9ed" + "00" * 32  # OP_RETURN witness commitment output, value 0
ELSEWHERE = "0014" + "ee" * 20  # a P2WPKH script that is not the mint's


def p2wpkh(tag: int) -> str:
    return "0014" + bytes([tag]).hex() * 20


@dataclass
class Block:
    hash: str
    height: int
    prev: str | None
    outputs: list[tuple[str, int]]  # coinbase (scriptPubKey hex, sats)
    time: int


@dataclass
class FakeChain:
    """The best chain as a list; ``addresses`` maps address strings to scripts for validateaddress."""

    blocks: list[Block] = field(default_factory=list)
    addresses: dict[str, str] = field(default_factory=dict)
    _nonce: int = 0

    def __post_init__(self) -> None:
        if not self.blocks:
            self._append([(ELSEWHERE, SUBSIDY_SATS)])

    @property
    def tip(self) -> Block:
        return self.blocks[-1]

    def _append(self, outputs: list[tuple[str, int]]) -> Block:
        self._nonce += 1
        prev = self.blocks[-1].hash if self.blocks else None
        digest = hashlib.sha256(f"{prev}:{self._nonce}:{outputs}".encode()).hexdigest()
        block = Block(digest, len(self.blocks), prev, outputs, 1_700_000_000 + len(self.blocks) * 600)
        self.blocks.append(block)
        return block

    def mine(self, count: int = 1, script: str = ELSEWHERE, sats: int = SUBSIDY_SATS,
             extra: list[tuple[str, int]] | None = None) -> list[Block]:
        """Mine ``count`` blocks whose coinbase pays ``sats`` to ``script`` (plus ``extra`` outputs)."""
        return [self._append([(script, sats), *(extra or []), (WITNESS_COMMITMENT, 0)]) for _ in range(count)]

    def invalidate(self, height: int) -> None:
        """Drop the block at ``height`` and every block after it (bitcoind's invalidateblock)."""
        del self.blocks[height:]


def _amount(sats: int) -> str:
    return f"{Decimal(sats) / 100_000_000:.8f}"


def _block_json(chain: FakeChain, block: Block) -> str:
    """getblock verbosity 2, with amounts as raw JSON numbers (``50.00000000``) as Core writes them."""
    vout = []
    for n, (script, sats) in enumerate(block.outputs):
        spk: dict[str, object] = {"asm": "", "desc": f"raw({script})", "hex": script,
                                  "type": "nulldata" if script.startswith("6a") else "witness_v0_keyhash"}
        vout.append({"value": f"@@{_amount(sats)}@@", "n": n, "scriptPubKey": spk})
    txid = hashlib.sha256(block.hash.encode()).hexdigest()
    coinbase_tx = {
        "txid": txid, "hash": txid,
        "version": 2, "size": 170, "vsize": 143, "weight": 572, "locktime": 0,
        "vin": [{"coinbase": f"{block.height:04x}00", "txinwitness": ["00" * 32], "sequence": 4294967295}],
        "vout": vout, "hex": "00",
    }
    result: dict[str, object] = {
        "hash": block.hash, "confirmations": len(chain.blocks) - block.height, "height": block.height,
        "version": 536870912, "versionHex": "20000000", "merkleroot": coinbase_tx["txid"], "time": block.time,
        "mediantime": block.time, "nonce": 0, "bits": "207fffff", "difficulty": "@@4.656542373906925e-10@@",
        "chainwork": f"{2 * (block.height + 1):064x}", "nTx": 1, "strippedsize": 214, "size": 250, "weight": 892,
        "tx": [coinbase_tx],
    }
    if block.prev is not None:
        result["previousblockhash"] = block.prev
    if block.height + 1 < len(chain.blocks):
        result["nextblockhash"] = chain.blocks[block.height + 1].hash
    return json.dumps(result).replace('"@@', "").replace('@@"', "")


class RpcFailure(Exception):
    def __init__(self, code: int, message: str, http_status: int = 500) -> None:
        super().__init__(message)
        self.code, self.message, self.http_status = code, message, http_status


class FakeBitcoind:
    """An aiohttp app serving ``chain``; ``down`` makes every request fail at the HTTP level."""

    def __init__(self, chain: FakeChain, user: str = "__cookie__", password: str = "s3cret") -> None:
        self.chain = chain
        self.user, self.password = user, password
        self.calls: list[str] = []
        self.app = web.Application()
        self.app.router.add_post("/", self._handle)

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        return base64.b64decode(header[6:]).decode() == f"{self.user}:{self.password}"

    async def _handle(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="jsonrpc"'})
        body = await request.json()
        method, params, rid = body.get("method"), body.get("params", []), body.get("id")
        self.calls.append(method)
        try:
            result_json = self._dispatch(method, params)
        except RpcFailure as exc:
            err = json.dumps({"result": None, "error": {"code": exc.code, "message": exc.message}, "id": rid})
            return web.Response(status=exc.http_status, text=err, content_type="application/json")
        return web.Response(text=f'{{"result":{result_json},"error":null,"id":{json.dumps(rid)}}}',
                            content_type="application/json")

    def _dispatch(self, method: str, params: list) -> str:
        chain = self.chain
        if method == "getblockcount":
            return json.dumps(chain.tip.height)
        if method == "getbestblockhash":
            return json.dumps(chain.tip.hash)
        if method == "getblockhash":
            height = params[0]
            if not isinstance(height, int) or not 0 <= height < len(chain.blocks):
                raise RpcFailure(-8, "Block height out of range")
            return json.dumps(chain.blocks[height].hash)
        if method == "getblock":
            block = next((b for b in chain.blocks if b.hash == params[0]), None)
            if block is None:
                raise RpcFailure(-5, "Block not found")
            if len(params) < 2 or params[1] != 2:
                raise RpcFailure(-8, "the stand-in serves verbosity 2 only")
            return _block_json(chain, block)
        if method == "validateaddress":
            script = chain.addresses.get(params[0])
            if script is None:
                return json.dumps({"isvalid": False, "error": "Invalid or unsupported Segwit (Bech32) encoding."})
            return json.dumps({"isvalid": True, "address": params[0], "scriptPubKey": script, "isscript": False,
                               "iswitness": True, "witness_version": 0, "witness_program": script[4:]})
        raise RpcFailure(-32601, "Method not found", http_status=404)
