"""The suite through PgBouncer in transaction mode: ``SHOPKEEP_TEST_PGBOUNCER=1 pytest ...``.

tests/conftest.py starts Debian's ``pgbouncer`` (the rehearsal's :class:`loadtests.rehearsal.
PgBouncer`) in front of the suite's PostgreSQL (the embedded one, or
SHOPKEEP_TEST_DATABASE_URL) and hands every test the pooler's URL: the fixtures' connections,
the in-process apps, the live servers' pools, the janitors and sequencers, and the databases
tests make for themselves. The session database is migrated directly, as an operator runs
``migrate`` with SHOPKEEP_MIGRATE_DATABASE_URL on PostgreSQL itself (docs/operations.md); the
tests that migrate databases of their own do it through the pooler, which works as well.

As a deployment behind PgBouncer < 1.21 must (docs/scaling.md, section 2): the store's settings
SHOPKEEP_PREPARED_STATEMENTS=off and SHOPKEEP_CATALOG_LISTEN=off for the live servers (the
environment) and the in-process apps (:func:`support.games.make_config`), and no connection of
the test process prepares a statement (the ``support.pooled`` plugin).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The switch; any value but "" and "0" turns it on.
SWITCH = "SHOPKEEP_TEST_PGBOUNCER"
# What a store behind PgBouncer < 1.21 in transaction mode is configured with.
POOLED_ENV = {"SHOPKEEP_PREPARED_STATEMENTS": "off", "SHOPKEEP_CATALOG_LISTEN": "off"}
# Server connections per (database, user): enough for the live servers' pools and the tests'
# own connections (a test holding a transaction open keeps its server connection throughout).
POOL_SIZE = 40


def enabled() -> bool:
    return os.environ.get(SWITCH, "") not in ("", "0")


@contextmanager
def pooled_server(server_url: str, logins: dict[str, str]) -> Iterator[str]:
    """PgBouncer in transaction mode in front of ``server_url``, for its user and ``logins``
    (user: password; PgBouncer lets in only the users of its auth file); yields its URL."""
    from loadtests.rehearsal import PgBouncer

    work = Path(tempfile.mkdtemp(prefix="shopkeep-test-pgbouncer-"))
    work.chmod(0o755)  # PgBouncer runs as another user when we are root
    bouncer = PgBouncer(server_url, work_dir=work / "pgbouncer", pool_size=POOL_SIZE)
    try:
        with bouncer:
            with (work / "pgbouncer" / "userlist.txt").open("a") as users:
                for user, password in logins.items():
                    users.write(f'"{user}" "{password}"\n')
            assert bouncer.process is not None
            # PgBouncer reads its auth file again on SIGHUP, and says so in its log.
            bouncer.process.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while "SIGHUP" not in bouncer.log_path.read_text(errors="replace"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"pgbouncer did not reload in 10 s: {bouncer.log_path}")
                time.sleep(0.05)
            yield bouncer.url
            if bouncer.process.poll() is not None:
                # It stopped before the session did: every later test's connection was refused.
                # Its log (kept) says whether it was told to stop (SIGTERM, SIGINT) or failed.
                kept = Path(tempfile.mkdtemp(prefix="shopkeep-test-pgbouncer-log-"))
                shutil.copy(bouncer.log_path, kept)
                raise RuntimeError(
                    f"pgbouncer exited ({bouncer.process.returncode}) during the session;"
                    f" its log: {kept / bouncer.log_path.name}"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
