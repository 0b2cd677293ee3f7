"""Events: one per effect, written by the effect's own transaction, with the API's shapes and
the ledger rows it wrote; a feed that never loses or repeats one, in per-player order."""

from __future__ import annotations

import concurrent.futures
import json
import random
import re
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg

from shopkeep_server import db
from shopkeep_server.metrics import Metrics
from shopkeep_server.sequencer import EventSequencer
from shopkeep_server.serving import Janitor
from shopkeep_server.store import events, players
from shopkeep_server.store.idempotency import IdempotencyKey, operation_fingerprint
from support import (
    Game,
    LiveServer,
    app_database_url,
    coins_catalog,
    coins_item,
    create_database,
    drop_database,
    grant,
    lock_held,
    make_config,
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


def test_a_drop_sold_through_holds_sells_out_with_its_last_sale(client, conn) -> None:
    """A hold sets units aside, it does not sell them: the item is sold out when the sale
    that took the last held (or free) unit commits, once; a released hold sells nothing."""
    game = make_game(
        conn, coins_catalog(coins_item("relic", 10, kind="durable", stock=3, per_player_limit=1))
    )
    for player in ("h1", "h2", "h3", "h4"):
        grant(client, game, player, "COINS", 10)

    def hold(player: str) -> str:
        answer = post(client, "/v1/holds", {"sku": "relic"}, game, sub=player)
        assert answer.status_code == 201, answer.get_json()
        return str(answer.get_json()["hold"]["id"])

    first, second, third = hold("h1"), hold("h2"), hold("h4")
    # Nothing is left in the buckets now, but every unit is only held.
    released = client.delete(f"/v1/holds/{third}", headers=game.headers("player", "h4"))
    assert released.status_code == 200
    assert post(client, "/v1/purchases", {"sku": "relic"}, game, sub="h3").status_code == 201
    assert "stock.sold_out" not in _types(read_feed(client, game))  # h1 and h2 still hold

    for player, held in (("h1", first), ("h2", second)):
        bought = post(client, "/v1/purchases", {"sku": "relic", "hold_id": held}, game, sub=player)
        assert bought.status_code == 201, bought.get_json()
    found = read_feed(client, game)
    assert _types(found)[-2:] == ["purchase.completed", "stock.sold_out"]
    assert _types(found).count("stock.sold_out") == 1
    assert found[-1]["player_id"] == "h2"
    assert found[-1]["data"] == {"sku": "relic", "remaining": 0}
    assert event_mismatches(conn, game.id) == []


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


def test_the_api_doc_describes_every_type() -> None:
    doc = (SERVER.parents[1] / "docs" / "api.md").read_text()
    section = doc[doc.index("## Events") : doc.index("## Ledger and audit")]
    assert re.findall(r"^\| `([a-z_.]+)` \|", section, flags=re.MULTILINE) == list(
        events.EVENT_TYPES
    )


def test_the_sdk_mirrors_the_types() -> None:
    from shopkeep.events import EVENT_TYPES

    assert EVENT_TYPES == events.EVENT_TYPES


# ---------------------------------------------------------------------------------------------
# Committed: transactions, concurrency, the sequencer
# ---------------------------------------------------------------------------------------------


def _key() -> IdempotencyKey:
    value = new_key()
    return IdempotencyKey(
        value=value,
        fingerprint=operation_fingerprint("test", key=value),
        request_id="test",
        ttl_seconds=86_400,
        wait_ms=5_000,
    )


def _fund(conn: psycopg.Connection, game: Game, player: str, amount: int) -> None:
    outcome = players.grant(
        conn,
        game.id,
        player,
        actor="backend",
        reason="funds",
        currency="COINS",
        amount=amount,
        key=_key(),
    )
    assert outcome.status == 201, outcome.body


def _buy(conn: psycopg.Connection, game: Game, player: str, sku: str = "potion") -> str:
    outcome = players.purchase(conn, game.id, player, sku=sku, key=_key())
    assert outcome.status == 201, outcome.body
    return str(json.loads(outcome.body)["purchase"]["id"])


def test_a_transaction_rolled_back_after_its_event_leaves_none(
    database_url: str, committed_game: Game
) -> None:
    game = committed_game
    with db.connect(database_url) as conn:
        _fund(conn, game, "p1", 500)
        with psycopg.connect(database_url) as doomed:  # one transaction, never committed
            _buy(doomed, game, "p1")
            inside = doomed.execute(
                "SELECT type FROM events WHERE game_id = %s AND type = 'purchase.completed'",
                (game.id,),
            ).fetchall()
            assert inside == [("purchase.completed",)]  # the event was written...
            doomed.rollback()  # ...and goes with the purchase
        found = events.feed(conn, game.id)["events"]
        assert [e["type"] for e in found] == ["catalog.published", "grant.created"]
        assert conn.execute(
            "SELECT count(*) FROM purchases WHERE game_id = %s", (game.id,)
        ).fetchone() == (0,)
        assert event_mismatches(conn, game.id) == []


def _waiting_on_a_lock(conn: psycopg.Connection, application_name: str) -> bool:
    # By its application name, not its backend pid: through a pooler the client's pid is the
    # pooler's, and the server connection serving it is whichever is free.
    row = conn.execute(
        "SELECT bool_or(wait_event_type = 'Lock') FROM pg_stat_activity"
        " WHERE application_name = %s",
        (application_name,),
    ).fetchone()
    return bool(row and row[0])


def test_an_event_committed_after_a_later_one_is_not_lost(
    database_url: str, committed_game: Game
) -> None:
    """Player a's purchase draws the lower seq and commits last; a reader polls with its cursor
    between the commits. It gets every event exactly once, and a's second purchase (waiting on
    a's wallet meanwhile) after a's first."""
    game = committed_game
    with db.connect(database_url) as reader:
        _fund(reader, game, "a", 500)
        _fund(reader, game, "b", 500)
        start = events.feed(reader, game.id)["next_cursor"]

        slow = psycopg.connect(database_url)
        fast = psycopg.connect(database_url)
        waiter_name = f"waiter-{uuid.uuid4().hex[:8]}"
        waiter = psycopg.connect(database_url, autocommit=True, application_name=waiter_name)
        try:
            first_a = _buy(slow, game, "a")  # open: holds a's wallet, its event has no position
            first_b = _buy(fast, game, "b")
            fast.commit()

            page1 = events.feed(reader, game.id, after=start)
            assert [e["data"]["purchase"]["id"] for e in page1["events"]] == [first_b]

            second: dict[str, str] = {}
            blocked = threading.Thread(
                target=lambda: second.setdefault("a", _buy(waiter, game, "a")), daemon=True
            )
            blocked.start()
            while not _waiting_on_a_lock(reader, waiter_name):
                assert blocked.is_alive(), "the second purchase did not wait for the first"
                threading.Event().wait(0.01)
            slow.commit()
            blocked.join(timeout=30)
            assert not blocked.is_alive()

            page2 = events.feed(reader, game.id, after=page1["next_cursor"])
        finally:
            for connection in (slow, fast, waiter):
                connection.close()

        seen = [e["data"]["purchase"]["id"] for e in page1["events"] + page2["events"]]
        assert seen == [first_b, first_a, second["a"]]
        positions = [e["id"] for e in page1["events"] + page2["events"]]
        assert positions == sorted(positions) and len(set(positions)) == 3
        # The proof that the case happened: a's first purchase drew the lower seq.
        seqs = dict(
            reader.execute(
                "SELECT data->'purchase'->>'id', seq FROM events WHERE game_id = %s"
                " AND type = 'purchase.completed'",
                (game.id,),
            ).fetchall()
        )
        assert seqs[first_a] < seqs[first_b] < seqs[second["a"]]
        assert event_mismatches(reader, game.id) == []


def _service(server: LiveServer, game: Game) -> dict[str, str]:
    return {"Authorization": f"Bearer {game.token('service', 'backend')}"}


def _post(server: LiveServer, path: str, body: Any, token: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": new_key()},
        timeout=60,
    )


def _live_feed(server: LiveServer, game: Game, after: str | None = None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        params = {"limit": "50", **({"after": after} if after is not None else {})}
        page = httpx.get(
            f"{server.url}/v1/events", params=params, headers=_service(server, game), timeout=60
        ).json()
        found += page["events"]
        after = page["next_cursor"]
        if len(page["events"]) < 50:
            return found


def test_a_burst_of_purchases_grants_and_refunds_reaches_the_feed_exactly(
    live_server: LiveServer,
) -> None:
    game = live_server.new_game()
    names = [f"burst-{n}" for n in range(6)]
    service = game.token("service", "backend")
    for name in names:
        assert (
            _post(
                live_server,
                f"/v1/players/{name}/grants",
                {"currency": "COINS", "amount": 2000, "reason": "burst"},
                service,
            ).status_code
            == 201
        )

    # A reader polls with its cursor all along: it must end with every event exactly once.
    polled: list[dict[str, Any]] = []
    done = threading.Event()

    def poll() -> None:
        cursor: str | None = None
        while True:
            finished = done.is_set()
            page = _live_feed(live_server, game, cursor)
            polled.extend(page)
            if page:
                cursor = str(page[-1]["id"])
            if finished:
                return

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()

    def play(name: str) -> None:
        token = game.token("player", name)
        rng = random.Random(name)
        bought: list[str] = []
        for _ in range(6):
            sku = rng.choice(["potion", "shield", "sword", "gem_pouch"])
            body = {"sku": sku, "currency": "COINS"}
            answer = _post(live_server, "/v1/purchases", body, token)
            if answer.status_code == 201:
                bought.append(answer.json()["purchase"]["id"])
        for purchase_id in bought[:2]:
            _post(live_server, f"/v1/purchases/{purchase_id}/refund", {"reason": "r"}, service)
        _post(
            live_server,
            f"/v1/players/{name}/grants",
            {"sku": "potion", "quantity": 2, "reason": "burst"},
            service,
        )

    with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        list(pool.map(play, names))
    done.set()
    poller.join(timeout=60)
    assert not poller.is_alive()

    feed = _live_feed(live_server, game)
    assert [e["id"] for e in feed] == list(range(1, len(feed) + 1))  # dense, each once
    assert polled == feed  # the poller missed and repeated nothing
    with db.connect(live_server.database_url) as conn:
        assert event_mismatches(conn, game.id) == []
        assert len(feed) == len(stored_events(conn, game.id))
    # Per player, the feed's order is the ledger's: each balance follows from the one before.
    balances: dict[tuple[str, str], int] = {}
    owned: dict[tuple[str, str], int] = {}
    for event in feed:
        for entry in event["data"].get("ledger", []):
            account = (event["player_id"], entry["currency"])
            assert balances.get(account, 0) + entry["delta"] == entry["balance_after"], event
            balances[account] = entry["balance_after"]
        for entry in event["data"].get("item_ledger", []):
            holding = (event["player_id"], entry["sku"])
            assert owned.get(holding, 0) + entry["delta"] == entry["quantity_after"], event
            owned[holding] = entry["quantity_after"]
    assert owned and balances
    with db.connect(live_server.database_url) as conn:
        wallets = dict(
            ((player, currency), balance)
            for player, currency, balance in conn.execute(
                "SELECT player_id, currency, balance FROM wallets WHERE game_id = %s", (game.id,)
            ).fetchall()
        )
    assert {k: v for k, v in balances.items()} == {
        k: v for k, v in wallets.items() if k in balances
    }


def _buyer(server: LiveServer, game: Game) -> Any:
    def buy(player: str) -> httpx.Response:
        return _post(server, "/v1/purchases", {"sku": "drop"}, game.token("player", player))

    return buy


def test_a_limited_item_sells_out_once_per_sell_out(live_server: LiveServer) -> None:
    stock = 12
    game = live_server.new_game(
        coins_catalog(coins_item("drop", 10, kind="durable", stock=stock, per_player_limit=1))
    )
    buyers = [f"buyer-{n}" for n in range(30)]
    with db.connect(live_server.database_url) as conn:
        for buyer in buyers:
            _fund(conn, game, buyer, 10)
    start = threading.Barrier(len(buyers))
    buy = _buyer(live_server, game)

    def attempt(buyer: str) -> httpx.Response:
        start.wait()
        return buy(buyer)

    with concurrent.futures.ThreadPoolExecutor(len(buyers)) as pool:
        answers = list(pool.map(attempt, buyers))
    assert sorted(a.status_code for a in answers) == [201] * stock + [409] * (30 - stock)

    feed = _live_feed(live_server, game)
    sold_out = [e for e in feed if e["type"] == "stock.sold_out"]
    assert len(sold_out) == 1
    assert sold_out[0]["data"] == {"sku": "drop", "remaining": 0}
    # It comes after every sale (the sale that found nothing left waited in the sold-out line
    # until every other sale had committed). Not necessarily right after its own purchase in the
    # game's feed: another buyer's event may be inserted while the last buyer waits in that line.
    at = feed.index(sold_out[0])
    sales = [e for e in feed if e["type"] == "purchase.completed"]
    assert len(sales) == stock
    assert all(feed.index(sale) < at for sale in sales)
    # Among its buyer's own events, it is right after the purchase that took the last unit.
    own = [e for e in feed if e["player_id"] == sold_out[0]["player_id"]]
    assert [e["type"] for e in own][-2:] == ["purchase.completed", "stock.sold_out"]

    restocked = _post(live_server, "/v1/admin/stock/drop", {"add": 3}, game.token("studio", "d"))
    assert restocked.json() == {"sku": "drop", "remaining": 3}
    late = [b for b, a in zip(buyers, answers, strict=True) if a.status_code == 409]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        again = list(pool.map(_buyer(live_server, game), late[:6]))
    assert sorted(a.status_code for a in again) == [201] * 3 + [409] * 3
    feed = _live_feed(live_server, game)
    assert [e["type"] for e in feed].count("stock.sold_out") == 2
    assert [e["type"] for e in feed].count("stock.restocked") == 1
    assert [e["type"] for e in feed].count("purchase.completed") == stock + 3
    with db.connect(live_server.database_url) as conn:
        assert event_mismatches(conn, game.id) == []


# ---------------------------------------------------------------------------------------------
# Retention and the sequencer
# ---------------------------------------------------------------------------------------------


def _old_event(conn: psycopg.Connection, game: Game, days: int) -> int:
    row = conn.execute(
        "INSERT INTO events (game_id, type, player_id, created_at, data)"
        " VALUES (%s, 'grant.created', 'old', now() - make_interval(days => %s), '{}')"
        " RETURNING seq",
        (game.id, days),
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_the_purge_deletes_old_positioned_events_only(
    database_url: str, committed_game: Game
) -> None:
    game = committed_game
    retention = 30 * 24 * 3600
    metrics = Metrics()
    janitor = Janitor(make_config(app_database_url(database_url)), metrics)
    with db.connect(database_url) as conn, db.connect(database_url) as holder:
        old = [_old_event(conn, game, 31) for _ in range(3)]
        recent = _old_event(conn, game, 29)
        events.position_all(conn, wait_ms=5_000)
        # No sequencer may run now: this old event stays without a position.
        with lock_held(holder, events.SEQUENCER_LOCK):
            waiting = _old_event(conn, game, 40)
            assert events.position_pending(conn) is None  # the lock is taken
            purged = janitor.purge_events_once()
            left = [
                seq
                for (seq,) in conn.execute(
                    "SELECT seq FROM events WHERE game_id = %s AND type = 'grant.created'",
                    (game.id,),
                ).fetchall()
            ]
        assert purged is not None and purged >= 3  # and any older event of other tests
        assert sorted(left) == sorted([recent, waiting])
        assert not set(old) & set(left)
        registry: Any = metrics.registry
        assert registry.get_sample_value("shopkeep_events_purged_total") == purged
        assert registry.get_sample_value("shopkeep_event_purges_total", {"result": "done"}) == 1

        # Positioned now, and past the retention: the next purge takes it.
        events.position_all(conn, wait_ms=5_000)
        assert events.purge_expired(conn, retention_seconds=retention) == 1
        # The feed goes on from any cursor, the purged ones simply gone.
        found = events.feed(conn, game.id)["events"]
        assert [e["type"] for e in found] == ["catalog.published", "grant.created"]
        assert found[1]["player_id"] == "old"


def test_another_purger_makes_this_one_skip(database_url: str) -> None:
    metrics = Metrics()
    janitor = Janitor(make_config(app_database_url(database_url)), metrics)
    with db.connect(database_url) as holder, lock_held(holder, events.EVENT_PURGE_LOCK):
        assert janitor.purge_events_once() is None
    registry: Any = metrics.registry
    assert registry.get_sample_value("shopkeep_event_purges_total", {"result": "skipped"}) == 1


def test_the_sql_takes_the_sequencer_lock_python_names() -> None:
    text = (SERVER / "sql" / "70_events.sql").read_text()
    assert text.count(f"x'{events.SEQUENCER_LOCK:08X}'::bigint") == 2


def test_a_workers_sequencer_positions_an_event_after_it_commits(database_server: str) -> None:
    """On a database of its own, so no other sequencer is there to do it."""
    url = create_database(database_server, f"shopkeep_sequencer_{uuid.uuid4().hex[:8]}")
    metrics = Metrics()
    sequencer = EventSequencer(make_config(app_database_url(url), event_poll_ms=20), metrics)
    try:
        with db.connect(url) as conn:
            waiting = conn.execute("SELECT count(*) FROM events WHERE id IS NULL").fetchone()
            assert waiting == (0,)
            sequencer.start()
            # Let it pass once (as it starts) and wait for its next turn.
            assert sequencer.waiting.wait(timeout=60)
            game = make_game(conn)  # its publish writes catalog.published
            # Bounded (a minute, against a 20 ms poll), so a sequencer that stopped fails.
            for _ in range(6000):
                positioned = conn.execute(
                    "SELECT id IS NOT NULL FROM events WHERE game_id = %s", (game.id,)
                ).fetchone()
                if positioned == (True,):
                    break
                threading.Event().wait(0.01)
            assert positioned == (True,), "the sequencer did not position the event"
            registry: Any = metrics.registry
            assert (
                registry.get_sample_value(
                    "shopkeep_events_written_total", {"type": "catalog.published"}
                )
                == 1
            )
    finally:
        sequencer.stop()
        drop_database(database_server, psycopg.conninfo.conninfo_to_dict(url)["dbname"])
