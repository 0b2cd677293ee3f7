"""The demo game: a catalog with every kind of item, and a funded demo player."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from .auth import mint_token
from .config import Config
from .errors import NotFound
from .store import catalog, games, players
from .store.idempotency import IdempotencyKey, operation_fingerprint

DEMO_GAME = "demo"
DEMO_PLAYER = "player-1"
DEMO_SERVICE = "demo-backend"
DEMO_STUDIO = "demo-studio"
STARTING_FUNDS = (("COINS", 1000), ("GEMS", 10), ("USD", 10_000))
# The demo game's App Store bundle id: its products' App Store ids start with it.
DEMO_BUNDLE_ID = "com.shopkeep.starskipper"


def weekend_of(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The weekend ``now`` is in, or the next one: Saturday 00:00 to Monday 00:00 UTC."""
    midnight = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    saturday = midnight + dt.timedelta(days=(5 - midnight.weekday()) % 7)
    if midnight.weekday() == 6:  # Sunday: the weekend that began yesterday
        saturday = midnight - dt.timedelta(days=1)
    return saturday, saturday + dt.timedelta(days=2)


def demo_catalog(now: dt.datetime | None = None, *, offers: bool = True) -> dict[str, Any]:
    """A dozen items covering every kind; the limited drops' windows are set from ``now``.
    With ``offers``: a starter price for new players and a bundle only they see, a weekend
    sale, the Brazilian text of a few items and a promo code (personalized offers,
    docs/api.md)."""
    now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)

    def at(delta: dt.timedelta) -> str:
        return (now + delta).isoformat().replace("+00:00", "Z")

    def item(
        sku: str, name: str, kind: str, prices: dict[str, int], **extra: Any
    ) -> dict[str, Any]:
        return {
            "sku": sku,
            "name": name,
            "kind": kind,
            "prices": [{"currency": c, "amount": a} for c, a in prices.items()],
            **extra,
        }

    content: dict[str, Any] = {
        "currencies": [
            {"code": "COINS", "name": "Coins", "scale": 0, "max_balance": 1_000_000},
            {"code": "GEMS", "name": "Gems", "scale": 0, "max_balance": 100_000},
            {"code": "USD", "name": "US dollar", "scale": 4, "max_balance": None},
        ],
        "items": [
            item(
                "potion",
                "Health potion",
                "consumable",
                {"COINS": 50},
                description="Restores a life in play.",
                tags=["consumable"],
            ),
            item(
                "shield",
                "Shield potion",
                "consumable",
                {"COINS": 120, "GEMS": 2},
                description="Ten seconds of invulnerability.",
                tags=["consumable"],
            ),
            item("sword", "Sword", "durable", {"COINS": 300}, tags=["weapon"]),
            item(
                "ship_gold",
                "Golden ship",
                "durable",
                {"COINS": 500, "GEMS": 5},
                description="A ship skin.",
                tags=["skin"],
                metadata={"color": "#f5c542"},
            ),
            item(
                "trail_rainbow",
                "Rainbow trail",
                "durable",
                {"COINS": 400},
                tags=["trail"],
                metadata={"colors": ["#ff5555", "#ffd255", "#55ff88", "#55aaff"]},
            ),
            item(
                "magnet",
                "Coin magnet",
                "durable",
                {"COINS": 250},
                description="Pulls nearby coins.",
                tags=["upgrade"],
            ),
            item("extra_life", "Extra life", "consumable", {"GEMS": 2}, per_player_limit=5),
            item(
                "starter_pack",
                "Starter pack",
                "bundle",
                {"GEMS": 5},
                per_player_limit=1,
                contents=[
                    {"sku": "potion", "quantity": 3},
                    {"sku": "shield", "quantity": 1},
                    {"currency": "COINS", "amount": 200},
                ],
                tags=["bundle", "offer"],
            ),
            item(
                "gem_pouch",
                "Pouch of gems",
                "bundle",
                {"COINS": 1000},
                contents=[{"currency": "GEMS", "amount": 10}],
                tags=["bundle"],
            ),
            item(
                "dragon_egg",
                "Dragon egg",
                "durable",
                {"COINS": 800},
                stock=100,
                per_player_limit=1,
                available_from=at(dt.timedelta(0)),
                available_until=at(dt.timedelta(days=1)),
                description="Limited drop: 100 eggs, one per player.",
                tags=["limited"],
            ),
            item(
                "phoenix_feather",
                "Phoenix feather",
                "consumable",
                {"GEMS": 3},
                stock=50,
                per_player_limit=2,
                available_from=at(dt.timedelta(minutes=2)),
                available_until=at(dt.timedelta(hours=1, minutes=2)),
                description="Limited drop opening two minutes after the store starts.",
                tags=["limited"],
            ),
            item(
                "tip",
                "Tip the developers",
                "consumable",
                {"USD": 150},
                description="A micro-priced tip: $0.0150.",
                tags=["tip"],
            ),
        ],
        # Real money in: what the sample game's TEST store sells (docs/stores.md).
        "products": [
            {
                "id": "usd_5",
                "store_ids": {"app_store": f"{DEMO_BUNDLE_ID}.usd5"},
                "grants": {"currencies": [{"currency": "USD", "amount": 50_000}]},
            },
            {
                "id": "coins_500",
                "store_ids": {"app_store": f"{DEMO_BUNDLE_ID}.coins500"},
                "grants": {"currencies": [{"currency": "COINS", "amount": 500}]},
            },
        ],
    }
    if not offers:
        return content
    saturday, monday = weekend_of(now)
    localized = {
        "potion": {"name": "Poção de vida", "description": "Restaura uma vida no jogo."},
        "shield": {"name": "Poção de escudo", "description": "Dez segundos de invencibilidade."},
        "starter_pack": {"name": "Pacote inicial"},
    }
    for entry in content["items"]:
        if entry["sku"] in localized:
            entry["localized"] = {"pt-BR": localized[entry["sku"]]}
    content["segments"] = [
        {"id": "new_players", "rule": "first_seen within 7d"},
        {"id": "lapsed", "rule": "last_purchase older_than 30d"},
    ]
    # A bundle only new players see (and can buy): gone from a player's catalog after its
    # first week.
    content["items"].append(
        item(
            "welcome_chest",
            "Welcome chest",
            "bundle",
            {"COINS": 100},
            per_player_limit=1,
            contents=[{"sku": "potion", "quantity": 2}, {"currency": "GEMS", "amount": 3}],
            description="For your first week only.",
            tags=["bundle", "offer"],
            segment="new_players",
        )
    )
    content["offers"] = [
        {
            "id": "starter",
            "segment": "new_players",
            "sku": "starter_pack",
            "price": {"currency": "GEMS", "amount": 2},
            "per_player_limit": 1,
        },
        *(
            {
                "id": f"weekend-{sku}",
                "sku": sku,
                "discount_percent": 25,
                "starts_at": at(saturday - now),
                "ends_at": at(monday - now),
            }
            for sku in ("ship_gold", "trail_rainbow")
        ),
        {
            "id": "comeback",
            "segment": "lapsed",
            "sku": "gem_pouch",
            "discount_percent": 30,
        },
    ]
    content["promo_codes"] = [
        {
            "code": "WELCOME",
            "grant": [{"currency": "COINS", "amount": 100}],
            "budget": 10_000,
        }
    ]
    return content


def seed_demo(conn: psycopg.Connection, config: Config, *, now: dt.datetime | None = None) -> bool:
    """Creates the demo game, publishes its catalog (drop windows from ``now``) and funds the
    demo player, once; True when it did (a restart finds the demo already there and changes
    nothing: `keep_drops_live` is what keeps its drops current)."""
    games.create_game(conn, DEMO_GAME, name="Shopkeep demo")
    if catalog.live_version(conn, DEMO_GAME) is not None:
        return False
    _signing_key(conn, config)  # the demo's tokens are signed with it
    with conn.transaction():
        # Through the draft, as a studio would: the draft then matches what is live.
        catalog.put_draft(conn, DEMO_GAME, demo_catalog(now), if_match="*")
        catalog.publish(
            conn,
            DEMO_GAME,
            actor=DEMO_STUDIO,
            notes="demo catalog",
            stock_buckets=config.stock_buckets,
        )
    reason = "demo starting funds"
    for currency, amount in STARTING_FUNDS:
        key = IdempotencyKey(
            value=f"demo-starting-funds-{DEMO_PLAYER}-{currency}",
            fingerprint=operation_fingerprint(
                "grant", player=DEMO_PLAYER, currency=currency, amount=amount, reason=reason
            ),
            request_id="demo-seed",
            ttl_seconds=config.idempotency_ttl,
            wait_ms=config.idempotency_wait_ms,
        )
        players.grant(
            conn,
            DEMO_GAME,
            DEMO_PLAYER,
            actor=DEMO_SERVICE,
            currency=currency,
            amount=amount,
            reason=reason,
            key=key,
        )
    return True


# A drop that is on sale must stay on sale at least this long after a start, or it is moved.
MIN_TIME_ON_SALE = dt.timedelta(hours=1)


def keep_drops_live(
    conn: psycopg.Connection, config: Config, *, now: dt.datetime | None = None
) -> int | None:
    """Keeps the demo's limited drops as `demo_catalog` lays them out from ``now``: one on sale
    (for at least MIN_TIME_ON_SALE more) and one opening soon. When the live catalog no longer
    does (a store kept for days), publishes a new version with only those windows moved
    forward; everything else, edits a studio made included, stays, and stock is live state
    that a publish never resets. Returns the new version, or None when nothing had to move,
    so starting twice in a row publishes at most once."""
    now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    fresh = {
        item["sku"]: (
            dt.datetime.fromisoformat(item["available_from"]),
            dt.datetime.fromisoformat(item["available_until"]),
        )
        for item in demo_catalog(now)["items"]
        if item.get("available_from") is not None
    }
    # The weekend sale moves on to the next weekend once it is over, as the drops do.
    fresh_sales = {
        offer["id"]: offer
        for offer in demo_catalog(now)["offers"]
        if offer["id"].startswith("weekend-")
    }
    with conn.transaction():
        # One start at a time decides: a second one waits here, then finds the drops current.
        conn.execute("SELECT 1 FROM games WHERE id = %s FOR UPDATE", (DEMO_GAME,))
        live = catalog.live_version(conn, DEMO_GAME)
        if live is None:  # no demo seeded: nothing to keep current
            return None
        version = catalog.get_version(conn, DEMO_GAME, live[1])
        # The risk policy goes along: moving the drops must not drop the game's limits.
        content = catalog.content_of(version)
        drops = [item for item in content["items"] if item["sku"] in fresh]
        over = {
            offer["id"]
            for offer in content.get("offers", [])
            if offer["id"] in fresh_sales
            and offer.get("ends_at") is not None
            and dt.datetime.fromisoformat(offer["ends_at"]) <= now
        }
        if not over and all(_still_current(item, fresh[item["sku"]], now) for item in drops):
            return None
        moved = {
            **content,
            "offers": [
                {**offer, **{k: fresh_sales[offer["id"]][k] for k in ("starts_at", "ends_at")}}
                if offer["id"] in over
                else offer
                for offer in content.get("offers", [])
            ],
            "items": [
                {
                    **item,
                    "available_from": _text(fresh[item["sku"]][0]),
                    "available_until": _text(fresh[item["sku"]][1]),
                }
                if item["sku"] in fresh
                else item
                for item in content["items"]
            ],
        }
        draft, etag = catalog.get_draft(conn, DEMO_GAME)
        if draft == content:  # nobody is editing the draft: it follows, as for the first seed
            catalog.put_draft(conn, DEMO_GAME, moved, if_match=etag)
        published = catalog.publish(
            conn,
            DEMO_GAME,
            actor=DEMO_STUDIO,
            notes="demo: limited drops moved forward",
            stock_buckets=config.stock_buckets,
            content=moved,
        )
    return int(published["version"])


def _still_current(
    item: dict[str, Any], fresh: tuple[dt.datetime, dt.datetime], now: dt.datetime
) -> bool:
    """Whether a live drop is in the state its fresh layout gives it: on sale, or opening
    later."""
    opens, closes = _instant(item["available_from"]), _instant(item["available_until"])
    if fresh[0] > now:  # the drop opening soon
        return opens is not None and opens > now
    return (
        opens is not None
        and opens <= now
        and closes is not None
        and closes - now >= MIN_TIME_ON_SALE
    )


def _instant(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value)


def _text(value: dt.datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _signing_key(conn: psycopg.Connection, config: Config) -> games.GameKey:
    try:
        return games.signing_key(conn, DEMO_GAME)
    except NotFound:
        return games.add_key(conn, DEMO_GAME, issuer=config.token_issuer)


def demo_tokens(
    conn: psycopg.Connection, config: Config, *, ttl: int = 7 * 24 * 3600
) -> dict[str, str]:
    """Fresh tokens for the demo's player, service and studio accounts."""
    key = _signing_key(conn, config)
    return {
        "player": mint_token(key, role="player", subject=DEMO_PLAYER, ttl=ttl),
        "service": mint_token(key, role="service", subject=DEMO_SERVICE, ttl=ttl),
        "studio": mint_token(key, role="studio", subject=DEMO_STUDIO, ttl=ttl),
    }
