"""/metrics after real requests: each family moves by exactly what the requests did."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from shopkeep_server import db, roles
from shopkeep_server.app import create_app
from shopkeep_server.metrics import Metrics
from shopkeep_server.serving import Janitor
from shopkeep_server.store.idempotency import PURGE_LOCK
from support import Game, app_database_url, buy, grant, lock_held, make_config, new_key, pgbouncer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: FlaskClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_requests_are_counted_by_their_openapi_route(client: FlaskClient, game: Game) -> None:
    grant(client, game, "p1", "COINS", 60)
    grant(client, game, "p2", "COINS", 60)
    assert client.get("/v1/no-such-thing").status_code == 404
    samples = scrape(client)
    route = "/v1/players/{player_id}/grants"
    assert (
        value(samples, "shopkeep_http_requests_total", method="POST", endpoint=route, status="201")
        == 2
    )
    assert (
        value(
            samples, "shopkeep_http_request_duration_seconds_count", method="POST", endpoint=route
        )
        == 2
    )
    assert (
        value(
            samples,
            "shopkeep_http_requests_total",
            method="GET",
            endpoint="unmatched",
            status="404",
        )
        == 1
    )
    # Flask's converter syntax never reaches a label.
    assert not [key for key in samples if any("<" in v for _, v in key[1])]


def test_idempotency_keys_stored_replayed_and_conflicts_by_code(
    client: FlaskClient, game: Game
) -> None:
    grant(client, game, "p1", "COINS", 60)  # a stored key on the grants route
    key = new_key()
    assert buy(client, game, "potion", key=key).status_code == 201  # stored
    replayed = buy(client, game, "potion", key=key)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    broke = new_key()
    assert buy(client, game, "potion", key=broke).status_code == 409  # a final 409: stored
    again = buy(client, game, "potion", key=broke)
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (409, "true")
    assert buy(client, game, "no-such-sku").status_code == 404  # not a final outcome: not stored
    no_key = client.post("/v1/purchases", json={"sku": "potion"}, headers=game.headers())
    assert no_key.status_code == 400  # no key at all: nothing stored

    samples = scrape(client)
    purchases = "/v1/purchases"
    assert value(samples, "shopkeep_idempotency_keys_stored_total", endpoint=purchases) == 2
    assert (
        value(
            samples,
            "shopkeep_idempotency_keys_stored_total",
            endpoint="/v1/players/{player_id}/grants",
        )
        == 1
    )
    assert value(samples, "shopkeep_idempotency_replays_total", endpoint=purchases) == 2
    assert (
        value(
            samples, "shopkeep_http_conflicts_total", endpoint=purchases, code="insufficient_funds"
        )
        == 2
    )
    assert value(samples, "shopkeep_purchases_total", outcome="replayed") == 2


def test_a_reused_key_is_neither_stored_nor_a_conflict(client: FlaskClient, game: Game) -> None:
    """422 idempotency_key_reused (the same key, another body) is no stored outcome."""
    grant(client, game, "p1", "COINS", 200)
    key = new_key()
    assert buy(client, game, "potion", key=key).status_code == 201
    reused = buy(client, game, "potion", key=key, quantity=2)
    assert (reused.status_code, reused.get_json()["error"]["code"]) == (
        422,
        "idempotency_key_reused",
    )
    samples = scrape(client)
    assert value(samples, "shopkeep_idempotency_keys_stored_total", endpoint="/v1/purchases") == 1
    assert value(samples, "shopkeep_idempotency_replays_total", endpoint="/v1/purchases") == 0
    assert not [key for key in samples if key[0] == "shopkeep_http_conflicts_total"]


# ---------------------------------------------------------------------------------------------
# The pool: a real PooledDatabase on the committed database, as the server's role
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def pooled(database_url: str) -> Iterator[tuple[Flask, db.PooledDatabase]]:
    config = make_config(app_database_url(database_url), pool_min=1, pool_max=1, pool_timeout=5.0)
    database = db.PooledDatabase(config, config.database_url or "", open_wait=True)
    try:
        yield create_app(config, database=database), database
    finally:
        database.close()


def test_pool_gauges_and_waiting(
    pooled: tuple[Flask, db.PooledDatabase], committed_game: Game
) -> None:
    app, database = pooled
    client = app.test_client()
    samples = scrape(client)
    assert value(samples, "shopkeep_db_pool_size") == 1
    assert value(samples, "shopkeep_db_pool_max") == 1
    assert value(samples, "shopkeep_db_pool_in_use") == 0
    assert value(samples, "shopkeep_db_pool_waiting") == 0

    held = database.pool.getconn()  # the only connection: the next unit of work must wait
    answers: list[int] = []
    waiter = threading.Thread(
        target=lambda: answers.append(
            app.test_client().get("/v1/wallet", headers=committed_game.headers()).status_code
        )
    )
    try:
        assert value(scrape(client), "shopkeep_db_pool_in_use") == 1
        waiter.start()
        seen_waiting = False
        for _ in range(500):  # until the request is queued (bounded: the pool times out in 5 s)
            if value(scrape(client), "shopkeep_db_pool_waiting") == 1:
                seen_waiting = True
                break
            threading.Event().wait(0.01)
        assert seen_waiting
    finally:
        database.pool.putconn(held)
        waiter.join(30)
    assert answers == [200]
    samples = scrape(client)
    assert value(samples, "shopkeep_db_pool_waiting") == 0
    # Every unit of work that asked for a connection is in the wait histogram.
    assert value(samples, "shopkeep_db_pool_wait_seconds_count") >= 1
    assert value(samples, "shopkeep_db_pool_timeouts_total") == 0


@pytest.mark.skipif(
    pgbouncer.enabled(),
    reason="ends the server process of an idle pooled connection: through PgBouncer in"
    " transaction mode an idle client has none",
)
def test_a_pool_timeout_and_a_database_error_are_counted(
    pooled: tuple[Flask, db.PooledDatabase], committed_game: Game, database_url: str
) -> None:
    app, database = pooled
    client = app.test_client()
    held = database.pool.getconn()
    try:
        database._timeout = 1.0  # the request gives up after 1 s rather than 5
        starved = client.get("/v1/wallet", headers=committed_game.headers())
    finally:
        database.pool.putconn(held)
    assert starved.status_code == 503
    # The pool's one connection is ended by the administrator: the next request fails on it.
    pid = held.info.backend_pid
    with db.connect(database_url) as owner:
        assert owner.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
    broken = client.get("/v1/wallet", headers=committed_game.headers())
    assert broken.status_code == 503, broken.get_json()
    samples = scrape(client)
    assert value(samples, "shopkeep_db_pool_timeouts_total") == 1
    errors = {
        dict(labels)["sqlstate_class"]: count
        for (name, labels), count in samples.items()
        if name == "shopkeep_database_errors_total"
    }
    # 57P01 admin_shutdown when the client reads the server's goodbye, or a bare broken
    # socket ("none") when it does not: one error either way.
    assert sum(errors.values()) == 1 and set(errors) <= {"57", "none", "08"}, errors


# ---------------------------------------------------------------------------------------------
# The purge
# ---------------------------------------------------------------------------------------------


def _expired_keys(conn: psycopg.Connection, game: Game, count: int) -> None:
    for n in range(count):
        conn.execute(
            "INSERT INTO idempotency_keys (game_id, subject, key, fingerprint, status,"
            " response_body, expires_at) VALUES (%s, 'p1', %s, 'f', 201, '{}',"
            " now() - interval '1 day')",
            (game.id, f"expired-metrics-{n:04d}"),
        )


def test_the_purge_is_counted(database_url: str, committed_game: Game) -> None:
    metrics = Metrics()
    janitor = Janitor(make_config(app_database_url(database_url)), metrics)
    registry: Any = metrics.registry
    with db.connect(database_url) as owner:
        _expired_keys(owner, committed_game, 3)
        # Another process purging right now: this one skips.
        with lock_held(owner, PURGE_LOCK):
            assert janitor.purge_once() is None
        assert (
            registry.get_sample_value("shopkeep_idempotency_purges_total", {"result": "skipped"})
            == 1
        )
        assert registry.get_sample_value("shopkeep_idempotency_last_purge_timestamp_seconds") == 0

        purged = janitor.purge_once()
        left = owner.execute(
            "SELECT count(*) FROM idempotency_keys WHERE game_id = %s", (committed_game.id,)
        ).fetchone()
    assert purged is not None and purged >= 3  # and any other test's expired keys
    assert left == (0,)
    assert registry.get_sample_value("shopkeep_idempotency_keys_purged_total") == purged
    assert registry.get_sample_value("shopkeep_idempotency_purges_total", {"result": "done"}) == 1
    assert registry.get_sample_value("shopkeep_idempotency_last_purge_timestamp_seconds") > 0


def test_a_failed_purge_is_counted(database_url: str) -> None:
    metrics = Metrics()
    broken = make_config(roles.login_url(app_database_url(database_url), "nobody-at-all"))
    assert Janitor(broken, metrics).purge_once() is None
    assert (
        metrics.registry.get_sample_value("shopkeep_idempotency_purges_total", {"result": "failed"})
        == 1
    )
