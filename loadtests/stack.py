"""A private store for one load-test run: PostgreSQL, ``shopkeep-server serve``, and the CLI,
started through the server's launcher (:mod:`shopkeep_server.launcher`).

The runner owns every process it starts and stops them all when it ends, Ctrl-C and SIGTERM
included: the server runs in a process group of its own (so a terminal's Ctrl-C reaches only
the runner, which then stops things in order) and the group is terminated, then killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType

import psutil

from shopkeep_server.launcher import PrivateDatabase, Started, StoreServer, StoreStartError


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


class PrivateStore(Started):
    """``shopkeep-server serve`` on 127.0.0.1 with a database of its own.

    The database is ``SHOPKEEP_DATABASE_URL`` when set (each run makes a game of its own, so a
    shared database is fine), else a :class:`PrivateDatabase` this object starts itself, so its
    lifetime is the runner's and not the server's (the audit runs after the server stopped),
    and deletes when it stops. ``SHOPKEEP_RATE_LIMIT=none``: the default limit is per account
    and per process, which a load test of a thousand players on one token would only measure.
    The server runs in a process group of its own (see the module's docstring).
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
        self.extra_env = {"SHOPKEEP_RATE_LIMIT": "none", **(env or {})}
        self.database_url = database_url or os.environ.get("SHOPKEEP_DATABASE_URL") or ""
        self.embedded = not self.database_url
        self.url = ""
        self._database: PrivateDatabase | None = None
        self._server: StoreServer | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> PrivateStore:
        """Start the database (if embedded) and the server; returns when /readyz answers."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        data_dir = None
        if self.embedded:
            self._database = PrivateDatabase(prefix="shopkeep-loadtest-").start()
            self.database_url = self._database.url
            data_dir = self._database.data_dir
        self._server = StoreServer(
            database_url=self.database_url,
            data_dir=data_dir,
            workers=self.workers,
            env=self.extra_env,
            log_path=self.log_dir / "server.log",
            append_log=True,
            own_process_group=True,
            ready_timeout=90,
        )
        self.url = self._server.url
        try:
            self._server.start()
        except StoreStartError as exc:
            raise StackError(str(exc)) from exc
        return self

    def stop(self) -> None:
        """Stop the server's process group, then the embedded database, and delete its data.
        Safe to call twice, and after a start that failed half-way."""
        if self._server is not None:
            self._server.stop()
        if self._database is not None:
            self._database.stop()
            self._database = None

    # --- driving it -----------------------------------------------------------------------------

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The server's process while it runs."""
        return None if self._server is None else self._server.process

    def env(self) -> dict[str, str]:
        """The environment of the server and of every ``shopkeep-server`` command."""
        if self._server is None:
            raise StackError("the store is not started")
        return self._server.env()

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``shopkeep-server ARGS`` against this store's database."""
        if self._server is None:
            raise StackError("the store is not started")
        done = self._server.cli(*args)
        if check and done.returncode != 0:
            raise StackError(
                f"shopkeep-server {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}"
            )
        return done

    def server_processes(self) -> list[psutil.Process]:
        """The gunicorn master and its workers."""
        process = self.process
        return [] if process is None else process_tree(process.pid)

    def database_processes(self) -> list[psutil.Process]:
        """The embedded postmaster and its backends (empty for an external database)."""
        pid = None if self._database is None else self._database.postmaster_pid()
        return [] if pid is None else process_tree(pid)


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
