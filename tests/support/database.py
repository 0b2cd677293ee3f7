"""The session's database: made fresh and migrated, snapshotted around bad input, and audited
when the session ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from shopkeep_server import db, roles
from shopkeep_server.store.audit import audit


def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name`` of the server of ``server_url`` if it is there, closing whatever
    sessions it still has."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def create_database(server_url: str, name: str) -> str:
    """Create ``name`` afresh (dropping an older one) on the server of ``server_url``, apply
    the migrations, and return its URL."""
    drop_database(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(server_url, name)
    with db.connect(url) as conn:
        db.migrate(conn)
    return url


# The suite's login for the server's role (roles.APP_ROLE): the live server's pool and the tests
# of least privilege connect with it. A password, for a SHOPKEEP_TEST_DATABASE_URL server that
# does not trust local connections as the embedded one does.
APP_LOGIN = "shopkeep_test_app"
APP_PASSWORD = "shopkeep-test-app"


def app_database_url(owner_url: str) -> str:
    """The migrated database of ``owner_url`` as the suite's member of shopkeep_app (made if
    missing): what the server connects as in production."""
    with db.connect(owner_url) as conn:
        roles.create_app_login(conn, APP_LOGIN, APP_PASSWORD)
    return roles.login_url(owner_url, APP_LOGIN, APP_PASSWORD)


def with_database(url: str, name: str) -> str:
    """``url`` with its database replaced by ``name``."""
    return psycopg.conninfo.make_conninfo(url, dbname=name)


def audit_failure(url: str) -> str | None:
    """The audit over the whole database of ``url``: None when the books balance, else a report
    naming every violation."""
    with db.connect(url) as conn:
        violations = audit(conn)
    if not violations:
        return None
    lines = "\n".join(f"  - {line}" for line in violations)
    return (
        f"AUDIT FAILED after the test session: {len(violations)} violation(s) in the test"
        f" database; some test left books that do not balance:\n{lines}"
    )


def snapshot(conn: psycopg.Connection, game_id: str) -> dict[str, Any]:
    """Everything a request could change for a game: compared before and after bad input."""

    def rows(query: str) -> list[tuple[Any, ...]]:
        return conn.execute(query, {"g": game_id}).fetchall()

    return {
        "wallets": rows(
            "SELECT player_id, currency, balance FROM wallets WHERE game_id = %(g)s ORDER BY 1, 2"
        ),
        "ledger": rows(
            "SELECT count(*), coalesce(sum(delta), 0) FROM ledger_entries WHERE game_id = %(g)s"
        ),
        "inventory": rows(
            "SELECT player_id, sku, quantity FROM inventories WHERE game_id = %(g)s ORDER BY 1, 2"
        ),
        "item_ledger": rows("SELECT count(*) FROM item_ledger WHERE game_id = %(g)s"),
        "stock": rows(
            "SELECT sku, bucket, remaining FROM stock_buckets WHERE game_id = %(g)s ORDER BY 1, 2"
        ),
        "purchases": rows("SELECT id, status FROM purchases WHERE game_id = %(g)s ORDER BY 1"),
        "grants": rows("SELECT count(*) FROM grants WHERE game_id = %(g)s"),
        "keys": rows("SELECT count(*) FROM idempotency_keys WHERE game_id = %(g)s"),
        "counts": rows(
            "SELECT player_id, sku, purchased FROM player_item_counts"
            " WHERE game_id = %(g)s ORDER BY 1, 2"
        ),
        "catalog": rows("SELECT draft_revision, live_version_id FROM games WHERE id = %(g)s"),
        "events": rows("SELECT count(*) FROM events WHERE game_id = %(g)s"),
        "holds": rows(
            "SELECT player_id, id, sku, quantity, status, expires_at, consumed_by FROM holds"
            " WHERE game_id = %(g)s ORDER BY 1, 2"
        ),
        "webhooks": rows("SELECT count(*) FROM webhook_endpoints WHERE game_id = %(g)s"),
    }


@contextmanager
def lock_held(conn: psycopg.Connection, key: int) -> Iterator[None]:
    """Holds the advisory lock ``key`` on ``conn`` (an autocommit connection) for the block, as
    another process doing that work would: transaction-scoped, in a transaction of its own, so
    that through a pooler in transaction mode the lock and its end stay on one server
    connection (a session lock taken by one statement could be left behind on the pooler's
    server connection, and its unlock reach another)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
        yield
