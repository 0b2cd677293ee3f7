"""Events: one per effect, written by the effect's own transaction, with the API's shapes and
the ledger rows it wrote; a feed that never loses or repeats one, in per-player order."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg

from shopkeep_server.store import events
from support import (
    Game,
    coins_catalog,
    coins_item,
    grant,
    make_game,
    new_key,
    post,
)
from support.events import event_mismatches, read_feed, stored_events

SERVER = Path(__file__).resolve().parents[2] / "server" / "shopkeep_server"


def _types(found: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in found]


def _ledger(client: Any, game: Game, player: str, reference: str) -> list[dict[str, Any]]:
    """The player's ledger entries of one operation, oldest first, as GET .../ledger shows
    them."""
    response = client.get(
        f"/v1/players/{player}/ledger?limit=200", headers=game.headers("service", "backend")
    )
    assert response.status_code == 200
    entries = [e for e in response.get_json()["entries"] if e["reference"] == reference]
    return sorted(entries, key=lambda e: e["id"])


def _item_ledger(conn: psycopg.Connection, game: Game, reference: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, sku, delta, quantity_after, kind FROM item_ledger"
        " WHERE game_id = %s AND reference = %s ORDER BY id",
        (game.id, reference),
    ).fetchall()
    return [
        {"id": i, "sku": s, "delta": d, "quantity_after": q, "kind": k, "reference": reference}
        for i, s, d, q, k in rows
    ]


def _without_time(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "created_at"} for e in entries]


# ---------------------------------------------------------------------------------------------
# One event per effect, with the API's shapes
# ---------------------------------------------------------------------------------------------


def test_a_game_starts_with_its_first_publish(client, game: Game) -> None:
    found = read_feed(client, game)
    assert _types(found) == ["catalog.published"]
    assert found[0]["id"] == 1
    assert found[0]["player_id"] is None
    assert found[0]["data"]["version"] == 1
    assert found[0]["data"]["published_by"] == "fixture"


def test_a_purchase_writes_one_event_with_the_purchase_and_its_ledger(
    client, conn, game: Game
) -> None:
    grant(client, game, "p1", "COINS", 500)
    bought = post(client, "/v1/purchases", {"sku": "potion", "quantity": 2}, game)
    assert bought.status_code == 201
    purchase = bought.get_json()["purchase"]

    found = read_feed(client, game)
    assert _types(found) == ["catalog.published", "grant.created", "purchase.completed"]
    assert [e["id"] for e in found] == [1, 2, 3]
    event = found[-1]
    assert event["player_id"] == "p1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", event["created_at"])
    assert set(event["data"]) == {"purchase", "ledger", "item_ledger"}
    assert event["data"]["purchase"] == purchase
    reference = f"purchase:{purchase['id']}"
    assert event["data"]["ledger"] == _ledger(client, game, "p1", reference)
    assert [(e["currency"], e["delta"], e["balance_after"]) for e in event["data"]["ledger"]] == [
        ("COINS", -100, 400)
    ]
    assert _without_time(event["data"]["item_ledger"]) == _item_ledger(conn, game, reference)
    assert [(e["sku"], e["delta"], e["quantity_after"]) for e in event["data"]["item_ledger"]] == [
        ("potion", 2, 2)
    ]
    assert event_mismatches(conn, game.id) == []


def test_a_bundle_purchase_carries_every_row_it_wrote(client, conn, game: Game) -> None:
    grant(client, game, "p1", "GEMS", 5)
    bought = post(client, "/v1/purchases", {"sku": "starter_pack"}, game)
    assert bought.status_code == 201
    event = read_feed(client, game, type="purchase.completed")[0]
    assert event["data"]["purchase"] == bought.get_json()["purchase"]
    assert [(e["currency"], e["delta"], e["balance_after"]) for e in event["data"]["ledger"]] == [
        ("GEMS", -5, 0),
        ("COINS", 200, 200),
    ]
    assert sorted(
        (e["sku"], e["delta"], e["quantity_after"]) for e in event["data"]["item_ledger"]
    ) == [("potion", 3, 3), ("shield", 1, 1)]
    assert event_mismatches(conn, game.id) == []


def test_a_free_purchase_has_no_ledger_row_and_its_item_row(client, conn) -> None:
    game = make_game(conn, coins_catalog(coins_item("gift", 0)))
    assert post(client, "/v1/purchases", {"sku": "gift"}, game).status_code == 201
    event = read_feed(client, game, type="purchase.completed")[0]
    assert event["data"]["ledger"] == []
    assert [e["sku"] for e in event["data"]["item_ledger"]] == ["gift"]
    assert event_mismatches(conn, game.id) == []


def test_a_grant_writes_grant_created_with_the_grant_as_answered(client, conn, game: Game) -> None:
    answered = post(
        client,
        "/v1/players/p7/grants",
        {"sku": "starter_pack", "quantity": 1, "reason": "welcome"},
        game,
        role="service",
        sub="backend",
    )
    assert answered.status_code == 201
    event = read_feed(client, game)[-1]
    assert event["type"] == "grant.created"
    assert event["player_id"] == "p7"
    assert event["data"]["grant"] == answered.get_json()["grant"]
    reference = f"grant:{answered.get_json()['grant']['id']}"
    assert event["data"]["ledger"] == _ledger(client, game, "p7", reference)
    assert [e["currency"] for e in event["data"]["ledger"]] == ["COINS"]
    assert _without_time(event["data"]["item_ledger"]) == _item_ledger(conn, game, reference)
    assert event_mismatches(conn, game.id) == []


def test_a_refund_writes_purchase_refunded(client, conn, game: Game) -> None:
    grant(client, game, "p1", "COINS", 300)
    purchase = post(client, "/v1/purchases", {"sku": "sword"}, game).get_json()["purchase"]
    refunded = post(
        client,
        f"/v1/purchases/{purchase['id']}/refund",
        {"reason": "asked"},
        game,
        role="service",
        sub="backend",
    )
    assert refunded.status_code == 200
    event = read_feed(client, game)[-1]
    assert event["type"] == "purchase.refunded"
    assert event["player_id"] == "p1"
    assert event["data"]["purchase"] == refunded.get_json()["purchase"]
    assert event["data"]["purchase"]["status"] == "refunded"
    reference = f"refund:{purchase['id']}"
    assert [(e["delta"], e["balance_after"]) for e in event["data"]["ledger"]] == [(300, 300)]
    assert event["data"]["ledger"] == _ledger(client, game, "p1", reference)
    assert [(e["sku"], e["delta"]) for e in event["data"]["item_ledger"]] == [("sword", -1)]
    # Refunding again answers the purchase unchanged and writes nothing.
    again = post(
        client,
        f"/v1/purchases/{purchase['id']}/refund",
        {"reason": "asked"},
        game,
        role="service",
        sub="backend",
    )
    assert again.status_code == 200
    assert _types(read_feed(client, game)).count("purchase.refunded") == 1
    assert event_mismatches(conn, game.id) == []


def test_consuming_writes_item_consumed(client, conn, game: Game) -> None:
    grant(client, game, "p1", "COINS", 150)
    post(client, "/v1/purchases", {"sku": "potion", "quantity": 3}, game)
    consumed = post(client, "/v1/inventory/potion/consume", {"quantity": 2}, game)
    assert consumed.status_code == 200
    event = read_feed(client, game)[-1]
    assert event["type"] == "item.consumed"
    assert event["player_id"] == "p1"
    assert {k: event["data"][k] for k in ("sku", "quantity")} == consumed.get_json()
    assert event["data"]["ledger"] == []
    assert [
        (e["sku"], e["delta"], e["quantity_after"], e["kind"]) for e in event["data"]["item_ledger"]
    ] == [("potion", -2, 1, "consume")]
    assert event_mismatches(conn, game.id) == []


def test_restock_publish_and_rollback_write_their_events(client, game: Game) -> None:
    studio = {"role": "studio", "sub": "designer"}
    restocked = post(client, "/v1/admin/stock/dragon_egg", {"add": 5}, game, **studio)
    assert restocked.status_code == 200
    published = post(client, "/v1/admin/catalog/publish", {"notes": "two"}, game, **studio)
    assert published.status_code == 201
    rolled = post(client, "/v1/admin/catalog/rollback", {"version": 1}, game, **studio)
    assert rolled.status_code == 201

    found = read_feed(client, game)
    assert _types(found) == [
        "catalog.published",
        "stock.restocked",
        "catalog.published",
        "catalog.rolled_back",
    ]
    restock, publish, rollback = found[1:]
    assert restock["player_id"] is None
    assert restock["data"] == {**restocked.get_json(), "added": 5}
    assert restock["data"]["remaining"] == 105
    assert publish["data"] == published.get_json()
    assert publish["data"]["published_by"] == "designer"
    assert rollback["data"] == {**rolled.get_json(), "restored_version": 1}
    assert rollback["data"]["version"] == 3


def test_refusals_and_replays_write_no_event(client, conn, game: Game) -> None:
    grant(client, game, "p1", "COINS", 100)
    before = stored_events(conn, game.id)
    key = new_key()
    refusals = [
        post(client, "/v1/purchases", {"sku": "sword"}, game, key=key),  # 409, stored
        post(client, "/v1/purchases", {"sku": "sword"}, game, key=key),  # its replay
        post(client, "/v1/purchases", {"sku": "no_such_item"}, game),  # 404
        post(client, "/v1/purchases", {"sku": "potion", "currency": "GEMS"}, game),  # 422
        post(client, "/v1/inventory/potion/consume", {"quantity": 1}, game),  # 409 none owned
        post(client, "/v1/inventory/sword/consume", {"quantity": 1}, game),  # 422 durable
        post(
            client,
            "/v1/players/p1/grants",
            {"currency": "GEMS", "amount": 10**6, "reason": "too many"},
            game,
            role="service",
            sub="backend",
        ),  # 409 over the cap
        post(client, "/v1/admin/stock/potion", {"add": 1}, game, role="studio", sub="d"),  # 404
        post(client, "/v1/admin/catalog/rollback", {"version": 9}, game, role="studio", sub="d"),
    ]
    assert [r.status_code for r in refusals] == [409, 409, 404, 422, 409, 422, 409, 404, 404]
    assert refusals[1].headers["Idempotent-Replayed"] == "true"
    bought_key = new_key()
    assert post(client, "/v1/purchases", {"sku": "potion"}, game, key=bought_key).status_code == 201
    replay = post(client, "/v1/purchases", {"sku": "potion"}, game, key=bought_key)
    assert replay.headers["Idempotent-Replayed"] == "true"
    after = stored_events(conn, game.id)
    assert after[: len(before)] == before
    assert [e["type"] for e in after[len(before) :]] == ["purchase.completed"]
    assert event_mismatches(conn, game.id) == []


def test_the_feed_is_the_services_and_its_games_own(client, conn, game: Game) -> None:
    other = make_game(conn)
    grant(client, other, "p1", "COINS", 10)
    assert [e["type"] for e in read_feed(client, game)] == ["catalog.published"]
    for role in ("player", "studio"):
        answer = client.get("/v1/events", headers=game.headers(role, "p1"))
        assert answer.status_code == 403
        assert answer.get_json()["error"]["code"] == "forbidden"


# ---------------------------------------------------------------------------------------------
# The feed: pages, cursors, types
# ---------------------------------------------------------------------------------------------


def test_pages_from_every_cursor(client, conn, game: Game) -> None:
    for n in range(12):
        grant(client, game, f"p{n % 3}", "COINS", n + 1)
    everything = read_feed(client, game)
    assert [e["id"] for e in everything] == list(range(1, 14))
    for cursor in range(14):
        for limit in (1, 5, 13):
            seen = read_feed(client, game, after=str(cursor), limit=limit)
            assert seen == everything[cursor:], (cursor, limit)
    page = client.get("/v1/events?after=4&limit=3", headers=game.headers("service", "b")).get_json()
    assert [e["id"] for e in page["events"]] == [5, 6, 7]
    assert page["next_cursor"] == "7"
    # An empty page keeps its place; with no cursor, the oldest kept event comes first.
    end = client.get("/v1/events?after=13", headers=game.headers("service", "b")).get_json()
    assert end == {"events": [], "next_cursor": "13"}
    first = client.get("/v1/events?limit=1", headers=game.headers("service", "b")).get_json()
    assert [e["id"] for e in first["events"]] == [1]


def test_types_may_be_repeated_or_comma_separated(client, conn, game: Game) -> None:
    grant(client, game, "p1", "COINS", 500)
    post(client, "/v1/purchases", {"sku": "potion"}, game)
    post(client, "/v1/admin/stock/dragon_egg", {"add": 1}, game, role="studio", sub="d")
    want = ["grant.created", "stock.restocked"]
    repeated = read_feed(client, game, type=want)
    comma = read_feed(client, game, type=",".join(want))
    both = read_feed(client, game, type=["grant.created,stock.restocked", "grant.created"])
    assert _types(repeated) == want
    assert repeated == comma == both
    assert _types(read_feed(client, game, type="purchase.completed")) == ["purchase.completed"]


def test_the_feed_positions_what_is_committed_before_it_reads(client, conn, game: Game) -> None:
    grant(client, game, "p1", "COINS", 5)
    waiting = conn.execute(
        "SELECT count(*) FROM events WHERE game_id = %s AND id IS NULL", (game.id,)
    ).fetchone()
    assert waiting == (2,)  # the fixture's publish and the grant: nothing positioned yet
    assert [e["id"] for e in read_feed(client, game)] == [1, 2]
    assert conn.execute(
        "SELECT count(*) FROM events WHERE game_id = %s AND id IS NULL", (game.id,)
    ).fetchone() == (0,)


# ---------------------------------------------------------------------------------------------
# One home: the types
# ---------------------------------------------------------------------------------------------


def test_every_type_written_is_listed_and_every_listed_type_is_written() -> None:
    """The SQL names its types as literals (sk_emit_event and its callers), the catalog code as
    the argument of events.emit: together they are exactly EVENT_TYPES."""
    written: set[str] = set()
    for path in sorted((SERVER / "sql").glob("*.sql")):
        text = re.sub(r"--[^\n]*", "", path.read_text())
        written |= set(re.findall(r"'([a-z_]+\.[a-z_]+)'", text))
    for path in sorted((SERVER / "store").glob("*.py")):
        written |= set(
            re.findall(r'events\.emit\(\s*conn,\s*game,\s*"([a-z_.]+)"', path.read_text())
        )
    assert written == set(events.EVENT_TYPES)


def test_the_sdk_mirrors_the_types() -> None:
    from shopkeep.events import EVENT_TYPES

    assert EVENT_TYPES == events.EVENT_TYPES
