"""Risk decisions as events: every limit refusal, breaker trip and reset, freeze, unfreeze and
tier change is written to the events outbox by the transaction that records it, once, with the
record as the API shows it (GET /v1/players/{id}/risk, GET /v1/admin/risk/breakers) as data.

The tests on the rolled-back connection run in one transaction, so every row has the same
created_at (the transaction's now()). The rollback and webhook tests commit."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import psycopg

from shopkeep.events import PLAYER_RISK_TYPES
from shopkeep_server import db
from shopkeep_server.app import create_app
from shopkeep_server.config import Config
from shopkeep_server.delivery import Deliverer
from shopkeep_server.metrics import Metrics
from shopkeep_server.store import events, players
from shopkeep_server.store.idempotency import IdempotencyKey, operation_fingerprint
from support import (
    Game,
    app_database_url,
    coins_item,
    grant,
    make_config,
    make_game,
    new_key,
    post,
    snapshot,
)
from support.events import event_mismatches, read_feed, stored_events
from support.receiver import Receiver

HOUR = 3600


def _catalog(policy: dict[str, Any] | None) -> dict[str, Any]:
    content: dict[str, Any] = {
        "currencies": [
            {"code": "COINS", "name": "Coins", "scale": 0},
            {"code": "GEMS", "name": "Gems", "scale": 0},
        ],
        "items": [coins_item("potion", 50), coins_item("elixir", 200)],
    }
    if policy is not None:
        content["risk"] = policy
    return content


def _now(conn: psycopg.Connection) -> str:
    """The API's timestamp of the transaction's now()."""
    row = conn.execute("SELECT sk_ts(now())").fetchone()
    assert row is not None
    return str(row[0])


def _new_events(conn: psycopg.Connection, game: Game, before: list[Any]) -> list[dict[str, Any]]:
    """The event rows written since ``before`` (stored_events of an earlier moment)."""
    after = stored_events(conn, game.id)
    assert after[: len(before)] == before
    return after[len(before) :]


def _risk(client: Any, game: Game, player: str) -> dict[str, Any]:
    answer = client.get(f"/v1/players/{player}/risk", headers=game.headers("service", "support"))
    assert answer.status_code == 200
    found: dict[str, Any] = answer.get_json()
    return found


def _breaker_log(client: Any, game: Game) -> list[dict[str, Any]]:
    answer = client.get("/v1/admin/risk/breakers", headers=game.headers("studio", "lead"))
    assert answer.status_code == 200
    log: list[dict[str, Any]] = answer.get_json()["log"]
    return log


def _grant(client: Any, game: Game, player: str, amount: int, *, key: str | None = None) -> Any:
    return post(
        client,
        f"/v1/players/{player}/grants",
        {"currency": "COINS", "amount": amount, "reason": "quest"},
        game,
        role="service",
        sub="backend",
        key=key,
    )


# ---------------------------------------------------------------------------------------------
# Limit refusals
# ---------------------------------------------------------------------------------------------


def test_a_limit_refusal_emits_its_risk_event_once_and_nothing_else(
    conn: psycopg.Connection, client: Any
) -> None:
    policy = {"spend_limits": [{"currency": "COINS", "window_seconds": HOUR, "max_count": 1}]}
    game = make_game(conn, _catalog(policy))
    grant(client, game, "p1", "COINS", 500)
    assert post(client, "/v1/purchases", {"sku": "potion"}, game).status_code == 201
    before = stored_events(conn, game.id)

    key = new_key()
    refused = post(client, "/v1/purchases", {"sku": "potion"}, game, key=key)
    assert refused.status_code == 409
    details = refused.get_json()["error"]["details"]
    assert details["rule"] == "spend_limit"

    written = _new_events(conn, game, before)
    assert [(e["type"], e["player_id"]) for e in written] == [("risk.limit_exceeded", "p1")]
    recorded = _risk(client, game, "p1")["events"]
    assert len(recorded) == 1
    assert written[0]["data"] == recorded[0]
    assert written[0]["data"] == {
        "id": recorded[0]["id"],
        "kind": "refused",
        "operation": "purchase",
        "code": "limit_exceeded",
        "rule": "spend_limit",
        "details": details,
        "author": None,
        "reason": None,
        "created_at": _now(conn),
    }

    # The stored refusal replays: no second record, no second event.
    replay = post(client, "/v1/purchases", {"sku": "potion"}, game, key=key)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_data() == refused.get_data()
    assert len(_new_events(conn, game, before)) == 1
    assert len(_risk(client, game, "p1")["events"]) == 1
    assert event_mismatches(conn, game.id) == []


def test_grant_and_refund_refusals_emit_theirs_and_no_effect_event(
    conn: psycopg.Connection, client: Any
) -> None:
    policy = {
        "earn_limits": [{"currency": "COINS", "window_seconds": HOUR, "max_amount": 1_000}],
        "refund_limits": [{"window_seconds": HOUR, "max_count": 1}],
    }
    game = make_game(conn, _catalog(policy))
    assert _grant(client, game, "p1", 1_000).status_code == 201
    bought = [post(client, "/v1/purchases", {"sku": "potion"}, game) for _ in range(2)]
    ids = [b.get_json()["purchase"]["id"] for b in bought]

    def refund(purchase_id: str) -> Any:
        return post(
            client,
            f"/v1/purchases/{purchase_id}/refund",
            {"reason": "asked"},
            game,
            role="service",
            sub="backend",
        )

    assert refund(ids[0]).status_code == 200
    before = stored_events(conn, game.id)
    over_grant = _grant(client, game, "p1", 1)
    over_refund = refund(ids[1])
    assert (over_grant.status_code, over_refund.status_code) == (409, 409)

    written = _new_events(conn, game, before)
    assert [e["type"] for e in written] == ["risk.limit_exceeded"] * 2
    assert [(e["data"]["operation"], e["data"]["rule"], e["data"]["details"]) for e in written] == [
        ("grant", "earn_limit", over_grant.get_json()["error"]["details"]),
        ("refund", "refund_limit", over_refund.get_json()["error"]["details"]),
    ]
    assert [e["data"] for e in written] == list(reversed(_risk(client, game, "p1")["events"]))
    assert event_mismatches(conn, game.id) == []


# ---------------------------------------------------------------------------------------------
# Freezes and tiers
# ---------------------------------------------------------------------------------------------


def test_freeze_unfreeze_and_tier_changes_each_emit_one_event(
    conn: psycopg.Connection, client: Any
) -> None:
    tiers = {"tiers": [{"name": "new", "while_younger_than_seconds": HOUR}]}
    game = make_game(conn, _catalog(tiers))
    before = stored_events(conn, game.id)
    service = game.headers("service", "backend")

    freeze_key = new_key()
    frozen = post(
        client,
        "/v1/players/p1/freeze",
        {"reason": "stolen card"},
        game,
        role="service",
        sub="fraud",
        key=freeze_key,
    )
    assert frozen.status_code == 200
    # Its replay, and a second freeze of a frozen player, decide nothing new.
    replay = post(
        client,
        "/v1/players/p1/freeze",
        {"reason": "stolen card"},
        game,
        role="service",
        sub="fraud",
        key=freeze_key,
    )
    assert replay.headers["Idempotent-Replayed"] == "true"
    again = post(client, "/v1/players/p1/freeze", {"reason": "again"}, game, role="studio")
    assert again.status_code == 200
    unfrozen = post(
        client,
        "/v1/players/p1/unfreeze",
        {"reason": "owner confirmed"},
        game,
        role="studio",
        sub="support",
    )
    assert unfrozen.status_code == 200
    raised = client.put(
        "/v1/players/p1/risk/tier", json={"tier": "trusted", "reason": "kyc"}, headers=service
    )
    assert raised.status_code == 200
    placed = client.put(
        "/v1/players/p1/risk/tier", json={"tier": None, "reason": "expired"}, headers=service
    )
    assert placed.status_code == 200

    written = _new_events(conn, game, before)
    assert [(e["type"], e["player_id"]) for e in written] == [
        ("risk.player_frozen", "p1"),
        ("risk.player_unfrozen", "p1"),
        ("risk.tier_changed", "p1"),
        ("risk.tier_changed", "p1"),
    ]
    # Each event's data is the risk event the API lists, newest first there.
    assert [e["data"] for e in written] == list(reversed(_risk(client, game, "p1")["events"]))
    now = _now(conn)
    assert [{k: v for k, v in e["data"].items() if k != "id"} for e in written] == [
        {
            "kind": "frozen",
            "operation": None,
            "code": None,
            "rule": None,
            "details": {},
            "author": "fraud",
            "reason": "stolen card",
            "created_at": now,
        },
        {
            "kind": "unfrozen",
            "operation": None,
            "code": None,
            "rule": None,
            "details": {"frozen_at": now},
            "author": "support",
            "reason": "owner confirmed",
            "created_at": now,
        },
        {
            "kind": "tier_changed",
            "operation": None,
            "code": None,
            "rule": None,
            "details": {"from": None, "to": "trusted"},
            "author": "backend",
            "reason": "kyc",
            "created_at": now,
        },
        {
            "kind": "tier_changed",
            "operation": None,
            "code": None,
            "rule": None,
            "details": {"from": "trusted", "to": None},
            "author": "backend",
            "reason": "expired",
            "created_at": now,
        },
    ]
    assert event_mismatches(conn, game.id) == []


def test_a_frozen_players_refused_attempts_emit_nothing(
    conn: psycopg.Connection, client: Any
) -> None:
    game = make_game(conn, _catalog(None))
    grant(client, game, "p1", "COINS", 500)
    assert post(client, "/v1/purchases", {"sku": "potion"}, game).status_code == 201
    frozen = post(client, "/v1/players/p1/freeze", {"reason": "bot"}, game, role="service")
    assert frozen.status_code == 200
    before = stored_events(conn, game.id)
    state = snapshot(conn, game.id)

    attempts = [
        post(client, "/v1/purchases", {"sku": "potion"}, game),
        post(client, "/v1/inventory/potion/consume", {"quantity": 1}, game),
        _grant(client, game, "p1", 10),
    ]
    assert [(a.status_code, a.get_json()["error"]["code"]) for a in attempts] == [
        (403, "account_frozen")
    ] * 3
    # Recorded as the player's risk events, never emitted; nothing else changed.
    assert [e["code"] for e in _risk(client, game, "p1")["events"][:3]] == ["account_frozen"] * 3
    assert _new_events(conn, game, before) == []
    assert snapshot(conn, game.id) == state
    assert event_mismatches(conn, game.id) == []


# ---------------------------------------------------------------------------------------------
# The mint breaker
# ---------------------------------------------------------------------------------------------


def test_a_breaker_trip_and_its_reset_are_events(conn: psycopg.Connection, client: Any) -> None:
    policy = {"mint_breakers": [{"currency": "COINS", "window_seconds": HOUR, "max_amount": 1_000}]}
    game = make_game(conn, _catalog(policy))
    assert _grant(client, game, "p1", 600).status_code == 201
    before = stored_events(conn, game.id)

    tripping = _grant(client, game, "p2", 600)
    assert tripping.status_code == 409
    written = _new_events(conn, game, before)
    assert [(e["type"], e["player_id"]) for e in written] == [
        ("risk.limit_exceeded", "p2"),
        ("risk.breaker_tripped", "p2"),
    ]
    assert written[0]["data"] == _risk(client, game, "p2")["events"][0]
    assert written[0]["data"]["details"] == tripping.get_json()["error"]["details"]
    assert written[1]["data"] == _breaker_log(client, game)[0]
    assert written[1]["data"] == {
        "currency": "COINS",
        "kind": "tripped",
        "author": None,
        "reason": None,
        "details": {"player_id": "p2", "limit": 1_000, "used": 600, "window_seconds": HOUR},
        "created_at": _now(conn),
    }

    # While tripped, each refused grant is its refusal only: the breaker trips once.
    before = stored_events(conn, game.id)
    assert _grant(client, game, "p3", 1).status_code == 409
    assert [e["type"] for e in _new_events(conn, game, before)] == ["risk.limit_exceeded"]

    before = stored_events(conn, game.id)
    reset_key = new_key()
    for _ in range(2):  # the second is the first's replay
        reset = post(
            client,
            "/v1/admin/risk/breakers/COINS/reset",
            {"reason": "dupe fixed"},
            game,
            role="studio",
            sub="lead",
            key=reset_key,
        )
        assert reset.status_code == 200
    # Resetting a breaker that is not tripped decides nothing.
    again = post(
        client, "/v1/admin/risk/breakers/COINS/reset", {"reason": "x"}, game, role="studio"
    )
    assert again.status_code == 200
    written = _new_events(conn, game, before)
    assert [(e["type"], e["player_id"]) for e in written] == [("risk.breaker_reset", None)]
    assert written[0]["data"] == _breaker_log(client, game)[0]
    assert written[0]["data"] == {
        "currency": "COINS",
        "kind": "reset",
        "author": "lead",
        "reason": "dupe fixed",
        "details": {"tripped_at": _now(conn)},
        "created_at": _now(conn),
    }
    assert _grant(client, game, "p3", 1).status_code == 201
    assert event_mismatches(conn, game.id) == []


def test_one_grant_alone_past_the_threshold_trips_the_breaker(
    conn: psycopg.Connection, client: Any
) -> None:
    """The currency's first grant ever: the breaker's row is made by the refusal itself (the
    one the check made went with the grant's rolled-back block)."""
    policy = {"mint_breakers": [{"currency": "COINS", "window_seconds": HOUR, "max_amount": 1_000}]}
    game = make_game(conn, _catalog(policy))
    assert _grant(client, game, "p1", 5_000).status_code == 409
    breakers = client.get("/v1/admin/risk/breakers", headers=game.headers("studio", "lead"))
    assert [(b["currency"], b["tripped"]) for b in breakers.get_json()["breakers"]] == [
        ("COINS", True)
    ]
    assert [e["type"] for e in stored_events(conn, game.id)][-2:] == [
        "risk.limit_exceeded",
        "risk.breaker_tripped",
    ]
    assert _grant(client, game, "p2", 1).status_code == 409
    assert event_mismatches(conn, game.id) == []


# ---------------------------------------------------------------------------------------------
# The feed, rollbacks and webhooks
# ---------------------------------------------------------------------------------------------


def test_the_feed_filters_risk_events_by_type(conn: psycopg.Connection, client: Any) -> None:
    policy = {"spend_limits": [{"currency": "COINS", "window_seconds": HOUR, "max_count": 1}]}
    game = make_game(conn, _catalog(policy))
    grant(client, game, "p1", "COINS", 500)
    assert post(client, "/v1/purchases", {"sku": "potion"}, game).status_code == 201
    assert post(client, "/v1/purchases", {"sku": "potion"}, game).status_code == 409
    frozen = post(client, "/v1/players/p1/freeze", {"reason": "bot"}, game, role="service")
    assert frozen.status_code == 200

    only = read_feed(client, game, type="risk.limit_exceeded")
    assert [(e["type"], e["data"]["rule"]) for e in only] == [
        ("risk.limit_exceeded", "spend_limit")
    ]
    both = read_feed(client, game, type="risk.limit_exceeded,risk.player_frozen")
    assert [e["type"] for e in both] == ["risk.limit_exceeded", "risk.player_frozen"]
    everything = read_feed(client, game)
    assert [e["type"] for e in everything] == [
        "catalog.published",
        "grant.created",
        "purchase.completed",
        "risk.limit_exceeded",
        "risk.player_frozen",
    ]
    assert [e for e in everything if e["type"].startswith("risk.")] == both


def _key() -> IdempotencyKey:
    value = new_key()
    return IdempotencyKey(
        value=value,
        fingerprint=operation_fingerprint("test", key=value),
        request_id="test",
        ttl_seconds=86_400,
        wait_ms=5_000,
    )


def test_a_refusal_rolled_back_with_its_transaction_leaves_no_event(database_url: str) -> None:
    policy = {"spend_limits": [{"currency": "COINS", "window_seconds": HOUR, "max_count": 0}]}
    with db.connect(database_url) as conn:
        game = make_game(conn, _catalog(policy))
        funded = players.grant(
            conn,
            game.id,
            "p1",
            actor="backend",
            reason="funds",
            currency="COINS",
            amount=500,
            key=_key(),
        )
        assert funded.status == 201
        with psycopg.connect(database_url) as doomed:  # one transaction, never committed
            refused = players.purchase(doomed, game.id, "p1", sku="potion", key=_key())
            assert refused.status == 409
            inside = doomed.execute(
                "SELECT type FROM events WHERE game_id = %s AND type LIKE 'risk.%%'", (game.id,)
            ).fetchall()
            assert inside == [("risk.limit_exceeded",)]  # written...
            doomed.rollback()  # ...and gone with the refusal's transaction
        found = events.feed(conn, game.id)["events"]
        assert [e["type"] for e in found] == ["catalog.published", "grant.created"]
        assert conn.execute(
            "SELECT count(*) FROM risk_events WHERE game_id = %s", (game.id,)
        ).fetchone() == (0,)
        assert event_mismatches(conn, game.id) == []


def _delivery_config(url: str) -> Config:
    return make_config(
        app_database_url(url),
        webhook_timeout_ms=2_000,
        webhook_backoff_base_ms=20,
        webhook_backoff_cap_ms=200,
        webhook_poll_ms=20,
    )


def test_a_webhook_subscribed_to_risk_events_gets_them_signed(database_url: str) -> None:
    policy = {"spend_limits": [{"currency": "COINS", "window_seconds": HOUR, "max_count": 1}]}
    with db.connect(database_url) as conn:
        game = make_game(conn, _catalog(policy))
    app = create_app(make_config(app_database_url(database_url)))
    try:
        client = app.test_client()
        with Receiver([]) as receiver:
            types = ["risk.limit_exceeded", "risk.player_frozen"]
            made = post(
                client,
                "/v1/admin/webhooks",
                {"url": receiver.url, "types": types},
                game,
                role="studio",
                sub="s",
            )
            assert made.status_code == 201, made.get_json()
            assert made.get_json()["webhook"]["types"] == types
            receiver.secrets.append(made.get_json()["secret"])

            grant(client, game, "p1", "COINS", 500)
            assert post(client, "/v1/purchases", {"sku": "potion"}, game).status_code == 201
            assert post(client, "/v1/purchases", {"sku": "potion"}, game).status_code == 409
            frozen = post(client, "/v1/players/p1/freeze", {"reason": "bot"}, game, role="service")
            assert frozen.status_code == 200
            wanted = [e for e in read_feed(client, game) if e["type"] in types]
            assert [e["type"] for e in wanted] == types

            worker = Deliverer(_delivery_config(database_url), Metrics())
            deadline = time.monotonic() + 60
            with db.connect(database_url) as conn:
                while len(receiver.events) < len(wanted):
                    assert time.monotonic() < deadline, "delivery did not finish in time"
                    events.position_all(conn)
                    if not worker.deliver_once():
                        time.sleep(0.02)
    finally:
        app.extensions["shopkeep"].db.close()
    assert receiver.refused == []
    assert receiver.order == [e["id"] for e in wanted]
    for event in wanted:
        arrived = receiver.events[event["id"]]
        assert (arrived.type, arrived.player_id) == (event["type"], event["player_id"])
        assert json.dumps(arrived.data, sort_keys=True) == json.dumps(event["data"], sort_keys=True)


def test_the_sdk_types_the_player_decisions_the_sql_emits() -> None:
    """shopkeep.events.PLAYER_RISK_TYPES (parsed as Event.risk) are the types sk_risk_record
    writes, whose data is a risk event; the breaker's are the others of the risk types."""
    sql = (
        Path(__file__).resolve().parents[2] / "server/shopkeep_server/sql/65_risk.sql"
    ).read_text()
    record = sql[
        sql.index("FUNCTION sk_risk_record(") : sql.index("FUNCTION sk_risk_breaker_log_json")
    ]
    written = set(re.findall(r"'(risk\.[a-z_]+)'", record))
    assert written == PLAYER_RISK_TYPES
    assert {t for t in events.EVENT_TYPES if t.startswith("risk.")} - written == {
        "risk.breaker_tripped",
        "risk.breaker_reset",
    }
