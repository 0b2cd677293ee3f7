"""Money: exact formatting, Decimal round trips, and no floats anywhere."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shopkeep import Amount, Catalog, Money
from shopkeep.money import MAX_AMOUNT
from support.sdk_fakes import DEMO_CATALOG


@pytest.mark.parametrize(
    ("minor", "currency", "scale", "text"),
    [
        (150, "USD", 4, "0.0150 USD"),
        (0, "USD", 4, "0.0000 USD"),
        (-150, "USD", 4, "-0.0150 USD"),
        (12345, "EUR", 2, "123.45 EUR"),
        (5, "EUR", 2, "0.05 EUR"),
        (1000, "COINS", 0, "1000 COINS"),
        (-7, "COINS", 0, "-7 COINS"),
        (123456789, "DUST", 9, "0.123456789 DUST"),
        (MAX_AMOUNT, "USD", 4, "900719925474.0991 USD"),
    ],
)
def test_str_formats_minor_units_at_scale(minor: int, currency: str, scale: int, text: str) -> None:
    assert str(Money.from_minor(minor, currency, scale=scale)) == text


@pytest.mark.parametrize(
    ("value", "scale", "minor"),
    [
        (Decimal("0.015"), 4, 150),
        (Decimal("0.0150"), 4, 150),
        (Decimal("0.01500000"), 4, 150),
        (Decimal("1E+2"), 0, 100),
        (Decimal("-2.5"), 1, -25),
        ("0.015", 4, 150),
        (3, 2, 300),
        (Decimal("900719925474.0991"), 4, MAX_AMOUNT),
    ],
)
def test_from_decimal_is_exact(value: Decimal | str | int, scale: int, minor: int) -> None:
    money = Money.from_decimal(value, "USD", scale=scale)
    assert money == Money(currency="USD", minor=minor, scale=scale)


@pytest.mark.parametrize(
    ("value", "scale"),
    [(Decimal("0.00001"), 4), (Decimal("0.5"), 0), ("1.001", 2), (Decimal("1E-10"), 9)],
)
def test_from_decimal_refuses_digits_beyond_the_scale(value: Decimal | str, scale: int) -> None:
    with pytest.raises(ValueError, match="digits after the point"):
        Money.from_decimal(value, "USD", scale=scale)


def test_to_decimal_round_trips() -> None:
    money = Money.from_minor(150, "USD", scale=4)
    assert money.to_decimal() == Decimal("0.0150")
    assert str(money.to_decimal()) == "0.0150"
    for minor in (0, 1, -1, 150, 9999, 10_000, 123_456_789, MAX_AMOUNT, -MAX_AMOUNT):
        for scale in (0, 2, 4, 9):
            m = Money.from_minor(minor, "GEMS", scale=scale)
            assert Money.from_decimal(m.to_decimal(), "GEMS", scale=scale) == m


@pytest.mark.parametrize(
    "build",
    [
        lambda: Money.from_decimal(0.015, "USD", scale=4),  # type: ignore[arg-type]
        lambda: Money.from_minor(1.0, "USD", scale=4),  # type: ignore[arg-type]
        lambda: Money(currency="USD", minor=150.0, scale=4),  # type: ignore[arg-type]
        lambda: Money.from_minor(150, "USD", scale=4) * 1.5,  # type: ignore[operator]
        lambda: Money.from_minor(True, "USD", scale=4),
        lambda: Amount("USD", 1.0).to_money(4),  # type: ignore[arg-type]
    ],
)
def test_floats_and_bools_are_refused(build: object) -> None:
    with pytest.raises(TypeError):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(
    "build",
    [
        lambda: Money.from_minor(1, "usd", scale=2),
        lambda: Money.from_minor(1, "USD", scale=10),
        lambda: Money.from_minor(MAX_AMOUNT + 1, "USD", scale=2),
        lambda: Money.from_decimal(Decimal("NaN"), "USD", scale=2),
        lambda: Money.from_decimal(Decimal("Infinity"), "USD", scale=2),
        lambda: Money.from_decimal("lots", "USD", scale=2),
    ],
)
def test_invalid_values_raise_value_error(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


def test_arithmetic_and_ordering_within_one_currency() -> None:
    price = Money.from_minor(150, "USD", scale=4)
    assert price * 3 == Money.from_minor(450, "USD", scale=4)
    assert 2 * price == Money.from_minor(300, "USD", scale=4)
    assert price + price - price == price
    assert -price == Money.from_minor(-150, "USD", scale=4)
    assert price < price * 2 <= price * 2
    assert not Money.zero("USD", scale=4)
    with pytest.raises(ValueError):
        _ = price + Money.from_minor(150, "COINS", scale=0)
    with pytest.raises(ValueError):
        _ = price < Money.from_minor(150, "USD", scale=2)


def test_catalog_amounts_are_money_and_others_convert_through_it() -> None:
    catalog = Catalog.from_wire(DEMO_CATALOG, etag='"x"')
    tip = catalog.item("tip")
    assert tip.price() == Money.from_minor(150, "USD", scale=4)
    assert str(tip.price()) == "0.0150 USD"
    assert catalog.item("shield").price("GEMS") == Money.from_minor(5, "GEMS", scale=0)
    assert catalog.item("starter_pack").contents[1] == Money.from_minor(500, "COINS", scale=0)
    assert catalog.currency("GEMS").max_balance == Money.from_minor(100000, "GEMS", scale=0)
    assert str(catalog.money(Amount("USD", 9850))) == "0.9850 USD"
    assert Amount("USD", 150).to_wire() == {"currency": "USD", "amount": 150}
    assert Money.from_minor(150, "USD", scale=4).to_wire() == {"currency": "USD", "amount": 150}
    with pytest.raises(ValueError, match="has 2 prices"):
        catalog.item("shield").price()
    with pytest.raises(KeyError):
        catalog.item("shield").price("USD")
