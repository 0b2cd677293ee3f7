"""Wiring: the store client, the studio backend and the session, built off the frame loop.

Everything here may block (starting PostgreSQL, minting tokens), so :class:`Launcher` does it
on a thread while the game shows its loading screen.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from pathlib import Path

from shopkeep import StoreClient

from .backend import BackendClient, StudioBackend, jwt_claims
from .localstore import LocalStore
from .rules import DEFAULT_ROUND_SECONDS
from .session import StoreSession
from .test_store import TestAppStore

__all__ = ["Launcher", "StoreSettings", "journal_path", "make_session"]


@dataclasses.dataclass
class StoreSettings:
    """Where the store is and who we are. No ``server``: start a private demo store."""

    server: str | None = None
    player_token: str | None = None
    service_token: str | None = None
    backend_url: str | None = None
    data_dir: Path | None = None
    round_seconds: int = DEFAULT_ROUND_SECONDS


def journal_path(data_dir: Path, store_url: str, player_id: str) -> Path:
    """The pending-purchase journal of one player on one store."""
    digest = hashlib.sha256(f"{store_url}\n{player_id}".encode()).hexdigest()[:16]
    return data_dir / "pending" / f"{digest}.json"


def make_session(
    store_url: str,
    player_token: str,
    *,
    backend: BackendClient | None,
    data_dir: Path,
) -> StoreSession:
    """A store session for ``player_token``, journaling purchases under ``data_dir``."""
    player_id = str(jwt_claims(player_token).get("sub", ""))
    client = StoreClient(
        store_url,
        player_token,
        # Short timeouts and few retries: the session retries unsettled calls itself, and a
        # player should see "retrying" quickly rather than a purchase stuck on "buying".
        timeout=5.0,
        max_retries=2,
        pending_path=journal_path(data_dir, store_url, player_id),
    )
    return StoreSession(client, backend, player_id=player_id)


class Launcher:
    """Brings the store (maybe a private one), the backend and the session up on a thread."""

    def __init__(self, settings: StoreSettings, data_dir: Path) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.status = "Connecting to the store..."
        self.error: str | None = None
        self.local: LocalStore | None = None
        self.backend: StudioBackend | None = None
        self.backend_client: BackendClient | None = None
        self.session: StoreSession | None = None
        self._ready: StoreSession | None = None
        self._lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="launcher", daemon=True)

    def start(self) -> Launcher:
        """Begin in the background; returns self."""
        self._thread.start()
        return self

    def take_session(self) -> StoreSession | None:
        """The session once ready, handed out once."""
        with self._lock:
            session, self._ready = self._ready, None
        return session

    def _run(self) -> None:
        try:
            self._launch()
        except Exception as exc:
            if not self._stopping:
                self.error = f"{type(exc).__name__}: {exc}"

    def _launch(self) -> None:
        settings = self.settings
        url = settings.server
        player_token = settings.player_token
        service_token = settings.service_token
        if url is None:
            self.status = "Starting your private store (the first time takes a minute)..."
            self.local = LocalStore(self.data_dir)
            self.local.start()
            url = self.local.url
            player_token = self.local.player_token
            service_token = self.local.service_token
        if not player_token:
            raise ValueError("--server needs --player-token (or SHOPKEEP_PLAYER_TOKEN)")
        self.status = "Opening the shop..."
        backend_url = settings.backend_url
        if service_token:
            # The service token stays in this backend object; the game only ever gets a URL.
            self.backend = StudioBackend(url, service_token, round_seconds=settings.round_seconds)
            self.backend.start()
            backend_url = self.backend.url
            if self.local is not None:
                # The private store is ours: the backend subscribes to its sales (webhooks).
                self.backend.subscribe(self.local.studio_token)
        if backend_url:
            self.backend_client = BackendClient(backend_url, player_token)
        session = make_session(
            url, player_token, backend=self.backend_client, data_dir=self.data_dir
        )
        if self.local is not None:
            # Our own demo store: it may trust the TEST store (a store we did not start may not).
            test_store = TestAppStore.load_or_create(self.data_dir / "test-store")
            test_store.register(url, self.local.studio_token)
            session.test_store = test_store
        self.session = session
        with self._lock:
            self._ready = session

    def stop(self) -> None:
        """Close the session and backend and stop a private store."""
        self._stopping = True
        if self._thread.is_alive():
            if self.local is not None:
                # A store still starting: ending it makes the launcher thread give up.
                self.local.stop()
            self._thread.join(10)
        if self.session is not None:
            self.session.close()
            self.session.client.close()
        if self.backend_client is not None:
            self.backend_client.close()
        if self.backend is not None:
            self.backend.stop()
        if self.local is not None:
            self.local.stop()
