"""The connection pool's bounds from the configuration: how many requests may wait for a
connection (beyond: 503 at once), and how long a failed connection is re-tried before the
back-off starts again (SHOPKEEP_POOL_MAX_WAITING, SHOPKEEP_POOL_RECONNECT_TIMEOUT)."""

from __future__ import annotations

import threading
import time

import pytest

from shopkeep_server import db
from shopkeep_server.config import Config, ConfigError
from support import make_config


def test_the_settings_and_their_defaults() -> None:
    defaults = Config.from_env({})
    assert (defaults.pool_max_waiting, defaults.pool_reconnect_timeout) == (0, 10.0)
    config = Config.from_env(
        {"SHOPKEEP_POOL_MAX_WAITING": "50", "SHOPKEEP_POOL_RECONNECT_TIMEOUT": "30"}
    )
    assert (config.pool_max_waiting, config.pool_reconnect_timeout) == (50, 30.0)
    with pytest.raises(ConfigError, match="SHOPKEEP_POOL_RECONNECT_TIMEOUT must be at least 2"):
        Config.from_env({"SHOPKEEP_POOL_RECONNECT_TIMEOUT": "1"})


def test_the_pool_is_built_with_them(database_url: str) -> None:
    database = db.PooledDatabase(
        make_config(database_url, pool_max_waiting=7, pool_reconnect_timeout=12.0), database_url
    )
    try:
        assert (database.pool.max_waiting, database.pool.reconnect_timeout) == (7, 12.0)
    finally:
        database.close()


def test_a_request_beyond_the_waiting_bound_is_refused_at_once(database_url: str) -> None:
    database = db.PooledDatabase(
        make_config(database_url, pool_min=1, pool_max=1, pool_max_waiting=1, pool_timeout=30.0),
        database_url,
        open_wait=True,
    )
    got: list[bool] = []

    def wait_for_one() -> None:
        with database.connection() as conn:
            got.append(conn.execute("SELECT true").fetchone() == (True,))

    try:
        with database.connection():  # the pool's one connection, held
            waiter = threading.Thread(target=wait_for_one)
            waiter.start()
            deadline = time.monotonic() + 20
            while database.pool.get_stats().get("requests_waiting", 0) < 1:
                assert time.monotonic() < deadline, "the waiter never queued"
                time.sleep(0.01)
            with pytest.raises(db.DatabaseUnavailable), database.connection():
                pass
        waiter.join(timeout=30)
        assert got == [True]  # the one waiting got the connection once it was free
    finally:
        database.close()
