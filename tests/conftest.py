"""Fixtures on a real PostgreSQL: the embedded one by default, or SHOPKEEP_TEST_DATABASE_URL;
with SHOPKEEP_TEST_PGBOUNCER=1, every test reaches it through PgBouncer in transaction mode
(tests/support/pgbouncer.py).

- ``conn`` / ``app`` / ``client`` / ``game``: fast tests inside one transaction, rolled back.
- ``committed_url`` / ``committed_game``: tests that commit (threads, processes); each gets a
  game of its own, so they never see each other's rows.
- ``live_server``: the real stack (``shopkeep-server serve``, gunicorn) on 127.0.0.1.
- ``audit_when_the_session_ends``: after the last test, the whole database must balance.

Helpers (Game, make_game, requests, the live server's types) are in tests/support/.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from shopkeep_server import db, roles
from shopkeep_server.app import create_app
from shopkeep_server.launcher import PrivateDatabase
from support import (
    APP_LOGIN,
    APP_PASSWORD,
    Game,
    LiveServer,
    audit_failure,
    create_database,
    make_config,
    make_game,
    pgbouncer,
    start_server,
    stop_server,
    with_database,
)

# tests/test_session_audit.py runs a pytest of its own; the wire contract (tests/contract)
# checks every answer the suite gets against the OpenAPI document and the SDK's parsers, so a
# drift fails the test that produced it.
pytest_plugins = ["pytester", "contract.plugin"]
if pgbouncer.enabled():
    # No connection of this process prepares a statement (PgBouncer < 1.21 cannot keep them).
    pytest_plugins.append("support.pooled")
    # The live servers this session starts inherit the settings of a store behind the pooler.
    os.environ.update(pgbouncer.POOLED_ENV)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if pgbouncer.enabled():
        terminalreporter.write_line(
            "database: every test's connections through PgBouncer in transaction mode"
            f" ({pgbouncer.SWITCH})"
        )


@pytest.fixture(scope="session")
def direct_database_server() -> Iterator[str]:
    """A URL of the PostgreSQL server itself: the SHOPKEEP_TEST_DATABASE_URL one, or a private
    embedded server stopped when the session ends."""
    url = os.environ.get("SHOPKEEP_TEST_DATABASE_URL")
    if url:
        yield url
        return
    with PrivateDatabase(prefix="shopkeep-test-pg-", database="postgres") as server:
        yield server.url


@pytest.fixture(scope="session")
def database_server(direct_database_server: str) -> Iterator[str]:
    """A URL of the PostgreSQL server the session's database is made on: the server itself, or
    PgBouncer in front of it with SHOPKEEP_TEST_PGBOUNCER."""
    if not pgbouncer.enabled():
        yield direct_database_server
        return
    with pgbouncer.pooled_server(direct_database_server, {APP_LOGIN: APP_PASSWORD}) as url:
        yield url


@pytest.fixture(scope="session")
def database_url(direct_database_server: str, database_server: str) -> str:
    """A freshly created and migrated database for this test session (migrated on the server
    itself, as the owner's SHOPKEEP_MIGRATE_DATABASE_URL does; reached through
    database_server)."""
    name = f"shopkeep_test_{os.getpid()}"
    create_database(direct_database_server, name)
    return with_database(database_server, name)


@pytest.fixture(scope="session", autouse=True)
def audit_when_the_session_ends(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test of the session (committed purchases, grants, refunds, concurrency and
    load smoke alike, and after the live server stopped), the books must balance: any violation
    the audit finds fails the run. A session whose tests never use the database skips it."""
    uses_database = (
        "database_url" in getattr(item, "fixturenames", ()) for item in request.session.items
    )
    if not any(uses_database):
        yield
        return
    # Set up from here, the database is torn down after this fixture: the audit sees it whole.
    url: str = request.getfixturevalue("database_url")
    yield
    failure = audit_failure(url)
    if failure is not None:
        pytest.fail(failure, pytrace=False)


# ---------------------------------------------------------------------------------------------
# Fast tests: one connection, one transaction, rolled back
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    connection = psycopg.connect(database_url, autocommit=False)
    connection.execute("SET TimeZone = 'UTC'")
    try:
        yield connection
    finally:
        connection.rollback()
        connection.close()


@pytest.fixture
def app(conn: psycopg.Connection) -> Flask:
    # Every unit of work runs as the server's role (shopkeep_app), the fixture's own statements
    # (making games, checking rows) as the owner.
    return create_app(
        make_config(), database=db.SingleConnectionDatabase(conn, role=roles.APP_ROLE)
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def game(conn: psycopg.Connection) -> Game:
    """A game with the demo catalog, in the rolled-back transaction."""
    return make_game(conn)


# ---------------------------------------------------------------------------------------------
# Committed tests
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def committed_url(database_url: str) -> str:
    return database_url


@pytest.fixture
def committed_game(database_url: str) -> Game:
    with db.connect(database_url) as connection:
        return make_game(connection)


# ---------------------------------------------------------------------------------------------
# The live server
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def live_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    server = start_server(database_url, tmp_path_factory.mktemp("server") / "server.log")
    try:
        yield server
    finally:
        stop_server(server)
