"""Fixtures on a real PostgreSQL: the embedded one by default, or SHOPKEEP_TEST_DATABASE_URL.

- ``conn`` / ``app`` / ``client`` / ``game``: fast tests inside one transaction, rolled back.
- ``committed_url`` / ``committed_game``: tests that commit (threads, processes, the audit);
  each gets a game of its own, so they never see each other's rows.
- ``live_server``: the real stack (``shopkeep-server serve``, gunicorn) on 127.0.0.1.

Test modules import helpers from here as ``conftest``; a folder under tests/ with a conftest.py
of its own must be a package (an ``__init__.py``), or its conftest would take that name.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from shopkeep_server import db
from shopkeep_server.app import create_app
from shopkeep_server.auth import mint_token
from shopkeep_server.config import Config
from shopkeep_server.demo import demo_catalog
from shopkeep_server.store import catalog, games
from shopkeep_server.store.games import GameKey

ROOT = Path(__file__).resolve().parent.parent

# Wire contract (tests/contract): every answer the suite gets is checked against the OpenAPI
# document and read by the SDK's parsers; a drift fails the test that produced it.
pytest_plugins = ["contract.plugin"]


def _admin_url() -> str:
    url = os.environ.get("SHOPKEEP_TEST_DATABASE_URL")
    if url:
        return url
    from shopkeep_server import embedded

    # Not under pytest's tmp dirs: those are pruned by other pytest runs on the machine, and
    # the server runs as another user when we are root. It deletes its directory on exit.
    return embedded.start(
        Path(tempfile.mkdtemp(prefix="shopkeep-test-pg-")), database="postgres", throwaway=True
    )


@pytest.fixture(scope="session")
def database_url() -> str:
    """A freshly created and migrated database for this test session."""
    admin = _admin_url()
    name = f"shopkeep_test_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = _with_database(admin, name)
    with db.connect(url) as conn:
        db.migrate(conn)
    return url


def _with_database(url: str, name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)


def make_config(url: str | None = None, **changes: Any) -> Config:
    """The configuration tests run with: no rate limit unless a test asks for one."""
    return Config(database_url=url, rate_limit=None, key_cache_seconds=0).replace(**changes)


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
def app(conn: psycopg.Connection):  # type: ignore[no-untyped-def]
    return create_app(make_config(), database=db.SingleConnectionDatabase(conn))


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@dataclasses.dataclass
class Game:
    """A game with a signing key and a published catalog."""

    id: str
    key: GameKey

    def token(self, role: str, sub: str, *, ttl: int = 3600) -> str:
        return mint_token(self.key, role=role, subject=sub, ttl=ttl)

    def headers(self, role: str = "player", sub: str = "p1", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, sub)}", **extra}


def make_game(
    conn: psycopg.Connection, catalog_content: dict[str, Any] | None = None, *, game_id: str = ""
) -> Game:
    game_id = game_id or f"g{uuid.uuid4().hex[:12]}"
    games.create_game(conn, game_id)
    key = games.add_key(conn, game_id, issuer="shopkeep")
    content = catalog_content if catalog_content is not None else _demo_catalog()
    with conn.transaction():
        catalog.put_draft(conn, game_id, content, if_match="*")
        catalog.publish(conn, game_id, actor="fixture", stock_buckets=4)
    return Game(game_id, key)


def _demo_catalog() -> dict[str, Any]:
    # A minute in the past: a test transaction's now() is its start, which may be before the
    # second this is called in, and the dragon egg's window must be open for it.
    return demo_catalog(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GameHandle(Game):
    """A game on the live server."""

    server: LiveServer

    def grant(self, player_id: str, currency: str, amount: int) -> dict[str, Any]:
        response = httpx.post(
            f"{self.server.url}/v1/players/{player_id}/grants",
            json={"currency": currency, "amount": amount, "reason": "test funds"},
            headers={
                "Authorization": f"Bearer {self.token('service', 'test-backend')}",
                "Idempotency-Key": f"grant-{uuid.uuid4()}",
            },
        )
        response.raise_for_status()
        return response.json()


@dataclasses.dataclass
class LiveServer:
    """``shopkeep-server serve`` running against the test database."""

    url: str
    database_url: str
    process: subprocess.Popen[bytes]

    def new_game(self, catalog: dict[str, Any] | None = None) -> GameHandle:
        with db.connect(self.database_url) as connection:
            made = make_game(connection, catalog)
        handle = GameHandle(made.id, made.key)
        handle.server = self
        return handle


def start_server(
    database_url: str, log_path: Path, *, workers: int = 2, env: dict[str, str] | None = None
) -> LiveServer:
    port = free_port()
    full_env = {
        **os.environ,
        "SHOPKEEP_DATABASE_URL": database_url,
        "SHOPKEEP_RATE_LIMIT": "none",
        "SHOPKEEP_KEY_CACHE_SECONDS": "0",
        **(env or {}),
    }
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shopkeep_server.cli",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return LiveServer(url, database_url, process)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server did not start: {log_path.read_text()}")


def stop_server(server: LiveServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def live_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    server = start_server(database_url, tmp_path_factory.mktemp("server") / "server.log")
    try:
        yield server
    finally:
        stop_server(server)
