"""What the sample game's tests drive: a game App wired to a store, the store beside the game
(service reads, rival players, studio publishing), and a TCP proxy that can cut the network.

Nothing here imports pygame: tests/game/conftest.py chooses its drivers before pygame loads.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from shopkeep import StoreClient

if TYPE_CHECKING:
    from sample_game.app import App
    from sample_game.headless import Driver

# A short round: the autopilot plays whole rounds in a test.
ROUND_SECONDS = 10


class GameRun:
    """A game App wired to a store, its Driver, and what must be closed afterwards."""

    def __init__(self, app: App, driver: Driver, closers: list[Callable[[], object]]) -> None:
        self.app = app
        self.driver = driver
        self._closers = closers

    @property
    def session(self) -> Any:
        """The app's store session."""
        assert self.app.session is not None
        return self.app.session

    def close(self) -> None:
        """Close the session, its client and the backend client."""
        for close in reversed(self._closers):
            close()


class StoreTools:
    """What a test does to the store beside the game: read as the service, publish as a studio."""

    def __init__(self, live_server: Any) -> None:
        self.url: str = live_server.url
        self._clients: list[StoreClient] = []

    def service(self, game: Any) -> StoreClient:
        """A StoreClient with ``game``'s service token, to check what the server holds."""
        client = StoreClient(self.url, game.token("service", "checker"))
        self._clients.append(client)
        return client

    def player(self, game: Any, player_id: str) -> StoreClient:
        """A StoreClient of another player of ``game`` (a rival buying the last unit)."""
        client = StoreClient(self.url, game.token("player", player_id))
        self._clients.append(client)
        return client

    def publish(self, game: Any, content: dict[str, Any]) -> None:
        """Publish ``content`` as ``game``'s next catalog version, as a studio would."""
        headers = {"Authorization": f"Bearer {game.token('studio', 'studio')}"}
        put = httpx.put(
            f"{self.url}/v1/admin/catalog/draft",
            json=content,
            headers={**headers, "If-Match": "*"},
        )
        put.raise_for_status()
        done = httpx.post(
            f"{self.url}/v1/admin/catalog/publish",
            json={"notes": "test"},
            headers={**headers, "Idempotency-Key": f"publish-{os.urandom(8).hex()}"},
        )
        done.raise_for_status()

    def close(self) -> None:
        """Close the clients made."""
        for client in self._clients:
            client.close()


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of ``upstream`` (host, port).

    ``mode``: ``"up"`` forwards both ways; ``"down"`` closes every connection (new and open);
    ``"drop"`` forwards requests but swallows the responses and hangs up, so the server does
    the work and the client never hears of it (``dropped`` counts those).
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._mode = "up"
        self.dropped = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def mode(self) -> str:
        """The current mode."""
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        assert mode in ("up", "down", "drop")
        self._mode = mode
        # Pooled keep-alive connections must not outlive a change of mode.
        self._close_all()

    def _close_all(self) -> None:
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._mode == "down":
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, server))
            drop = self._mode == "drop"
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, drop), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, drop: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if drop:
                    with self._lock:
                        self.dropped += 1
                    break
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            with self._lock:
                self._open.discard(sock)

    def close(self) -> None:
        """Stop listening and close every connection."""
        self._stopped = True
        self._listener.close()
        self._close_all()
