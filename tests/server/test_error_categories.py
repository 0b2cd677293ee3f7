"""Each category of the contract table behaves over HTTP as its docstring says, and the SQL's
stored error envelope is the one the Python paths build.

- FINAL: stored with the key and replayed byte for byte, even after its cause is gone.
- NOT_STORED: nothing kept; the same key runs again once the request can succeed.
- TRANSIENT: nothing final kept; the same key succeeds later, exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from flask import g

from shopkeep_server import db
from shopkeep_server.app import create_app, render_error
from shopkeep_server.contract import BY_CODE, ErrorCategory
from shopkeep_server.errors import from_database
from shopkeep_server.store import catalog
from support import (
    Game,
    balances,
    buy,
    coins_catalog,
    coins_item,
    grant,
    inventory,
    make_config,
    make_game,
    new_key,
    pgbouncer,
    post,
)


def _code(response: Any) -> str:
    return str(response.get_json()["error"]["code"])


def _publish(conn: psycopg.Connection, game: Game, content: dict[str, Any]) -> None:
    with conn.transaction():
        catalog.put_draft(conn, game.id, content, if_match="*")
        catalog.publish(conn, game.id, actor="test", stock_buckets=4)


# ---------------------------------------------------------------------------------------------
# FINAL
# ---------------------------------------------------------------------------------------------


def test_a_final_rejection_replays_after_its_cause_is_gone(client, game: Game) -> None:
    key = new_key()
    first = buy(client, game, "sword", key=key)
    assert (first.status_code, _code(first)) == (409, "insufficient_funds")
    assert BY_CODE["insufficient_funds"].category is ErrorCategory.FINAL
    assert "Idempotent-Replayed" not in first.headers
    grant(client, game, "p1", "COINS", 1000)  # the cause is gone
    again = buy(client, game, "sword", key=key)
    assert again.status_code == 409
    assert again.data == first.data
    assert again.headers["Idempotent-Replayed"] == "true"
    assert balances(client, game)["COINS"] == 1000
    assert "sword" not in inventory(client, game)
    # A new attempt is a new key.
    assert buy(client, game, "sword").status_code == 201
    assert balances(client, game)["COINS"] == 700


def test_the_sql_envelope_equals_the_python_one(
    app, client, conn: psycopg.Connection, game: Game
) -> None:
    request_id = "envelope-check-1"
    stored = client.post(
        "/v1/purchases",
        json={"sku": "potion", "quantity": 2},
        headers=game.headers(**{"Idempotency-Key": new_key(), "X-Request-Id": request_id}),
    )
    assert stored.status_code == 409
    from_sql = json.loads(stored.data)
    sent = from_sql["error"]
    # The same rejection raised the way the SQL raises it, read and rendered by the Python path
    # that renders every other error.
    with pytest.raises(psycopg.Error) as raised, conn.transaction():
        conn.execute(
            "SELECT sk_fail(%s, %s, %s::jsonb)",
            (sent["code"], sent["message"], json.dumps(sent["details"])),
        )
    error = from_database(raised.value)
    assert error is not None
    with app.test_request_context():
        g.request_id = request_id
        rendered = render_error(error)
    from_python = json.loads(rendered.data)
    assert rendered.status_code == stored.status_code == BY_CODE[sent["code"]].status
    assert from_sql == from_python
    assert list(from_sql) == list(from_python) == ["error"]
    assert sorted(from_sql["error"]) == sorted(from_python["error"])
    assert from_sql["error"] == {
        "code": "insufficient_funds",
        "message": "not enough COINS",
        "details": {"currency": "COINS", "required": 100, "balance": 0},
        "request_id": request_id,
    }


# ---------------------------------------------------------------------------------------------
# NOT_STORED
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"sku": "elixir", "quantity": 2}, 404, "not_found"),
        ({"currency": "GEMS", "amount": 7}, 422, "validation_failed"),
    ],
    ids=["unknown-item", "unknown-currency"],
)
def test_a_not_stored_answer_runs_again_once_the_request_can_succeed(
    client, conn: psycopg.Connection, body: dict[str, Any], status: int, code: str
) -> None:
    # A grant of what the live catalog does not have yet; then it is published.
    game = make_game(conn, coins_catalog(coins_item("potion", 50)))
    path, body = "/v1/players/p1/grants", {**body, "reason": "launch gift"}
    key = new_key()
    refused = post(client, path, body, game, role="service", sub="backend", key=key)
    assert (refused.status_code, _code(refused)) == (status, code)
    assert BY_CODE[code].category is ErrorCategory.NOT_STORED
    gems = {"code": "GEMS", "name": "Gems", "scale": 0}
    content = coins_catalog(coins_item("potion", 50), coins_item("elixir", 80))
    _publish(conn, game, {**content, "currencies": [*content["currencies"], gems]})
    ran = post(client, path, body, game, role="service", sub="backend", key=key)
    assert ran.status_code == 201
    assert "Idempotent-Replayed" not in ran.headers
    replay = post(client, path, body, game, role="service", sub="backend", key=key)
    assert replay.status_code == 201
    assert replay.data == ran.data
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert inventory(client, game) == ({"elixir": 2} if "sku" in body else {})
    assert balances(client, game) == {"COINS": 0, "GEMS": 0 if "sku" in body else 7}


# ---------------------------------------------------------------------------------------------
# TRANSIENT
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def pooled_client(committed_url: str) -> Iterator[Any]:
    """A client on the real pool, so a transaction of the test's own can get in its way."""
    # Through PgBouncer in transaction mode the pool's session setting stays on whichever
    # server connection ran it, for every later client of that pool: a 500 ms timeout there
    # would cut other tests' waits short. The one test that needs it is skipped in that mode.
    timeout = {} if pgbouncer.enabled() else {"statement_timeout_ms": 500}
    app = create_app(make_config(committed_url, idempotency_wait_ms=300, **timeout))
    try:
        yield app.test_client()
    finally:
        app.extensions["shopkeep"].db.close()


def _buy(client: Any, game: Game, key: str) -> Any:
    return client.post(
        "/v1/purchases", json={"sku": "potion"}, headers=game.headers(**{"Idempotency-Key": key})
    )


def test_a_key_in_use_succeeds_later_with_the_same_key(
    pooled_client, committed_url: str, committed_game: Game
) -> None:
    grant(pooled_client, committed_game, "p1", "COINS", 100)
    key = new_key()
    with psycopg.connect(committed_url, autocommit=False) as twin:
        # A twin request holding the key, uncommitted: what a slow first request looks like.
        twin.execute(
            "SELECT * FROM sk_idempotency_begin(%s, 'p1', %s, 'the twin', 86400, 1000)",
            (committed_game.id, key),
        )
        busy = _buy(pooled_client, committed_game, key)
        assert (busy.status_code, _code(busy)) == (409, "idempotency_key_in_use")
        assert busy.headers["Retry-After"] == "1"
        twin.rollback()
    assert BY_CODE["idempotency_key_in_use"].category is ErrorCategory.TRANSIENT
    done = _buy(pooled_client, committed_game, key)
    assert done.status_code == 201
    assert "Idempotent-Replayed" not in done.headers
    assert _buy(pooled_client, committed_game, key).headers["Idempotent-Replayed"] == "true"
    assert balances(pooled_client, committed_game)["COINS"] == 50


@pytest.mark.skipif(
    pgbouncer.enabled(),
    reason="needs SHOPKEEP_STATEMENT_TIMEOUT_MS on the pool's connections, a session setting"
    " that PgBouncer in transaction mode leaves on whichever server connection ran it, for"
    " every later client (behind it the role's timeout applies: docs/scaling.md, section 2)",
)
def test_unavailable_succeeds_later_with_the_same_key(
    pooled_client, committed_url: str, committed_game: Game
) -> None:
    grant(pooled_client, committed_game, "p1", "COINS", 100)
    key = new_key()
    with psycopg.connect(committed_url, autocommit=False) as other:
        # Another transaction holds the wallet past the statement timeout.
        other.execute(
            "SELECT 1 FROM wallets WHERE game_id = %s AND player_id = 'p1' FOR UPDATE",
            (committed_game.id,),
        )
        down = _buy(pooled_client, committed_game, key)
        assert (down.status_code, _code(down)) == (503, "unavailable")
        assert down.headers["Retry-After"] == "1"
        other.rollback()
    assert BY_CODE["unavailable"].category is ErrorCategory.TRANSIENT
    with db.connect(committed_url) as conn:
        kept = conn.execute(
            "SELECT count(*) FROM idempotency_keys WHERE game_id = %s AND key = %s",
            (committed_game.id, key),
        ).fetchone()
    assert kept == (0,)
    done = _buy(pooled_client, committed_game, key)
    assert done.status_code == 201
    assert "Idempotent-Replayed" not in done.headers
    assert balances(pooled_client, committed_game)["COINS"] == 50
