"""Catalogs as people read them: a field path in words, the comparison of two catalogs per
entry and field, and a value in a few words, amounts in major units.

Shared by the studio command line (shopkeep.catalog_cli), the catalog file
(shopkeep.catalog_file) and the server's studio page, which imports it from here; it speaks
neither HTTP nor files and needs nothing beyond the SDK.

The catalog's rules live on the server (its schemas in shopkeep_server/store/rules.py). What
this module needs of them to write and compare catalogs, the field order and what an
optional field defaults to, is mirrored below, as the SDK mirrors the error table; a test
(tests/server/test_catalog_rules.py) checks the mirror against the server's schemas.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any, Literal

from .money import Money

# Field names in the server schemas' declaration order (the order a written catalog file uses).
CURRENCY_FIELDS: tuple[str, ...] = ("code", "name", "scale", "max_balance")
ITEM_FIELDS: tuple[str, ...] = (
    "sku",
    "name",
    "description",
    "kind",
    "prices",
    "contents",
    "stock",
    "per_player_limit",
    "available_from",
    "available_until",
    "tags",
    "metadata",
    "localized",
    "segment",
)
PRODUCT_FIELDS: tuple[str, ...] = ("id", "store_ids", "grants")
# A price or a bundle's entry: sku and quantity, or currency and amount (a price's order too).
ENTRY_FIELDS: tuple[str, ...] = ("sku", "quantity", "currency", "amount")
# What the store fills in for an optional field left out.
CURRENCY_DEFAULTS: Mapping[str, Any] = {"max_balance": None}
ITEM_DEFAULTS: Mapping[str, Any] = {
    "description": "",
    "contents": [],
    "stock": None,
    "per_player_limit": None,
    "available_from": None,
    "available_until": None,
    "tags": [],
    "metadata": {},
    "localized": {},
    "segment": None,
}
TIMESTAMP_FIELDS: tuple[str, ...] = ("available_from", "available_until")
# The catalog's other lists (personalized offers): each entry's key field. Their optional
# fields default to null (a code's `grant` to []), so a written file leaves those out.
CATALOG_PARTS: Mapping[str, str] = {"segments": "id", "offers": "id", "promo_codes": "code"}
PART_FIELDS: Mapping[str, tuple[str, ...]] = {
    "segments": ("id", "rule"),
    "offers": (
        "id",
        "segment",
        "sku",
        "price",
        "discount_percent",
        "discount_amount",
        "starts_at",
        "ends_at",
        "per_player_limit",
    ),
    "promo_codes": ("code", "offer", "grant", "segment", "budget", "starts_at", "ends_at"),
}
WINDOW_FIELDS: tuple[str, ...] = ("starts_at", "ends_at")


def part_entry(part: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """A segment, offer or code in its fields' order, without the fields at their default
    (null, an empty grant), its window in the short form and its amounts as ``{currency,
    amount}``: as a file writes it, and as two are compared."""
    fields = PART_FIELDS[part]
    out: dict[str, Any] = {}
    for name in [*fields, *sorted(set(entry) - set(fields))]:
        value = entry.get(name)
        if name not in entry or value is None or (name == "grant" and value == []):
            continue
        if name in WINDOW_FIELDS:
            value = short_timestamp(_comparable_timestamp(value))
        elif isinstance(value, Mapping):
            value = _entry_order(value)
        elif isinstance(value, list):
            value = [_entry_order(v) if isinstance(v, Mapping) else v for v in value]
        out[name] = value
    return out


def _entry_order(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {name: entry[name] for name in ENTRY_FIELDS if name in entry} | {
        name: entry[name] for name in sorted(entry) if name not in ENTRY_FIELDS
    }


# The catalog's risk policy (the server's RiskSchema): its lists in order with the fields of
# their entries in order, and what the store fills in for a field of an entry left out.
_WINDOW_LIMIT_FIELDS = ("currency", "window_seconds", "max_amount", "max_count")
RISK_FIELDS: Mapping[str, tuple[str, ...]] = {
    "spend_limits": _WINDOW_LIMIT_FIELDS,
    "earn_limits": _WINDOW_LIMIT_FIELDS,
    "mint_breakers": ("currency", "window_seconds", "max_amount"),
    "tiers": (
        "name",
        "while_younger_than_seconds",
        "while_fewer_purchases_than",
        "max_price",
        "limited_items",
    ),
    "refund_limits": ("window_seconds", "max_count"),
}
RISK_LISTS: tuple[str, ...] = tuple(RISK_FIELDS)
RISK_ENTRY_DEFAULTS: Mapping[str, Any] = {
    "max_amount": None,
    "max_count": None,
    "while_younger_than_seconds": None,
    "while_fewer_purchases_than": None,
    "max_price": [],
    "limited_items": True,
}


def format_timestamp(value: dt.datetime) -> str:
    """The API's one timestamp format, in UTC with microseconds."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def describe(field_path: str, data: Any) -> str:
    """A field path as a person reads it: ``items.3.prices.0.amount`` becomes
    ``items[3] (potion) prices[0].amount``; the sku (or currency code) names the entry."""
    out = ""
    node: Any = data
    after_label = False
    segments = field_path.split(".")
    for index, segment in enumerate(segments):
        if segment == "_schema":
            break
        if segment.isdigit() and out:
            out += f"[{segment}]"
            position = int(segment)
            node = node[position] if isinstance(node, list) and position < len(node) else None
            labels = {"items": "sku", "currencies": "code", **CATALOG_PARTS}
            if index == 1 and segments[0] in labels and isinstance(node, dict):
                label = node.get(labels[segments[0]])
                if isinstance(label, str) and label:
                    out += f" ({label})"
                    after_label = True
            continue
        if out:
            out += " " if after_label else "."
        after_label = False
        out += segment
        node = node.get(segment) if isinstance(node, dict) else None
    return out


def short_timestamp(value: Any) -> Any:
    """``2025-06-01T12:00:00.000000Z`` as ``2025-06-01T12:00:00Z``: the same instant, easier
    to read and to type."""
    if isinstance(value, str) and value.endswith(".000000Z"):
        return value[: -len(".000000Z")] + "Z"
    return value


# ---------------------------------------------------------------------------------------------
# Comparing two catalogs
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class FieldChange:
    """One field of an entry that differs."""

    field: str
    before: Any
    after: Any


@dataclasses.dataclass(frozen=True, slots=True)
class EntryChange:
    """A currency or an item that was added, removed or changed (with its fields)."""

    key: str
    status: Literal["added", "removed", "changed"]
    entry: dict[str, Any]  # the entry after the change (before it, for a removal)
    fields: tuple[FieldChange, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class CatalogDiff:
    """What changes from one catalog to another, per currency, per item and per field."""

    currencies: tuple[EntryChange, ...]
    items: tuple[EntryChange, ...]
    items_reordered: bool
    # Each side's currency scales, so amounts print in major units: 150 at scale 4 is 0.0150.
    before_scales: Mapping[str, int] = dataclasses.field(default_factory=dict)
    after_scales: Mapping[str, int] = dataclasses.field(default_factory=dict)
    # Real-money products (by id): what each store's product id grants.
    products: tuple[EntryChange, ...] = ()
    # Segments, offers and promo codes, by id (code).
    segments: tuple[EntryChange, ...] = ()
    offers: tuple[EntryChange, ...] = ()
    promo_codes: tuple[EntryChange, ...] = ()
    # The lists of the risk policy that differ (field: the list's name).
    risk: tuple[FieldChange, ...] = ()

    @property
    def empty(self) -> bool:
        return not (
            self.currencies
            or self.items
            or self.items_reordered
            or self.segments
            or self.offers
            or self.promo_codes
            or self.products
            or self.risk
        )

    def summary(self) -> str:
        """``items: 1 changed, 1 added; currencies: 1 removed`` or ``no differences``."""
        parts = []
        for name, changes in (
            ("items", self.items),
            ("currencies", self.currencies),
            ("products", self.products),
            ("segments", self.segments),
            ("offers", self.offers),
            ("promo_codes", self.promo_codes),
        ):
            counts = [
                f"{sum(1 for c in changes if c.status == status)} {status}"
                for status in ("changed", "added", "removed")
                if any(c.status == status for c in changes)
            ]
            if counts:
                parts.append(f"{name}: {', '.join(counts)}")
        if self.items_reordered:
            parts.append("order of items changed")
        if self.risk:
            parts.append(f"risk policy: {', '.join(c.field for c in self.risk)} changed")
        return "; ".join(parts) if parts else "no differences"

    def status_of(self, sku: str) -> str | None:
        """added / removed / changed for an item, None when it is the same on both sides."""
        return next((c.status for c in self.items if c.key == sku), None)


def _filled(entry: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    filled = {**_fresh(defaults), **entry}
    for name in TIMESTAMP_FIELDS:
        if name in filled:
            filled[name] = _comparable_timestamp(filled[name])
    return filled


def _comparable_timestamp(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    return format_timestamp(parsed) if parsed.tzinfo is not None else value


def _fresh(defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The defaults as new objects: a caller may change the lists and dicts it gets."""
    return {name: json.loads(json.dumps(value)) for name, value in defaults.items()}


def _entry_changes(
    before: list[Mapping[str, Any]],
    after: list[Mapping[str, Any]],
    *,
    key: str,
    fields: tuple[str, ...],
    defaults: Mapping[str, Any],
) -> tuple[list[EntryChange], bool]:
    old = {e.get(key): _filled(e, defaults) for e in before}
    new = {e.get(key): _filled(e, defaults) for e in after}
    changes: list[EntryChange] = []
    for name, entry in new.items():
        if name not in old:
            changes.append(EntryChange(str(name), "added", entry))
            continue
        was = old[name]
        names = list(fields) + sorted((set(entry) | set(was)) - set(fields))
        differing = tuple(
            FieldChange(f, was.get(f), entry.get(f)) for f in names if was.get(f) != entry.get(f)
        )
        if differing:
            changes.append(EntryChange(str(name), "changed", entry, differing))
    changes.extend(
        EntryChange(str(name), "removed", entry) for name, entry in old.items() if name not in new
    )
    common_old = [k for k in old if k in new]
    common_new = [k for k in new if k in old]
    return changes, common_old != common_new


def diff_catalogs(before: Mapping[str, Any], after: Mapping[str, Any]) -> CatalogDiff:
    """What turns ``before`` into ``after``: entries matched by sku / currency code, fields
    compared after filling in the store's defaults (a field left out is not a change)."""
    currencies, _ = _entry_changes(
        list(before.get("currencies", [])),
        list(after.get("currencies", [])),
        key="code",
        fields=CURRENCY_FIELDS,
        defaults=CURRENCY_DEFAULTS,
    )
    items, reordered = _entry_changes(
        list(before.get("items", [])),
        list(after.get("items", [])),
        key="sku",
        fields=ITEM_FIELDS,
        defaults=ITEM_DEFAULTS,
    )
    products, _ = _entry_changes(
        list(before.get("products", [])),
        list(after.get("products", [])),
        key="id",
        fields=PRODUCT_FIELDS,
        defaults={},
    )
    parts = {
        name: _entry_changes(
            [part_entry(name, e) for e in before.get(name) or [] if isinstance(e, Mapping)],
            [part_entry(name, e) for e in after.get(name) or [] if isinstance(e, Mapping)],
            key=key,
            fields=(),
            defaults={},
        )[0]
        for name, key in CATALOG_PARTS.items()
    }
    old_risk, new_risk = risk_policy(before), risk_policy(after)
    risk = tuple(
        FieldChange(name, old_risk[name], new_risk[name])
        for name in RISK_LISTS
        if old_risk[name] != new_risk[name]
    )
    return CatalogDiff(
        tuple(currencies),
        tuple(items),
        reordered,
        scales_of(before),
        scales_of(after),
        products=tuple(products),
        segments=tuple(parts["segments"]),
        offers=tuple(parts["offers"]),
        promo_codes=tuple(parts["promo_codes"]),
        risk=risk,
    )


def risk_policy(catalog: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """A catalog's risk policy with every list and every field as the store fills them in
    (no policy: every list empty), so a field left out is never a change."""
    policy = catalog.get("risk")
    policy = policy if isinstance(policy, Mapping) else {}
    filled: dict[str, list[dict[str, Any]]] = {}
    for name in RISK_LISTS:
        entries = policy.get(name)
        filled[name] = [
            {
                **{k: v for k, v in _fresh(RISK_ENTRY_DEFAULTS).items() if _fills(name, k)},
                **entry,
            }
            for entry in (entries if isinstance(entries, list) else [])
            if isinstance(entry, Mapping)
        ]
    return filled


def _fills(list_name: str, field: str) -> bool:
    """Whether the store fills in ``field`` on an entry of ``list_name``."""
    return field in RISK_FIELDS[list_name]


def describe_risk_entry(entry: Mapping[str, Any], scales: Mapping[str, int] | None) -> str:
    """One rule of the policy in a few words: ``USD: 200 purchases, 5.0000 USD (50000) per
    3600 s``; ``new: while younger than 3600 s, at most 1.0000 USD (10000), no limited items``."""
    if "name" in entry:
        conditions = []
        if entry.get("while_younger_than_seconds") is not None:
            conditions.append(f"while younger than {entry['while_younger_than_seconds']} s")
        if entry.get("while_fewer_purchases_than") is not None:
            conditions.append(f"while under {entry['while_fewer_purchases_than']} purchases")
        restrictions = [
            f"at most {format_money(p.get('amount'), p.get('currency'), scales)}"
            for p in entry.get("max_price") or []
            if isinstance(p, Mapping)
        ]
        if entry.get("limited_items") is False:
            restrictions.append("no limited items")
        return f"{entry['name']}: {' or '.join(conditions)}, {', '.join(restrictions)}"
    limits = []
    if entry.get("max_count") is not None:
        limits.append(f"{entry['max_count']}")
    if entry.get("max_amount") is not None:
        limits.append(format_money(entry["max_amount"], entry.get("currency"), scales))
    head = f"{entry['currency']}: " if "currency" in entry else ""
    return f"{head}at most {' and '.join(limits)} per {entry.get('window_seconds')} s"


def scales_of(catalog: Mapping[str, Any]) -> dict[str, int]:
    """Each currency's scale by code: what turns its minor units into major ones."""
    currencies = catalog.get("currencies")
    return {
        c["code"]: c["scale"]
        for c in (currencies if isinstance(currencies, list) else [])
        if isinstance(c, Mapping) and isinstance(c.get("code"), str) and _is_int(c.get("scale"))
    }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def format_money(amount: Any, currency: Any, scales: Mapping[str, int] | None) -> str:
    """An amount as people read it, with its minor units beside when they differ:
    ``0.0150 USD (150)``, ``50 COINS``. The catalog file holds minor units, so a reviewer
    sees both. Exact (the SDK's Money, integers only). Without ``scales`` the amount stays
    in minor units as given; with them, a currency they lack says so."""
    if scales is None:
        return f"{amount} {currency}"
    scale = scales.get(currency) if isinstance(currency, str) else None
    if scale is None:
        return f"{amount} {currency} (minor units)"
    try:
        money = Money.from_minor(amount, currency, scale=scale)
    except (TypeError, ValueError):  # not an amount the store would take: show it as it is
        return f"{json.dumps(amount, default=str)} {currency}"
    return str(money) if scale == 0 else f"{money} ({money.minor})"


def format_value(field: str, value: Any, scales: Mapping[str, int] | None = None) -> str:
    """A field's value in a few words: ``50 COINS, 0.0150 USD (150)``, ``unlimited``,
    ``3 x potion``. ``scales`` (see `scales_of`) turns amounts into major units."""
    if field == "prices" and isinstance(value, list):
        return ", ".join(_money(p, scales) for p in value) or "(none)"
    if field == "contents" and isinstance(value, list):
        return ", ".join(_content(c, scales) for c in value) or "(nothing)"
    if value is None:
        return {
            "stock": "unlimited",
            "per_player_limit": "no limit",
            "max_balance": "no cap",
            "available_from": "always",
            "available_until": "never",
        }.get(field, "none")
    if field == "tags" and isinstance(value, list):
        return ", ".join(str(t) for t in value) if value else "(none)"
    if field in TIMESTAMP_FIELDS:
        return str(short_timestamp(value))
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))


def _money(entry: Any, scales: Mapping[str, int] | None) -> str:
    if isinstance(entry, Mapping) and "currency" in entry and "amount" in entry:
        return format_money(entry["amount"], entry["currency"], scales)
    return json.dumps(entry)


def _content(entry: Any, scales: Mapping[str, int] | None) -> str:
    if isinstance(entry, Mapping) and "sku" in entry:
        return f"{entry.get('quantity')} x {entry['sku']}"
    return _money(entry, scales)


def field_text(section: str, key: str, field: str, value: Any, scales: Mapping[str, int]) -> str:
    """A field of a diffed entry; a currency's cap is an amount of that very currency."""
    if section == "currencies" and field == "max_balance" and value is not None:
        return format_money(value, key, scales)
    return format_value(field, value, scales)


def describe_entry(
    section: str, entry: Mapping[str, Any], scales: Mapping[str, int] | None = None
) -> str:
    """One line about a whole entry, for an added or removed one."""
    if section == "currencies":
        return f"{entry.get('name', '')}, scale {entry.get('scale')}"
    if section in CATALOG_PARTS:
        return ", ".join(f"{k} {format_value(k, v, scales)}" for k, v in entry.items())
    return (
        f"{entry.get('name', '')}, {entry.get('kind', '')}, "
        f"{format_value('prices', entry.get('prices'), scales)}"
    )


# ---------------------------------------------------------------------------------------------
# Comparing two catalogs, for a terminal
# ---------------------------------------------------------------------------------------------


def format_diff(diff: CatalogDiff, *, before: str, after: str) -> list[str]:
    """The diff as text lines, per entry and field, for a terminal; amounts in major units,
    each side by its own catalog's scales (a published currency never changes its scale, so
    a side that lacks one borrows the other's)."""
    old_scales = {**diff.after_scales, **diff.before_scales}
    new_scales = {**diff.before_scales, **diff.after_scales}
    lines = [f"--- {before}", f"+++ {after}"]
    for section, changes in (
        ("currencies", diff.currencies),
        ("items", diff.items),
        ("segments", diff.segments),
        ("offers", diff.offers),
        ("promo_codes", diff.promo_codes),
    ):
        if not changes and not (section == "items" and diff.items_reordered):
            continue
        lines.append(f"{section}:")
        for change in changes:
            if change.status == "added":
                described = describe_entry(section, change.entry, new_scales)
                lines.append(f"  + {change.key}: {described}")
            elif change.status == "removed":
                described = describe_entry(section, change.entry, old_scales)
                lines.append(f"  - {change.key}: {described}")
            else:
                lines.append(f"  ~ {change.key}")
                for field in change.fields:
                    was = field_text(section, change.key, field.field, field.before, old_scales)
                    now = field_text(section, change.key, field.field, field.after, new_scales)
                    lines.append(f"      {field.field}: {was} -> {now}")
        if section == "items" and diff.items_reordered:
            lines.append("  (the order of items changed)")
    if diff.risk:
        lines.append("risk:")
        for risk_change in diff.risk:
            lines.append(f"  ~ {risk_change.field}")
            for entry in risk_change.before:
                lines.append(f"      - {describe_risk_entry(entry, old_scales)}")
            for entry in risk_change.after:
                lines.append(f"      + {describe_risk_entry(entry, new_scales)}")
    lines.append(diff.summary())
    return lines
