"""A private store for the demo: ``shopkeep-server serve --demo`` as a child process, started
through the server's launcher (:mod:`shopkeep_server.launcher`).

Without ``--server`` the game runs its own store, so ``shopkeep-demo`` works on a fresh machine
with nothing else set up. Its data (an embedded PostgreSQL) lives in the per-user data dir, so
wallets and purchases survive between runs, exactly as they would against a real store.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs

from shopkeep_server.launcher import StoreServer, StoreStartError

__all__ = ["LocalStore", "StoreStartError", "default_data_dir"]

DEMO_GAME = "demo"
DEMO_PLAYER = "player-1"
DEMO_SERVICE = "demo-backend"
DEMO_STUDIO = "demo-studio"
TOKEN_TTL = 7 * 24 * 3600


def default_data_dir() -> Path:
    """Where the demo keeps its store, journal and logs (e.g. ``~/.local/share/shopkeep-demo``)."""
    return Path(platformdirs.user_data_dir("shopkeep-demo", appauthor=False))


class LocalStore:
    """``shopkeep-server serve --demo`` on a free port of 127.0.0.1, and its demo tokens.

    :meth:`start` blocks until ``/readyz`` answers (the first run initialises PostgreSQL, which
    takes a while): call it off the frame loop. :meth:`stop` ends the child process, and may be
    called from another thread while :meth:`start` waits (which then gives up).
    """

    def __init__(self, data_dir: Path | None = None, *, port: int | None = None) -> None:
        self.data_dir = data_dir or default_data_dir()
        self.log_path = self.data_dir / "store.log"
        # No database URL: the embedded PostgreSQL is the point here, whatever the shell names.
        self._server = StoreServer(
            data_dir=self.data_dir / "store",
            demo=True,
            workers=1,
            log_path=self.log_path,
            port=port,
        )
        self.port = self._server.port
        self.url = self._server.url
        self.player_token = ""
        self.service_token = ""
        # Only for setting the demo game up (its TEST store): never handed to the game.
        self.studio_token = ""

    def start(self, *, timeout: float = 180.0) -> None:
        """Start the store, wait until it is ready, and mint the demo's tokens."""
        self._server.ready_timeout = timeout
        self._server.start()
        self.player_token = self._token("player", DEMO_PLAYER)
        self.service_token = self._token("service", DEMO_SERVICE)
        self.studio_token = self._token("studio", DEMO_STUDIO)

    def _token(self, role: str, sub: str) -> str:
        # `shopkeep-server token` prints the token alone on stdout.
        done = self._server.cli(
            "token", "--game", DEMO_GAME, "--role", role, "--sub", sub, "--ttl", str(TOKEN_TTL),
            timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            raise StoreStartError(f"could not mint a {role} token:\n{done.stderr[-2000:]}")
        return done.stdout.strip().splitlines()[-1]

    def stop(self) -> None:
        """Stop the store (SIGTERM, then SIGKILL after 15 s)."""
        self._server.stop()
