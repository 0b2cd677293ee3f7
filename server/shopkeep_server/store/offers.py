"""Personalized offers (issue 15): segments, offers and promo codes of a catalog, a player's
attributes, the player's own view of the live catalog, and code redemption.

What a player pays is decided in SQL, by ``sk_offer_price`` (sql/66_offers.sql), for the
catalog view here and for the purchase alike, so the price a player is shown is the price it is
charged (or the purchase answers price_changed). This module checks the catalog's new parts
(references, rules), writes each published version's offers and codes as rows, and overlays a
player's prices on the shared, cached catalog body.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ..errors import NotFound
from . import rules, segments
from .idempotency import KEY_ARGS, IdempotencyKey, Outcome, key_params, run_operation

# ---------------------------------------------------------------------------------------------
# The catalog's segments, offers and promo codes: checks and normalized form
# ---------------------------------------------------------------------------------------------


def catalog_errors(data: Mapping[str, Any]) -> dict[str, list[str]]:
    """References and rules of a loaded catalog's segments, offers and promo codes: ids that
    appear twice, a segment, sku, currency or offer the catalog does not hold, a rule that does
    not parse (its message names the column)."""
    errors: dict[str, list[str]] = {}

    def fail(path: str, message: str) -> None:
        errors.setdefault(path, []).append(message)

    segment_ids: set[str] = set()
    for index, segment in enumerate(data.get("segments", [])):
        if segment["id"] in segment_ids:
            fail(f"segments.{index}.id", f"{segment['id']} appears twice")
        segment_ids.add(segment["id"])
        try:
            segments.parse(segment["rule"])
        except segments.RuleError as exc:
            fail(f"segments.{index}.rule", str(exc))
    for index, item in enumerate(data["items"]):
        if item.get("segment") is not None and item["segment"] not in segment_ids:
            fail(f"items.{index}.segment", "not a segment of this catalog")
    prices = {item["sku"]: {p["currency"] for p in item["prices"]} for item in data["items"]}
    offer_ids: set[str] = set()
    for index, offer in enumerate(data.get("offers", [])):
        path = f"offers.{index}"
        if offer["id"] in offer_ids:
            fail(f"{path}.id", f"{offer['id']} appears twice")
        offer_ids.add(offer["id"])
        if offer["segment"] is not None and offer["segment"] not in segment_ids:
            fail(f"{path}.segment", "not a segment of this catalog")
        currencies = prices.get(offer["sku"])
        if currencies is None:
            fail(f"{path}.sku", "not an item of this catalog")
            continue
        for name in ("price", "discount_amount"):
            money = offer.get(name)
            if money is not None and money["currency"] not in currencies:
                fail(f"{path}.{name}.currency", f"{offer['sku']} has no price in this currency")
    codes: set[str] = set()
    currency_codes = {c["code"] for c in data["currencies"]}
    for index, promo in enumerate(data.get("promo_codes", [])):
        path = f"promo_codes.{index}"
        if promo["code"] in codes:
            fail(f"{path}.code", f"{promo['code']} appears twice")
        codes.add(promo["code"])
        if promo["segment"] is not None and promo["segment"] not in segment_ids:
            fail(f"{path}.segment", "not a segment of this catalog")
        if promo["offer"] is not None and promo["offer"] not in offer_ids:
            fail(f"{path}.offer", "not an offer of this catalog")
        for c_index, content in enumerate(promo["grant"]):
            if "sku" in content and content["sku"] not in prices:
                fail(f"{path}.grant.{c_index}.sku", "not an item of this catalog")
            elif "currency" in content and content["currency"] not in currency_codes:
                fail(f"{path}.grant.{c_index}.currency", "not a currency of this catalog")
    return errors


def _with_window(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **entry,
        **{name: rules.format_timestamp(entry.get(name)) for name in rules.WINDOW_FIELDS},
    }


def normalized_parts(data: Mapping[str, Any]) -> dict[str, Any]:
    """The catalog's segments, offers and codes as stored (timestamps in the API's format)."""
    return {
        "segments": list(data.get("segments", [])),
        "offers": [_with_window(offer) for offer in data.get("offers", [])],
        "promo_codes": [_with_window(promo) for promo in data.get("promo_codes", [])],
    }


# ---------------------------------------------------------------------------------------------
# Publishing: a version's offers and codes as rows
# ---------------------------------------------------------------------------------------------


def _compiled_rules(content: Mapping[str, Any]) -> dict[str, Any]:
    return {s["id"]: segments.parse(s["rule"]) for s in content.get("segments", [])}


def publish_parts(
    conn: psycopg.Connection, game: str, version_id: int, content: Mapping[str, Any]
) -> None:
    """Writes the published version's offers (one row per offer, its segment's rule compiled
    in), segment-only items (likewise) and promo codes, and makes the live budget of each code
    first published."""
    compiled = _compiled_rules(content)
    item_rows = [
        {"sku": item["sku"], "segment_id": item["segment"], "rule": compiled[item["segment"]]}
        for item in content["items"]
        if item.get("segment")
    ]
    if item_rows:
        conn.execute(
            "INSERT INTO catalog_item_segments (version_id, sku, segment_id, rule)"
            " SELECT %s, i.sku, i.segment_id, i.rule"
            " FROM jsonb_to_recordset(%s) AS i(sku text, segment_id text, rule jsonb)",
            (version_id, Jsonb(item_rows)),
        )
    unlocked_by_code = {p["offer"] for p in content.get("promo_codes", []) if p["offer"]}
    offer_rows = []
    for offer in content.get("offers", []):
        money = offer["price"] or offer["discount_amount"]
        offer_rows.append(
            {
                "sku": offer["sku"],
                "offer_id": offer["id"],
                "rule": compiled.get(offer["segment"]) if offer["segment"] else None,
                "currency": money["currency"] if money else None,
                "price": offer["price"]["amount"] if offer["price"] else None,
                "discount_percent": offer["discount_percent"],
                "discount_amount": (
                    offer["discount_amount"]["amount"] if offer["discount_amount"] else None
                ),
                "starts_at": offer["starts_at"],
                "ends_at": offer["ends_at"],
                "per_player_limit": offer["per_player_limit"],
                "requires_code": offer["id"] in unlocked_by_code,
            }
        )
    if offer_rows:
        conn.execute(
            "INSERT INTO catalog_offers (version_id, sku, offer_id, rule, currency, price,"
            " discount_percent, discount_amount, starts_at, ends_at, per_player_limit,"
            " requires_code)"
            " SELECT %s, o.sku, o.offer_id, o.rule, o.currency, o.price, o.discount_percent,"
            " o.discount_amount, o.starts_at, o.ends_at, o.per_player_limit, o.requires_code"
            " FROM jsonb_to_recordset(%s) AS o(sku text, offer_id text, rule jsonb,"
            " currency text, price bigint, discount_percent integer, discount_amount bigint,"
            " starts_at timestamptz, ends_at timestamptz, per_player_limit bigint,"
            " requires_code boolean)",
            (version_id, Jsonb(offer_rows)),
        )
    code_rows = [
        {
            "code": promo["code"],
            "rule": compiled.get(promo["segment"]) if promo["segment"] else None,
            "offer_id": promo["offer"],
            "grant_contents": promo["grant"],
            "budget": promo["budget"],
            "starts_at": promo["starts_at"],
            "ends_at": promo["ends_at"],
        }
        for promo in content.get("promo_codes", [])
    ]
    if code_rows:
        conn.execute(
            "INSERT INTO catalog_promo_codes (version_id, code, rule, offer_id, grant_contents,"
            " budget, starts_at, ends_at)"
            " SELECT %s, c.code, c.rule, c.offer_id, c.grant_contents, c.budget, c.starts_at,"
            " c.ends_at FROM jsonb_to_recordset(%s) AS c(code text, rule jsonb, offer_id text,"
            " grant_contents jsonb, budget bigint, starts_at timestamptz, ends_at timestamptz)",
            (version_id, Jsonb(code_rows)),
        )
        # Like stock, the count is live state: a later version changes the budget only.
        conn.execute(
            "INSERT INTO promo_code_budgets (game_id, code, budget)"
            " SELECT %s, code, budget FROM catalog_promo_codes WHERE version_id = %s"
            " ON CONFLICT (game_id, code) DO UPDATE SET budget = EXCLUDED.budget",
            (game, version_id),
        )


# ---------------------------------------------------------------------------------------------
# The player's own view of the live catalog
# ---------------------------------------------------------------------------------------------


def served_content(content: Mapping[str, Any], version: int) -> dict[str, Any]:
    """The shared part of the live catalog as players get it: currencies and items, each item
    with ``price_for_you`` at its list prices; segments, offers and codes stay with the studio."""
    items = [
        {**item, "price_for_you": [{**price, "offer_id": None} for price in item["prices"]]}
        for item in content["items"]
    ]
    return {
        "version": version,
        "locale": None,
        "currencies": content["currencies"],
        "items": items,
        # The real-money products: what a game's top-up screen offers (docs/stores.md).
        "products": content.get("products", []),
    }


def is_personal(content: Mapping[str, Any]) -> bool:
    """Whether players of this catalog may each see it differently: it has offers or items
    only a segment sees."""
    return bool(content.get("offers")) or any(item.get("segment") for item in content["items"])


def choose_locale(accept_language: str | None, available: set[str]) -> str | None:
    """The best of ``available`` for an Accept-Language header (RFC 9110 quality values; a
    range matches a locale equal to it or starting with it and a hyphen, case-insensitively,
    and ``pt-BR`` also matches a plain ``pt``), or None for the catalog's own text."""
    if not accept_language or not available:
        return None
    by_lower = {locale.lower(): locale for locale in available}
    ranges: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and quality > 0:
            ranges.append((-quality, position, tag.strip().lower()))
    for _, _, tag in sorted(ranges):
        if tag == "*":
            return None
        if tag in by_lower:
            return by_lower[tag]
        prefixed = sorted(lower for lower in by_lower if lower.startswith(tag + "-"))
        if prefixed:
            return by_lower[prefixed[0]]
        base = tag.split("-")[0]
        if base != tag and base in by_lower:
            return by_lower[base]
    return None


def locales_of(content: Mapping[str, Any]) -> set[str]:
    return {locale for item in content["items"] for locale in item.get("localized", {})}


def localized_content(served: Mapping[str, Any], locale: str | None) -> dict[str, Any]:
    """The served catalog with each item's name and description in ``locale`` where the item
    has them (the catalog's own text where not)."""
    if locale is None:
        return dict(served)
    items = []
    for item in served["items"]:
        text = item.get("localized", {}).get(locale, {})
        items.append({**item, **{k: v for k, v in text.items() if k in ("name", "description")}})
    return {**served, "locale": locale, "items": items}


@dataclasses.dataclass(frozen=True, slots=True)
class PlayerView:
    """What of a catalog is one player's own: ``prices``, (sku, currency) -> (unit price, offer
    id) wherever an offer prices it, and ``hidden``, the items only a segment sees that the
    player is not in (left out of its view). Empty: the shared view."""

    prices: Mapping[tuple[str, str], tuple[int, str]] = dataclasses.field(default_factory=dict)
    hidden: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.prices or self.hidden)


# What a reader without prices of its own (a service, a studio member) sees: every item, at
# its list prices.
SHARED_VIEW = PlayerView()


def personal_view(
    conn: psycopg.Connection,
    game: str,
    player: str,
    version_id: int,
    *,
    at: dt.datetime | None = None,
) -> PlayerView:
    """A player's own prices and hidden items of a version, in one statement, from the SQL
    functions the purchase decides by (sk_catalog_prices, sk_hidden_items)."""
    row = conn.execute(
        "WITH moment AS (SELECT coalesce(%(at)s::timestamptz, now()) AS at)"
        " SELECT (SELECT coalesce(jsonb_agg(jsonb_build_array(p.sku, p.currency, p.amount,"
        "   p.offer_id)), '[]') FROM moment,"
        "   sk_catalog_prices(%(game)s, %(player)s, %(version)s, moment.at) p),"
        " (SELECT coalesce(array_agg(h), '{}') FROM moment,"
        "   sk_hidden_items(%(game)s, %(player)s, %(version)s, moment.at) h)",
        {"game": game, "player": player, "version": version_id, "at": at},
    ).fetchone()
    assert row is not None
    prices = {(sku, currency): (amount, offer) for sku, currency, amount, offer in row[0]}
    return PlayerView(prices, frozenset(row[1]))


def apply_view(served: Mapping[str, Any], view: PlayerView) -> dict[str, Any]:
    """The served catalog as one player sees it: without the items hidden from it, and with its
    own prices in each item's ``price_for_you``."""
    if not view:
        return dict(served)
    items = []
    for item in served["items"]:
        if item["sku"] in view.hidden:
            continue
        mine = [
            {"currency": p["currency"], "amount": found[0], "offer_id": found[1]}
            if (found := view.prices.get((item["sku"], p["currency"]))) is not None
            else p
            for p in item["price_for_you"]
        ]
        items.append({**item, "price_for_you": mine})
    return {**served, "items": items}


def view_tag(view: PlayerView) -> str:
    """A short digest of a player's own view (prices and hidden items), for its ETag."""
    if not view:
        return ""
    text = json.dumps(
        [sorted((k[0], k[1], v[0], v[1]) for k, v in view.prices.items()), sorted(view.hidden)]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def record_seen(conn: psycopg.Connection, game: str, player: str, country: str | None) -> None:
    """The player is seen (first_seen), with the country its token claims, if any."""
    conn.execute("SELECT sk_player_seen(%s, %s, %s)", (game, player, country))


# ---------------------------------------------------------------------------------------------
# Player attributes
# ---------------------------------------------------------------------------------------------


def get_attributes(conn: psycopg.Connection, game: str, player: str) -> dict[str, Any]:
    """What segment rules can use about a player, as the API shows it."""
    row = conn.execute(
        "SELECT pp.first_seen, pp.country, pp.attributes FROM player_profiles pp"
        " WHERE pp.game_id = %s AND pp.player_id = %s",
        (game, player),
    ).fetchone()
    facts = conn.execute("SELECT sk_player_facts(%s, %s)", (game, player)).fetchone()
    assert facts is not None
    spend = facts[0].get("spend", {})
    return {
        "player_id": player,
        "first_seen": rules.format_timestamp(row[0]) if row else None,
        "country": row[1] if row else None,
        "last_purchase": facts[0].get("last_purchase"),
        "spend": [{"currency": c, "amount": spend[c]} for c in sorted(spend)],
        "attributes": row[2] if row else {},
    }


def put_attributes(
    conn: psycopg.Connection, game: str, player: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Replaces the studio's key-values of a player (and its country, when given)."""
    record_seen(conn, game, player, None)
    conn.execute(
        "UPDATE player_profiles SET attributes = %(attributes)s,"
        " country = coalesce(%(country)s, country), updated_at = now()"
        " WHERE game_id = %(game)s AND player_id = %(player)s",
        {
            "game": game,
            "player": player,
            "country": body.get("country"),
            "attributes": Jsonb(dict(body["attributes"])),
        },
    )
    return get_attributes(conn, game, player)


# ---------------------------------------------------------------------------------------------
# Promo codes and figures
# ---------------------------------------------------------------------------------------------

_REDEEM = "SELECT status, body, replayed FROM sk_redeem_code(" + KEY_ARGS + ", %s)"


def redeem(
    conn: psycopg.Connection, game: str, player: str, *, code: str, key: IdempotencyKey
) -> Outcome:
    """Redeems a promo code for ``player``, exactly once per key and once per player."""
    return run_operation(
        conn,
        _REDEEM,
        (
            *key_params(game, player, key),
            code,
        ),
    )


def offer_sales(conn: psycopg.Connection, game: str) -> list[dict[str, Any]]:
    """Per offer and currency: completed purchases, units and revenue (minor units), and per
    day the revenue, for the studio page's chart."""
    rows = conn.execute(
        "SELECT offer_id, currency, count(*), sum(quantity), sum(total_price),"
        " jsonb_object_agg(day, revenue ORDER BY day) FROM ("
        "  SELECT offer_id, currency, quantity, total_price,"
        "   to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,"
        "   sum(total_price) OVER (PARTITION BY offer_id, currency,"
        "     date_trunc('day', created_at AT TIME ZONE 'UTC')) AS revenue"
        "  FROM purchases WHERE game_id = %s AND offer_id IS NOT NULL AND status = 'completed'"
        " ) p GROUP BY offer_id, currency ORDER BY offer_id, currency",
        (game,),
    ).fetchall()
    redemptions: dict[str, int] = dict(
        conn.execute(
            "SELECT offer_id, count(*) FROM promo_redemptions WHERE game_id = %s"
            " AND offer_id IS NOT NULL GROUP BY offer_id",
            (game,),
        ).fetchall()
    )
    return [
        {
            "offer_id": offer,
            "currency": currency,
            "purchases": purchases,
            "units": int(units),
            "revenue": int(revenue),
            "by_day": {day: int(amount) for day, amount in by_day.items()},
            "code_redemptions": redemptions.get(offer, 0),
        }
        for offer, currency, purchases, units, revenue, by_day in rows
    ]


def code_usage(conn: psycopg.Connection, game: str) -> dict[str, tuple[int, int]]:
    """code -> (redeemed, budget)."""
    return {
        code: (redeemed, budget)
        for code, redeemed, budget in conn.execute(
            "SELECT code, redeemed, budget FROM promo_code_budgets WHERE game_id = %s", (game,)
        ).fetchall()
    }


def require_game(conn: psycopg.Connection, game: str) -> None:
    if conn.execute("SELECT 1 FROM games WHERE id = %s", (game,)).fetchone() is None:
        raise NotFound("no such game")


def view_for(
    conn: psycopg.Connection,
    game: str,
    player: str,
    *,
    country: str | None,
    version_id: int,
    known: bool = False,
) -> PlayerView:
    """A player's own view of a personal version. The player is seen first (its token's
    country kept), so rules on first_seen and country hold for it from its first view.

    ``known``: this process saw the player's profile row already (CatalogCache.seen). The
    store never deletes one, so without a country to keep there is nothing to write, and the
    view is one statement. Otherwise it is two, each in a transaction of its own: the seen row
    committed before the view reads it (both are idempotent, so a rerun is safe)."""
    if country is not None or not known:
        record_seen(conn, game, player, country)
    return personal_view(conn, game, player, version_id)


def catalog_view(live: Any, *, locale: str | None, view: PlayerView) -> tuple[bytes, str]:
    """The body and ETag of a reader's view of the live catalog. The shared view of each locale
    is rendered once per version and kept with it, and so is each personal view (its ETag
    adds a digest of the view): players of the same segments get the same prices and the same
    hidden items, so a handful of views serve them all, and a request only looks its view up."""
    if locale is None and not view:
        return live.body, live.etag
    key = (locale or "", tuple(sorted(view.prices.items())), tuple(sorted(view.hidden)))
    kept: tuple[bytes, str] | None = live.views.get(key)
    if kept is not None:
        return kept
    rendered = live.by_locale.get(locale or "")
    if rendered is None:
        served = localized_content(live.served, locale)
        rendered = (served, _dumps(served))
        live.by_locale[locale or ""] = rendered
    etag = live.etag + (f"-{locale}" if locale else "")
    if not view:
        found = (rendered[1], etag)
    else:
        found = (_dumps(apply_view(rendered[0], view)), f"{etag}-p{view_tag(view)}")
    if len(live.views) >= VIEWS_PER_VERSION:
        live.views.clear()  # a bound on memory, not a policy: the views in use come back
    live.views[key] = found
    return found


# Distinct personal views kept rendered per live version (each a whole catalog body).
VIEWS_PER_VERSION = 256


def _dumps(content: Mapping[str, Any]) -> bytes:
    return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()


def preview_view(
    conn: psycopg.Connection, game: str, player: str, *, actor: str
) -> tuple[dict[str, Any], PlayerView]:
    """What ``player`` would see of the draft if it were published now: the draft (checked as
    a publish checks it) and the player's own view, from the same SQL as the live view. The
    draft is published inside a transaction that is always rolled back, so nothing stays (no
    version, no notification); the player's row is not made either."""
    from . import catalog  # publishing imports this module: imported when first needed

    with conn.transaction(force_rollback=True):
        catalog.publish(conn, game, actor=actor, notes="preview", stock_buckets=1)
        row = conn.execute("SELECT live_version_id, draft FROM games WHERE id = %s", (game,))
        found = row.fetchone()
        assert found is not None
        return found[1], personal_view(conn, game, player, found[0])
