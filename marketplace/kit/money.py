"""Money arithmetic in integer minor units, and the ids of the ledger transfers a subject makes.

Rounding rule of the platform fee: the exact fee is `amount_minor * fee_bps / 10000` minor units;
it is rounded to the nearest minor unit, and a fraction of exactly one half rounds up (away from
zero: amounts are never negative). Only integers are used, so the rule holds for any amount.
The provider receives the rest, so the two parts always add up to the amount."""

from __future__ import annotations

import uuid

from marketplace.kit.codelists import currency_minor_units

BPS_PER_WHOLE = 10_000

# The namespace of every transfer id derived from a subject (an order, a payout...). Never change
# it: a replay after a change would derive new ids and post the same movement twice.
TRANSFER_ID_NAMESPACE = uuid.UUID("47694fd2-23e0-4941-ab57-0634d24ef85e")


def platform_fee(amount_minor: int, fee_bps: int) -> int:
    """The fee on an amount: `amount_minor * fee_bps / 10000` rounded half up (see the module)."""
    if amount_minor < 0:
        raise ValueError("amount_minor must not be negative")
    if not 0 <= fee_bps <= BPS_PER_WHOLE:
        raise ValueError("fee_bps must be between 0 and 10000")
    # floor(x + 1/2) with x = amount * bps / 10000, in integers: floor((2 * amount * bps + 10000) / 20000)
    return (2 * amount_minor * fee_bps + BPS_PER_WHOLE) // (2 * BPS_PER_WHOLE)


def split(amount_minor: int, fee_bps: int) -> tuple[int, int]:
    """(provider_minor, fee_minor): the fee as `platform_fee` rounds it, the provider the rest."""
    fee_minor = platform_fee(amount_minor, fee_bps)
    return amount_minor - fee_minor, fee_minor


def transfer_id(subject_id: uuid.UUID, step: str) -> uuid.UUID:
    """The id of one step's transfer for a subject, e.g. `transfer_id(order.id, "payment")`: the same
    subject and step always give the same id, so posting the step again is a replay."""
    return uuid.uuid5(TRANSFER_ID_NAMESPACE, f"{subject_id}:{step}")


def major_units(amount_minor: int, currency: str) -> str:
    """The amount as people read it, in the currency's major units: 123450 CNY "1,234.50", 1200 JPY "1,200"
    (an unknown currency's minor units as they are)."""
    places = currency_minor_units(currency) or 0
    whole, part = divmod(abs(int(amount_minor)), 10**places)  # int: a database's SUM may be a decimal
    return ("-" if amount_minor < 0 else "") + f"{whole:,}" + (f".{part:0{places}d}" if places else "")
