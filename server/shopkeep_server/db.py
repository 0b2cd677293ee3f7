"""Database access: the connection pool, transactions, retries and migrations."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Protocol, TypeVar

import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool, PoolTimeout

from .config import Config

log = logging.getLogger(__name__)

T = TypeVar("T")

# Deadlocks and serialization failures are retried inside the server, never surfaced.
RETRYABLE = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)
MAX_ATTEMPTS = 5


class DatabaseUnavailable(Exception):
    """No connection could be had in time: the API answers 503 with Retry-After."""


class Database(Protocol):
    """Hands out connections; the application never opens one by itself."""

    def connection(self) -> contextlib.AbstractContextManager[psycopg.Connection]: ...

    def close(self) -> None: ...


def _configure(conn: psycopg.Connection, statement_timeout_ms: int) -> None:
    conn.execute(
        "SELECT set_config('statement_timeout', %s, false), set_config('TimeZone', 'UTC', false)",
        (str(statement_timeout_ms),),
    )


class PooledDatabase:
    """A psycopg_pool pool of autocommit connections: a single statement is one round trip,
    and a multi-statement unit opens ``conn.transaction()`` explicitly."""

    def __init__(self, config: Config, url: str, *, open_wait: bool = False) -> None:
        self._timeout = config.pool_timeout
        self.pool = ConnectionPool(
            url,
            min_size=config.pool_min,
            max_size=max(config.pool_max, config.pool_min, 1),
            kwargs={"autocommit": True},
            configure=lambda conn: _configure(conn, config.statement_timeout_ms),
            timeout=config.pool_timeout,
            name="shopkeep",
            open=False,
        )
        self.pool.open(wait=open_wait, timeout=config.pool_timeout)

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        try:
            with self.pool.connection(timeout=self._timeout) as conn:
                yield conn
        except PoolTimeout as exc:
            raise DatabaseUnavailable(str(exc)) from exc

    def close(self) -> None:
        self.pool.close()


class SingleConnectionDatabase:
    """One connection shared by every request: the test fixture wraps it in a transaction that
    is rolled back, so each fast test starts from the same state."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        # A savepoint per unit of work: a failed statement undoes only its own unit, as it
        # would on an autocommit connection, and the test's transaction stays usable.
        with self.conn.transaction():
            yield self.conn

    def close(self) -> None:
        """The fixture owns the connection."""


def run_with_retry(db: Database, work: Callable[[psycopg.Connection], T]) -> T:
    """Runs ``work`` with a connection, again from the start on a deadlock or serialization
    failure; ``work`` must be one transaction (or one statement) so a rerun is safe."""
    delay = 0.005
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with db.connection() as conn:
                return work(conn)
        except RETRYABLE:
            if attempt == MAX_ATTEMPTS:
                raise
            log.info("retrying after a transient conflict (attempt %d)", attempt)
            time.sleep(delay)
            delay *= 2
        except psycopg.OperationalError as exc:
            if _is_connection_failure(exc):
                raise DatabaseUnavailable(str(exc)) from exc
            raise
    raise AssertionError("unreachable")


def _is_connection_failure(exc: psycopg.OperationalError) -> bool:
    sqlstate = exc.sqlstate or ""
    # Class 08 is connection exceptions; 57P0x are shutdowns; a bare OperationalError with no
    # SQLSTATE is a broken socket.
    return sqlstate == "" or sqlstate.startswith("08") or sqlstate.startswith("57P0")


# ---------------------------------------------------------------------------------------------
# Migrations: numbered SQL files, each applied once, recorded in schema_migrations.
# ---------------------------------------------------------------------------------------------

MIGRATIONS_LOCK = 0x5E0B_0001


def migration_files() -> list[tuple[int, str, str]]:
    """(number, name, sql) of every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("shopkeep_server.migrations").iterdir():
        name = entry.name
        if not name.endswith(".sql"):
            continue
        number = int(name.split("_", 1)[0])
        found.append((number, name, entry.read_text(encoding="utf-8")))
    found.sort()
    numbers = [n for n, _, _ in found]
    if len(set(numbers)) != len(numbers):
        raise RuntimeError(f"two migrations share a number: {numbers}")
    return found


def migrate(conn: psycopg.Connection) -> list[str]:
    """Applies the migrations not yet applied; returns their names. Safe to run from several
    processes at once: an advisory lock lets one do the work while the others wait."""
    applied_now: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATIONS_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for number, name, sql in migration_files():
            if number in done:
                continue
            log.info("applying migration %s", name)
            conn.execute(sql)
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (number, name)
            )
            applied_now.append(name)
    return applied_now


def connect(url: str) -> psycopg.Connection:
    """A plain autocommit connection for command-line work."""
    return psycopg.connect(url, autocommit=True)
