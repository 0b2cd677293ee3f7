"""The embedded PostgreSQL recovers from a crash: a server killed with SIGKILL stays on the
wheel's list of processes using PostgreSQL; the next start forgets it, and so does a clean stop,
so the last server to stop still stops PostgreSQL."""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from shopkeep_server.embedded import handles_file
from support import LiveServer, start_server, stop_server

pytestmark = pytest.mark.slow


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under pytest's tmp dirs: as root, the embedded PostgreSQL runs as another user, who
    # must be able to reach it (the conftest's own embedded database does the same).
    path = Path(tempfile.mkdtemp(prefix="shopkeep-crash-"))
    try:
        yield path
    finally:
        _stop_leftover_postgres(path / "pgdata")
        shutil.rmtree(path, ignore_errors=True)


def _postmaster(pgdata: Path) -> psutil.Process | None:
    """The running PostgreSQL of ``pgdata``, if any (first line of postmaster.pid)."""
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return None
    try:
        process = psutil.Process(int(pid_file.read_text().split()[0]))
        return process if process.status() != psutil.STATUS_ZOMBIE else None
    except (psutil.NoSuchProcess, ValueError, IndexError, FileNotFoundError):
        return None


def _stop_leftover_postgres(pgdata: Path) -> None:
    """A failed test must not leave a PostgreSQL running behind it."""
    try:
        process = _postmaster(pgdata)
        if process is not None:
            process.send_signal(signal.SIGINT)  # fast shutdown: clients are disconnected
            process.wait(15)
    except psutil.Error:
        pass  # already gone


def _start(data_dir: Path, tmp_path: Path, name: str) -> LiveServer:
    return start_server(
        "",
        tmp_path / f"{name}.log",
        workers=1,
        env={"SHOPKEEP_DATABASE_URL": "", "SHOPKEEP_DATA_DIR": str(data_dir)},
    )


def _handles(pgdata: Path) -> list[int]:
    return json.loads(handles_file(pgdata).read_text())


def _kill(server: LiveServer) -> None:
    """SIGKILL the server and its workers together, as the OOM killer or a lost host does.

    Killing the master alone leaves its orphaned worker to exit cleanly a moment later, and
    that exit prunes the dead master from the list: the crash would race the test."""
    assert server.process is not None
    master = psutil.Process(server.process.pid)
    workers = master.children(recursive=True)
    for process in [master, *workers]:
        process.send_signal(signal.SIGKILL)
    server.process.wait(10)
    psutil.wait_procs(workers, timeout=10)


def _wait_until_stopped(pgdata: Path) -> None:
    deadline = time.monotonic() + 30
    while _postmaster(pgdata) is not None and time.monotonic() < deadline:
        time.sleep(0.2)


def test_kill_then_clean_start_and_stop_stops_postgres(data_dir: Path, tmp_path: Path) -> None:
    pgdata = data_dir / "pgdata"
    crashed = _start(data_dir, tmp_path, "crashed")
    assert _handles(pgdata) == [crashed.process.pid]
    _kill(crashed)
    # The crash leaves PostgreSQL up and the dead server on the wheel's list.
    assert _postmaster(pgdata) is not None
    assert _handles(pgdata) == [crashed.process.pid]

    clean = _start(data_dir, tmp_path, "clean")
    assert _handles(pgdata) == [clean.process.pid]  # the dead one was forgotten on start
    clean_process = clean.process
    assert clean_process is not None
    stop_server(clean)
    assert clean_process.wait(15) == 0  # a clean stop
    _wait_until_stopped(pgdata)
    assert _postmaster(pgdata) is None
    assert _handles(pgdata) == []


def test_a_crash_while_another_server_runs(data_dir: Path, tmp_path: Path) -> None:
    """Killed while a second server is up: the survivor's clean stop is the last one."""
    pgdata = data_dir / "pgdata"
    survivor = _start(data_dir, tmp_path, "survivor")
    crashed = _start(data_dir, tmp_path, "crashed")
    assert sorted(_handles(pgdata)) == sorted([survivor.process.pid, crashed.process.pid])
    _kill(crashed)
    survivor_process = survivor.process
    assert survivor_process is not None
    stop_server(survivor)
    assert survivor_process.wait(15) == 0  # a clean stop
    _wait_until_stopped(pgdata)
    assert _postmaster(pgdata) is None
    assert _handles(pgdata) == []
