"""Webhook delivery against a real receiver on 127.0.0.1: committed purchases, grants and
refunds on the test database, the events positioned by the feed's sequencer, and the server's
delivery workers (shopkeep_server.delivery.Deliverer) sending them.

The receiver answers 500 to about 30 % of the deliveries, answers too late to about 5 % and is
down for a stretch; when it is back, it holds every event exactly once by id, in each player's
order, and exactly what the purchases, grants and ledger tables say happened. Two workers on
their own connections never send one endpoint's event twice nor two at a time. An endpoint that
keeps failing past the (here tiny) give-up horizon is disabled with the reason in the API.

Other processes on the same database deliver too (the session's live server, whose workers run
with the same quick retries): every assertion holds whichever process sends.
"""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from shopkeep_server import db
from shopkeep_server.app import create_app
from shopkeep_server.config import Config
from shopkeep_server.delivery import Deliverer, backoff
from shopkeep_server.metrics import Metrics
from shopkeep_server.sequencer import EventSequencer
from shopkeep_server.store import events, webhooks
from support import (
    Game,
    app_database_url,
    create_database,
    drop_database,
    make_config,
    make_game,
    post,
)
from support.events import position_everything
from support.receiver import Misbehaviour, Receiver

PLAYERS = ("ann", "bob", "cyd", "dee")
# Bounds of each test's delivery loop: it stops as soon as its condition holds.
DEADLINE_SECONDS = 60.0


@pytest.fixture
def pooled(committed_url: str) -> Iterator[Any]:
    """The API on a pool of committed connections, as the server runs it."""
    app = create_app(make_config(app_database_url(committed_url)))
    try:
        yield app.test_client()
    finally:
        app.extensions["shopkeep"].db.close()


def delivery_config(committed_url: str, **changes: Any) -> Config:
    """Quick retries and a short timeout, set the way an operator would: by configuration."""
    settings: dict[str, Any] = {
        "webhook_timeout_ms": 400,
        "webhook_backoff_base_ms": 20,
        "webhook_backoff_cap_ms": 200,
        "webhook_poll_ms": 20,
        **changes,
    }
    return make_config(app_database_url(committed_url), **settings)


def add_webhook(client: Any, game: Game, url: str, **body: Any) -> dict[str, Any]:
    made = post(client, "/v1/admin/webhooks", {"url": url, **body}, game, role="studio", sub="s")
    assert made.status_code == 201, made.get_json()
    answer: dict[str, Any] = made.get_json()
    return answer


def studio_get(client: Any, game: Game, path: str) -> dict[str, Any]:
    answer = client.get(f"/v1/admin/webhooks{path}", headers=game.headers("studio", "s"))
    assert answer.status_code == 200, answer.get_json()
    found: dict[str, Any] = answer.get_json()
    return found


def trade(client: Any, game: Game, player: str, *, buys: int, refund: bool) -> None:
    """A grant, ``buys`` purchases and maybe a refund of the first, all through the API."""
    granted = post(
        client,
        f"/v1/players/{player}/grants",
        {"currency": "COINS", "amount": 1000, "reason": "welcome"},
        game,
        role="service",
        sub="backend",
    )
    assert granted.status_code == 201, granted.get_json()
    bought = []
    for _ in range(buys):
        answer = post(client, "/v1/purchases", {"sku": "potion"}, game, sub=player)
        assert answer.status_code == 201, answer.get_json()
        bought.append(answer.get_json()["purchase"]["id"])
    if refund:
        answer = post(
            client,
            f"/v1/purchases/{bought[0]}/refund",
            {"reason": "changed mind"},
            game,
            role="service",
            sub="backend",
        )
        assert answer.status_code == 200, answer.get_json()


def drive(
    workers: list[Deliverer], url: str, done: Callable[[], bool], *, pause: float = 0.01
) -> None:
    """Positions committed events and lets the workers deliver until ``done`` (bounded)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    with db.connect(url) as conn:
        while not done():
            assert time.monotonic() < deadline, "delivery did not finish in time"
            events.position_all(conn)
            if not any([worker.deliver_once() for worker in workers]):
                time.sleep(pause)


def feed_ids(conn: psycopg.Connection, game: Game, after: int) -> list[int]:
    position_everything(conn)
    return [
        row[0]
        for row in conn.execute(
            "SELECT id FROM events WHERE game_id = %s AND id > %s ORDER BY id", (game.id, after)
        ).fetchall()
    ]


def test_every_event_arrives_once_in_order_through_failures_timeouts_and_an_outage(
    pooled: Any, committed_url: str, committed_game: Game
) -> None:
    game = committed_game
    misbehaviour = Misbehaviour(fail_rate=0.30, slow_rate=0.05, slow_seconds=0.8)
    with Receiver([], misbehaviour) as receiver:
        made = add_webhook(pooled, game, receiver.url)
        receiver.secrets.append(made["secret"])
        start = made["webhook"]["delivered_through"]
        worker = Deliverer(delivery_config(committed_url), Metrics())
        for player in PLAYERS[:2]:
            trade(pooled, game, player, buys=3, refund=True)
        with db.connect(committed_url) as conn:
            first_half = feed_ids(conn, game, start)
        drive([worker], committed_url, lambda: set(first_half) <= receiver.events.keys())

        # Down: deliveries get no answer at all while the others trade.
        receiver.stop()
        for player in PLAYERS[2:]:
            trade(pooled, game, player, buys=3, refund=True)
        with db.connect(committed_url) as conn:
            everything = feed_ids(conn, game, start)
        failed_while_down = lambda: any(  # noqa: E731
            d["error"] is not None and d["error"].startswith("no answer")
            for d in studio_get(pooled, game, f"/{made['webhook']['id']}/deliveries")["deliveries"]
        )
        drive([worker], committed_url, failed_while_down)
        receiver.start()  # back, on the same port
        drive([worker], committed_url, lambda: set(everything) <= receiver.events.keys())

    assert receiver.refused == []
    # Every event exactly once by id (repeats on the wire are the at-least-once retries of
    # the deliveries that were answered too late), nothing else.
    assert sorted(receiver.events) == everything
    assert set(receiver.wire) == set(everything)
    assert 500 in receiver.answers  # the 30 % did happen
    # In order: as positioned, so in each player's own order.
    assert receiver.order == everything
    by_player: dict[str, list[int]] = defaultdict(list)
    for event_id in receiver.order:
        by_player[receiver.events[event_id].player_id or ""].append(event_id)
    assert all(ids == sorted(ids) for ids in by_player.values())
    assert set(by_player) == set(PLAYERS)
    _matches_the_books(committed_url, game, receiver)
    hook = studio_get(pooled, game, f"/{made['webhook']['id']}")["webhook"]
    assert hook["delivered_through"] == everything[-1]
    assert hook["enabled"] is True and hook["failed_attempts"] == 0
    # The log has each kind of failure the receiver staged, and ends with every event's 2xx.
    log = studio_get(pooled, game, f"/{made['webhook']['id']}/deliveries?limit=200")
    attempts = log["deliveries"]
    assert log["next_cursor"] is None
    assert any(d["status_code"] == 500 for d in attempts)
    assert any(d["error"] == "timed out" for d in attempts)
    assert any((d["error"] or "").startswith("no answer") for d in attempts)
    assert sorted(d["event_id"] for d in attempts if d["succeeded"]) == everything


def _matches_the_books(url: str, game: Game, receiver: Receiver) -> None:
    """What arrived is what the purchases, grants and ledger tables say happened."""
    got: dict[str, set[str]] = defaultdict(set)
    moved: dict[tuple[str, str], int] = defaultdict(int)
    for event in receiver.events.values():
        if event.type.startswith("purchase."):
            got[event.type].add(event.data["purchase"]["id"])
        elif event.type == "grant.created":
            got[event.type].add(event.data["grant"]["id"])
        for entry in event.data.get("ledger", []):
            moved[(event.player_id or "", entry["currency"])] += entry["delta"]
    with db.connect(url) as conn:
        purchases = conn.execute(
            "SELECT id::text, status FROM purchases WHERE game_id = %s", (game.id,)
        ).fetchall()
        grants = conn.execute(
            "SELECT id::text FROM grants WHERE game_id = %s", (game.id,)
        ).fetchall()
        wallets = conn.execute(
            "SELECT player_id, currency, balance FROM wallets WHERE game_id = %s AND balance <> 0",
            (game.id,),
        ).fetchall()
        ledger = conn.execute(
            "SELECT player_id, currency, sum(delta) FROM ledger_entries WHERE game_id = %s"
            " GROUP BY 1, 2",
            (game.id,),
        ).fetchall()
    assert got["purchase.completed"] == {pid for pid, _ in purchases}
    assert got["purchase.refunded"] == {pid for pid, status in purchases if status == "refunded"}
    assert got["grant.created"] == {gid for (gid,) in grants}
    assert {k: v for k, v in moved.items() if v} == {(p, c): b for p, c, b in wallets}
    assert {k: v for k, v in moved.items()} == {(p, c): int(s) for p, c, s in ledger}


def test_two_workers_never_send_one_endpoints_events_twice_or_at_once(
    pooled: Any, committed_url: str, committed_game: Game
) -> None:
    game = committed_game
    with Receiver([], Misbehaviour(slow_rate=0.2, slow_seconds=0.05)) as receiver:
        made = add_webhook(pooled, game, receiver.url)
        receiver.secrets.append(made["secret"])
        start = made["webhook"]["delivered_through"]
        config = delivery_config(committed_url)
        workers = [Deliverer(config, Metrics()), Deliverer(config, Metrics())]
        for worker in workers:
            worker.start()
        try:
            for player in PLAYERS:
                trade(pooled, game, player, buys=3, refund=False)
            with db.connect(committed_url) as conn:
                everything = feed_ids(conn, game, start)
            deadline = time.monotonic() + DEADLINE_SECONDS
            while not set(everything) <= receiver.events.keys():
                assert time.monotonic() < deadline, "delivery did not finish in time"
                time.sleep(0.05)
        finally:
            for worker in workers:
                worker.stop()
            for worker in workers:
                worker.join(timeout=10)
    # No answer was late enough to time out and nothing failed: each event went out once.
    assert receiver.wire == everything
    assert receiver.most_at_once == 1
    by_player: dict[str, list[int]] = defaultdict(list)
    for event_id in receiver.order:
        by_player[receiver.events[event_id].player_id or ""].append(event_id)
    assert all(ids == sorted(ids) for ids in by_player.values())


def test_types_select_what_is_sent_and_a_rotation_signs_with_both_secrets(
    pooled: Any, committed_url: str, committed_game: Game
) -> None:
    game = committed_game
    with Receiver([]) as receiver:
        made = add_webhook(pooled, game, receiver.url, types=["purchase.completed"])
        old = made["secret"]
        rotated = post(
            pooled,
            f"/v1/admin/webhooks/{made['webhook']['id']}/rotate-secret",
            None,
            game,
            role="studio",
            sub="s",
        ).get_json()
        receiver.secrets += [old, rotated["secret"]]  # every delivery must verify with both
        trade(pooled, game, "ann", buys=2, refund=True)
        worker = Deliverer(delivery_config(committed_url))
        with db.connect(committed_url) as conn:
            wanted = [
                i
                for i in feed_ids(conn, game, made["webhook"]["delivered_through"])
                if conn.execute(
                    "SELECT type FROM events WHERE game_id = %s AND id = %s", (game.id, i)
                ).fetchone()
                == ("purchase.completed",)
            ]
        assert len(wanted) == 2
        drive([worker], committed_url, lambda: set(wanted) <= receiver.events.keys())
        assert worker.deliver_once() is False  # the refund is not of its types: nothing due
    assert receiver.refused == []
    assert receiver.order == wanted
    assert {e.type for e in receiver.events.values()} == {"purchase.completed"}


def test_send_again_resends_delivered_events_in_order(
    pooled: Any, committed_url: str, committed_game: Game
) -> None:
    game = committed_game
    with Receiver([]) as receiver:
        made = add_webhook(pooled, game, receiver.url)
        receiver.secrets.append(made["secret"])
        hook_id = made["webhook"]["id"]
        trade(pooled, game, "bob", buys=2, refund=False)
        with db.connect(committed_url) as conn:
            everything = feed_ids(conn, game, made["webhook"]["delivered_through"])
        worker = Deliverer(delivery_config(committed_url))
        drive([worker], committed_url, lambda: set(everything) <= receiver.events.keys())
        again = post(
            pooled,
            f"/v1/admin/webhooks/{hook_id}/redeliver",
            {"from_event_id": everything[0], "to_event_id": everything[1]},
            game,
            role="studio",
            sub="s",
        )
        assert again.get_json() == {"queued": 2}
        drive([worker], committed_url, lambda: len(receiver.wire) == len(everything) + 2)
    assert receiver.wire == [*everything, everything[0], everything[1]]
    log = studio_get(pooled, game, f"/{hook_id}/deliveries?limit=200")["deliveries"]
    assert [d["event_id"] for d in reversed(log)] == receiver.wire
    assert all(d["succeeded"] and d["status_code"] == 200 for d in log)


def test_an_endpoint_failing_past_the_horizon_is_disabled_with_the_reason(
    pooled: Any, committed_url: str, committed_game: Game
) -> None:
    game = committed_game
    with Receiver([], Misbehaviour(fail_rate=1.0)) as receiver:
        made = add_webhook(pooled, game, receiver.url)
        receiver.secrets.append(made["secret"])
        hook_id = made["webhook"]["id"]
        trade(pooled, game, "cyd", buys=1, refund=False)
        metrics = Metrics()
        worker = Deliverer(delivery_config(committed_url, webhook_give_up_seconds=1), metrics)
        drive(
            [worker],
            committed_url,
            lambda: not studio_get(pooled, game, f"/{hook_id}")["webhook"]["enabled"],
        )
        hook = studio_get(pooled, game, f"/{hook_id}")["webhook"]
        log = studio_get(pooled, game, f"/{hook_id}/deliveries?limit=200")["deliveries"]
        # Disabled: nothing more goes out, however long the worker runs.
        sent = len(receiver.answers)
        for _ in range(5):
            assert worker.deliver_once() is False
        assert len(receiver.answers) == sent
    assert hook["disabled_reason"].startswith("deliveries failed for 1 seconds")
    assert "last: HTTP 500" in hook["disabled_reason"]
    assert hook["delivered_through"] == made["webhook"]["delivered_through"]
    # Every attempt was the first event, numbered 1, 2, 3, ..., all refused.
    first = log[-1]["event_id"]
    assert [d["event_id"] for d in log] == [first] * len(log)
    assert [d["attempt"] for d in reversed(log)] == list(range(1, len(log) + 1))
    assert {d["status_code"] for d in log} == {500} and len(log) >= 2
    # This worker counted the attempts it made (the session's live server, on the same
    # database, may have made some of them: any process delivers).
    refused = metrics.registry.get_sample_value(
        "shopkeep_webhook_deliveries_total", {"outcome": "refused"}
    )
    assert refused is not None and 1 <= refused <= len(log)
    # Enabling starts afresh from the same event.
    enabled = post(
        pooled, f"/v1/admin/webhooks/{hook_id}/enable", None, game, role="studio", sub="s"
    ).get_json()["webhook"]
    assert enabled["enabled"] is True and enabled["failed_attempts"] == 0


def test_the_backlog_gauge_shows_the_oldest_undelivered_event(
    pooled: Any, committed_url: str, committed_game: Game
) -> None:
    game = committed_game
    made = add_webhook(pooled, game, f"http://127.0.0.1:9/{uuid.uuid4().hex}")
    trade(pooled, game, "dee", buys=1, refund=False)
    metrics = Metrics()
    with db.connect(app_database_url(committed_url)) as conn:
        position_everything(conn)
        metrics.show_webhook_backlog(webhooks.backlog(conn))
    labels = {"game": game.id, "webhook": made["webhook"]["id"]}
    age = metrics.registry.get_sample_value("shopkeep_webhook_oldest_undelivered_seconds", labels)
    assert age is not None and age > 0
    # Disabled: no longer a backlog anyone waits on, so it leaves the gauge.
    disabled = post(
        pooled,
        f"/v1/admin/webhooks/{made['webhook']['id']}/disable",
        None,
        game,
        role="studio",
        sub="s",
    )
    assert disabled.status_code == 200
    with db.connect(app_database_url(committed_url)) as conn:
        metrics.show_webhook_backlog(webhooks.backlog(conn))
    gone = metrics.registry.get_sample_value("shopkeep_webhook_oldest_undelivered_seconds", labels)
    assert gone is None


def test_the_back_off_doubles_is_capped_and_jittered() -> None:
    config = Config(webhook_backoff_base_ms=100, webhook_backoff_cap_ms=1000)
    rng = random.Random(7)
    for failures, ceiling in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (60, 1000)]:
        waits = [backoff(config, failures, rng=rng) for _ in range(50)]
        low, high = dt.timedelta(milliseconds=ceiling / 2), dt.timedelta(milliseconds=ceiling)
        assert all(low <= wait <= high for wait in waits), failures
        assert len(set(waits)) > 40  # jittered: endpoints that failed together spread out


def test_a_sequencer_pass_wakes_its_process_deliverer(database_server: str) -> None:
    """The deliverer polls every ten minutes here, so the event reaches the receiver within
    the test's bound only if the sequencer's pass that positioned it wakes the deliverer. On
    a database of its own: no other process's workers are there to deliver it."""
    name = f"shopkeep_wake_{uuid.uuid4().hex[:8]}"
    url = create_database(database_server, name)
    app = create_app(make_config(app_database_url(url)))
    config = delivery_config(url, webhook_poll_ms=600_000, event_poll_ms=20)
    deliverer = Deliverer(config, Metrics())
    sequencer = EventSequencer(config, Metrics(), on_positioned=deliverer.wake)
    try:
        client = app.test_client()
        with db.connect(url) as conn:
            game = make_game(conn)
        with Receiver([]) as receiver:
            made = add_webhook(client, game, receiver.url, types=["grant.created"])
            receiver.secrets.append(made["secret"])
            deliverer.start()
            assert deliverer.waiting.wait(timeout=DEADLINE_SECONDS)  # in its ten-minute wait
            sequencer.start()
            granted = post(
                client,
                "/v1/players/ann/grants",
                {"currency": "COINS", "amount": 5, "reason": "welcome"},
                game,
                role="service",
                sub="backend",
            )
            assert granted.status_code == 201, granted.get_json()
            grant_id = granted.get_json()["grant"]["id"]
            deadline = time.monotonic() + DEADLINE_SECONDS
            while not receiver.events and time.monotonic() < deadline:
                time.sleep(0.01)
            assert [e.data["grant"]["id"] for e in receiver.events.values()] == [grant_id]
    finally:
        sequencer.stop()
        deliverer.stop()
        app.extensions["shopkeep"].db.close()
        drop_database(database_server, name)
