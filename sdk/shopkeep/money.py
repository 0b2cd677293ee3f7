"""Exact money: an integer count of a currency's minor unit, never a float.

The wire carries every amount as an integer in the currency's minor unit; the currency's
``scale`` (digits after the point, 0..9) comes from the catalog. :class:`Money` joins the three
so an amount can format and convert itself without ever touching binary floating point::

    >>> str(Money.from_minor(150, "USD", scale=4))
    '0.0150 USD'
    >>> Money.from_decimal(Decimal("0.015"), "USD", scale=4).minor
    150
"""

from __future__ import annotations

import dataclasses
import decimal
import re
from decimal import Decimal
from typing import Any

__all__ = ["MAX_AMOUNT", "Money", "check_currency_code", "check_minor"]

# The largest integer a JSON number holds exactly in every client (2**53 - 1), per API.md.
MAX_AMOUNT = 9_007_199_254_740_991
MAX_SCALE = 9
_CODE = re.compile(r"^[A-Z][A-Z0-9_]{1,15}$")

# Enough digits for MAX_AMOUNT at any scale, so context rounding can never hide a digit.
_EXACT = decimal.Context(prec=60, traps=[decimal.Inexact, decimal.InvalidOperation])


def check_currency_code(code: object) -> str:
    """Return ``code`` if it is a valid currency code, else raise (TypeError / ValueError)."""
    if not isinstance(code, str):
        raise TypeError(f"a currency code is a str, not {type(code).__name__}")
    if not _CODE.fullmatch(code):
        raise ValueError(f"invalid currency code {code!r}: expected ^[A-Z][A-Z0-9_]{{1,15}}$")
    return code


def check_minor(value: object, what: str = "amount") -> int:
    """Return ``value`` if it is an int amount within the API's range, else raise."""
    # bool is an int subclass; True as "1 coin" is always a bug.
    if isinstance(value, float):
        raise TypeError(f"{what} must be an int of minor units, never a float: {value!r}")
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int of minor units, not {type(value).__name__}")
    if abs(value) > MAX_AMOUNT:
        raise ValueError(f"{what} {value} is beyond +-{MAX_AMOUNT}")
    return value


def _check_scale(scale: object) -> int:
    if not isinstance(scale, int) or isinstance(scale, bool):
        raise TypeError(f"scale must be an int, not {type(scale).__name__}")
    if not 0 <= scale <= MAX_SCALE:
        raise ValueError(f"scale must be 0..{MAX_SCALE}, got {scale}")
    return scale


@dataclasses.dataclass(frozen=True, slots=True)
class Money:
    """An exact amount: ``minor`` units of ``currency``, with ``scale`` digits after the point.

    Build it with :meth:`from_minor` or :meth:`from_decimal`. ``str()`` gives ``"0.0150 USD"``;
    :meth:`to_decimal` gives ``Decimal("0.0150")``. Amounts of the same currency and scale add,
    subtract, multiply by an int and compare; mixing currencies raises ``ValueError``.
    """

    currency: str
    minor: int
    scale: int

    def __post_init__(self) -> None:
        check_currency_code(self.currency)
        check_minor(self.minor)
        _check_scale(self.scale)

    @classmethod
    def from_minor(cls, minor: int, currency: str, *, scale: int) -> Money:
        """An amount from its integer count of minor units (what the wire carries)."""
        return cls(currency=currency, minor=minor, scale=scale)

    @classmethod
    def from_decimal(cls, value: Decimal | int | str, currency: str, *, scale: int) -> Money:
        """An amount from a decimal value in major units, exactly.

        ``Decimal("0.015")`` at scale 4 is 150 minor units. A value with more digits after the
        point than ``scale`` raises ``ValueError`` rather than rounding money away; a float
        raises ``TypeError`` because it has already lost exactness before it gets here.
        """
        if isinstance(value, float):
            raise TypeError(f"money is never a float; pass Decimal({str(value)!r}) or a str")
        if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
            raise TypeError(f"expected Decimal, int or str, not {type(value).__name__}")
        _check_scale(scale)
        try:
            number = Decimal(value) if not isinstance(value, Decimal) else value
        except decimal.InvalidOperation:
            raise ValueError(f"not a decimal number: {value!r}") from None
        if not number.is_finite():
            raise ValueError(f"money must be finite, got {value!r}")
        try:
            minor = _EXACT.to_integral_exact(_EXACT.scaleb(number, scale))
        except decimal.Inexact:
            raise ValueError(
                f"{value} has more than {scale} digits after the point for {currency}"
            ) from None
        return cls(currency=currency, minor=int(minor), scale=scale)

    @classmethod
    def zero(cls, currency: str, *, scale: int) -> Money:
        """No money of ``currency``."""
        return cls(currency=currency, minor=0, scale=scale)

    def to_decimal(self) -> Decimal:
        """The value in major units, exactly: 150 at scale 4 is ``Decimal("0.0150")``."""
        return Decimal(self.minor).scaleb(-self.scale)

    def to_wire(self) -> dict[str, Any]:
        """The API's ``{currency, amount}`` object."""
        return {"currency": self.currency, "amount": self.minor}

    def __str__(self) -> str:
        sign = "-" if self.minor < 0 else ""
        whole, fraction = divmod(abs(self.minor), 10**self.scale)
        if self.scale == 0:
            return f"{sign}{whole} {self.currency}"
        return f"{sign}{whole}.{fraction:0{self.scale}d} {self.currency}"

    def _same(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"expected Money, not {type(other).__name__}")
        if other.currency != self.currency or other.scale != self.scale:
            raise ValueError(
                f"cannot combine {self.currency} (scale {self.scale}) "
                f"with {other.currency} (scale {other.scale})"
            )
        return other

    def __add__(self, other: Money) -> Money:
        return dataclasses.replace(self, minor=self.minor + self._same(other).minor)

    def __sub__(self, other: Money) -> Money:
        return dataclasses.replace(self, minor=self.minor - self._same(other).minor)

    def __mul__(self, times: int) -> Money:
        if not isinstance(times, int) or isinstance(times, bool):
            raise TypeError("Money multiplies by an int only (a quantity)")
        return dataclasses.replace(self, minor=self.minor * times)

    __rmul__ = __mul__

    def __neg__(self) -> Money:
        return dataclasses.replace(self, minor=-self.minor)

    def __lt__(self, other: Money) -> bool:
        return self.minor < self._same(other).minor

    def __le__(self, other: Money) -> bool:
        return self.minor <= self._same(other).minor

    def __gt__(self, other: Money) -> bool:
        return self.minor > self._same(other).minor

    def __ge__(self, other: Money) -> bool:
        return self.minor >= self._same(other).minor

    def __bool__(self) -> bool:
        return self.minor != 0
