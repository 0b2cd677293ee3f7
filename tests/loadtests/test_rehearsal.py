"""The multi-host rehearsal's short version: two hosts behind HAProxy (directly on PostgreSQL,
and through PgBouncer in transaction mode), one purchase stream with the SDK's retries, one
host killed with SIGKILL mid-stream.

It asserts what players rely on, never times: no purchase failed beyond the retries, every
acknowledged purchase is stored once, no key has two effects, the wallets add up, the audit
passes (and through PgBouncer: the hosts migrated, purged and sold through it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from loadtests.rehearsal import PgBouncer, RehearsalError, find_tool
from shopkeep_server import db
from shopkeep_server.config import Config
from support.database import APP_LOGIN, APP_PASSWORD

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

PURCHASES = 240
KILL_AFTER = 80


def _require(name: str) -> None:
    """Debian's daemons: a developer without them is told and the test skips; in CI (CI=true,
    where .ci/run installs them) their absence is a failure."""
    try:
        find_tool(name, name)
    except RehearsalError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.mark.parametrize("pooler", [False, True], ids=["direct", "pgbouncer"])
def test_a_host_killed_mid_stream_loses_and_doubles_nothing(tmp_path: Path, pooler: bool) -> None:
    _require("haproxy")
    if pooler:
        _require("pgbouncer")
    summary_path = tmp_path / "summary.json"
    command = [
        sys.executable, "-m", "loadtests.rehearsal",
        "--purchases", str(PURCHASES), "--kill-after", str(KILL_AFTER),
        "--players", "12", "--threads", "6", "--summary", str(summary_path),
    ]  # fmt: skip
    if pooler:
        command.append("--pgbouncer")
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=200)
    report = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 0, report
    assert "RESULT: every invariant held" in done.stdout, report

    summary = json.loads(summary_path.read_text())
    failed = [c for c in summary["checks"] if not c["ok"]]
    assert summary["ok"] and not failed, failed
    assert {c["name"] for c in summary["checks"]} == {
        "no purchase failed beyond the SDK's retries",
        "every acknowledged purchase is stored exactly once, with the id the player was told",
        "the store holds no purchase nobody was told about",
        "no idempotency key has two effects",
        "every wallet is its starting coins minus what its player was told",
        "shopkeep-server audit",
        "the 50 expired keys planted before the stream were purged",
    }
    assert summary["pgbouncer"] is pooler
    assert summary["purchases"] == summary["acknowledged"] == PURCHASES
    assert summary["failed"] == 0
    # The kill happened mid-stream, and the surviving host carried the rest.
    assert summary["acknowledged_after_kill"] == PURCHASES - KILL_AFTER
    assert summary["attempts_by_outcome"]["201"] == PURCHASES
    if pooler:
        assert "through PgBouncer: purged" in done.stdout, report
        assert "migrate: up to date" in done.stdout, report


@pytest.mark.parametrize("prepared", ["off", "on"])
def test_prepared_statements_off_is_what_pgbouncer_before_1_21_needs(
    database_url: str, prepared: str
) -> None:
    """Two CLI-style connections (shopkeep_server.db.connect) run the same statements through
    one PgBouncer server connection: with SHOPKEEP_PREPARED_STATEMENTS=on psycopg prepares
    them, and the second client's prepare collides with the first's; off, nothing collides."""
    _require("pgbouncer")
    config = Config.from_env({"SHOPKEEP_PREPARED_STATEMENTS": prepared})
    work = Path(tempfile.mkdtemp(prefix="shopkeep-test-pgbouncer-"))
    work.chmod(0o755)  # PgBouncer runs as another user when we are root
    try:
        with PgBouncer(database_url, work_dir=work / "pgbouncer", pool_size=1) as bouncer:
            first, second = db.connect(bouncer.url, config), db.connect(bouncer.url, config)
            try:
                with contextlib.ExitStack() as errors:
                    if prepared == "on":
                        errors.enter_context(
                            pytest.raises(psycopg.errors.DuplicatePreparedStatement)
                        )
                    for n in range(8):
                        for conn in (first, second):
                            assert conn.execute("SELECT %s::int + 1", (n,)).fetchone() == (n + 1,)
            finally:
                first.close()
                second.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


# The slice of the suite run through PgBouncer: the money path and its idempotency (replays,
# partitions, claims across partitions, janitors, the advisory-lock purge), the shared rate
# limit, live servers under concurrency, and migrations of fresh and 0.1.0 databases.
POOLED_SLICE = [
    "tests/server/test_idempotency.py",
    "tests/server/test_idempotency_partitions.py",
    "tests/server/test_shared_rate_limit.py",
    "tests/server/test_purchases.py",
    "tests/server/test_concurrency.py",
    "tests/server/test_upgrade.py",
]
# Tests that stand for "another process holds the purge lock" with a session-level advisory
# lock of their own: through a pooler in transaction mode the lock and its unlock may reach two
# server connections, which is exactly why the store's purge takes transaction-scoped locks.
SESSION_LOCK_TESTS = [
    "tests/server/test_idempotency.py::test_only_one_purger_at_a_time",
    "tests/server/test_idempotency_partitions.py"
    "::test_a_purge_while_another_holds_the_lock_changes_nothing",
]


def test_a_slice_of_the_suite_passes_through_pgbouncer(
    database_server: str, tmp_path: Path
) -> None:
    """A pytest of its own whose every connection (the fixtures', the checks', the live
    servers' pools, migrate's) goes through PgBouncer in transaction mode, as a deployment
    behind it runs: SHOPKEEP_PREPARED_STATEMENTS=off and SHOPKEEP_CATALOG_LISTEN=off, and the
    tests' own connections unprepared too (support/pooled.py)."""
    _require("pgbouncer")
    work = Path(tempfile.mkdtemp(prefix="shopkeep-test-pgbouncer-"))
    work.chmod(0o755)  # PgBouncer runs as another user when we are root
    child: subprocess.Popen[str] | None = None
    try:
        with PgBouncer(database_server, work_dir=work / "pgbouncer", pool_size=30) as bouncer:
            # The suite's server login (support.database.APP_LOGIN) may log in through it too.
            with (work / "pgbouncer" / "userlist.txt").open("a") as users:
                users.write(f'"{APP_LOGIN}" "{APP_PASSWORD}"\n')
            assert bouncer.process is not None
            bouncer.process.send_signal(signal.SIGHUP)  # PgBouncer reads the file again
            child = subprocess.Popen(
                [
                    sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    "-p", "support.pooled", *POOLED_SLICE,
                    *(f"--deselect={test}" for test in SESSION_LOCK_TESTS),
                ],
                cwd=ROOT,
                env={
                    **os.environ,
                    "PYTHONPATH": str(ROOT / "tests"),
                    "SHOPKEEP_TEST_DATABASE_URL": bouncer.url,
                    "SHOPKEEP_PREPARED_STATEMENTS": "off",
                    "SHOPKEEP_CATALOG_LISTEN": "off",
                },
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
            output, _ = child.communicate(timeout=540)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if child is not None:
            child.kill()  # if still running (a timeout)
            # The child's session database (tests/conftest.py names it by the process id).
            with psycopg.connect(database_server, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(f"shopkeep_test_{child.pid}")
                    )
                )
    tail = "\n".join(output.splitlines()[-30:])
    assert child.returncode == 0, tail
    summary = output.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, tail
    assert f"{len(SESSION_LOCK_TESTS)} deselected" in summary, tail
