"""`shopkeep-server stores poll`, the job an operator runs from cron: Google's voided purchases
are taken back once; a store that does not answer makes the command fail and changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from shopkeep_server import db
from shopkeep_server.store import store_accounts
from shopkeep_server.store.idempotency import IdempotencyKey
from shopkeep_server.store.receipts import VerifiedPurchase, credit
from support import ROOT, drop_database, make_game
from support import stores as s

CLI = str(Path(sys.executable).with_name("shopkeep-server"))


@pytest.fixture
def fresh_database(database_url: str) -> Iterator[str]:
    """A database of its own: the poll reads every game's store accounts."""
    name = f"shopkeep_poll_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(database_url, dbname=name)
    with db.connect(url) as conn:
        db.migrate(conn)
    try:
        yield url
    finally:
        drop_database(database_url, name)


def test_the_poll_takes_back_what_google_voided(fresh_database: str) -> None:
    google = s.FakeGooglePlay()
    with s.serving(google.route) as server, db.connect(fresh_database) as conn:
        google.server = server
        game = make_game(conn, s.money_catalog())
        store_accounts.put_account(
            conn,
            game.id,
            "google_play",
            {"package_name": s.PACKAGE_NAME, "service_account": google.service_account()},
            actor="studio",
        )
        token = google.add(s.USD_5["google_play"])
        order = google.purchases[token]["orderId"]
        key = IdempotencyKey(f"receipt-{uuid.uuid4()}", "f", "r", 86400, 1000)
        redeemed = credit(
            conn, game.id, "p1", VerifiedPurchase("google_play", order, "usd5"), key=key
        )
        assert redeemed.status == 201
        conn.commit()
        google.void(token)
        env = {
            **os.environ,
            "SHOPKEEP_DATABASE_URL": fresh_database,
            "SHOPKEEP_GOOGLE_PLAY_API_URL": google.url,
            "SHOPKEEP_GOOGLE_OAUTH_TOKEN_URL": f"{google.url}/token",
        }

        def poll() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [CLI, "stores", "poll"], env=env, capture_output=True, text=True, timeout=120,
                cwd=ROOT,
            )  # fmt: skip

        server.down = True
        down = poll()
        assert down.returncode == 1
        assert f"google_play {game.id}: Google Play did not answer" in down.stderr
        server.down = False
        first = poll()
        assert first.returncode == 0, first.stderr
        assert first.stdout.splitlines() == [f"google_play {game.id}: 1 receipt(s) taken back"]
        assert poll().stdout.splitlines() == [f"google_play {game.id}: 0 receipt(s) taken back"]
        balance = conn.execute(
            "SELECT balance FROM wallets WHERE game_id = %s AND player_id = 'p1'", (game.id,)
        ).fetchone()
        assert balance == (0,)
        audit = subprocess.run(
            [CLI, "audit"], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT
        )
        assert audit.returncode == 0, audit.stdout
