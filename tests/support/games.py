"""Games to test against: the configuration tests run with, a game with a signing key and a
published catalog, and small catalogs built from a few items."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

import psycopg

from shopkeep_server.auth import mint_token
from shopkeep_server.config import Config
from shopkeep_server.demo import demo_catalog
from shopkeep_server.store import catalog, games
from shopkeep_server.store.games import GameKey

from . import pgbouncer


def make_config(url: str | None = None, **changes: Any) -> Config:
    """The configuration tests run with: no rate limit unless a test asks for one (and, through
    PgBouncer, the settings of a store behind it: support/pgbouncer.py)."""
    pooled = Config.from_env(pgbouncer.POOLED_ENV) if pgbouncer.enabled() else Config()
    return pooled.replace(database_url=url, rate_limit=None, key_cache_seconds=0).replace(**changes)


@dataclasses.dataclass
class Game:
    """A game with a signing key and a published catalog."""

    id: str
    key: GameKey

    def token(self, role: str, sub: str, *, ttl: int = 3600) -> str:
        return mint_token(self.key, role=role, subject=sub, ttl=ttl)

    def headers(self, role: str = "player", sub: str = "p1", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, sub)}", **extra}


def make_game(
    conn: psycopg.Connection, catalog_content: dict[str, Any] | None = None, *, game_id: str = ""
) -> Game:
    """A new game on ``conn`` with ``catalog_content`` (default: the demo catalog) published."""
    game_id = game_id or f"g{uuid.uuid4().hex[:12]}"
    games.create_game(conn, game_id)
    key = games.add_key(conn, game_id, issuer="shopkeep")
    content = catalog_content if catalog_content is not None else _demo_catalog()
    with conn.transaction():
        catalog.put_draft(conn, game_id, content, if_match="*")
        catalog.publish(conn, game_id, actor="fixture", stock_buckets=4)
    return Game(game_id, key)


def _demo_catalog() -> dict[str, Any]:
    # A minute in the past: a test transaction's now() is its start, which may be before the
    # second this is called in, and the dragon egg's window must be open for it.
    # List prices only: tests of the money path price against the list; the demo's offers
    # (issue 15) are tested on their own (tests/server/test_offers.py, test_demo.py).
    return demo_catalog(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1), offers=False)


def coins_item(sku: str, price: int, **fields: Any) -> dict[str, Any]:
    """A consumable priced in COINS, with any field overridden."""
    return {
        "sku": sku,
        "name": sku.capitalize(),
        "kind": "consumable",
        "prices": [{"currency": "COINS", "amount": price}],
        **fields,
    }


def coins_catalog(*items: dict[str, Any]) -> dict[str, Any]:
    """A catalog with the one currency COINS (scale 0) and these items."""
    return {"currencies": [{"code": "COINS", "name": "Coins", "scale": 0}], "items": list(items)}
