"""The end-to-end demo, from the miner's side: the pool quotes shares locked to the miner wallet's key, the wallet
sweeps them, a block reward settles the epoch, the operator creates a rune for the miner, and the wallet redeems
over commando (a direct BOLT8 connection, no Lightning node of its own) into the miner node's BOLT12 offer. Then a
second act: the operator redeems a token into a BOLT11 invoice with ``hashpool-redeem`` on the pool's node."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hashpool_cln.cashu.tokens import parse_token, serialize_v4
from hashpool_cln.ehash import Epoch
from hashpool_cln.mintclient import MintClient
from hashpool_cln.refmint.miner import issue_token
from hashpool_cln.refmint.shares import random_share_hash
from hashpool_cln.regtest import procs
from hashpool_cln.regtest.stack import CONFIRMATIONS, Stack
from hashpool_cln.wallet import config as wallet_config
from hashpool_cln.wallet.commando import NodeAddress
from hashpool_cln.wallet.issuance import Issuance
from hashpool_cln.wallet.redeem import CommandoDesk
from hashpool_cln.wallet.redeem import redeem as wallet_redeem
from hashpool_cln.wallet.seed import WalletKeys, new_mnemonic, read_mnemonic, write_secret_file
from hashpool_cln.wallet.store import WalletStore
from hashpool_cln.wallet.sweep import sweep
from hashpool_cln.wallet.wallet import Wallet

INVOICE_MSAT = 25_000_000
OFFER_MSAT = 15_000_000
# Each demo token is one share worth 2^40 units; "other miners" hold four more, so one token is a sixth of the
# epoch's reward (a unit is worth under a msat: payments need fractions of a token, and the rest comes back as change).
SHARE_EXPONENT = 40
OTHER_SHARES = 4
WALLET_SHARES = 2  # shares the pool quotes locked to the miner wallet's key
# What the operator allows a miner's wallet: three methods, a call at most every six seconds (rate=10: lightningd
# reads rate=N as a minimum interval of 60/N seconds), for thirty days.
RUNE_METHODS = ("hashpool-quote", "hashpool-redeem", "hashpool-status")
RUNE_RATE = 10
RUNE_DAYS = 30


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


# ---- the miner's wallet ------------------------------------------------------------------------------------------

def wallet_keys(stack: Stack) -> WalletKeys:
    """The demo wallet's keys, creating the wallet (mnemonic, config with the mint) on first use."""
    directory = stack.layout.wallet_dir
    mnemonic = directory / wallet_config.MNEMONIC_FILE
    if not mnemonic.exists():
        write_secret_file(mnemonic, new_mnemonic() + "\n")
    config = wallet_config.load(directory)
    wallet_config.save(directory, wallet_config.WalletConfig(stack.mint_url(), config.node, config.rune))
    return WalletKeys(read_mnemonic(mnemonic))


def quote_shares(stack: Stack, lock_pubkey: str, count: int) -> list[str]:
    """What the pool does for each accepted share: an ``ehash`` quote, born paid, locked to the miner's key."""
    pool_auth = json.loads((stack.layout.mint_dir / "auth.json").read_text())["pool"]
    leading_zeros = int(_mint_info(stack.mint_url())["ehash"]["min_difficulty"]) + SHARE_EXPONENT
    ids = []
    for _ in range(count):
        body = {"header_hash": random_share_hash(leading_zeros)[::-1].hex(), "unit": "hash", "pubkey": lock_pubkey}
        request = urllib.request.Request(f"{stack.mint_url()}/v1/mint/quote/ehash", data=json.dumps(body).encode(),
                                         headers={"Authorization": f"Bearer {pool_auth}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            ids.append(json.loads(resp.read())["quote"])
    return ids


def miner_rune(stack: Stack) -> str:
    """The operator's part: a rune for the miner's wallet, three methods only, rate-limited, expiring."""
    restrictions = [[f"method={m}" for m in RUNE_METHODS], [f"rate={RUNE_RATE}"],
                    [f"time<{int(time.time()) + RUNE_DAYS * 86_400}"]]
    return stack.node("pool").call("createrune", {"restrictions": restrictions})["rune"]


async def _with_wallet(stack: Stack, keys: WalletKeys, act: Callable[[Wallet], Any]) -> Any:
    store = await WalletStore.open(stack.layout.wallet_db)
    wallet = Wallet(store, keys, MintClient(stack.mint_url(), timeout=60))
    try:
        await wallet.recover()
        return await act(wallet)
    finally:
        await wallet.mint.close()
        await store.close()


def wallet_sweep(stack: Stack, keys: WalletKeys) -> dict[str, Any]:
    async def act(wallet: Wallet) -> dict[str, Any]:
        return (await sweep(wallet, Issuance(wallet.mint))).to_dict()
    return asyncio.run(_with_wallet(stack, keys, act))


def wallet_balance(stack: Stack, keys: WalletKeys) -> list[dict[str, Any]]:
    async def act(wallet: Wallet) -> list[dict[str, Any]]:
        return [b.to_dict() for b in await wallet.balance()]
    return asyncio.run(_with_wallet(stack, keys, act))


def wallet_redeem_offer(stack: Stack, keys: WalletKeys, offer: str, amount_msat: int) -> dict[str, Any]:
    """Over commando, as ``hashpool-wallet redeem`` does: the node address and rune from the wallet's config."""
    config = wallet_config.load(stack.layout.wallet_dir)
    config.require("node", "rune")

    async def act(wallet: Wallet) -> dict[str, Any]:
        desk = CommandoDesk(NodeAddress.parse(config.node or ""), keys.node_key, config.rune or "")
        try:
            return await wallet_redeem(wallet, desk, offer, amount_msat=amount_msat)
        finally:
            desk.close()
    return asyncio.run(_with_wallet(stack, keys, act))


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
    pool_id = pool.getinfo()["id"]
    say(f"pool node  {pool_id}")
    say(f"miner node {miner.getinfo()['id']}")
    before = stack.balances()

    say("== the miner's wallet (no Lightning node of its own)")
    keys = wallet_keys(stack)
    say(f"wallet {stack.layout.wallet_dir}: lock key {keys.lock_pubkey} (the pool locks shares to it)")

    say("== mining shares: the pool quotes each one, locked to the miner's key")
    quote_shares(stack, keys.lock_pubkey, WALLET_SHARES)
    operator_token = mint_ehash(stack, 1)  # for the second act
    mint_ehash(stack, OTHER_SHARES)  # the rest of the pool's miners, minted as their proxies do
    swept = wallet_sweep(stack, keys)
    unit = next(iter(swept["units"]))
    say(f"wallet sweep: {swept['quotes_found']} quotes found by signed lookup, {swept['quotes_minted']} minted in "
        f"{swept['batches']} NUT-29 batch(es): {swept['units'][unit]} units of epoch {_short(unit)}")

    say("== a block reward lands at the mint")
    settle_epoch(stack, unit, say)
    for b in wallet_balance(stack, keys):
        say(f"wallet balance: {b['unspent']} units of {_short(b['unit'])}, {b['epoch_state']}, worth "
            f"{b['value_msat']} msat")

    say("== the operator creates a rune for the miner: " + ", ".join(RUNE_METHODS)
        + f", rate={RUNE_RATE} (a call every {60 // RUNE_RATE} s at most), {RUNE_DAYS} days")
    rune = miner_rune(stack)
    config = wallet_config.load(stack.layout.wallet_dir)
    wallet_config.save(stack.layout.wallet_dir, wallet_config.WalletConfig(
        config.mint, f"{pool_id}@127.0.0.1:{stack.settings().pool_ln_port}", rune))

    say("== the wallet redeems over commando into the miner node's BOLT12 offer")
    offer = miner.call("offer", {"amount": "any", "description": "ehash redemption (BOLT12)"})["bolt12"]
    say(f"offer   {offer[:48]}… (any amount); the wallet asks for {OFFER_MSAT} msat")
    receipts = [Receipt("BOLT12", offer, wallet_redeem_offer(stack, keys, offer, OFFER_MSAT))]
    _print_receipt(receipts[0], say)

    say("== second act: the operator redeems a token into a BOLT11 invoice with lightning-cli hashpool-redeem")
    label = f"hashpool-demo-{int(time.time())}"
    invoice = miner.invoice(INVOICE_MSAT, label, "ehash redemption (BOLT11)")["bolt11"]
    say(f"invoice {invoice[:48]}… for {INVOICE_MSAT} msat")
    receipts.append(Receipt("BOLT11", invoice, redeem(stack, operator_token, invoice)))
    _print_receipt(receipts[1], say)

    after = stack.balances()
    for b in wallet_balance(stack, keys):
        say(f"wallet balance after: {b['unspent']} units of {_short(b['unit'])} (the change came back)")
    _print_balances("balances before:", before, say)
    _print_balances("balances after:", after, say)
    say(f"== done in {time.monotonic() - started:.0f} s; `just down` stops the stack")
    return DemoResult(receipts, before, after)


def _unit_of(token: str) -> str:
    return parse_token(token).unit
