"""The session-end audit (tests/conftest.py's ``audit_when_the_session_ends``) really fails a
run: a pytest of its own, with the suite's conftest and a database of its own, leaves a wallet
that its ledger does not explain, and must end non-zero naming the violation."""

from __future__ import annotations

import psycopg
import pytest

from support import ROOT, drop_database, pgbouncer

pytestmark = pytest.mark.slow

LEAVES_A_VIOLATION = """
from pathlib import Path

from shopkeep_server import db
from support import make_game


def test_leaves_a_wallet_without_ledger_entries(database_url):
    Path("database_url.txt").write_text(database_url)
    with db.connect(database_url) as conn:
        game = make_game(conn, game_id="gplanted")
        conn.execute(
            "INSERT INTO wallets (game_id, player_id, currency, balance)"
            " VALUES (%s, 'p1', 'COINS', 5)",
            (game.id,),
        )
"""


def test_a_violation_left_in_the_database_fails_the_run(
    pytester: pytest.Pytester, database_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyfile(test_leaves_a_violation=LEAVES_A_VIOLATION)
    # The run makes its database on this session's server, and imports tests/support.
    monkeypatch.setenv("SHOPKEEP_TEST_DATABASE_URL", database_server)
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "tests"))
    options = ["-p", "no:cacheprovider"]
    if pgbouncer.enabled():
        # database_server is then this session's PgBouncer: the run goes through it as this
        # session does (no statement prepared), rather than put a second one in front of it.
        monkeypatch.delenv(pgbouncer.SWITCH)
        options += ["-p", "support.pooled"]

    result = pytester.runpytest_subprocess(*options)

    try:
        result.assert_outcomes(passed=1, errors=1)
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines(
            [
                "*AUDIT FAILED after the test session: 1 violation(s)*",
                "*- wallet balance equals the sum of its ledger deltas:"
                " wallet gplanted/p1/COINS: balance 5 COINS but ledger sums to 0 COINS",
            ]
        )
    finally:
        planted = (pytester.path / "database_url.txt").read_text()
        name = str(psycopg.conninfo.conninfo_to_dict(planted)["dbname"])
        drop_database(database_server, name)
