"""A private store for the demo: ``shopkeep-server serve --demo`` as a child process.

Without ``--server`` the game runs its own store, so ``shopkeep-demo`` works on a fresh machine
with nothing else set up. Its data (an embedded PostgreSQL) lives in the per-user data dir, so
wallets and purchases survive between runs, exactly as they would against a real store.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import platformdirs

__all__ = ["LocalStore", "StoreStartError", "default_data_dir"]

DEMO_GAME = "demo"
DEMO_PLAYER = "player-1"
DEMO_SERVICE = "demo-backend"
TOKEN_TTL = 7 * 24 * 3600


class StoreStartError(RuntimeError):
    """The private store did not come up; the message ends with the tail of its log."""


def default_data_dir() -> Path:
    """Where the demo keeps its store, journal and logs (e.g. ``~/.local/share/shopkeep-demo``)."""
    return Path(platformdirs.user_data_dir("shopkeep-demo", appauthor=False))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalStore:
    """``shopkeep-server serve --demo`` on a free port of 127.0.0.1, and its demo tokens.

    :meth:`start` blocks until ``/readyz`` answers (the first run initialises PostgreSQL, which
    takes a while): call it off the frame loop. :meth:`stop` ends the child process.
    """

    def __init__(self, data_dir: Path | None = None, *, port: int | None = None) -> None:
        self.data_dir = data_dir or default_data_dir()
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.data_dir / "store.log"
        self.player_token = ""
        self.service_token = ""
        self._process: subprocess.Popen[bytes] | None = None

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["SHOPKEEP_DATA_DIR"] = str(self.data_dir / "store")
        # The embedded PostgreSQL is the point here: ignore a database the shell may name.
        env.pop("SHOPKEEP_DATABASE_URL", None)
        return env

    def _command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "shopkeep_server.cli", *args]

    def start(self, *, timeout: float = 180.0) -> None:
        """Start the store, wait until it is ready, and mint the demo's tokens."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            self._command("serve", "--demo", "--port", str(self.port), "--workers", "1"),
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise StoreStartError(f"the store exited:\n{self._log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                self.stop()
                raise StoreStartError(f"the store did not become ready:\n{self._log_tail()}")
            time.sleep(0.25)
        self.player_token = self._token("player", DEMO_PLAYER)
        self.service_token = self._token("service", DEMO_SERVICE)

    def _token(self, role: str, sub: str) -> str:
        # `shopkeep-server token` prints the token alone on stdout.
        done = subprocess.run(
            self._command(
                "token", "--game", DEMO_GAME, "--role", role, "--sub", sub, "--ttl", str(TOKEN_TTL)
            ),
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise StoreStartError(f"could not mint a {role} token:\n{done.stderr[-2000:]}")
        return done.stdout.strip().splitlines()[-1]

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop the store (SIGTERM, then SIGKILL after 15 s)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
