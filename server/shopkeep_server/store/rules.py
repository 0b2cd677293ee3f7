"""Field rules shared by every way into the store (API, CLI, studio page): one set of
marshmallow schemas, one set of messages, and field paths like ``items.3.prices.0.amount``."""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from marshmallow import (
    Schema,
    ValidationError,
    fields,
    missing,
    pre_load,
    validate,
    validates_schema,
)

from ..errors import ValidationFailed

# JSON numbers above 2**53 - 1 lose precision in many clients: no amount may pass it.
MAX_AMOUNT = 9_007_199_254_740_991
MAX_QUANTITY = 1000
METADATA_MAX_BYTES = 4096
# Units of one limited item one player may hold at once (POST /v1/holds): enough for a player
# paying for a few, never a whole drop set aside by one account.
MAX_HELD_UNITS = 10
# How deeply a request body's JSON may nest: a catalog draft reaches an item's metadata at
# depth 4, which leaves a studio's metadata 28 levels; deeper bodies are refused as bad_request
# before any schema sees them (a few thousand levels would otherwise be a RecursionError).
MAX_JSON_DEPTH = 32

# Patterns as the contract writes them (JSON Schema and OpenAPI: `$` is the end of the string).
# Python's `$` also matches before a final newline, so they are only ever used with
# `fullmatch` (see `matches`): "apple\n" is not a sku.
SKU_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
CURRENCY_PATTERN = r"^[A-Z][A-Z0-9_]{1,15}$"
KEY_PATTERN = r"^[\x21-\x7e]{16,255}$"
# Account ids (a token's `sub`, a player id in a path): what a studio's ids look like in practice.
ACCOUNT_ID_PATTERN = r"^[A-Za-z0-9_.:@-]{1,128}$"
# Personalized offers (issue 15): segment and offer ids look like skus; a promo code is what a
# player types (matched without regard to case: stored upper case); a locale is a BCP 47 tag
# (language, then region/script subtags); a player attribute's key is a name a rule can use.
OFFER_ID_PATTERN = SKU_PATTERN
PROMO_CODE_PATTERN = r"^[A-Z0-9][A-Z0-9_-]{3,31}$"
LOCALE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}$"
ATTRIBUTE_KEY_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
COUNTRY_PATTERN = r"^[A-Z]{2}$"
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_TEXT = 200

# Control characters (C0, DEL, C1) and lone surrogates (which no UTF-8 text can hold): a NUL
# would reach PostgreSQL, which refuses it in text and jsonb. Multi-line text (a description,
# release notes, metadata strings) may hold tab, newline and carriage return; one-line text
# (names, tags, reasons, metadata keys) none of them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
CONTROL_MESSAGE = "must not contain control characters"
CONTROL_BUT_LINES_MESSAGE = "must not contain control characters other than tab and line breaks"


def matches(pattern: str, value: str) -> bool:
    """Whether the whole of ``value`` matches one of the patterns above."""
    return re.fullmatch(pattern, value) is not None


def has_control_characters(value: str, *, multiline: bool = False) -> bool:
    return (_CONTROL_BUT_LINES if multiline else _CONTROL).search(value) is not None


class StrictInteger(fields.Integer):
    """A JSON integer and nothing else: no float (even 1.0), no string, no boolean."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._validated(value)


class StrictBoolean(fields.Boolean):
    """A JSON true or false and nothing else: no 1, no "yes"."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


def amount_field(*, minimum: int = 1, **kwargs: Any) -> StrictInteger:
    return StrictInteger(validate=validate.Range(min=minimum, max=MAX_AMOUNT), **kwargs)


def quantity_field(**kwargs: Any) -> StrictInteger:
    return StrictInteger(validate=validate.Range(min=1, max=MAX_QUANTITY), **kwargs)


class WholeMatch(validate.Regexp):
    """marshmallow's Regexp with `fullmatch`: its `match` lets `$` stop before a final newline.
    The pattern stays as written, so the OpenAPI document shows the contract's pattern."""

    def __call__(self, value: Any) -> Any:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


def _must_match(pattern: str) -> validate.Regexp:
    # marshmallow formats the message with str.format: the pattern's braces must be doubled.
    message = "must match " + pattern.replace("{", "{{").replace("}", "}}")
    return WholeMatch(pattern, error=message)


class Text(fields.String):
    """A string a person wrote: no control characters (tab and line breaks where ``multiline``)
    and no lone surrogates, so whatever passes can be stored and printed as it is."""

    def __init__(self, *, multiline: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.multiline = multiline

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        if has_control_characters(text, multiline=self.multiline):
            raise ValidationError(CONTROL_BUT_LINES_MESSAGE if self.multiline else CONTROL_MESSAGE)
        return text


def text_field(
    *, max_length: int, min_length: int = 0, multiline: bool = False, **kwargs: Any
) -> Text:
    return Text(
        multiline=multiline, validate=validate.Length(min=min_length, max=max_length), **kwargs
    )


def sku_field(**kwargs: Any) -> fields.String:
    return fields.String(validate=_must_match(SKU_PATTERN), **kwargs)


def currency_field(**kwargs: Any) -> fields.String:
    return fields.String(validate=_must_match(CURRENCY_PATTERN), **kwargs)


def reason_field(**kwargs: Any) -> Text:
    # One line: a reason is a label in ledgers and support tools, not a letter.
    return text_field(min_length=1, max_length=500, **kwargs)


# Webhook endpoints: https anywhere; plain http only to this machine, for development.
WEBHOOK_URL_MAX_LENGTH = 2000
WEBHOOK_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
WEBHOOK_URL_MESSAGE = "must be an https URL, or http to localhost, 127.0.0.1 or [::1]"


def webhook_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook endpoint, or None when it can."""
    if has_control_characters(url) or any(c.isspace() for c in url):
        return CONTROL_MESSAGE
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port  # a port that is not a number (or out of range) raises here
    except ValueError:
        return WEBHOOK_URL_MESSAGE
    del port
    host = (parts.hostname or "").lower()
    if not host or parts.scheme not in ("https", "http"):
        return WEBHOOK_URL_MESSAGE
    if parts.scheme == "http" and host not in WEBHOOK_LOCAL_HOSTS:
        return WEBHOOK_URL_MESSAGE
    if parts.fragment:
        return "must not have a #fragment"
    return None


class WebhookUrl(fields.String):
    """A webhook endpoint's URL (see webhook_url_problem)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(validate=validate.Length(min=1, max=WEBHOOK_URL_MAX_LENGTH), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        url = super()._deserialize(value, attr, data, **kwargs)
        problem = webhook_url_problem(url)
        if problem is not None:
            raise ValidationError(problem)
        return url


class Metadata(fields.Dict):
    """A studio's free-form JSON object: keys are one-line text, every string inside may be
    multi-line text; depth is bounded by the JSON parser (MAX_JSON_DEPTH)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(keys=Text(), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        loaded = super()._deserialize(value, attr, data, **kwargs)
        errors: dict[str, list[str]] = {}
        # Iterative walk: the value came from JSON, so it is dicts, lists and scalars.
        pending: list[tuple[str, Any]] = [("", loaded)]
        while pending:
            path, node = pending.pop()
            if isinstance(node, dict):
                for key, child in node.items():
                    child_path = f"{path}.{key}" if path else str(key)
                    if has_control_characters(str(key)):
                        errors.setdefault(child_path, []).append(CONTROL_MESSAGE)
                    pending.append((child_path, child))
            elif isinstance(node, list):
                pending.extend((f"{path}.{index}", child) for index, child in enumerate(node))
            elif isinstance(node, str) and has_control_characters(node, multiline=True):
                errors.setdefault(path, []).append(CONTROL_BUT_LINES_MESSAGE)
        if errors:
            raise ValidationError(errors)
        return loaded


class RFC3339(fields.AwareDateTime):
    """An RFC 3339 timestamp with its offset, kept in UTC."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="iso", **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.datetime:
        if not isinstance(value, str):
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        return super()._deserialize(value, attr, data, **kwargs).astimezone(dt.UTC)


def format_timestamp(value: dt.datetime | None) -> str | None:
    """The one timestamp format of the API (the SQL function sk_ts writes the same)."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class MoneySchema(Schema):
    currency = currency_field(required=True)
    amount = amount_field(minimum=0, required=True)


class CurrencySchema(Schema):
    code = currency_field(required=True)
    name = text_field(required=True, min_length=1, max_length=100)
    scale = StrictInteger(required=True, validate=validate.Range(min=0, max=9))
    max_balance = amount_field(allow_none=True, load_default=None)


class ContentSchema(Schema):
    """One thing a bundle holds: ``{sku, quantity}`` or ``{currency, amount}``."""

    sku = sku_field()
    quantity = quantity_field()
    currency = currency_field()
    amount = amount_field()

    @validates_schema
    def _one_kind(self, data: dict[str, Any], **_: Any) -> None:
        has_item = "sku" in data or "quantity" in data
        has_money = "currency" in data or "amount" in data
        if has_item == has_money:
            raise ValidationError("give either sku and quantity, or currency and amount")
        if has_item and not ("sku" in data and "quantity" in data):
            raise ValidationError("an item needs both sku and quantity")
        if has_money and not ("currency" in data and "amount" in data):
            raise ValidationError("money needs both currency and amount")


class LocalizedTextSchema(Schema):
    """An item's name and description in one locale (either may be left to the default)."""

    name = text_field(min_length=1, max_length=200)
    description = text_field(max_length=2000, multiline=True)


class ItemSchema(Schema):
    sku = sku_field(required=True)
    name = text_field(required=True, min_length=1, max_length=200)
    # A description may run over several lines (a studio writes paragraphs): tab and line
    # breaks pass, other control characters do not.
    description = text_field(load_default="", max_length=2000, multiline=True)
    kind = fields.String(
        required=True, validate=validate.OneOf(["consumable", "durable", "bundle"])
    )
    prices = fields.List(
        fields.Nested(MoneySchema), required=True, validate=validate.Length(min=1, max=10)
    )
    contents = fields.List(
        fields.Nested(ContentSchema), load_default=list, validate=validate.Length(max=50)
    )
    stock = StrictInteger(
        allow_none=True, load_default=None, validate=validate.Range(min=0, max=MAX_AMOUNT)
    )
    per_player_limit = StrictInteger(
        allow_none=True, load_default=None, validate=validate.Range(min=1, max=MAX_AMOUNT)
    )
    available_from = RFC3339(allow_none=True, load_default=None)
    available_until = RFC3339(allow_none=True, load_default=None)
    tags = fields.List(
        text_field(min_length=1, max_length=50),
        load_default=list,
        validate=validate.Length(max=20),
    )
    metadata = Metadata(load_default=dict)
    # Name and description per locale, chosen by a reader's Accept-Language (issue 15).
    localized = fields.Dict(
        keys=fields.String(validate=_must_match(LOCALE_PATTERN)),
        values=fields.Nested(LocalizedTextSchema),
        load_default=dict,
        validate=validate.Length(max=30),
    )
    # The segment that alone sees the item (issue 15): players outside it neither see it in
    # their catalog nor can buy it. None: everyone.
    segment = fields.String(
        allow_none=True, load_default=None, validate=_must_match(OFFER_ID_PATTERN)
    )

    @pre_load
    def _drop_rendered(self, data: Any, **_: Any) -> Any:
        # The live view renders each reader's price_for_you into its items: a live catalog put
        # back as a draft (as clients did before it existed) stays a valid draft.
        if isinstance(data, Mapping) and "price_for_you" in data:
            return {k: v for k, v in data.items() if k != "price_for_you"}
        return data

    @validates_schema
    def _item_rules(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        currencies = [p["currency"] for p in data["prices"]]
        if len(set(currencies)) != len(currencies):
            errors["prices"] = ["each currency may have one price only"]
        if data["kind"] == "bundle" and not data["contents"]:
            errors["contents"] = ["a bundle must contain something"]
        if data["kind"] != "bundle" and data["contents"]:
            errors["contents"] = ["only a bundle has contents"]
        if data["kind"] == "durable" and data["per_player_limit"] not in (None, 1):
            errors["per_player_limit"] = ["a durable item is owned at most once: use null or 1"]
        start, end = data["available_from"], data["available_until"]
        if start is not None and end is not None and start >= end:
            errors["available_until"] = ["must be after available_from"]
        if len(json.dumps(data["metadata"]).encode()) > METADATA_MAX_BYTES:
            errors["metadata"] = [f"must be at most {METADATA_MAX_BYTES} bytes of JSON"]
        if errors:
            raise ValidationError(errors)


# The app stores a product may be sold on: the keys of a product's `store_ids`, and the
# `store` of a receipt and of a store's settings.
STORES: tuple[str, ...] = ("app_store", "google_play", "steam")
PRODUCT_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
# Store product ids: Apple's and Google's ids are dotted names, Steam's item ids are numbers.
STORE_PRODUCT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,149}$"


class StoreIdsSchema(Schema):
    """A product's id on each store that sells it (at least one)."""

    app_store = fields.String(validate=_must_match(STORE_PRODUCT_ID_PATTERN))
    google_play = fields.String(validate=_must_match(STORE_PRODUCT_ID_PATTERN))
    steam = fields.String(validate=_must_match(STORE_PRODUCT_ID_PATTERN))

    @validates_schema
    def _at_least_one(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError(f"name the product's id on at least one of {', '.join(STORES)}")


class GrantedCurrencySchema(Schema):
    currency = currency_field(required=True)
    amount = amount_field(required=True)


class GrantedItemSchema(Schema):
    sku = sku_field(required=True)
    quantity = quantity_field(required=True)


class ProductGrantsSchema(Schema):
    """What one purchase of a product gives: currencies and/or items."""

    currencies = fields.List(
        fields.Nested(GrantedCurrencySchema), load_default=list, validate=validate.Length(max=10)
    )
    items = fields.List(
        fields.Nested(GrantedItemSchema), load_default=list, validate=validate.Length(max=50)
    )

    @validates_schema
    def _gives_something(self, data: dict[str, Any], **_: Any) -> None:
        if not data["currencies"] and not data["items"]:
            raise ValidationError("a product must grant a currency or an item")


class ProductSchema(Schema):
    """A real-money product: sold by the app stores, it grants currencies and items."""

    id = fields.String(required=True, validate=_must_match(PRODUCT_ID_PATTERN))
    store_ids = fields.Nested(StoreIdsSchema, required=True)
    grants = fields.Nested(ProductGrantsSchema, required=True)


class SegmentSchema(Schema):
    """A named rule over a player's attributes (the language: store/segments.py)."""

    id = fields.String(required=True, validate=_must_match(OFFER_ID_PATTERN))
    rule = text_field(required=True, min_length=1, max_length=1000)


def _window_rules(data: dict[str, Any], errors: dict[str, list[str]]) -> None:
    start, end = data.get("starts_at"), data.get("ends_at")
    if start is not None and end is not None and start >= end:
        errors["ends_at"] = ["must be after starts_at"]


class OfferSchema(Schema):
    """A price for one item, for a segment (or everyone) and a window: exactly one of a price
    override, a percentage off or an amount off."""

    id = fields.String(required=True, validate=_must_match(OFFER_ID_PATTERN))
    segment = fields.String(
        allow_none=True, load_default=None, validate=_must_match(OFFER_ID_PATTERN)
    )
    sku = sku_field(required=True)
    price = fields.Nested(MoneySchema, allow_none=True, load_default=None)
    discount_percent = StrictInteger(
        allow_none=True, load_default=None, validate=validate.Range(min=1, max=100)
    )
    discount_amount = fields.Nested(MoneySchema, allow_none=True, load_default=None)
    starts_at = RFC3339(allow_none=True, load_default=None)
    ends_at = RFC3339(allow_none=True, load_default=None)
    per_player_limit = StrictInteger(
        allow_none=True, load_default=None, validate=validate.Range(min=1, max=MAX_AMOUNT)
    )

    @validates_schema
    def _offer_rules(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        kinds = [k for k in ("price", "discount_percent", "discount_amount") if data.get(k)]
        if len(kinds) != 1:
            errors["_schema"] = ["give exactly one of price, discount_percent, discount_amount"]
        _window_rules(data, errors)
        if errors:
            raise ValidationError(errors)


# The risk policy (docs/api.md, "Risk"; enforced by sql/65_risk.sql). Windows are rolling, in
# seconds, at most a year; amounts are minor units of the limit's currency.
MAX_WINDOW_SECONDS = 366 * 24 * 3600
TIER_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
# What the service sets to lift every tier restriction from a player: no tier may be called so.
TRUSTED_TIER = "trusted"


def _window_field(**kwargs: Any) -> StrictInteger:
    return StrictInteger(validate=validate.Range(min=1, max=MAX_WINDOW_SECONDS), **kwargs)


def _count_field(**kwargs: Any) -> StrictInteger:
    return StrictInteger(validate=validate.Range(min=0, max=MAX_AMOUNT), **kwargs)


class WindowLimitSchema(Schema):
    """At most ``max_amount`` (minor units) and/or ``max_count`` operations of one player in
    ``currency`` over any ``window_seconds``: a spend limit (purchases) or an earn limit
    (grants)."""

    currency = currency_field(required=True)
    window_seconds = _window_field(required=True)
    max_amount = amount_field(minimum=0, allow_none=True, load_default=None)
    max_count = _count_field(allow_none=True, load_default=None)

    @validates_schema
    def _some_limit(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("max_amount") is None and data.get("max_count") is None:
            raise ValidationError("give max_amount, max_count or both")


class MintBreakerSchema(Schema):
    """Grants of ``currency`` to all players together: past ``max_amount`` within
    ``window_seconds`` the breaker trips and minting stops until a studio member resets it."""

    currency = currency_field(required=True)
    window_seconds = _window_field(required=True)
    max_amount = amount_field(minimum=0, required=True)


class TierSchema(Schema):
    """Restrictions on players still young (first seen less than ``while_younger_than_seconds``
    ago) or new (fewer than ``while_fewer_purchases_than`` completed purchases): no single
    purchase above ``max_price`` in its currency, no limited items unless ``limited_items``."""

    name = fields.String(required=True, validate=_must_match(TIER_NAME_PATTERN))
    while_younger_than_seconds = _window_field(allow_none=True, load_default=None)
    while_fewer_purchases_than = StrictInteger(
        allow_none=True, load_default=None, validate=validate.Range(min=1, max=1_000_000)
    )
    max_price = fields.List(
        fields.Nested(MoneySchema), load_default=list, validate=validate.Length(max=10)
    )
    limited_items = StrictBoolean(load_default=True)

    @validates_schema
    def _tier_rules(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        if (
            data.get("while_younger_than_seconds") is None
            and data.get("while_fewer_purchases_than") is None
        ):
            errors["_schema"] = [
                "give while_younger_than_seconds, while_fewer_purchases_than or both"
            ]
        if data.get("name") == TRUSTED_TIER:
            errors["name"] = [f"{TRUSTED_TIER} is what the service sets to lift every tier"]
        currencies = [p["currency"] for p in data.get("max_price", [])]
        if len(set(currencies)) != len(currencies):
            errors["max_price"] = ["each currency may have one price only"]
        if errors:
            raise ValidationError(errors)


class PromoCodeSchema(Schema):
    """A code players redeem: it unlocks an offer or grants contents, at most ``budget`` times
    in all and once per player, inside its window, for its segment (or everyone)."""

    code = fields.String(required=True, validate=_must_match(PROMO_CODE_PATTERN))
    offer = fields.String(allow_none=True, load_default=None, validate=_must_match(SKU_PATTERN))
    grant = fields.List(
        fields.Nested(ContentSchema), load_default=list, validate=validate.Length(max=50)
    )
    segment = fields.String(
        allow_none=True, load_default=None, validate=_must_match(OFFER_ID_PATTERN)
    )
    budget = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_AMOUNT))
    starts_at = RFC3339(allow_none=True, load_default=None)
    ends_at = RFC3339(allow_none=True, load_default=None)

    @validates_schema
    def _code_rules(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        if (data.get("offer") is None) == (not data.get("grant")):
            errors["_schema"] = ["give either offer (the offer it unlocks) or grant (contents)"]
        _window_rules(data, errors)
        if errors:
            raise ValidationError(errors)


class RefundLimitSchema(Schema):
    """At most ``max_count`` refunds of one player's purchases over any ``window_seconds``."""

    window_seconds = _window_field(required=True)
    max_count = _count_field(required=True)


def _limits(schema: type[Schema], most: int) -> fields.List:
    return fields.List(fields.Nested(schema), load_default=list, validate=validate.Length(max=most))


class RiskSchema(Schema):
    """A game's risk policy, the catalog's top-level ``risk``: absent means no limits."""

    spend_limits = _limits(WindowLimitSchema, 20)
    earn_limits = _limits(WindowLimitSchema, 20)
    mint_breakers = _limits(MintBreakerSchema, 20)
    tiers = _limits(TierSchema, 10)
    refund_limits = _limits(RefundLimitSchema, 5)

    @validates_schema
    def _unique_tiers(self, data: dict[str, Any], **_: Any) -> None:
        seen: set[str] = set()
        for index, tier in enumerate(data.get("tiers", [])):
            if tier["name"] in seen:
                raise ValidationError({f"tiers.{index}.name": [f"{tier['name']} appears twice"]})
            seen.add(tier["name"])


class CatalogSchema(Schema):
    currencies = fields.List(
        fields.Nested(CurrencySchema), required=True, validate=validate.Length(max=50)
    )
    items = fields.List(
        fields.Nested(ItemSchema), required=True, validate=validate.Length(max=5000)
    )
    products = fields.List(
        fields.Nested(ProductSchema), load_default=list, validate=validate.Length(max=500)
    )
    segments = fields.List(
        fields.Nested(SegmentSchema), load_default=list, validate=validate.Length(max=100)
    )
    offers = fields.List(
        fields.Nested(OfferSchema), load_default=list, validate=validate.Length(max=1000)
    )
    promo_codes = fields.List(
        fields.Nested(PromoCodeSchema), load_default=list, validate=validate.Length(max=1000)
    )

    @pre_load
    def _drop_rendered(self, data: Any, **_: Any) -> Any:
        # The live view's `locale` (see ItemSchema._drop_rendered).
        if isinstance(data, Mapping) and "locale" in data:
            return {k: v for k, v in data.items() if k != "locale"}
        return data

    risk = fields.Nested(RiskSchema, allow_none=True)


# What the catalog schemas say about an entry's fields, for code that writes, compares or shows
# catalogs (the catalog file, the diff of two catalogs, the studio page): derived from the
# schemas above, never restated.


def load_defaults(schema: Schema) -> dict[str, Any]:
    """What loading fills in for each optional field left out (its ``load_default``)."""
    return {
        name: field.load_default() if callable(field.load_default) else field.load_default
        for name, field in schema.fields.items()
        if field.load_default is not missing
    }


# Field names in declaration order (the order a written catalog file uses).
CURRENCY_FIELDS: tuple[str, ...] = tuple(CurrencySchema().fields)
ITEM_FIELDS: tuple[str, ...] = tuple(ItemSchema().fields)
PRODUCT_FIELDS: tuple[str, ...] = tuple(ProductSchema().fields)
CURRENCY_DEFAULTS: dict[str, Any] = load_defaults(CurrencySchema())
ITEM_DEFAULTS: dict[str, Any] = load_defaults(ItemSchema())
TIMESTAMP_FIELDS: tuple[str, ...] = tuple(
    name for name, field in ItemSchema().fields.items() if isinstance(field, RFC3339)
)
# Timestamps of offers and promo codes (the same fields in both).
WINDOW_FIELDS: tuple[str, ...] = ("starts_at", "ends_at")


class AttributeValue(fields.Field):
    """A studio-defined attribute's value: one-line text, an integer or a boolean."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            if abs(value) > MAX_AMOUNT:
                raise ValidationError(f"must be between -{MAX_AMOUNT} and {MAX_AMOUNT}")
            return value
        if isinstance(value, str):
            if len(value) > MAX_ATTRIBUTE_TEXT:
                raise ValidationError(f"at most {MAX_ATTRIBUTE_TEXT} characters")
            if has_control_characters(value):
                raise ValidationError(CONTROL_MESSAGE)
            return value
        raise ValidationError("must be a string, an integer or a boolean")


class PlayerAttributesSchema(Schema):
    """PUT /v1/players/{id}/attributes: the player's country and the studio's key-values
    (the whole set: keys left out are removed)."""

    country = fields.String(
        allow_none=True, load_default=None, validate=_must_match(COUNTRY_PATTERN)
    )
    attributes = fields.Dict(
        keys=fields.String(validate=_must_match(ATTRIBUTE_KEY_PATTERN)),
        values=AttributeValue(),
        required=True,
        validate=validate.Length(max=MAX_ATTRIBUTES),
    )


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested error dict as {"items.3.prices.0.amount": [messages]}."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            if key == "_schema":
                path = prefix or "_schema"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            for sub_path, sub_messages in flatten_errors(value, path).items():
                flat.setdefault(sub_path, []).extend(sub_messages)
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        flat[prefix or "_schema"] = list(messages)
    elif isinstance(messages, list):
        for value in messages:
            for sub_path, sub_messages in flatten_errors(value, prefix).items():
                flat.setdefault(sub_path, []).extend(sub_messages)
    else:
        flat[prefix or "_schema"] = [str(messages)]
    return flat


def load(schema: Schema, data: Any) -> dict[str, Any]:
    """Loads with a schema, raising the API's validation_failed with flat field paths."""
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise ValidationFailed(details=flatten_errors(exc.messages)) from exc


def check_idempotency_key(key: str | None) -> str:
    from ..errors import IdempotencyKeyInvalid, IdempotencyKeyMissing

    if key is None:
        raise IdempotencyKeyMissing()
    if not matches(KEY_PATTERN, key):
        raise IdempotencyKeyInvalid()
    return key


# Compiled for callers that test account ids themselves: `\Z`, so even `.match` takes the whole.
ACCOUNT_ID = re.compile(ACCOUNT_ID_PATTERN.removesuffix("$") + r"\Z")

# Path parameters the URL rules give as plain strings, checked before any handler runs.
PATH_PARAMETERS = {
    "sku": SKU_PATTERN,
    "player_id": ACCOUNT_ID_PATTERN,
    "currency": CURRENCY_PATTERN,
}


def check_path_parameters(values: Mapping[str, Any]) -> None:
    """422 naming the parameter for a path segment no stored row can have (a NUL, a newline)."""
    errors = {
        name: [f"must match {PATH_PARAMETERS[name]}"]
        for name, value in values.items()
        if name in PATH_PARAMETERS
        and not (isinstance(value, str) and matches(PATH_PARAMETERS[name], value))
    }
    if errors:
        raise ValidationFailed(details=errors)


def check_player_id(player_id: str) -> str:
    check_path_parameters({"player_id": player_id})
    return player_id
