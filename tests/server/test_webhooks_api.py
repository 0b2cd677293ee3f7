"""The studio's webhook endpoints through the API: add (the secret shown once, replayed with
its key), list, get, delete, rotate, disable, enable, the delivery log and "send again"; every
refusal changes nothing."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient

from support import Game, make_game, new_key, post
from support.events import position_everything

HOOKS = "/v1/admin/webhooks"


def add(client: FlaskClient, game: Game, body: dict[str, Any], *, key: str | None = None) -> Any:
    return post(client, HOOKS, body, game, role="studio", sub="designer", key=key)


def act(client: FlaskClient, game: Game, path: str, body: Any = None) -> Any:
    return post(client, f"{HOOKS}/{path}", body, game, role="studio", sub="designer")


def studio_get(client: FlaskClient, game: Game, path: str = "") -> Any:
    return client.get(f"{HOOKS}{path}", headers=game.headers("studio", "designer"))


def rows(conn: psycopg.Connection, game: Game) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT url, types, description, enabled, disabled_reason, secret, previous_secret"
        " FROM webhook_endpoints WHERE game_id = %s ORDER BY created_at",
        (game.id,),
    ).fetchall()


def test_add_shows_the_secret_once_and_list_never(client: FlaskClient, game: Game) -> None:
    key = new_key()
    body = {"url": "https://backend.example.com/hooks", "types": ["purchase.completed"]}
    made = add(client, game, body, key=key)
    assert made.status_code == 201, made.get_json()
    answer = made.get_json()
    secret = answer["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    hook = answer["webhook"]
    assert hook["url"] == body["url"]
    assert hook["types"] == ["purchase.completed"]
    assert hook["enabled"] is True and hook["disabled_reason"] is None
    assert hook["description"] == ""
    assert hook["previous_secret_expires_at"] is None
    # The same key replays the same answer (the secret with it); a new key makes another.
    again = add(client, game, body, key=key)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == answer
    listed = studio_get(client, game)
    assert listed.status_code == 200
    assert [w["id"] for w in listed.get_json()["webhooks"]] == [hook["id"]]
    assert secret not in listed.get_data(as_text=True)
    assert "whsec_" not in listed.get_data(as_text=True)
    one = studio_get(client, game, f"/{hook['id']}")
    assert one.get_json() == {"webhook": listed.get_json()["webhooks"][0]}


def test_a_new_endpoint_starts_after_the_feed_so_far(
    client: FlaskClient, conn: psycopg.Connection, game: Game
) -> None:
    position_everything(conn)
    newest = conn.execute("SELECT max(id) FROM events WHERE game_id = %s", (game.id,)).fetchone()
    assert newest is not None and newest[0] is not None  # the fixture's publish, at least
    hook = add(client, game, {"url": "https://x.example/h"}).get_json()["webhook"]
    assert hook["delivered_through"] == newest[0]
    assert hook["types"] == []  # every type


@pytest.mark.parametrize(
    "url",
    [
        "https://backend.example.com/shopkeep?game=1",
        "http://localhost:8080/hooks",
        "http://127.0.0.1:9/h",
        "http://[::1]:8000/",
        "HTTPS://Example.COM",
    ],
)
def test_urls_that_are_allowed(client: FlaskClient, game: Game, url: str) -> None:
    assert add(client, game, {"url": url}).status_code == 201


def test_delete_removes_the_endpoint(
    client: FlaskClient, conn: psycopg.Connection, game: Game
) -> None:
    hook = add(client, game, {"url": "https://x.example/h"}).get_json()["webhook"]
    headers = game.headers("studio", "designer")
    deleted = client.delete(f"{HOOKS}/{hook['id']}", headers=headers)
    assert deleted.status_code == 204 and deleted.get_data() == b""
    assert rows(conn, game) == []
    again = client.delete(f"{HOOKS}/{hook['id']}", headers=headers)
    assert again.status_code == 404 and again.get_json()["error"]["code"] == "not_found"


def test_rotation_keeps_the_old_secret_for_a_day(
    client: FlaskClient, conn: psycopg.Connection, game: Game
) -> None:
    made = add(client, game, {"url": "https://x.example/h"}).get_json()
    rotated = act(client, game, f"{made['webhook']['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.get_json()
    answer = rotated.get_json()
    assert answer["secret"] != made["secret"] and answer["secret"].startswith("whsec_")
    until = dt.datetime.fromisoformat(answer["webhook"]["previous_secret_expires_at"])
    assert dt.timedelta(hours=23) < until - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=24)
    (row,) = rows(conn, game)
    assert bytes(row[5]) == base64.b64decode(answer["secret"][6:])
    assert bytes(row[6]) == base64.b64decode(made["secret"][6:])


def test_disable_and_enable(client: FlaskClient, conn: psycopg.Connection, game: Game) -> None:
    hook = add(client, game, {"url": "https://x.example/h"}).get_json()["webhook"]
    disabled = act(client, game, f"{hook['id']}/disable")
    assert disabled.status_code == 200
    assert disabled.get_json()["webhook"]["enabled"] is False
    assert disabled.get_json()["webhook"]["disabled_reason"] == "disabled by the studio"
    conn.execute(
        "UPDATE webhook_progress SET failed_attempts = 7, failing_since = now()"
        " WHERE webhook_id = %s",
        (hook["id"],),
    )
    enabled = act(client, game, f"{hook['id']}/enable").get_json()["webhook"]
    assert enabled["enabled"] is True and enabled["disabled_reason"] is None
    assert enabled["failed_attempts"] == 0 and enabled["failing_since"] is None


def test_another_games_endpoint_is_not_found(
    client: FlaskClient, conn: psycopg.Connection, game: Game
) -> None:
    hook = add(client, game, {"url": "https://x.example/h"}).get_json()["webhook"]
    other = make_game(conn)
    for path in ("/rotate-secret", "/disable", "/enable"):
        answer = act(client, other, f"{hook['id']}{path}")
        assert answer.status_code == 404, path
    assert studio_get(client, other, f"/{hook['id']}").status_code == 404
    assert studio_get(client, other, f"/{hook['id']}/deliveries").status_code == 404
    gone = client.delete(f"{HOOKS}/{hook['id']}", headers=other.headers("studio", "x"))
    assert gone.status_code == 404
    assert studio_get(client, other).get_json() == {"webhooks": []}
    (row,) = rows(conn, game)
    assert row[3] is True  # still enabled, untouched


def test_only_the_studio_role_manages_webhooks(client: FlaskClient, game: Game) -> None:
    for role in ("player", "service"):
        answer = post(client, HOOKS, {"url": "https://x.example/h"}, game, role=role)
        assert answer.status_code == 403
        listed = client.get(HOOKS, headers=game.headers(role, "p1"))
        assert listed.status_code == 403


def test_redeliver_queues_delivered_events_of_its_types(
    client: FlaskClient, conn: psycopg.Connection, game: Game
) -> None:
    hook = add(client, game, {"url": "https://x.example/h", "types": ["grant.created"]})
    webhook = hook.get_json()["webhook"]
    for amount in (5, 6, 7):
        granted = post(
            client,
            "/v1/players/p1/grants",
            {"currency": "COINS", "amount": amount, "reason": "gift"},
            game,
            role="service",
            sub="backend",
        )
        assert granted.status_code == 201
    position_everything(conn)
    ids = [
        row[0]
        for row in conn.execute(
            "SELECT id FROM events WHERE game_id = %s AND type = 'grant.created' ORDER BY id",
            (game.id,),
        ).fetchall()
    ]
    assert len(ids) == 3
    # Not delivered yet: nothing to send again, and the answer says so.
    early = act(client, game, f"{webhook['id']}/redeliver", {"from_event_id": ids[0]})
    assert early.status_code == 422
    assert "from_event_id" in early.get_json()["error"]["details"]
    conn.execute(
        "UPDATE webhook_progress SET delivered_through = %s WHERE webhook_id = %s",
        (ids[-1], webhook["id"]),
    )
    first_to_last = {"from_event_id": webhook["delivered_through"] + 1, "to_event_id": ids[-1]}
    queued = act(client, game, f"{webhook['id']}/redeliver", first_to_last)
    assert queued.status_code == 202, queued.get_json()
    assert queued.get_json() == {"queued": 3}
    one = act(client, game, f"{webhook['id']}/redeliver", {"from_event_id": ids[1]})
    assert one.get_json() == {"queued": 0}  # already queued: once is enough
    resends = conn.execute(
        "SELECT event_id FROM webhook_resends WHERE webhook_id = %s ORDER BY 1", (webhook["id"],)
    ).fetchall()
    assert [r[0] for r in resends] == ids


def test_the_delivery_log_pages_newest_first(
    client: FlaskClient, conn: psycopg.Connection, game: Game
) -> None:
    hook = add(client, game, {"url": "https://x.example/h"}).get_json()["webhook"]
    for attempt in range(1, 6):
        conn.execute(
            "INSERT INTO webhook_deliveries (game_id, webhook_id, event_id, attempt, status_code,"
            " latency_ms, response_excerpt, error) VALUES (%s, %s, 9, %s, %s, 12, %s, NULL)",
            (game.id, hook["id"], attempt, 500 if attempt < 5 else 204, "oops"),
        )
    path = f"/{hook['id']}/deliveries?limit=2"
    first = studio_get(client, game, path).get_json()
    assert [d["attempt"] for d in first["deliveries"]] == [5, 4]
    assert first["deliveries"][0]["succeeded"] is True
    assert first["deliveries"][1] == {
        **first["deliveries"][1],
        "status_code": 500,
        "succeeded": False,
        "response_excerpt": "oops",
        "latency_ms": 12,
        "event_id": 9,
    }
    seen = [d["attempt"] for d in first["deliveries"]]
    cursor = first["next_cursor"]
    while cursor is not None:
        page = studio_get(client, game, f"{path}&cursor={cursor}").get_json()
        seen += [d["attempt"] for d in page["deliveries"]]
        cursor = page["next_cursor"]
    assert seen == [5, 4, 3, 2, 1]
    only = studio_get(client, game, f"/{hook['id']}/deliveries?event_id=10").get_json()
    assert only == {"deliveries": [], "next_cursor": None}
    bad = studio_get(client, game, f"/{hook['id']}/deliveries?cursor=abc")
    assert bad.status_code == 422 and "cursor" in bad.get_json()["error"]["details"]
