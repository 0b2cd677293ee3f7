"""Exactly-once execution of state-changing operations, keyed by (game, subject, key).

The outcome (status and the exact response body) is stored in the transaction that made the
effects, so it exists exactly when the effects do. Money operations run entirely inside
PostgreSQL (``sk_purchase`` and its siblings in shopkeep_server/sql/: one round trip); studio
operations use :func:`run_once`, which uses the same SQL functions to claim and finish the key.

The store knows nothing of HTTP: a key arrives with an opaque fingerprint of the operation it
was first used for, made by the caller (the API hashes the request; other callers use
:func:`operation_fingerprint`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, LiteralString

import psycopg
import psycopg.errors

from ..config import MIN_IDEMPOTENCY_TTL
from ..db import statement_cursor
from ..errors import STORED_REJECTIONS, StoreError, error_body, from_database

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """A final outcome: replayed byte for byte when the same key comes again."""

    status: int
    body: str
    replayed: bool


@dataclasses.dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """An idempotency key as the store needs it: ``value`` is the key itself; its scope,
    (game, subject), is given with the operation.

    ``fingerprint`` is opaque here: the same key with another fingerprint is refused
    (idempotency_key_reused). ``request_id`` goes into a stored rejection's envelope;
    ``ttl_seconds`` is how long the outcome is kept, ``wait_ms`` how long a duplicate waits for
    its in-flight twin before idempotency_key_in_use."""

    value: str
    fingerprint: str
    request_id: str
    ttl_seconds: int
    wait_ms: int


def key_params(game: str, subject: str, key: IdempotencyKey) -> tuple[Any, ...]:
    """The parameters every money operation's SQL function starts with (``KEY_ARGS``)."""
    return (game, subject, key.value, key.fingerprint, key.ttl_seconds, key.wait_ms, key.request_id)


# The placeholders of key_params in an operation's statement: each sk_ operation takes the game,
# the subject, the key, its fingerprint, its TTL, its wait and the request id first.
KEY_ARGS = "%s, %s, %s, %s, %s::integer, %s::integer, %s"


def operation_fingerprint(operation: str, **arguments: Any) -> str:
    """A fingerprint for callers that are not HTTP requests (the demo's seeding, tests):
    sha256 of the operation's name and the canonical JSON of its arguments."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{operation}\n{canonical}".encode()).hexdigest()


def render(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


@contextmanager
def domain_errors() -> Iterator[None]:
    """Turns the errors the SQL functions raise into the domain's error classes."""
    try:
        yield
    except psycopg.Error as exc:
        error = from_database(exc)
        if error is None:
            raise
        raise error from exc


def run_operation(
    conn: psycopg.Connection, statement: LiteralString, params: tuple[Any, ...]
) -> Outcome:
    """Runs one of the SQL money operations: ``statement`` selects (status, body, replayed)
    from it. One statement: one transaction, one round trip (on the pooled connection's kept
    cursor: db.statement_cursor)."""
    with domain_errors():
        row = statement_cursor(conn).execute(statement, params).fetchone()
    assert row is not None
    return Outcome(status=row[0], body=row[1], replayed=row[2])


def run_once(
    conn: psycopg.Connection,
    game: str,
    subject: str,
    key: IdempotencyKey,
    work: Callable[[psycopg.Connection], tuple[int, Any]],
) -> Outcome:
    """Runs ``work`` once per (game, subject, key) in one transaction with its stored outcome.
    A business rejection (a 409) is stored and its effects rolled back; any other error
    stores nothing."""
    with domain_errors(), conn.transaction():
        row = conn.execute(
            "SELECT status, body FROM sk_idempotency_begin(%s, %s, %s, %s, %s, %s)",
            (game, subject, key.value, key.fingerprint, key.ttl_seconds, key.wait_ms),
        ).fetchone()
        assert row is not None
        if row[0] is not None:
            return Outcome(status=row[0], body=row[1], replayed=True)
        try:
            with conn.transaction():
                status, payload = work(conn)
            body = render(payload)
        except StoreError as exc:
            if exc.code not in STORED_REJECTIONS:
                raise
            status = exc.status
            body = render(error_body(exc.code, exc.message, exc.details, key.request_id))
        conn.execute(
            "SELECT sk_idempotency_finish(%s, %s, %s, %s, %s, %s, %s)",
            (game, subject, key.value, key.fingerprint, key.ttl_seconds, status, body),
        )
    return Outcome(status=status, body=body, replayed=False)


PURGE_LOCK = 0x5E0B_0002
# Partitions of idempotency_keys (one per UTC day of expiry, migration 0012) are made this many
# days beyond the TTL: the purge runs hourly, so a stopped purge leaves a day to notice before
# new keys land in the default partition (where they still work, purged in batches). Not more:
# every claim's lookup reads each partition from today on (sql/10_idempotency.sql).
PARTITION_MARGIN_DAYS = 1


def add_partitions(conn: psycopg.Connection, ttl_seconds: int) -> int:
    """Makes the missing day partitions up to the TTL and the margin ahead; returns how many.
    Safe from several processes at once: a partition made by another is skipped."""
    with warnings_logged(conn):
        row = conn.execute(
            "SELECT sk_idempotency_add_partitions(now() + make_interval(days => %s, secs => %s))",
            (PARTITION_MARGIN_DAYS, ttl_seconds),
            prepare=False,
        ).fetchone()
    return int(row[0]) if row else 0


def purge_expired(
    conn: psycopg.Connection, *, ttl_seconds: int = MIN_IDEMPOTENCY_TTL, batch: int = 10_000
) -> int:
    """Expires keys: makes the partitions ahead, drops the partitions whose day is over and
    deletes the expired keys of the default partition in batches (short transactions). Returns
    how many keys went (the dropped partitions' by PostgreSQL's estimate). A key expired in a
    day not over yet is no longer replayed, and goes with its partition."""
    return _purge(conn, ttl_seconds=ttl_seconds, batch=batch, exclusive=False) or 0


def purge_if_free(
    conn: psycopg.Connection, *, ttl_seconds: int = MIN_IDEMPOTENCY_TTL
) -> int | None:
    """Purges unless another process is purging right now (then None): every server worker
    may call this on a timer, and one does the work."""
    return _purge(conn, ttl_seconds=ttl_seconds, batch=10_000, exclusive=True)


def _purge(
    conn: psycopg.Connection, *, ttl_seconds: int, batch: int, exclusive: bool
) -> int | None:
    # Each step and each batch is one transaction, and an exclusive purge takes the lock inside
    # it with pg_try_advisory_xact_lock: a transaction-scoped lock is safe through PgBouncer in
    # transaction mode, where a session lock could stay behind on a server connection another
    # client gets next. A purger that finds the lock taken stops: the holder goes on.
    # prepare=False: a pooler of that mode cannot keep a prepared statement for us either.
    def locked() -> bool:
        if not exclusive:
            return True
        row = conn.execute(
            "SELECT pg_try_advisory_xact_lock(%s)", (PURGE_LOCK,), prepare=False
        ).fetchone()
        return bool(row and row[0])

    with conn.transaction():
        if not locked():
            return None
        add_partitions(conn, ttl_seconds)
    with conn.transaction():
        if not locked():
            return None
        with warnings_logged(conn):
            row = conn.execute(
                "SELECT keys FROM sk_idempotency_drop_partitions()", prepare=False
            ).fetchone()
    total = int(row[0]) if row else 0
    while True:
        with conn.transaction():
            if not locked():
                return total
            row = conn.execute(
                "SELECT sk_idempotency_purge_default(%s)", (batch,), prepare=False
            ).fetchone()
        deleted = int(row[0]) if row else 0
        total += deleted
        if deleted < batch:
            return total


@contextmanager
def warnings_logged(conn: psycopg.Connection) -> Iterator[None]:
    """The maintenance functions' warnings (a partition left for the next run) in the log."""

    def handler(diagnostic: psycopg.errors.Diagnostic) -> None:
        if diagnostic.severity_nonlocalized == "WARNING":
            log.warning("%s", diagnostic.message_primary)

    conn.add_notice_handler(handler)
    try:
        yield
    finally:
        conn.remove_notice_handler(handler)
