"""The studio page's forms: what a person typed, turned into the API's JSON and back.

Text is passed on as the API would receive it from a careless client, never "fixed" here: an
amount typed as ``1.5`` reaches the store's schema as the number 1.5 and is refused with the
store's own message (``Not a valid integer.``), the same one the API gives. The only messages of
the page's own are for things the API cannot receive at all (metadata that is not JSON).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from shopkeep.catalog_diff import describe, short_timestamp

from ..store.rules import CURRENCY_FIELDS, ITEM_FIELDS

MAX_PRICE_ROWS = 10
MAX_CONTENT_ROWS = 50
_INTEGER = re.compile(r"^[-+]?[0-9]+$")
_NUMBER = re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$")


def number(text: str) -> Any:
    """A typed number as JSON would carry it: an integer, else a float, else the text itself
    (which the store's schema refuses with its usual message)."""
    text = text.strip()
    if _INTEGER.match(text):
        return int(text)
    if _NUMBER.match(text):
        return float(text)
    return text


def optional_number(text: str) -> Any:
    """Blank means null (unlimited, no limit, no cap)."""
    return None if not text.strip() else number(text)


def _timestamp_text(value: Any) -> str:
    """A stored timestamp as the form shows it (blank for none)."""
    return str(short_timestamp(value)) if isinstance(value, str) else ""


# ---------------------------------------------------------------------------------------------
# Items
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class PriceRow:
    currency: str = ""
    amount: str = ""


@dataclasses.dataclass
class ContentRow:
    type: str = "item"  # "item": sku and quantity; "currency": currency and amount
    ref: str = ""
    number: str = ""


def content_rows_of(entries: Iterable[Mapping[str, Any]]) -> list[ContentRow]:
    """A bundle's contents or a code's grant (``{sku, quantity}`` or ``{currency, amount}``
    each) as form rows."""
    return [
        ContentRow("item", _text(entry.get("sku")), _text(entry.get("quantity")))
        if "sku" in entry
        else ContentRow("currency", _text(entry.get("currency")), _text(entry.get("amount")))
        for entry in entries
    ]


def content_rows_from(form: Mapping[str, str], prefix: str, default_type: str) -> list[ContentRow]:
    """The rows a form sent under ``prefix`` (``contents-3-ref``...); blank rows are left out,
    so the rows shown again are the ones the store saw."""
    rows = []
    for index in range(MAX_CONTENT_ROWS + 5):
        row = ContentRow(
            form.get(f"{prefix}-{index}-type", default_type),
            form.get(f"{prefix}-{index}-ref", "").strip(),
            form.get(f"{prefix}-{index}-number", "").strip(),
        )
        if row.ref or row.number:
            rows.append(row)
    return rows


def _text(value: Any) -> str:
    return "" if value is None else str(value)


@dataclasses.dataclass
class ItemForm:
    """An item as the edit form shows it: every value as text."""

    sku: str = ""
    name: str = ""
    description: str = ""
    kind: str = "consumable"
    prices: list[PriceRow] = dataclasses.field(default_factory=list)
    contents: list[ContentRow] = dataclasses.field(default_factory=list)
    stock: str = ""
    per_player_limit: str = ""
    available_from: str = ""
    available_until: str = ""
    tags: str = ""
    metadata: str = ""
    segment: str = ""  # the segment that alone sees the item; blank: everyone

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ItemForm:
        contents = content_rows_of(item.get("contents") or [])
        metadata = item.get("metadata") or {}
        return cls(
            sku=str(item.get("sku", "")),
            name=str(item.get("name", "")),
            description=str(item.get("description") or ""),
            kind=str(item.get("kind", "consumable")),
            prices=[
                PriceRow(str(p.get("currency", "")), str(p.get("amount", "")))
                for p in item.get("prices") or []
            ],
            contents=contents,
            stock="" if item.get("stock") is None else str(item["stock"]),
            per_player_limit=(
                "" if item.get("per_player_limit") is None else str(item["per_player_limit"])
            ),
            available_from=_timestamp_text(item.get("available_from")),
            available_until=_timestamp_text(item.get("available_until")),
            tags=", ".join(str(t) for t in item.get("tags") or []),
            metadata=json.dumps(metadata, indent=2, ensure_ascii=False) if metadata else "",
            segment=str(item.get("segment") or ""),
        )

    @classmethod
    def from_request(cls, form: Mapping[str, str]) -> ItemForm:
        """Reads the posted form; blank price and content rows are left out, so the rows the
        page shows again are exactly the ones the store saw (its field paths index them)."""
        prices = []
        for index in range(MAX_PRICE_ROWS + 5):
            row = PriceRow(
                form.get(f"prices-{index}-currency", "").strip(),
                form.get(f"prices-{index}-amount", "").strip(),
            )
            if row.currency or row.amount:
                prices.append(row)
        contents = content_rows_from(form, "contents", "item")
        return cls(
            sku=form.get("sku", "").strip(),
            name=form.get("name", "").strip(),
            description=form.get("description", "").replace("\r\n", "\n"),
            kind=form.get("kind", "").strip(),
            prices=prices,
            contents=contents,
            stock=form.get("stock", "").strip(),
            per_player_limit=form.get("per_player_limit", "").strip(),
            available_from=form.get("available_from", "").strip(),
            available_until=form.get("available_until", "").strip(),
            tags=form.get("tags", ""),
            metadata=form.get("metadata", "").strip(),
            segment=form.get("segment", "").strip(),
        )

    def to_item(self) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """The item as the API's JSON, and the page's own errors (metadata that is not JSON)."""
        own_errors: dict[str, list[str]] = {}
        prices = []
        for row in self.prices:
            price: dict[str, Any] = {}
            if row.currency:
                price["currency"] = row.currency
            if row.amount:  # left out, the store says "Missing data for required field."
                price["amount"] = number(row.amount)
            prices.append(price)
        contents = []
        for c_row in self.contents:
            entry: dict[str, Any] = {}
            is_money = c_row.type == "currency"
            ref_name, number_name = ("currency", "amount") if is_money else ("sku", "quantity")
            if c_row.ref:
                entry[ref_name] = c_row.ref
            if c_row.number:
                entry[number_name] = number(c_row.number)
            contents.append(entry)
        metadata: Any = {}
        if self.metadata:
            try:
                metadata = json.loads(self.metadata)
            except ValueError as exc:
                own_errors["metadata"] = [f"not valid JSON: {exc}"]
        item = {
            "sku": self.sku,
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "prices": prices,
            "contents": contents,
            "stock": optional_number(self.stock),
            "per_player_limit": optional_number(self.per_player_limit),
            "available_from": self.available_from or None,
            "available_until": self.available_until or None,
            "tags": [tag.strip() for tag in self.tags.split(",") if tag.strip()],
            "metadata": metadata,
            "segment": self.segment or None,
        }
        return item, own_errors

    def price_rows(self) -> list[PriceRow]:
        """The rows to show: the item's, then blank ones to add more."""
        blanks = max(1, min(2, MAX_PRICE_ROWS - len(self.prices)))
        return [*self.prices, *(PriceRow() for _ in range(blanks))]

    def content_rows(self) -> list[ContentRow]:
        blanks = max(1, min(3, MAX_CONTENT_ROWS - len(self.contents)))
        return [*self.contents, *(ContentRow() for _ in range(blanks))]


# ---------------------------------------------------------------------------------------------
# Currencies
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class CurrencyForm:
    code: str = ""
    name: str = ""
    scale: str = "0"
    max_balance: str = ""

    @classmethod
    def from_currency(cls, currency: Mapping[str, Any]) -> CurrencyForm:
        cap = currency.get("max_balance")
        return cls(
            str(currency.get("code", "")),
            str(currency.get("name", "")),
            str(currency.get("scale", "")),
            "" if cap is None else str(cap),
        )

    @classmethod
    def from_request(cls, form: Mapping[str, str]) -> CurrencyForm:
        return cls(
            form.get("code", "").strip(),
            form.get("name", "").strip(),
            form.get("scale", "").strip(),
            form.get("max_balance", "").strip(),
        )

    def to_currency(self) -> dict[str, Any]:
        currency: dict[str, Any] = {"code": self.code, "name": self.name}
        if self.scale:
            currency["scale"] = number(self.scale)
        currency["max_balance"] = optional_number(self.max_balance)
        return currency


# ---------------------------------------------------------------------------------------------
# The store's field paths, next to the form's fields
# ---------------------------------------------------------------------------------------------

_ITEM_FIELDS = frozenset(ITEM_FIELDS)


def _item_field_key(relative: list[str]) -> str:
    """The form field that shows an error of the item's relative path (``prices.0.amount``
    shows at the input named ``prices-0-amount``)."""
    if not relative or relative[0] == "_schema":
        return "_item"
    head = relative[0]
    if head in ("prices", "contents") and len(relative) >= 2 and relative[1].isdigit():
        row = relative[1]
        if len(relative) == 2 or relative[2] == "_schema":
            return f"{head}-{row}"
        leaf = relative[2]
        if head == "prices":
            return f"prices-{row}-{leaf}"
        return f"contents-{row}-{'ref' if leaf in ('sku', 'currency') else 'number'}"
    if head in _ITEM_FIELDS:
        return head
    return "_other"


def field_errors(
    details: Mapping[str, Iterable[str]], *, prefix: str, data: Any
) -> dict[str, list[str]]:
    """The store's ``validation_failed`` details keyed by the form field that shows them; each
    message keeps the store's field path (``items.3.prices.0.amount: ...``). Errors of other
    entries (a bundle elsewhere that holds a removed item) go under ``_other`` with a path
    naming that entry, so no error is ever hidden."""
    shown: dict[str, list[str]] = {}
    for path, messages in details.items():
        if prefix and (path == prefix or path.startswith(prefix + ".")):
            relative = path[len(prefix) + 1 :].split(".") if path != prefix else []
            key = (
                _item_field_key(relative)
                if prefix.startswith("items.")
                else _currency_key(relative)
            )
            label = path
        else:
            key, label = "_other", _label(path, data)
        shown.setdefault(key, []).extend(f"{label}: {message}" for message in messages)
    return shown


def _currency_key(relative: list[str]) -> str:
    if not relative or relative[0] == "_schema":
        return "_item"
    return relative[0] if relative[0] in CURRENCY_FIELDS else "_other"


def catalog_errors(details: Mapping[str, Iterable[str]], data: Any) -> list[str]:
    """Every error of a whole-catalog change, as ``path — where: message`` lines."""
    return [
        f"{_label(path, data)}: {message}"
        for path, messages in sorted(details.items())
        for message in messages
    ]


def _label(path: str, data: Any) -> str:
    """The store's field path, and where that is in words when it says more."""
    readable = describe(path, data)
    return path if readable == path else f"{path} — {readable}"
