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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, LiteralString

import psycopg

from ..errors import STORED_REJECTIONS, StoreError, error_body, from_database


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
    from it. One statement: one transaction, one round trip."""
    with domain_errors():
        row = conn.execute(statement, params).fetchone()
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
            "SELECT sk_idempotency_finish(%s, %s, %s, %s, %s)",
            (game, subject, key.value, status, body),
        )
    return Outcome(status=status, body=body, replayed=False)


PURGE_LOCK = 0x5E0B_0002


def purge_expired(conn: psycopg.Connection, *, batch: int = 10_000) -> int:
    """Deletes expired keys in batches (short transactions); returns how many."""
    return _purge(conn, batch=batch, exclusive=False) or 0


def purge_if_free(conn: psycopg.Connection) -> int | None:
    """Purges unless another process is purging right now (then None): every server worker
    may call this on a timer, and one does the work."""
    return _purge(conn, batch=10_000, exclusive=True)


def _purge(conn: psycopg.Connection, *, batch: int, exclusive: bool) -> int | None:
    # Each batch is one transaction, and an exclusive purge takes the lock inside it with
    # pg_try_advisory_xact_lock: a transaction-scoped lock is safe through PgBouncer in
    # transaction mode, where a session lock could stay behind on a server connection another
    # client gets next. A purger that finds the lock taken stops: the holder goes on.
    # prepare=False: a pooler of that mode cannot keep a prepared statement for us either.
    total = 0
    while True:
        with conn.transaction():
            if exclusive:
                row = conn.execute(
                    "SELECT pg_try_advisory_xact_lock(%s)", (PURGE_LOCK,), prepare=False
                ).fetchone()
                if not row or not row[0]:
                    return None if total == 0 else total
            cur = conn.execute(
                "DELETE FROM idempotency_keys WHERE ctid IN ("
                " SELECT ctid FROM idempotency_keys WHERE expires_at < now() LIMIT %s)",
                (batch,),
                prepare=False,
            )
        total += cur.rowcount
        if cur.rowcount < batch:
            return total
