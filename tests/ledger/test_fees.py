"""The platform fee's rounding rule (kit.money): half up on the exact fraction, parts that add up."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.kit.money import major_units, platform_fee, split, transfer_id

amounts = st.integers(min_value=0, max_value=10**15)
rates = st.integers(min_value=0, max_value=10_000)


@pytest.mark.parametrize(
    ("amount_minor", "fee_bps", "fee_minor"),
    [
        (10, 500, 1),  # 0.5 exactly: up
        (9, 500, 0),  # 0.45: down
        (29, 500, 1),  # 1.45: down
        (30, 500, 2),  # 1.5 exactly: up
        (31, 500, 2),  # 1.55: up
        (1, 5_000, 1),  # 0.5 exactly: up
        (3, 5_000, 2),  # 1.5 exactly: up
        (1, 4_999, 0),  # 0.4999: down
        (1, 5_001, 1),  # 0.5001: up
        (19_999, 1, 2),  # 1.9999: up
        (15_000, 1, 2),  # 1.5 exactly: up
        (14_999, 1, 1),  # 1.4999: down
        (1_234, 250, 31),  # 30.85: up
        (12_345, 250, 309),  # 308.625: up
        (12_341, 250, 309),  # 308.525: up
        (12_339, 250, 308),  # 308.475: down
        (0, 500, 0),
        (1_000, 0, 0),
        (1_000, 10_000, 1_000),
        (10**15, 500, 5 * 10**13),
    ],
)
def test_fee_rounds_half_up(amount_minor: int, fee_bps: int, fee_minor: int) -> None:
    assert platform_fee(amount_minor, fee_bps) == fee_minor
    assert split(amount_minor, fee_bps) == (amount_minor - fee_minor, fee_minor)


@pytest.mark.parametrize(("amount_minor", "fee_bps"), [(-1, 500), (100, -1), (100, 10_001)])
def test_fee_refuses_what_it_cannot_mean(amount_minor: int, fee_bps: int) -> None:
    with pytest.raises(ValueError, match="must"):
        platform_fee(amount_minor, fee_bps)


@given(amounts, rates)
def test_fee_is_the_exact_fraction_rounded_half_up(amount_minor: int, fee_bps: int) -> None:
    fee_minor = platform_fee(amount_minor, fee_bps)
    exact_times_20000 = 2 * amount_minor * fee_bps  # the exact fee, in 1/20000ths of a minor unit
    # within half a unit of the exact fee, and a tie goes up: fee - 1/2 <= exact < fee + 1/2
    assert (2 * fee_minor - 1) * 10_000 <= exact_times_20000 < (2 * fee_minor + 1) * 10_000


@given(amounts, rates)
def test_parts_add_up_and_the_fee_fits_in_the_amount(amount_minor: int, fee_bps: int) -> None:
    provider_minor, fee_minor = split(amount_minor, fee_bps)
    assert provider_minor + fee_minor == amount_minor
    assert 0 <= fee_minor <= amount_minor


@given(amounts, amounts, rates)
def test_fee_grows_with_the_amount(first: int, second: int, fee_bps: int) -> None:
    low, high = sorted((first, second))
    assert platform_fee(low, fee_bps) <= platform_fee(high, fee_bps)


@given(amounts, rates, rates)
def test_fee_grows_with_the_rate(amount_minor: int, first: int, second: int) -> None:
    low, high = sorted((first, second))
    assert platform_fee(amount_minor, low) <= platform_fee(amount_minor, high)


def test_transfer_ids_are_derived_from_subject_and_step() -> None:
    order = uuid.UUID("0190a6f0-0000-7000-8000-000000000001")
    assert transfer_id(order, "payment") == transfer_id(order, "payment")
    assert transfer_id(order, "payment") != transfer_id(order, "settlement")
    assert transfer_id(order, "payment") != transfer_id(uuid.uuid4(), "payment")
    # fixed for ever: a changed namespace would post old orders' steps a second time
    assert transfer_id(order, "payment") == uuid.uuid5(
        uuid.UUID("47694fd2-23e0-4941-ab57-0634d24ef85e"), f"{order}:payment"
    )


@pytest.mark.parametrize(
    ("amount_minor", "currency", "shown"),
    [
        (123_450, "CNY", "1,234.50"),
        (5, "CNY", "0.05"),
        (-150, "CNY", "-1.50"),  # a balance may be negative
        (1_200, "JPY", "1,200"),  # no minor unit
        (1_234, "BHD", "1.234"),  # three places
        (Decimal(9_900), "USD", "99.00"),  # a database's SUM
    ],
)
def test_amounts_read_in_major_units(amount_minor: int, currency: str, shown: str) -> None:
    assert major_units(amount_minor, currency) == shown
