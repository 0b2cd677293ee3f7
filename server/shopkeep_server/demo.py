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


def demo_catalog(now: dt.datetime | None = None) -> dict[str, Any]:
    """A dozen items covering every kind; the limited drops' windows are set from ``now``."""
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

    return {
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
    }


def seed_demo(conn: psycopg.Connection, config: Config) -> bool:
    """Creates the demo game, publishes its catalog and funds the demo player, once; True when
    it did (a restart finds the demo already there and changes nothing)."""
    games.create_game(conn, DEMO_GAME, name="Shopkeep demo")
    if catalog.live_version(conn, DEMO_GAME) is not None:
        return False
    _signing_key(conn, config)  # the demo's tokens are signed with it
    with conn.transaction():
        # Through the draft, as a studio would: the draft then matches what is live.
        catalog.put_draft(conn, DEMO_GAME, demo_catalog(), if_match="*")
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
