"""The live server: ``shopkeep-server serve`` (gunicorn) against the test database, started
through the server's launcher, and games made on it."""

from __future__ import annotations

import dataclasses
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx

from shopkeep_server import db
from shopkeep_server.launcher import StoreServer, free_port

from .database import app_database_url
from .games import Game, make_game

__all__ = ["GameHandle", "LiveServer", "free_port", "start_server", "stop_server"]

# What every live server of the suite runs with: no rate limit (a test that wants one says
# so) and no key cache, so a key added by a test signs at once.
LIVE_SERVER_ENV = {
    "SHOPKEEP_RATE_LIMIT": "none",
    "SHOPKEEP_KEY_CACHE_SECONDS": "0",
    # Its workers deliver the webhooks of every committed test's endpoints too (any process
    # may): with the tests' own quick retries and short timeout, so a test's bounds hold
    # whichever process delivers.
    "SHOPKEEP_WEBHOOK_TIMEOUT_MS": "400",
    "SHOPKEEP_WEBHOOK_BACKOFF_BASE_MS": "20",
    "SHOPKEEP_WEBHOOK_BACKOFF_CAP_MS": "200",
}


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

    store: StoreServer
    database_url: str

    @property
    def url(self) -> str:
        return self.store.url

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.store.process

    @property
    def log(self) -> str:
        return self.store.log

    def new_game(self, catalog: dict[str, Any] | None = None) -> GameHandle:
        with db.connect(self.database_url) as connection:
            made = make_game(connection, catalog)
        handle = GameHandle(made.id, made.key)
        handle.server = self
        return handle


def start_server(
    database_url: str, log_path: Path, *, workers: int = 2, env: dict[str, str] | None = None
) -> LiveServer:
    """A live server on ``database_url``, ready; ``env`` adds to :data:`LIVE_SERVER_ENV`. It
    migrates as ``database_url``'s role (the owner) and serves as the suite's member of
    shopkeep_app, as a deployment does: every request of a live test runs with the server's
    least privileges."""
    # An empty URL leaves the server its embedded PostgreSQL, where it makes its own login.
    serve_url = app_database_url(database_url) if database_url else database_url
    store = StoreServer(
        database_url=serve_url,
        workers=workers,
        env={**LIVE_SERVER_ENV, "SHOPKEEP_MIGRATE_DATABASE_URL": database_url, **(env or {})},
        log_path=log_path,
        ready_timeout=60,
    )
    return LiveServer(store.start(), database_url)


def stop_server(server: LiveServer) -> None:
    """SIGTERM, then SIGKILL if it has not stopped in 15 s."""
    server.store.stop()
