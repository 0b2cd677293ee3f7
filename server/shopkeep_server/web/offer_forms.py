"""The studio page's forms for a segment, an offer and a promo code: what a person typed, turned
into the catalog's JSON and back, field by field as an item is (web/forms.py: the same rules,
text passed on as the API would receive it, so the store refuses it with its own messages).

An offer's price is one choice (``pricing``: a price, a percentage off or an amount off) and
one value with its currency; the store's paths (``offers.2.price.amount``) show at the form's
fields (``value``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from shopkeep.catalog_diff import describe, short_timestamp

from .forms import (
    MAX_CONTENT_ROWS,
    ContentRow,
    content_rows_from,
    content_rows_of,
    number,
    optional_number,
)

# The catalog's lists the page edits, and the field that keys each entry.
PART_KEYS: Mapping[str, str] = {"segments": "id", "offers": "id", "promo_codes": "code"}
PRICINGS = ("price", "discount_percent", "discount_amount")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _timestamp_text(value: Any) -> str:
    return str(short_timestamp(value)) if isinstance(value, str) else ""


class PartForm(Protocol):
    def to_entry(self) -> dict[str, Any]: ...

    def error_key(self, relative: list[str]) -> str: ...


@dataclasses.dataclass
class SegmentForm:
    id: str = ""
    rule: str = ""

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> SegmentForm:
        return cls(_text(entry.get("id")), _text(entry.get("rule")))

    @classmethod
    def from_request(cls, form: Mapping[str, str]) -> SegmentForm:
        return cls(form.get("id", "").strip(), form.get("rule", "").strip())

    def to_entry(self) -> dict[str, Any]:
        return {"id": self.id, "rule": self.rule}

    def error_key(self, relative: list[str]) -> str:
        return relative[0] if relative and relative[0] in ("id", "rule") else "_item"


@dataclasses.dataclass
class OfferForm:
    id: str = ""
    segment: str = ""
    sku: str = ""
    pricing: str = "discount_percent"
    currency: str = ""
    value: str = ""
    starts_at: str = ""
    ends_at: str = ""
    per_player_limit: str = ""

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> OfferForm:
        pricing = next((p for p in PRICINGS if entry.get(p) is not None), "discount_percent")
        chosen = entry.get(pricing)
        money = chosen if isinstance(chosen, Mapping) else {}
        return cls(
            id=_text(entry.get("id")),
            segment=_text(entry.get("segment")),
            sku=_text(entry.get("sku")),
            pricing=pricing,
            currency=_text(money.get("currency")),
            value=_text(money.get("amount") if money else chosen),
            starts_at=_timestamp_text(entry.get("starts_at")),
            ends_at=_timestamp_text(entry.get("ends_at")),
            per_player_limit=_text(entry.get("per_player_limit")),
        )

    @classmethod
    def from_request(cls, form: Mapping[str, str]) -> OfferForm:
        return cls(**{f.name: form.get(f.name, "").strip() for f in dataclasses.fields(cls)})

    def to_entry(self) -> dict[str, Any]:
        offer: dict[str, Any] = {
            "id": self.id,
            "segment": self.segment or None,
            "sku": self.sku,
        }
        if self.pricing == "discount_percent":
            if self.value:  # left out, the store says which one of the three to give
                offer["discount_percent"] = number(self.value)
        elif self.pricing in PRICINGS:
            money: dict[str, Any] = {}
            if self.currency:
                money["currency"] = self.currency
            if self.value:
                money["amount"] = number(self.value)
            offer[self.pricing] = money
        offer["starts_at"] = self.starts_at or None
        offer["ends_at"] = self.ends_at or None
        offer["per_player_limit"] = optional_number(self.per_player_limit)
        return offer

    def error_key(self, relative: list[str]) -> str:
        if not relative or relative[0] == "_schema":
            return "pricing"
        head = relative[0]
        if head in PRICINGS:
            return "currency" if relative[1:2] == ["currency"] else "value"
        if head in ("id", "segment", "sku", "starts_at", "ends_at", "per_player_limit"):
            return head
        return "_item"


@dataclasses.dataclass
class CodeForm:
    code: str = ""
    offer: str = ""
    grant: list[ContentRow] = dataclasses.field(default_factory=list)
    segment: str = ""
    budget: str = "100"
    starts_at: str = ""
    ends_at: str = ""

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> CodeForm:
        rows = content_rows_of(entry.get("grant") or [])
        return cls(
            code=_text(entry.get("code")),
            offer=_text(entry.get("offer")),
            grant=rows,
            segment=_text(entry.get("segment")),
            budget=_text(entry.get("budget")),
            starts_at=_timestamp_text(entry.get("starts_at")),
            ends_at=_timestamp_text(entry.get("ends_at")),
        )

    @classmethod
    def from_request(cls, form: Mapping[str, str]) -> CodeForm:
        rows = content_rows_from(form, "grant", "currency")
        return cls(
            # What a player types is matched without regard to case: stored upper case.
            code=form.get("code", "").strip().upper(),
            offer=form.get("offer", "").strip(),
            grant=rows,
            segment=form.get("segment", "").strip(),
            budget=form.get("budget", "").strip(),
            starts_at=form.get("starts_at", "").strip(),
            ends_at=form.get("ends_at", "").strip(),
        )

    def to_entry(self) -> dict[str, Any]:
        grant = []
        for row in self.grant:
            is_money = row.type == "currency"
            ref_name, number_name = ("currency", "amount") if is_money else ("sku", "quantity")
            entry: dict[str, Any] = {}
            if row.ref:
                entry[ref_name] = row.ref
            if row.number:
                entry[number_name] = number(row.number)
            grant.append(entry)
        code: dict[str, Any] = {
            "code": self.code,
            "offer": self.offer or None,
            "grant": grant,
            "segment": self.segment or None,
            "starts_at": self.starts_at or None,
            "ends_at": self.ends_at or None,
        }
        if self.budget:  # left out, the store says it is required
            code["budget"] = number(self.budget)
        return code

    def grant_rows(self) -> list[ContentRow]:
        """The rows to show: the code's, then blank ones to add more."""
        blanks = max(1, min(2, MAX_CONTENT_ROWS - len(self.grant)))
        return [*self.grant, *(ContentRow("currency") for _ in range(blanks))]

    def error_key(self, relative: list[str]) -> str:
        if not relative or relative[0] == "_schema":
            return "_item"
        head = relative[0]
        if head == "grant" and len(relative) >= 2 and relative[1].isdigit():
            row = relative[1]
            if len(relative) == 2 or relative[2] == "_schema":
                return f"grant-{row}"
            return f"grant-{row}-{'ref' if relative[2] in ('sku', 'currency') else 'number'}"
        if head in ("code", "offer", "grant", "segment", "budget", "starts_at", "ends_at"):
            return head
        return "_item"


FORMS: Mapping[str, type[SegmentForm] | type[OfferForm] | type[CodeForm]] = {
    "segments": SegmentForm,
    "offers": OfferForm,
    "promo_codes": CodeForm,
}


def part_field_errors(
    details: Mapping[str, Iterable[str]], *, prefix: str, form: PartForm, data: Any
) -> dict[str, list[str]]:
    """The store's ``validation_failed`` details keyed by the form field that shows them, each
    message with the store's field path; errors of other entries (an offer naming a segment
    renamed here) go under ``_other`` with a path naming that entry, so none is hidden."""
    shown: dict[str, list[str]] = {}
    for path, messages in details.items():
        if path == prefix or path.startswith(prefix + "."):
            relative = path[len(prefix) + 1 :].split(".") if path != prefix else []
            key, label = form.error_key(relative), path
        else:
            readable = describe(path, data)
            key, label = "_other", path if readable == path else f"{path} — {readable}"
        shown.setdefault(key, []).extend(f"{label}: {message}" for message in messages)
    return shown
