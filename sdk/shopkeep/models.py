"""Typed, immutable results of the SDK's calls.

Amounts: the catalog carries each currency's ``scale``, so everything read from the catalog
(prices, bundle contents, ``max_balance``) is a :class:`~shopkeep.money.Money` that formats
itself. Everything else (balances, ledger deltas, what a purchase charged and granted) is an
:class:`Amount`: the wire's integer count of minor units plus the currency code, exactly as the
server sent it. Turn one into Money with ``catalog.money(amount)`` (or ``amount.to_money(scale)``)
when you need to show it; the SDK never guesses a scale and never fetches the catalog behind
your back to learn one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar

from .money import Money, check_currency_code, check_minor

__all__ = [
    "Amount",
    "Catalog",
    "Currency",
    "Grant",
    "GrantResult",
    "Granted",
    "Inventory",
    "Item",
    "ItemQuantity",
    "LedgerEntry",
    "OfferPrice",
    "Page",
    "Purchase",
    "PurchaseResult",
    "RedeemResult",
    "StockLevel",
    "Wallet",
]

T = TypeVar("T")


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp of the API (``2026-11-21T14:47:37.123456Z``) as an aware datetime."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected an RFC 3339 string, got {type(value).__name__}")
    return datetime.fromisoformat(value)


def _required_time(value: Any) -> datetime:
    parsed = parse_time(value)
    if parsed is None:
        raise ValueError("missing timestamp")
    return parsed


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what}: expected an integer, got {value!r}")
    return value


def _opt_int(value: Any, what: str) -> int | None:
    return None if value is None else _int(value, what)


@dataclasses.dataclass(frozen=True, slots=True)
class Amount:
    """An amount as the wire carries it: ``amount`` integer minor units of ``currency``."""

    currency: str
    amount: int

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Amount:
        """Parse ``{"currency", "amount"}``."""
        return cls(
            currency=check_currency_code(data["currency"]),
            amount=check_minor(data["amount"]),
        )

    def to_wire(self) -> dict[str, Any]:
        """The API's ``{currency, amount}`` object."""
        return {"currency": self.currency, "amount": self.amount}

    def to_money(self, scale: int) -> Money:
        """This amount as :class:`Money`, given its currency's ``scale``."""
        return Money.from_minor(self.amount, self.currency, scale=scale)


@dataclasses.dataclass(frozen=True, slots=True)
class ItemQuantity:
    """``quantity`` units of the item ``sku``."""

    sku: str
    quantity: int

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ItemQuantity:
        """Parse ``{"sku", "quantity"}``."""
        return cls(sku=str(data["sku"]), quantity=_int(data["quantity"], "quantity"))


# What a purchase or grant gave: units of an item, or an amount of a currency.
Granted = ItemQuantity | Amount


def parse_granted(entries: Any) -> tuple[Granted, ...]:
    """Parse a ``granted`` list: ``{sku, quantity}`` and ``{currency, amount}`` entries."""
    return tuple(
        ItemQuantity.from_wire(e) if "sku" in e else Amount.from_wire(e) for e in entries or ()
    )


def _amounts(entries: Any) -> tuple[Amount, ...]:
    return tuple(Amount.from_wire(e) for e in entries or ())


@dataclasses.dataclass(frozen=True, slots=True)
class Currency:
    """A currency of the catalog; ``scale`` digits after the point."""

    code: str
    name: str
    scale: int
    max_balance: Money | None

    def money(self, minor: int) -> Money:
        """``minor`` units of this currency as :class:`Money`."""
        return Money.from_minor(minor, self.code, scale=self.scale)


@dataclasses.dataclass(frozen=True, slots=True)
class OfferPrice:
    """What this player pays for one unit in one currency, and the offer that makes it so
    (``offer_id`` None: the list price)."""

    price: Money
    offer_id: str | None

    @property
    def currency(self) -> str:
        return self.price.currency

    @property
    def amount(self) -> int:
        """The unit price in minor units: what ``expected_price`` should carry."""
        return self.price.minor


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    """An item of the live catalog. ``prices`` are the list prices; ``price_for_you`` the
    player's own (an offer's, or the list price), which is what a purchase charges."""

    sku: str
    name: str
    description: str
    kind: str
    prices: tuple[Money, ...]
    contents: tuple[ItemQuantity | Money, ...]
    stock: int | None
    per_player_limit: int | None
    available_from: datetime | None
    available_until: datetime | None
    tags: tuple[str, ...]
    metadata: dict[str, Any] = dataclasses.field(hash=False)
    price_for_you: tuple[OfferPrice, ...] = ()
    # Name and description per locale as the catalog holds them ({"pt-BR": {"name": ...}});
    # ``name`` and ``description`` are already in the locale the catalog was asked in.
    localized: dict[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    # The segment that alone sees the item (a player only gets it in its catalog when in it).
    segment: str | None = None

    def my_price(self, currency: str | None = None) -> OfferPrice:
        """The player's own unit price in ``currency`` (as :meth:`price` picks it), with the
        offer that gives it; the list price when the catalog came without one."""
        listed = self.price(currency)
        for offered in self.price_for_you:
            if offered.price.currency == listed.currency:
                return offered
        return OfferPrice(listed, None)

    def price(self, currency: str | None = None) -> Money:
        """The unit price in ``currency``; without one, the item's only price.

        Raises ``KeyError`` when the item is not sold in ``currency``, and ``ValueError`` when
        no currency is named but the item has several prices.
        """
        if currency is None:
            if len(self.prices) != 1:
                raise ValueError(f"{self.sku} has {len(self.prices)} prices; name a currency")
            return self.prices[0]
        for price in self.prices:
            if price.currency == currency:
                return price
        raise KeyError(f"{self.sku} is not sold for {currency}")

    def on_sale(self, at: datetime) -> bool:
        """Whether ``at`` (an aware datetime) is inside the item's sale window."""
        if self.available_from is not None and at < self.available_from:
            return False
        return self.available_until is None or at < self.available_until


@dataclasses.dataclass(frozen=True, slots=True)
class ProductGrants:
    """What one purchase of a real-money product gives."""

    currencies: tuple[Money, ...]
    items: tuple[ItemQuantity, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Product:
    """A real-money product: its id on each app store that sells it (``store_ids``, keyed
    ``app_store``, ``google_play``, ``steam``) and what it grants once paid for."""

    id: str
    store_ids: dict[str, str] = dataclasses.field(hash=False)
    grants: ProductGrants


@dataclasses.dataclass(frozen=True, slots=True)
class Catalog:
    """The live catalog: its ``version``, currencies, items and real-money products, and the
    ``etag`` it came with."""

    version: int
    currencies: tuple[Currency, ...]
    items: tuple[Item, ...]
    etag: str | None = None
    products: tuple[Product, ...] = ()
    # The locale the names and descriptions are in (Accept-Language); None: the catalog's own.
    locale: str | None = None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], *, etag: str | None = None) -> Catalog:
        """Parse the body of ``GET /v1/catalog``."""
        scales: dict[str, int] = {}
        currencies = []
        for c in data.get("currencies") or ():
            code = check_currency_code(c["code"])
            scale = _int(c["scale"], "scale")
            scales[code] = scale
            cap = _opt_int(c.get("max_balance"), "max_balance")
            currencies.append(
                Currency(
                    code=code,
                    name=str(c.get("name") or code),
                    scale=scale,
                    max_balance=None if cap is None else Money.from_minor(cap, code, scale=scale),
                )
            )

        def money(entry: Mapping[str, Any]) -> Money:
            code = entry["currency"]
            if code not in scales:
                raise ValueError(f"catalog amount in {code!r}, which is not among its currencies")
            return Money.from_minor(entry["amount"], code, scale=scales[code])

        items = []
        for i in data.get("items") or ():
            contents: list[ItemQuantity | Money] = [
                ItemQuantity.from_wire(e) if "sku" in e else money(e)
                for e in i.get("contents") or ()
            ]
            items.append(
                Item(
                    sku=str(i["sku"]),
                    name=str(i.get("name") or i["sku"]),
                    description=str(i.get("description") or ""),
                    kind=str(i["kind"]),
                    prices=tuple(money(p) for p in i["prices"]),
                    contents=tuple(contents),
                    stock=_opt_int(i.get("stock"), "stock"),
                    per_player_limit=_opt_int(i.get("per_player_limit"), "per_player_limit"),
                    available_from=parse_time(i.get("available_from")),
                    available_until=parse_time(i.get("available_until")),
                    tags=tuple(str(t) for t in i.get("tags") or ()),
                    metadata=dict(i.get("metadata") or {}),
                    price_for_you=tuple(
                        OfferPrice(money(p), p.get("offer_id"))
                        for p in i.get("price_for_you") or ()
                    ),
                    localized=dict(i.get("localized") or {}),
                    segment=i.get("segment"),
                )
            )
        products = tuple(
            Product(
                id=str(p["id"]),
                store_ids={str(k): str(v) for k, v in (p.get("store_ids") or {}).items()},
                grants=ProductGrants(
                    currencies=tuple(money(c) for c in p["grants"].get("currencies") or ()),
                    items=tuple(ItemQuantity.from_wire(i) for i in p["grants"].get("items") or ()),
                ),
            )
            for p in data.get("products") or ()
        )
        return cls(
            version=_int(data["version"], "version"),
            currencies=tuple(currencies),
            items=tuple(items),
            etag=etag,
            products=products,
            locale=data.get("locale"),
        )

    def product(self, store: str, store_product_id: str) -> Product:
        """The product sold on ``store`` as ``store_product_id``; ``KeyError`` if none."""
        for product in self.products:
            if product.store_ids.get(store) == store_product_id:
                return product
        raise KeyError(f"{store}:{store_product_id}")

    def item(self, sku: str) -> Item:
        """The item ``sku``; ``KeyError`` if the catalog has none."""
        for item in self.items:
            if item.sku == sku:
                return item
        raise KeyError(sku)

    def currency(self, code: str) -> Currency:
        """The currency ``code``; ``KeyError`` if the catalog has none."""
        for currency in self.currencies:
            if currency.code == code:
                return currency
        raise KeyError(code)

    def money(self, amount: Amount) -> Money:
        """An :class:`Amount` from another result as :class:`Money`, with this catalog's scale."""
        return amount.to_money(self.currency(amount.currency).scale)


@dataclasses.dataclass(frozen=True, slots=True)
class StockLevel:
    """Units of a limited item left to sell."""

    sku: str
    remaining: int


@dataclasses.dataclass(frozen=True, slots=True)
class Wallet:
    """A player's balances: every currency of the catalog, zeros included."""

    balances: tuple[Amount, ...]

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Wallet:
        """Parse ``{"balances": [...]}``."""
        return cls(balances=_amounts(data["balances"]))

    def balance(self, currency: str) -> int:
        """The balance of ``currency`` in minor units (0 for a currency the wallet lacks)."""
        for b in self.balances:
            if b.currency == currency:
                return b.amount
        return 0

    def __iter__(self) -> Iterator[Amount]:
        return iter(self.balances)


@dataclasses.dataclass(frozen=True, slots=True)
class Inventory:
    """Items a player owns (only those with a quantity above zero)."""

    items: tuple[ItemQuantity, ...]

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Inventory:
        """Parse ``{"items": [...]}``."""
        return cls(items=tuple(ItemQuantity.from_wire(e) for e in data["items"]))

    def quantity(self, sku: str) -> int:
        """How many of ``sku`` the player owns (0 if none)."""
        for entry in self.items:
            if entry.sku == sku:
                return entry.quantity
        return 0

    def __contains__(self, sku: object) -> bool:
        return any(entry.sku == sku and entry.quantity > 0 for entry in self.items)

    def __iter__(self) -> Iterator[ItemQuantity]:
        return iter(self.items)


@dataclasses.dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One balance change of the append-only ledger."""

    id: str
    currency: str
    delta: int
    balance_after: int
    kind: str
    reference: str
    created_at: datetime

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> LedgerEntry:
        """Parse one entry of ``GET /v1/wallet/ledger``."""
        return cls(
            # An opaque id: kept as str whatever JSON type the server uses for it.
            id=str(data["id"]),
            currency=check_currency_code(data["currency"]),
            delta=check_minor(data["delta"], "delta"),
            balance_after=check_minor(data["balance_after"], "balance_after"),
            kind=str(data["kind"]),
            reference=str(data["reference"]),
            created_at=_required_time(data["created_at"]),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Purchase:
    """A purchase: ``price`` is the total charged, ``unit_price`` the price of one unit."""

    id: str
    player_id: str
    sku: str
    quantity: int
    price: Amount
    unit_price: Amount
    catalog_version: int
    status: str
    granted: tuple[Granted, ...]
    created_at: datetime
    refunded_at: datetime | None
    refund_reason: str | None
    # The offer that priced it (its ledger reference names it too); None: the list price.
    offer_id: str | None = None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Purchase:
        """Parse a ``purchase`` object."""
        price = Amount.from_wire(data["price"])
        unit = data.get("unit_price")
        quantity = _int(data["quantity"], "quantity")
        return cls(
            id=str(data["id"]),
            player_id=str(data.get("player_id") or ""),
            sku=str(data["sku"]),
            quantity=quantity,
            price=price,
            # The total divides exactly by the quantity (the server's CHECK), should a server
            # ever omit the unit price.
            unit_price=Amount.from_wire(unit)
            if unit is not None
            else Amount(price.currency, price.amount // quantity),
            catalog_version=_int(data["catalog_version"], "catalog_version"),
            status=str(data["status"]),
            granted=parse_granted(data.get("granted")),
            created_at=_required_time(data["created_at"]),
            refunded_at=parse_time(data.get("refunded_at")),
            refund_reason=data.get("refund_reason"),
            offer_id=data.get("offer_id"),
        )

    @property
    def refunded(self) -> bool:
        """Whether the purchase has been refunded."""
        return self.status == "refunded"


@dataclasses.dataclass(frozen=True, slots=True)
class PurchaseResult:
    """What ``purchase()`` returns: the purchase, the balances after it, and what it granted.

    ``replayed`` is true when the server answered from its idempotency record (the purchase
    had already happened, e.g. before a dropped response or a crash); ``idempotency_key`` is the
    key the purchase was made with.
    """

    purchase: Purchase
    balances: tuple[Amount, ...]
    granted: tuple[Granted, ...]
    replayed: bool
    idempotency_key: str
    request_id: str | None

    def balance(self, currency: str) -> int:
        """The balance of ``currency`` after the purchase, in minor units."""
        return Wallet(self.balances).balance(currency)


@dataclasses.dataclass(frozen=True, slots=True)
class Grant:
    """A grant of currency or items to a player by the studio's backend."""

    id: str
    player_id: str
    reason: str
    granted: tuple[Granted, ...]
    created_at: datetime

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Grant:
        """Parse a ``grant`` object."""
        return cls(
            id=str(data["id"]),
            player_id=str(data["player_id"]),
            reason=str(data.get("reason") or ""),
            granted=parse_granted(data.get("granted")),
            created_at=_required_time(data["created_at"]),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class GrantResult:
    """What ``grant()`` returns: the grant and the player's balances and inventory after it."""

    grant: Grant
    balances: tuple[Amount, ...]
    inventory: Inventory
    replayed: bool
    idempotency_key: str
    request_id: str | None

    def balance(self, currency: str) -> int:
        """The balance of ``currency`` after the grant, in minor units."""
        return Wallet(self.balances).balance(currency)


@dataclasses.dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list; pass ``next_cursor`` back for the next (``None``: last page)."""

    items: tuple[T, ...]
    next_cursor: str | None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)


@dataclasses.dataclass(frozen=True, slots=True)
class Receipt:
    """An app-store purchase credited to the player, once per store transaction."""

    id: str
    player_id: str
    store: str
    transaction_id: str
    product_id: str
    store_product_id: str
    catalog_version: int
    status: str
    granted: tuple[Granted, ...]
    created_at: datetime
    charged_back_at: datetime | None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Receipt:
        """Parse a ``receipt`` object."""
        return cls(
            id=str(data["id"]),
            player_id=str(data["player_id"]),
            store=str(data["store"]),
            transaction_id=str(data["transaction_id"]),
            product_id=str(data["product_id"]),
            store_product_id=str(data["store_product_id"]),
            catalog_version=_int(data["catalog_version"], "catalog_version"),
            status=str(data["status"]),
            granted=parse_granted(data.get("granted")),
            created_at=_required_time(data["created_at"]),
            charged_back_at=parse_time(data.get("charged_back_at")),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ReceiptResult:
    """What ``redeem_receipt()`` returns: the receipt, the balances after it, what it granted,
    what of it repaid a debt first (``repaid``) and what is still owed (``debts``).

    ``replayed`` is true when the server answered from its record (the receipt had been
    credited before, e.g. before a crash); ``idempotency_key`` is the key it was sent with."""

    receipt: Receipt
    balances: tuple[Amount, ...]
    granted: tuple[Granted, ...]
    repaid: tuple[Amount, ...]
    debts: tuple[Amount, ...]
    replayed: bool
    idempotency_key: str
    request_id: str | None

    def balance(self, currency: str) -> int:
        """The balance of ``currency`` after the top-up, in minor units."""
        return Wallet(self.balances).balance(currency)


@dataclasses.dataclass(frozen=True, slots=True)
class RedeemResult:
    """What ``redeem_code()`` returns: the code, the offer it unlocked (its price now shows in
    the catalog's ``price_for_you``) or what it granted, and the balances and inventory after."""

    code: str
    offer_id: str | None
    granted: tuple[Granted, ...]
    balances: tuple[Amount, ...]
    inventory: Inventory
    replayed: bool

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], *, replayed: bool = False) -> RedeemResult:
        """Parse the body of ``POST /v1/promo-codes/redeem``."""
        return cls(
            code=str(data["code"]),
            offer_id=data.get("offer_id"),
            granted=parse_granted(data.get("granted")),
            balances=_amounts(data.get("balances")),
            inventory=Inventory.from_wire({"items": data.get("inventory") or []}),
            replayed=replayed,
        )
