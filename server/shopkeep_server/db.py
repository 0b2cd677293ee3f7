"""Database access: the connection pool, transactions, retries and migrations."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any, Protocol, TypeVar

import psycopg
import psycopg.errors
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout, TooManyRequests

from .config import MIN_IDEMPOTENCY_TTL, Config

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


class StoreConnection(psycopg.Connection[tuple[Any, ...]]):
    """The pool's connections: a psycopg connection that keeps one cursor for the store's
    one-statement operations (:func:`statement_cursor`). ``conn.execute`` makes a cursor for
    every statement, and with it a new transformer that looks up the dumper of each parameter
    and the loader of each column again: for a purchase's fourteen parameters that was a fifth
    of the client's CPU per statement (about 20 µs of 90 measured)."""

    _kept_cursor: psycopg.Cursor[tuple[Any, ...]] | None = None

    def kept_cursor(self) -> psycopg.Cursor[tuple[Any, ...]]:
        cursor = self._kept_cursor
        if cursor is None or cursor.closed:
            cursor = self._kept_cursor = self.cursor()
        return cursor


def statement_cursor(conn: psycopg.Connection) -> psycopg.Cursor[Any]:
    """A cursor to run one statement on ``conn`` with: the pooled connection's kept one (a
    connection serves one unit of work at a time, so its cursor does too), a new one on any
    other connection (the tests' shared one, the command line's)."""
    if isinstance(conn, StoreConnection):
        return conn.kept_cursor()
    return conn.cursor()


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
        self.pool: ConnectionPool[StoreConnection] = ConnectionPool(
            url,
            connection_class=StoreConnection,
            min_size=config.pool_min,
            max_size=max(config.pool_max, config.pool_min, 1),
            kwargs={"autocommit": True, "prepare_threshold": _prepare_threshold(config)},
            configure=lambda conn: _configure(conn, config.statement_timeout_ms),
            timeout=config.pool_timeout,
            max_waiting=config.pool_max_waiting,
            # psycopg_pool re-tries a failed connection with doubling waits for this long, then
            # gives up and starts again at 1 s when a request needs one: a short timeout caps
            # the waits, so after a failover the pool finds the new primary within seconds
            # however long the outage was (with the default 300 s, 24 s after a 34 s outage).
            reconnect_timeout=config.pool_reconnect_timeout,
            name="shopkeep",
            open=False,
        )
        self.pool.open(wait=open_wait, timeout=config.pool_timeout)
        # Told how long each unit of work waited for its connection (the metrics set it).
        self.on_wait: Callable[[float], None] | None = None

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        asked = time.perf_counter()
        try:
            with self.pool.connection(timeout=self._timeout) as conn:
                self._waited(asked)
                yield conn
        except (PoolTimeout, TooManyRequests) as exc:
            self._waited(asked)
            raise DatabaseUnavailable(str(exc)) from exc

    def _waited(self, asked: float) -> None:
        if self.on_wait is not None:
            self.on_wait(time.perf_counter() - asked)

    def close(self) -> None:
        self.pool.close()


class SingleConnectionDatabase:
    """One connection shared by every request: the test fixture wraps it in a transaction that
    is rolled back, so each fast test starts from the same state."""

    def __init__(self, conn: psycopg.Connection, *, role: str | None = None) -> None:
        self.conn = conn
        self.role = role

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        # A savepoint per unit of work: a failed statement undoes only its own unit, as it
        # would on an autocommit connection, and the test's transaction stays usable.
        with self.conn.transaction():
            if self.role is None:
                yield self.conn
                return
            # Each unit runs with the privileges of ``role`` (the server's), and the fixture's
            # own statements around it with the connection's; a failed unit's rollback undoes
            # the SET ROLE by itself.
            self.conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(self.role)))
            yield self.conn
            self.conn.execute("RESET ROLE")

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
# Migrations. Two kinds of SQL, both applied by migrate() in one transaction under one lock:
# - migrations/NNNN_*.sql: versioned history, each applied once, recorded in schema_migrations
#   with its sha256. An applied file must never change (MigrationChanged): a change of schema
#   is a new numbered file.
# - sql/*.sql: the money functions, code rather than history. Every file is CREATE OR REPLACE
#   and all of them are run again, in name order, whenever any of them differs from what
#   schema_functions records: edit one file and the next start runs it.
# ---------------------------------------------------------------------------------------------

MIGRATIONS_LOCK = 0x5E0B_0001


@dataclasses.dataclass(frozen=True, slots=True)
class SqlFile:
    """One shipped SQL file; ``checksum`` is the sha256 of its bytes."""

    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


class MigrationError(Exception):
    """The database's recorded migrations do not fit the shipped files: the server and
    ``shopkeep-server migrate`` stop with this message rather than guess."""


class MigrationChanged(MigrationError):
    """A migration applied to this database has been edited since."""

    def __init__(self, name: str, recorded: str, current: str) -> None:
        self.name, self.recorded, self.current = name, recorded, current
        super().__init__(
            f"migration {name} was changed after it was applied to this database"
            f" (recorded sha256 {recorded}, shipped file {current}). Applied migrations are"
            f" history: restore {name} as it was, and put the change in a new migration file"
            " with the next number."
        )


def _sql_files(package: str) -> list[SqlFile]:
    found = [
        # Bytes, not read_text: no newline translation, so the checksum is the file's own.
        SqlFile(entry.name, entry.read_bytes().decode("utf-8"))
        for entry in resources.files(package).iterdir()
        if entry.name.endswith(".sql")
    ]
    return sorted(found, key=lambda f: f.name)


def migration_files() -> list[tuple[int, str, str]]:
    """(number, name, sql) of every migration shipped with the package, in order."""
    found = sorted(
        (int(f.name.split("_", 1)[0]), f.name, f.sql)
        for f in _sql_files("shopkeep_server.migrations")
    )
    numbers = [n for n, _, _ in found]
    if len(set(numbers)) != len(numbers):
        raise RuntimeError(f"two migrations share a number: {numbers}")
    return found


def function_files() -> list[SqlFile]:
    """The files of shopkeep_server/sql/, in the order they are applied (by name)."""
    return _sql_files("shopkeep_server.sql")


def migrate(conn: psycopg.Connection) -> list[str]:
    """Applies the migrations not yet applied (returns their names), then the function files
    if they changed. Safe to run from several processes at once: an advisory lock lets one do
    the work while the others wait. Raises MigrationError when an applied migration changed."""
    applied_now: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATIONS_LOCK,))
        # Looked up, not CREATE TABLE IF NOT EXISTS: a start with nothing to do runs no DDL.
        if conn.execute("SELECT to_regclass('schema_migrations') IS NULL").fetchone() == (True,):
            conn.execute(
                "CREATE TABLE schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now(), checksum text)"
            )
        shipped = migration_files()
        recorded = _recorded_migrations(conn, {number for number, _, _ in shipped})
        for number, name, sql in shipped:
            checksum = SqlFile(name, sql).checksum
            if number in recorded:
                _check_applied(conn, number, name, checksum, *recorded[number])
                continue
            log.info("applying migration %s", name)
            conn.execute(sql)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (number, name, checksum),
            )
            applied_now.append(name)
        apply_functions(conn)
        # A fresh or upgraded database has the partitions of its idempotency keys and events at
        # once; the server's purges make the days ahead from then on (for the TTL it is
        # configured with).
        from .store import events
        from .store.idempotency import add_partitions

        add_partitions(conn, MIN_IDEMPOTENCY_TTL)
        events.add_partitions(conn)
    return applied_now


def _recorded_migrations(
    conn: psycopg.Connection, shipped: set[int]
) -> dict[int, tuple[str, str | None]]:
    has_checksum = conn.execute(
        "SELECT 1 FROM pg_attribute WHERE attrelid = 'schema_migrations'::regclass"
        " AND attname = 'checksum' AND NOT attisdropped"
    ).fetchone()
    if not has_checksum:  # recorded by a release before checksums: the column is new
        conn.execute("ALTER TABLE schema_migrations ADD COLUMN checksum text")
    rows = conn.execute("SELECT version, name, checksum FROM schema_migrations").fetchall()
    newer = sorted(name for version, name, _ in rows if version not in shipped)
    if newer:
        raise MigrationError(
            f"this database has migrations this release does not ship ({', '.join(newer)}):"
            " it was migrated by a newer release; run that release (or a later one)."
        )
    return {version: (name, checksum) for version, name, checksum in rows}


def _check_applied(
    conn: psycopg.Connection,
    number: int,
    name: str,
    checksum: str,
    recorded_name: str,
    recorded_checksum: str | None,
) -> None:
    if recorded_checksum is None:
        # Trust on first use: this migration was applied by a release that recorded no
        # checksums, so the shipped file is taken as what was applied. From now on an edit of
        # it is caught.
        log.info("recording the checksum of migration %s (applied before checksums)", name)
        conn.execute(
            "UPDATE schema_migrations SET checksum = %s WHERE version = %s", (checksum, number)
        )
    elif recorded_checksum != checksum or recorded_name != name:
        raise MigrationChanged(
            name if recorded_name == name else f"{recorded_name} (now {name})",
            recorded_checksum,
            checksum,
        )


def apply_functions(conn: psycopg.Connection) -> list[str]:
    """Re-applies every function file when any differs from what schema_functions records;
    returns the files applied (none on an unchanged start, which does no DDL). Runs in the
    caller's transaction, under the migration lock.

    Before the files run, every ``sk_`` function in the schema is dropped except trigger
    functions (tables' triggers use them), so a function removed from the files or given
    another signature does not linger. No CASCADE: a function something else depends on makes
    the drop, and so the start, fail loudly."""
    files = function_files()
    recorded: dict[str, str] = dict(
        conn.execute("SELECT name, checksum FROM schema_functions").fetchall()
    )
    if recorded == {f.name: f.checksum for f in files}:
        return []
    log.info("applying the function files: %s", ", ".join(f.name for f in files))
    conn.execute(
        "DO $$ DECLARE f regprocedure; BEGIN"
        " FOR f IN SELECT p.oid FROM pg_proc p"
        "  WHERE p.pronamespace = current_schema()::text::regnamespace AND p.prokind = 'f'"
        "    AND p.proname LIKE 'sk\\_%' AND p.prorettype <> 'trigger'::regtype LOOP"
        "  EXECUTE 'DROP FUNCTION ' || f;"
        " END LOOP; END $$"
    )
    for file in files:
        conn.execute(file.sql)
    conn.execute("DELETE FROM schema_functions")
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO schema_functions (name, checksum) VALUES (%s, %s)",
            [(f.name, f.checksum) for f in files],
        )
    return [f.name for f in files]


def _prepare_threshold(config: Config) -> int | None:
    # None: never prepare. psycopg prepares a statement run 5 times on a connection; through
    # PgBouncer < 1.21 in transaction mode the next run may reach a server connection that
    # lacks it (or holds another client's statement of the same name).
    return 5 if config.prepared_statements else None


def connect(url: str, config: Config | None = None) -> psycopg.Connection:
    """A plain autocommit connection for command-line work."""
    threshold = _prepare_threshold(config or Config())
    return psycopg.connect(url, autocommit=True, prepare_threshold=threshold)
