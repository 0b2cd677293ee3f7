"""The request rate limit across processes (runtime/rate_limit.py): with the shared scope, every
process and host counts one account's requests in one PostgreSQL row per window, so together
they allow the configured rate and no more; the process scope counts per process."""

from __future__ import annotations

import concurrent.futures
import itertools
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from flask import Flask

from shopkeep_server import db, roles
from shopkeep_server.app import create_app
from shopkeep_server.config import Config, ConfigError
from shopkeep_server.runtime.rate_limit import purge_ended_windows
from support import Game, make_config, start_server, stop_server


def two_processes(conn: psycopg.Connection, spec: str, scope: str) -> list[Flask]:
    """Two applications, as two server processes would be: each with its own limiter (and, for
    the process scope, its own memory), on the same database."""
    return [
        create_app(
            make_config(rate_limit=spec, rate_limit_scope=scope),
            database=db.SingleConnectionDatabase(conn, role=roles.APP_ROLE),
        )
        for _ in range(2)
    ]


def wallet_statuses(apps: list[Flask], game: Game, count: int, sub: str = "p1") -> list[int]:
    clients = itertools.cycle([app.test_client() for app in apps])
    return [
        next(clients).get("/v1/wallet", headers=game.headers("player", sub)).status_code
        for _ in range(count)
    ]


def test_the_scope_is_shared_unless_set_to_process() -> None:
    assert Config.from_env({}).rate_limit_scope == "shared"
    assert Config.from_env({"SHOPKEEP_RATE_LIMIT_SCOPE": "Process"}).rate_limit_scope == "process"
    with pytest.raises(ConfigError, match="SHOPKEEP_RATE_LIMIT_SCOPE must be one of shared"):
        Config.from_env({"SHOPKEEP_RATE_LIMIT_SCOPE": "host"})


def test_two_processes_share_one_limit(conn: psycopg.Connection, game: Game) -> None:
    # The test's transaction keeps now() still: every request is in the same window.
    statuses = wallet_statuses(two_processes(conn, "10/hour", "shared"), game, 30)
    assert statuses == [200] * 10 + [429] * 20
    # Another account has its own budget.
    other = wallet_statuses(two_processes(conn, "10/hour", "shared"), game, 1, sub="p2")
    assert other == [200]


def test_per_process_the_limit_is_times_the_processes(conn: psycopg.Connection, game: Game) -> None:
    statuses = wallet_statuses(two_processes(conn, "10/hour", "process"), game, 30)
    assert statuses.count(200) == 20


def test_the_refusal_says_when_to_come_back(conn: psycopg.Connection, game: Game) -> None:
    app = two_processes(conn, "2/hour", "shared")[0]
    client = app.test_client()
    for _ in range(2):
        assert client.get("/v1/wallet", headers=game.headers()).status_code == 200
    refused = client.get("/v1/wallet", headers=game.headers())
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert refused.get_json()["error"]["message"] == "at most 2 per 1 hour per account"
    window_end = conn.execute(
        "SELECT ceil(extract(epoch FROM window_end - now()))::int FROM rate_limit_windows"
        " WHERE game_id = %s AND subject = 'p1'",
        (game.id,),
    ).fetchone()
    assert window_end is not None and 1 <= window_end[0] <= 3600
    assert refused.headers["Retry-After"] == str(window_end[0])


def test_every_rule_counts_and_the_strictest_refuses(conn: psycopg.Connection, game: Game) -> None:
    app = two_processes(conn, "5/hour;3/day", "shared")[0]
    statuses = wallet_statuses([app], game, 5)
    assert statuses == [200, 200, 200, 429, 429]
    hits = dict(
        conn.execute(
            "SELECT rule, hits FROM rate_limit_windows WHERE game_id = %s AND subject = 'p1'",
            (game.id,),
        ).fetchall()
    )
    assert hits == {"5 per 1 hour": 5, "3 per 1 day": 5}


def test_a_new_window_starts_from_one(conn: psycopg.Connection, game: Game) -> None:
    app = two_processes(conn, "2/hour", "shared")[0]
    assert wallet_statuses([app], game, 3) == [200, 200, 429]
    # The window ended (as an hour later).
    conn.execute(
        "UPDATE rate_limit_windows SET window_end = now() - interval '1 second' WHERE game_id = %s",
        (game.id,),
    )
    assert wallet_statuses([app], game, 3) == [200, 200, 429]


def test_the_counters_of_ended_windows_are_purged(conn: psycopg.Connection, game: Game) -> None:
    app = two_processes(conn, "2/hour", "shared")[0]
    wallet_statuses([app], game, 1, sub="p1")
    wallet_statuses([app], game, 1, sub="p2")
    conn.execute(
        "UPDATE rate_limit_windows SET window_end = now() - interval '1 second'"
        " WHERE game_id = %s AND subject = 'p1'",
        (game.id,),
    )
    assert purge_ended_windows(conn, batch=1) >= 1
    left = conn.execute(
        "SELECT subject FROM rate_limit_windows WHERE game_id = %s", (game.id,)
    ).fetchall()
    assert left == [("p2",)]


@pytest.mark.slow
def test_two_servers_together_allow_the_configured_rate(database_url: str, tmp_path: Path) -> None:
    """Two `shopkeep-server serve`, two gunicorn workers each (four processes), one account's
    requests spread over them: exactly the configured number pass."""
    limit, sent = 12, 48
    env = {"SHOPKEEP_RATE_LIMIT": f"{limit}/hour"}
    servers = [
        start_server(database_url, tmp_path / f"server{n}.log", workers=2, env=env)
        for n in range(2)
    ]
    try:
        game = servers[0].new_game()
        for attempt in range(2):
            sub = f"limited-{attempt}"
            token = game.token("player", sub)
            with psycopg.connect(database_url) as conn:
                before = conn.execute("SELECT date_trunc('hour', now())").fetchone()

            def call(n: int, token: str = token) -> httpx.Response:
                return httpx.get(
                    f"{servers[n % 2].url}/v1/wallet",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=30,
                )

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                responses = list(pool.map(call, range(sent)))
            with psycopg.connect(database_url) as conn:
                after = conn.execute("SELECT date_trunc('hour', now())").fetchone()
            if before == after:
                break  # one window: otherwise (an hour struck meanwhile) again, once
        statuses = [r.status_code for r in responses]
        assert statuses.count(200) == limit
        assert statuses.count(429) == sent - limit
        refused: list[Any] = [r for r in responses if r.status_code == 429]
        assert {r.json()["error"]["code"] for r in refused} == {"rate_limited"}
        assert all(1 <= int(r.headers["Retry-After"]) <= 3600 for r in refused)
    finally:
        for server in servers:
            stop_server(server)
