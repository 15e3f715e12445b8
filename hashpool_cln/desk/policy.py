"""The desk's local rules: what it buys, where it pays, how much, at what price. Pure functions over integers.

Each check raises DeskError with the code a wallet can act on; none touches the network.
"""

from __future__ import annotations

from hashpool_cln.cashu.errors import CashuError
from hashpool_cln.cashu.keysets import Keyset
from hashpool_cln.cashu.units import EpochUnit, parse_unit
from hashpool_cln.ehash import PPM, EhashQuote, Epoch, net_reward_msat, quote_amount_msat
from hashpool_cln.lightning.port import Destination

from .config import DeskConfig
from .errors import Code, DeskError


def normalize_url(url: str) -> str:
    return url.strip().rstrip("/").lower()


def check_mint(mint: str, config: DeskConfig) -> None:
    served = {normalize_url(u) for u in (config.mint_url, *config.mint_aliases)}
    if normalize_url(mint) not in served:
        raise DeskError(Code.UNKNOWN_MINT, "the token is from a mint this desk does not serve",
                        {"mint": mint[:200], "served": config.mint_url})


def check_unit(unit: str, config: DeskConfig) -> EpochUnit:
    try:
        parsed = parse_unit(unit)
    except CashuError as e:
        raise DeskError(Code.UNIT_NOT_ALLOWED, str(e), {"unit": unit[:200]}) from None
    if parsed is None:
        raise DeskError(Code.UNIT_NOT_ALLOWED, "the token's unit is not ehash", {"unit": unit[:200]})
    if parsed.is_legacy and not config.allow_legacy_unit:
        raise DeskError(Code.UNIT_NOT_ALLOWED, "this desk does not buy the legacy unit 'hash'", {"unit": unit})
    if not parsed.is_legacy and parsed.pool not in config.pools:
        raise DeskError(Code.UNIT_NOT_ALLOWED, "the token's ehash is from a pool this desk does not serve",
                        {"unit": unit, "pool": parsed.pool})
    return parsed


def check_epoch(unit: str, epoch: Epoch | None, now: int) -> Epoch:
    """Only settled epochs have a price; an epoch past its redemption window has none any more."""
    if epoch is None:
        raise DeskError(Code.EPOCH_NOT_REDEEMABLE, "the mint lists no epoch for this unit", {"unit": unit})
    if epoch.state != "settled":
        raise DeskError(Code.EPOCH_NOT_REDEEMABLE, f"the epoch is {epoch.state}, not settled yet",
                        {"unit": unit, "epoch_state": epoch.state})
    if epoch.redeem_until is not None and epoch.redeem_until <= now:
        raise DeskError(Code.EPOCH_NOT_REDEEMABLE, "the epoch's redemption window has closed",
                        {"unit": unit, "redeem_until": epoch.redeem_until})
    if epoch.issued <= 0:
        raise DeskError(Code.EPOCH_NOT_REDEEMABLE, "the epoch issued no units", {"unit": unit})
    return epoch


def check_keyset(keyset: Keyset, unit: str, now: int) -> None:
    if keyset.unit != unit:
        raise DeskError(Code.KEYSET_REFUSED, "a proof's keyset belongs to another unit",
                        {"keyset": keyset.id, "keyset_unit": keyset.unit[:200]})
    if keyset.final_expiry is not None and keyset.final_expiry <= now:
        raise DeskError(Code.KEYSET_REFUSED, "a proof's keyset has expired",
                        {"keyset": keyset.id, "final_expiry": keyset.final_expiry})


def check_destination(dest: Destination, network: str, now: int, config: DeskConfig) -> None:
    if not dest.valid:
        raise DeskError(Code.INVALID_DESTINATION, "the node cannot read this invoice or offer")
    if dest.network is not None and dest.network != network:
        raise DeskError(Code.WRONG_NETWORK, f"the destination is for {dest.network}, this node is on {network}",
                        {"destination_network": dest.network, "node_network": network})
    if dest.recurring:
        raise DeskError(Code.DESTINATION_UNSUPPORTED, "recurring offers are not paid by the desk")
    if dest.currency is not None and dest.currency.upper() not in ("BTC", "SAT", "MSAT"):
        raise DeskError(Code.DESTINATION_UNSUPPORTED, "offers priced in another currency are not paid by the desk",
                        {"currency": dest.currency[:16]})
    check_lifetime(dest, now, config)


def check_lifetime(dest: Destination, now: int, config: DeskConfig) -> None:
    if dest.expires_at is None:
        return
    if dest.expires_at <= now:
        raise DeskError(Code.DESTINATION_EXPIRED, "the invoice has expired", {"expires_at": dest.expires_at})
    if dest.expires_at - now < config.min_invoice_life:
        raise DeskError(Code.DESTINATION_EXPIRED, "the invoice expires too soon to be paid safely",
                        {"expires_at": dest.expires_at, "min_invoice_life": config.min_invoice_life})


def fee_cap(amount_msat: int, config: DeskConfig) -> int:
    """The most the desk spends on routing ``amount_msat``: ppm of it, capped at the absolute limit."""
    return min(-(-amount_msat * config.maxfee_ppm // PPM), config.maxfee_msat)


def fee_reserve(amount_msat: int, caller_maxfee: int | None, config: DeskConfig) -> int:
    cap = fee_cap(amount_msat, config)
    if caller_maxfee is None:
        return cap
    if caller_maxfee > cap:
        raise DeskError(Code.FEE_TOO_HIGH, f"maxfee_msat may be at most {cap} for this amount",
                        {"maxfee_msat": caller_maxfee, "allowed_msat": cap})
    return caller_maxfee


def check_caller_maxfee(caller_maxfee: int | None, config: DeskConfig) -> None:
    """A caller's fee limit above the desk's absolute cap is refused before anything is recorded (and before
    an unbounded integer reaches the ledger)."""
    if caller_maxfee is not None and caller_maxfee > config.maxfee_msat:
        raise DeskError(Code.FEE_TOO_HIGH, f"maxfee_msat may be at most {config.maxfee_msat}",
                        {"maxfee_msat": caller_maxfee, "allowed_msat": config.maxfee_msat})


def check_amount(amount_msat: int, config: DeskConfig) -> None:
    if amount_msat <= 0:
        raise DeskError(Code.INVALID_PARAMS, "the payment amount must be positive")
    if amount_msat > config.max_msat:
        raise DeskError(Code.OVER_LIMIT, f"the desk pays at most {config.max_msat} msat per redemption",
                        {"amount_msat": amount_msat, "max_msat": config.max_msat})


def epoch_net_reward(epoch: Epoch, pool_fee_ppm: int) -> int:
    """What the epoch's units are quoted against: the net reward the epoch publishes (its own pool fee, fixed
    when it closed), else its reward less ``pool_fee_ppm`` (mints that do not publish it)."""
    if epoch.net_reward_msat is not None:
        return epoch.net_reward_msat
    return net_reward_msat(epoch.reward_msat, pool_fee_ppm)


def epoch_value(units: int, epoch: Epoch, pool_fee_ppm: int) -> int:
    """What ``units`` are worth at the epoch's published rate (the mint's formula, section 3)."""
    return quote_amount_msat(units, epoch_net_reward(epoch, pool_fee_ppm), epoch.issued)


def units_for(amount_msat: int, epoch: Epoch, pool_fee_ppm: int) -> int:
    """The fewest units worth at least ``amount_msat``: ceil(amount * issued / net) in integers."""
    net = epoch_net_reward(epoch, pool_fee_ppm)
    if net <= 0:
        raise DeskError(Code.EPOCH_NOT_REDEEMABLE, "the epoch's reward backs no value", {"unit": epoch.unit})
    return units_at(amount_msat, net, epoch.issued)


def units_at(amount_msat: int, net_msat: int, issued: int) -> int:
    """``units_for`` at a rate written down earlier (the epoch's net reward and units issued)."""
    return -(-amount_msat * issued // net_msat)


def units_used(sent_msat: int, units_payment: int, units_total: int, net_msat: int, issued: int) -> int:
    """The units a payment that cost ``sent_msat`` (amount and routing fee) used of the ``units_total`` bought:
    never fewer than the payment itself needs, never more than were bought."""
    return max(units_payment, min(units_total, units_at(sent_msat, net_msat, issued)))


def check_rate(quote: EhashQuote, units: int, unit: str, expected_msat: int, config: DeskConfig) -> None:
    """The mint's quote is for what was asked, at the epoch's published rate (``expected_msat``, within the
    configured tolerance)."""
    if quote.unit != unit or quote.amount != units or quote.state != "UNPAID":
        raise DeskError(Code.RATE_REFUSED, "the mint quoted something other than what was asked",
                        {"quote": quote.quote, "unit": quote.unit[:200], "amount": quote.amount})
    if abs(quote.amount_msat - expected_msat) > config.rate_tolerance_msat:
        raise DeskError(Code.RATE_REFUSED, "the mint's quote does not match the epoch's published rate",
                        {"quote_msat": quote.amount_msat, "expected_msat": expected_msat})
