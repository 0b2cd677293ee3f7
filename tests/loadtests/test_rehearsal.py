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
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from loadtests.rehearsal import PgBouncer, RehearsalError, find_tool
from shopkeep_server import db
from shopkeep_server.config import Config
from support import drop_database, pgbouncer

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


@pytest.mark.skipif(
    pgbouncer.enabled(),
    reason="shows what prepared statements do through PgBouncer, which this process's"
    " connections never make in the suite's PgBouncer mode (support.pooled)",
)
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


# The slice of the suite CI runs through PgBouncer (the whole suite runs the same way with
# SHOPKEEP_TEST_PGBOUNCER=1, docs/scaling.md section 2): the money path and its idempotency
# (replays, partitions, claims across partitions, janitors, the advisory-lock purges), the
# events outbox's partitions, the shared rate limit, live servers under concurrency, and
# migrations of fresh, 0.1.0 and previous-migration databases.
POOLED_SLICE = [
    "tests/server/test_idempotency.py",
    "tests/server/test_idempotency_partitions.py",
    "tests/server/test_event_partitions.py",
    "tests/server/test_shared_rate_limit.py",
    "tests/server/test_purchases.py",
    "tests/server/test_concurrency.py",
    "tests/server/test_upgrade.py",
]


@pytest.mark.timeout(600)
def test_a_slice_of_the_suite_passes_through_pgbouncer(direct_database_server: str) -> None:
    """A pytest of its own in the suite's PgBouncer mode (tests/support/pgbouncer.py): every
    connection of the tests (the fixtures', the checks', the live servers' pools, the
    janitors') goes through PgBouncer in transaction mode in front of this session's
    PostgreSQL, with the settings a deployment behind it has."""
    _require("pgbouncer")
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *POOLED_SLICE],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT / "tests"),
            "SHOPKEEP_TEST_DATABASE_URL": direct_database_server,
            pgbouncer.SWITCH: "1",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = child.communicate(timeout=540)
    finally:
        child.kill()  # if still running (a timeout)
        # The child's session database (tests/conftest.py names it by the process id).
        drop_database(direct_database_server, f"shopkeep_test_{child.pid}")
    tail = "\n".join(output.splitlines()[-30:])
    assert child.returncode == 0, tail
    summary = output.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, tail
    assert "through PgBouncer in transaction mode" in output, tail
