"""Runs last (pytest collects tests/ in name order): after every committed test of the session,
purchases, grants, refunds, concurrency and load smoke alike, the books must balance."""

from __future__ import annotations

from shopkeep_server import db
from shopkeep_server.store.audit import audit


def test_audit_passes_after_the_whole_session(database_url: str) -> None:
    with db.connect(database_url) as conn:
        assert audit(conn) == []
        purchases = conn.execute("SELECT count(*) FROM purchases").fetchone()
    assert purchases is not None and purchases[0] > 0
