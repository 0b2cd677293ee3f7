"""The demo stays a demo: whenever it starts, a limited drop is on sale and one opens soon.

Each test seeds the demo game inside the rolled-back test transaction; the clock is the
transaction's own `now()`, so the store's window checks and the test agree to the second.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg

from shopkeep_server.demo import (
    DEMO_GAME,
    DEMO_PLAYER,
    MIN_TIME_ON_SALE,
    demo_tokens,
    keep_drops_live,
    seed_demo,
    weekend_of,
)
from shopkeep_server.store import catalog, rules
from support import make_config

DROPS = ("dragon_egg", "phoenix_feather")


def transaction_now(conn: psycopg.Connection) -> dt.datetime:
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row[0].astimezone(dt.UTC).replace(microsecond=0)


def live(conn: psycopg.Connection) -> dict[str, Any]:
    found = catalog.live_version(conn, DEMO_GAME)
    assert found is not None
    return catalog.get_version(conn, DEMO_GAME, found[1])


def window(content: dict[str, Any], sku: str) -> tuple[str, str]:
    item = next(i for i in content["items"] if i["sku"] == sku)
    return item["available_from"], item["available_until"]


def without_windows(content: dict[str, Any]) -> dict[str, Any]:
    return {
        "currencies": content["currencies"],
        "products": content["products"],
        "items": [
            {k: v for k, v in item.items() if k not in ("available_from", "available_until")}
            for item in content["items"]
        ],
    }


def ts(value: dt.datetime) -> str:
    formatted = rules.format_timestamp(value)
    assert formatted is not None
    return formatted


def buy(client, conn: psycopg.Connection, sku: str) -> Any:  # type: ignore[no-untyped-def]
    token = demo_tokens(conn, make_config())["player"]
    return client.post(
        "/v1/purchases",
        json={"sku": sku},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"{uuid.uuid4()}"},
    )


def test_a_demo_kept_for_a_week_gets_its_drops_moved_forward(client, conn) -> None:  # type: ignore[no-untyped-def]
    config = make_config()
    now = transaction_now(conn)
    week_ago = now - dt.timedelta(days=8)
    assert seed_demo(conn, config, now=week_ago)
    old = live(conn)
    assert old["version"] == 1
    assert window(old, "dragon_egg") == (ts(week_ago), ts(week_ago + dt.timedelta(days=1)))
    assert buy(client, conn, "dragon_egg").get_json()["error"]["code"] == "item_unavailable"
    # Stock is live state: a restock since the seed must survive the new version.
    assert catalog.restock(conn, DEMO_GAME, "dragon_egg", add=5, actor="ops") == {
        "sku": "dragon_egg",
        "remaining": 105,
    }

    assert keep_drops_live(conn, config, now=now) == 2
    moved = live(conn)
    assert moved["version"] == 2 and moved["published_by"] == "demo-studio"
    assert moved["notes"] == "demo: limited drops moved forward"
    assert window(moved, "dragon_egg") == (ts(now), ts(now + dt.timedelta(days=1)))
    assert window(moved, "phoenix_feather") == (
        ts(now + dt.timedelta(minutes=2)),
        ts(now + dt.timedelta(hours=1, minutes=2)),
    )
    assert without_windows(moved) == without_windows(old)  # nothing else changed
    # Nobody was editing the draft, so it follows the live catalog.
    draft, etag = catalog.get_draft(conn, DEMO_GAME)
    parts = ("currencies", "items", "products", "segments", "offers", "promo_codes", "risk")
    assert draft == {part: moved[part] for part in parts}
    # The weekend sale of the seed is over: it moved on to the weekend now is in, or the next.
    saturday, monday = weekend_of(now)
    sales = [o for o in moved["offers"] if o["id"].startswith("weekend-")]
    assert [(o["starts_at"], o["ends_at"]) for o in sales] == [(ts(saturday), ts(monday))] * 2
    assert [o for o in moved["offers"] if o not in sales] == [
        o for o in old["offers"] if not o["id"].startswith("weekend-")
    ]
    assert etag == '"draft-3"'

    bought = buy(client, conn, "dragon_egg")
    assert bought.status_code == 201, bought.get_json()
    assert catalog.stock(conn, DEMO_GAME, ["dragon_egg"]) == [
        {"sku": "dragon_egg", "remaining": 104}
    ]
    assert buy(client, conn, "phoenix_feather").get_json()["error"]["code"] == "item_unavailable"

    # Starting again within the minute: the drops are current, nothing is published.
    assert keep_drops_live(conn, config, now=now + dt.timedelta(seconds=59)) is None
    assert live(conn)["version"] == 2


def test_starting_twice_publishes_at_most_once(conn) -> None:  # type: ignore[no-untyped-def]
    config = make_config()
    now = transaction_now(conn)
    assert seed_demo(conn, config, now=now)
    assert not seed_demo(conn, config, now=now)
    assert keep_drops_live(conn, config, now=now) is None
    assert keep_drops_live(conn, config, now=now + dt.timedelta(minutes=1)) is None
    assert live(conn)["version"] == 1
    # Once the drop that was opening soon has opened, a start lays out a new one...
    later = now + dt.timedelta(minutes=3)
    assert keep_drops_live(conn, config, now=later) == 2
    assert keep_drops_live(conn, config, now=later) is None
    assert [v["version"] for v in catalog.list_versions(conn, DEMO_GAME)] == [2, 1]


def test_a_drop_closing_within_the_hour_is_moved(conn) -> None:  # type: ignore[no-untyped-def]
    config = make_config()
    now = transaction_now(conn)
    assert seed_demo(conn, config, now=now)
    # The feather's drop put far off, so only the egg's time left decides.
    draft, etag = catalog.get_draft(conn, DEMO_GAME)
    feather = next(i for i in draft["items"] if i["sku"] == "phoenix_feather")
    feather["available_from"] = ts(now + dt.timedelta(days=10))
    feather["available_until"] = ts(now + dt.timedelta(days=11))
    catalog.put_draft(conn, DEMO_GAME, draft, if_match=etag)
    with conn.transaction():
        catalog.publish(conn, DEMO_GAME, actor="alice", stock_buckets=config.stock_buckets)
    egg_closes = now + dt.timedelta(days=1)
    assert keep_drops_live(conn, config, now=egg_closes - MIN_TIME_ON_SALE) is None
    later = egg_closes - MIN_TIME_ON_SALE + dt.timedelta(seconds=1)
    assert keep_drops_live(conn, config, now=later) == 3
    assert window(live(conn), "dragon_egg") == (ts(later), ts(later + dt.timedelta(days=1)))


def test_a_studio_edit_stays_and_an_unpublished_draft_is_left_alone(conn) -> None:  # type: ignore[no-untyped-def]
    config = make_config()
    now = transaction_now(conn)
    assert seed_demo(conn, config, now=now - dt.timedelta(days=3))
    draft, etag = catalog.get_draft(conn, DEMO_GAME)
    potion = next(i for i in draft["items"] if i["sku"] == "potion")
    potion["prices"] = [{"currency": "COINS", "amount": 45}]
    catalog.put_draft(conn, DEMO_GAME, draft, if_match=etag)
    with conn.transaction():
        catalog.publish(conn, DEMO_GAME, actor="alice", stock_buckets=config.stock_buckets)
    # An edit in progress, not published: a start must neither publish nor overwrite it.
    pending, pending_etag = catalog.get_draft(conn, DEMO_GAME)
    pending["items"][0]["name"] = "Work in progress"
    pending, pending_etag = catalog.put_draft(conn, DEMO_GAME, pending, if_match=pending_etag)

    assert keep_drops_live(conn, config, now=now) == 3
    moved = live(conn)
    assert next(i for i in moved["items"] if i["sku"] == "potion")["prices"] == [
        {"currency": "COINS", "amount": 45}
    ]
    assert moved["items"][0]["name"] == "Health potion"
    assert window(moved, "dragon_egg") == (ts(now), ts(now + dt.timedelta(days=1)))
    assert catalog.get_draft(conn, DEMO_GAME) == (pending, pending_etag)


def test_the_demo_player_is_seeded_once(conn) -> None:  # type: ignore[no-untyped-def]
    config = make_config()
    assert seed_demo(conn, config, now=transaction_now(conn) - dt.timedelta(days=30))
    keep_drops_live(conn, config)
    row = conn.execute(
        "SELECT count(*) FROM ledger_entries WHERE game_id = %s AND player_id = %s",
        (DEMO_GAME, DEMO_PLAYER),
    ).fetchone()
    assert row == (3,)  # the starting funds, once per currency; moving drops grants nothing


def test_the_demo_ships_a_starter_offer_and_a_weekend_sale(client, conn) -> None:  # type: ignore[no-untyped-def]
    config = make_config()
    now = transaction_now(conn)
    assert seed_demo(conn, config, now=now)
    token = {"Authorization": f"Bearer {demo_tokens(conn, config)['player']}"}
    view = client.get("/v1/catalog", headers=token).get_json()
    starter = next(i for i in view["items"] if i["sku"] == "starter_pack")
    # The demo player is new: the starter pack at 2 gems instead of 5, once.
    assert starter["prices"] == [{"currency": "GEMS", "amount": 5}]
    assert starter["price_for_you"] == [{"currency": "GEMS", "amount": 2, "offer_id": "starter"}]
    # ... and a bundle only new players see: gone from its catalog after its first week.
    chest = next(i for i in view["items"] if i["sku"] == "welcome_chest")
    assert (chest["segment"], chest["prices"]) == (
        "new_players",
        [{"currency": "COINS", "amount": 100}],
    )
    conn.execute(
        "UPDATE player_profiles SET first_seen = first_seen - interval '8 days'"
        " WHERE game_id = %s AND player_id = %s",
        (DEMO_GAME, DEMO_PLAYER),
    )
    later = client.get("/v1/catalog", headers=token).get_json()
    assert "welcome_chest" not in [i["sku"] for i in later["items"]]
    assert len(later["items"]) == len(view["items"]) - 1
    ship = next(i for i in view["items"] if i["sku"] == "ship_gold")
    on_sale = weekend_of(now)[0] <= now
    assert [p["offer_id"] for p in ship["price_for_you"]] == (
        ["weekend-ship_gold"] * 2 if on_sale else [None, None]
    )
    # What the sale does on its weekend (sk_offer_price, at the Saturday it starts).
    saturday = weekend_of(now)[0]
    row = conn.execute(
        "SELECT amount, offer_id FROM sk_offer_price(%s, %s,"
        " (SELECT live_version_id FROM games WHERE id = %s), 'ship_gold', 'COINS', 500, %s, NULL)",
        (DEMO_GAME, DEMO_PLAYER, DEMO_GAME, saturday),
    ).fetchone()
    assert row == (375, "weekend-ship_gold")
    brazilian = client.get("/v1/catalog", headers={**token, "Accept-Language": "pt-BR"})
    potion = next(i for i in brazilian.get_json()["items"] if i["sku"] == "potion")
    assert potion["name"] == "Poção de vida"
