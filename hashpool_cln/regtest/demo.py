"""The end-to-end demo: ehash from simulated shares, a block reward to the mint, and two redemptions through the
pool's node (a BOLT11 invoice and a BOLT12 offer of the miner's node), with receipts and balances."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hashpool_cln.cashu.tokens import parse_token, serialize_v4
from hashpool_cln.ehash import Epoch
from hashpool_cln.mintclient import MintClient
from hashpool_cln.refmint.miner import issue_token
from hashpool_cln.regtest import procs
from hashpool_cln.regtest.stack import CONFIRMATIONS, Stack

INVOICE_MSAT = 25_000_000
OFFER_MSAT = 15_000_000
# Each demo token is one share worth 2^40 units; "other miners" hold four more, so one token is a sixth of the
# epoch's reward (a unit is worth under a msat: payments need fractions of a token, and the rest comes back as change).
SHARE_EXPONENT = 40
OTHER_SHARES = 4


@dataclass
class Receipt:
    kind: str
    invstring: str
    result: dict[str, Any]


@dataclass
class DemoResult:
    receipts: list[Receipt]
    before: dict[str, dict[str, int]]
    after: dict[str, dict[str, int]]


def _epochs(url: str) -> list[Epoch]:
    async def fetch() -> list[Epoch]:
        async with MintClient(url) as client:
            return await client.epochs()
    return asyncio.run(fetch())


def epoch_state(url: str, unit: str) -> str | None:
    return next((e.state for e in _epochs(url) if e.unit == unit), None)


def mint_ehash(stack: Stack, shares: int) -> str:
    """A token of ``shares`` simulated shares, minted from the mint's open epoch (the pool's and the miner's
    side of issuance, as ``hashpool-mint shares`` does)."""
    pool_auth = json.loads((stack.layout.mint_dir / "auth.json").read_text())["pool"]
    info = _mint_info(stack.mint_url())
    leading_zeros = int(info["ehash"]["min_difficulty"]) + SHARE_EXPONENT
    token = asyncio.run(issue_token(stack.mint_url(), pool_auth, shares, leading_zeros))
    return serialize_v4(token)


def _mint_info(url: str) -> dict[str, Any]:
    async def fetch() -> dict[str, Any]:
        async with MintClient(url) as client:
            return await client.info()
    return asyncio.run(fetch())


def settle_epoch(stack: Stack, unit: str, say: Callable[[str], None]) -> None:
    """Mine a block paying the mint, then confirmations, until the mint reports ``unit`` settled."""
    settings = stack.settings()
    (reward_block,) = stack.mine(1, settings.mint_address)
    say(f"mined block {reward_block} paying the mint at {settings.mint_address}")
    procs.wait_until(f"the mint to see the reward in {reward_block}",
                     lambda: epoch_state(stack.mint_url(), unit) in ("maturing", "settled"), 60,
                     stack.layout.log_file("mint"))
    say(f"epoch {_short(unit)} closed by that reward: maturing")
    stack.mine(CONFIRMATIONS - 1)
    procs.wait_until(f"epoch {unit} to settle", lambda: epoch_state(stack.mint_url(), unit) == "settled", 60,
                     stack.layout.log_file("mint"))
    epoch = next(e for e in _epochs(stack.mint_url()) if e.unit == unit)
    say(f"epoch {_short(unit)} settled after {CONFIRMATIONS} confirmations: reward {epoch.reward_msat} msat "
        f"for {epoch.issued} units")


def _short(unit: str) -> str:
    parts = unit.split("_")
    return f"hash_{parts[1][:8]}…_{'_'.join(parts[2:])}" if len(parts) >= 3 else unit


def redeem(stack: Stack, token: str, invstring: str) -> dict[str, Any]:
    return stack.node("pool").call("hashpool-redeem", {"token": token, "invstring": invstring})


def _print_balances(title: str, balances: dict[str, dict[str, int]], say: Callable[[str], None]) -> None:
    say(title)
    for name, b in balances.items():
        say(f"  {name:6} channel {b['channel_msat']:>15,} msat   on-chain {b['onchain_msat']:>18,} msat")


def _print_receipt(receipt: Receipt, say: Callable[[str], None]) -> None:
    r = receipt.result
    say(f"receipt ({receipt.kind}): redemption {r.get('id')} {r.get('state')}")
    for key in ("payment_hash", "payment_preimage", "unit", "amount", "value_msat", "amount_msat", "fee_msat"):
        if key in r:
            say(f"  {key:17} {r[key]}")
    if r.get("change_token"):
        say(f"  change_token      {r['change_token'][:40]}… ({len(r['change_token'])} chars)")


def run(stack: Stack, say: Callable[[str], None] = print) -> DemoResult:
    started = time.monotonic()
    say("== bringing the regtest stack up")
    stack.up()
    pool, miner = stack.node("pool"), stack.node("miner")
    say(f"pool node  {pool.getinfo()['id']}")
    say(f"miner node {miner.getinfo()['id']}")
    before = stack.balances()

    say("== mining shares: the pool quotes them, the miner's proxy mints them into ehash")
    bolt11_token = mint_ehash(stack, 1)
    bolt12_token = mint_ehash(stack, 1)
    mint_ehash(stack, OTHER_SHARES)  # the rest of the pool's miners
    unit = _unit_of(bolt11_token)
    say(f"two tokens of 2^{SHARE_EXPONENT} units each of epoch {_short(unit)} (plus {OTHER_SHARES} shares held by "
        "other miners)")

    say("== a block reward lands at the mint")
    settle_epoch(stack, unit, say)

    say("== the miner asks to be paid: a BOLT11 invoice and a BOLT12 offer")
    label = f"hashpool-demo-{int(time.time())}"
    invoice = miner.invoice(INVOICE_MSAT, label, "ehash redemption (BOLT11)")["bolt11"]
    offer = miner.call("offer", {"amount": f"{OFFER_MSAT}msat", "description": "ehash redemption (BOLT12)"})["bolt12"]
    say(f"invoice {invoice[:48]}… for {INVOICE_MSAT} msat")
    say(f"offer   {offer[:48]}… for {OFFER_MSAT} msat")

    say("== redeeming through the pool node's hashpool-redeem")
    receipts = [Receipt("BOLT11", invoice, redeem(stack, bolt11_token, invoice)),
                Receipt("BOLT12", offer, redeem(stack, bolt12_token, offer))]
    for receipt in receipts:
        _print_receipt(receipt, say)

    after = stack.balances()
    _print_balances("balances before:", before, say)
    _print_balances("balances after:", after, say)
    say(f"== done in {time.monotonic() - started:.0f} s; `just down` stops the stack")
    return DemoResult(receipts, before, after)


def _unit_of(token: str) -> str:
    return parse_token(token).unit
