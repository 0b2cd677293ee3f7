"""Upgrading a store made by release 0.1.0 (tests/data/release-0.1.0) with today's migrate, and
the two rules of migrate: an applied migration never changes; a changed function file is
applied at the next start and an unchanged one costs nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from shopkeep_server import db
from shopkeep_server.app import create_app
from shopkeep_server.demo import demo_catalog
from shopkeep_server.store import catalog, events, games, rules
from shopkeep_server.store.audit import audit
from shopkeep_server.store.idempotency import purge_expired
from support import ROOT, Game, drop_database, make_config, make_game, new_key

pytestmark = pytest.mark.slow

RELEASE_0_1_0 = ROOT / "tests" / "data" / "release-0.1.0"
SQL_DIR = ROOT / "server" / "shopkeep_server" / "sql"
CLI = str(Path(sys.executable).parent / "shopkeep-server")


@contextmanager
def scratch_database(database_url: str) -> Iterator[str]:
    """A new empty database on the test server, dropped afterwards."""
    name = f"shopkeep_upgrade_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    info["dbname"] = name
    try:
        yield psycopg.conninfo.make_conninfo(**info)
    finally:
        drop_database(database_url, name)


def migrate_as_release_0_1_0(conn: psycopg.Connection) -> None:
    """What that release's db.migrate did: one transaction, its schema_migrations table (no
    checksum column), each file applied and recorded by number and name."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (db.MIGRATIONS_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for path in sorted(RELEASE_0_1_0.glob("*.sql")):
            conn.execute(path.read_text(encoding="utf-8"))
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                (int(path.name.split("_", 1)[0]), path.name),
            )


def release_0_1_0_fingerprint(method: str, path: str, body: Any) -> str:
    """That release's request fingerprint, stored with every key it recorded."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method.upper()} {path}\n{canonical}".encode()).hexdigest()


class OldStore:
    """Requests as release 0.1.0 ran them: the HTTP body, the arguments its handlers built,
    and its SQL entry point sk_idempotent(..., operation, args jsonb)."""

    def __init__(self, conn: psycopg.Connection, game: Game) -> None:
        self.conn, self.game = conn, game
        # (role, subject, key, path, body, status, stored body) of every request made
        self.requests: list[tuple[str, str, str, str, Any, int, str]] = []

    def call(
        self, role: str, subject: str, path: str, body: Any, operation: str, args: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        key = f"old-{uuid.uuid4()}"
        row = self.conn.execute(
            "SELECT status, body, replayed FROM sk_idempotent(%s, %s, %s, %s, 86400, 1000,"
            " %s, %s, %s)",
            (
                self.game.id,
                subject,
                key,
                release_0_1_0_fingerprint("POST", path, body),
                f"old-request-{len(self.requests)}",
                operation,
                Jsonb(args),
            ),
        ).fetchone()
        assert row is not None and row[2] is False
        self.requests.append((role, subject, key, path, body, row[0], row[1]))
        return row[0], json.loads(row[1])

    def grant(self, player: str, **body: Any) -> tuple[int, dict[str, Any]]:
        return self.call(
            "service",
            "backend",
            f"/v1/players/{player}/grants",
            body,
            "grant",
            {"player_id": player, **body},
        )

    def purchase(self, player: str, **body: Any) -> tuple[int, dict[str, Any]]:
        args = {"quantity": 1, **body}  # the request schema's default
        return self.call("player", player, "/v1/purchases", body, "purchase", args)

    def refund(self, purchase_id: str, reason: str) -> tuple[int, dict[str, Any]]:
        body = {"reason": reason}
        return self.call(
            "service",
            "backend",
            f"/v1/purchases/{purchase_id}/refund",
            body,
            "refund",
            {"purchase_id": purchase_id, **body},
        )

    def consume(self, player: str, sku: str, quantity: int) -> tuple[int, dict[str, Any]]:
        body = {"quantity": quantity}
        return self.call(
            "player",
            player,
            f"/v1/inventory/{sku}/consume",
            body,
            "consume",
            {"sku": sku, **body},
        )


def function_bodies_in_files() -> dict[str, str]:
    """name -> body of every function the files of shopkeep_server/sql/ create."""
    found: dict[str, str] = {}
    pattern = re.compile(r"CREATE OR REPLACE FUNCTION\s+(\w+)\s*\(.*?\$\$(.*?)\$\$", re.S)
    for path in sorted(SQL_DIR.glob("*.sql")):
        for name, body in pattern.findall(path.read_text(encoding="utf-8")):
            assert name not in found, f"{name} is created twice"
            found[name] = body
    return found


def live_functions(conn: psycopg.Connection) -> dict[str, str]:
    """name -> body of every sk_ function in the database except trigger functions."""
    rows = conn.execute(
        "SELECT proname, prosrc FROM pg_proc"
        " WHERE pronamespace = current_schema()::text::regnamespace AND proname LIKE 'sk\\_%'"
        " AND prorettype <> 'trigger'::regtype"
    ).fetchall()
    names = [name for name, _ in rows]
    assert len(names) == len(set(names)), f"overloaded functions: {sorted(names)}"
    return dict(rows)


def function_oids(conn: psycopg.Connection) -> dict[str, int]:
    rows = conn.execute(
        "SELECT proname, oid::bigint FROM pg_proc WHERE proname LIKE 'sk\\_%'"
        " AND pronamespace = current_schema()::text::regnamespace"
    ).fetchall()
    return dict(rows)


# The old keys' outcomes were stored by release 0.1.0's functions, and their replays are its
# bodies byte for byte, without the fields added since (a purchase's offer_id): old data, not
# today's answers, so they are not held to today's wire contract.
@pytest.mark.planted_outcome
def test_a_release_0_1_0_store_upgrades_and_keeps_its_keys_and_books(database_url: str) -> None:
    with scratch_database(database_url) as url, db.connect(url) as conn:
        migrate_as_release_0_1_0(conn)
        # That release's catalogs had no real-money products, segments, offers or codes (nor
        # tables for them).
        content = demo_catalog(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1), offers=False)
        del content["products"]
        # Release 0.1.0 wrote no events: today's code makes the game without them.
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(events, "emit", lambda *args, **kwargs: None)
            game = make_game(conn, content)
        old = OldStore(conn, game)

        # The old store's life: funds, a limited drop, a bundle, a refused repeat of the drop
        # (a stored 409), a purchase at the price the player saw, its refund, a consumption.
        assert old.grant("p1", currency="COINS", amount=5000, reason="welcome")[0] == 201
        assert old.grant("p1", currency="GEMS", amount=20, reason="welcome")[0] == 201
        assert old.purchase("p1", sku="dragon_egg")[0] == 201
        assert old.purchase("p1", sku="starter_pack")[0] == 201
        status, refused = old.purchase("p1", sku="dragon_egg")
        assert status == 409 and refused["error"]["code"] == "purchase_limit_reached"
        status, bought = old.purchase(
            "p1", sku="potion", quantity=3, expected_price={"currency": "COINS", "amount": 50}
        )
        assert status == 201
        assert old.refund(bought["purchase"]["id"], "support")[0] == 200
        assert old.consume("p1", "potion", 1)[0] == 200
        assert audit(conn) == []
        # A key past its TTL the old store had not purged yet.
        conn.execute(
            "INSERT INTO idempotency_keys (game_id, subject, key, fingerprint, status,"
            " response_body, expires_at) VALUES (%s, 'p1', 'old-expired-key-01', 'f', 201,"
            " '{}', now() - interval '2 days')",
            (game.id,),
        )
        old_rows = conn.execute(
            "SELECT game_id, subject, key, fingerprint, status, response_body, created_at,"
            " expires_at FROM idempotency_keys ORDER BY key"
        ).fetchall()

        # The upgrade, with today's code.
        assert db.migrate(conn) == [
            path.name
            for path in sorted((ROOT / "server/shopkeep_server/migrations").glob("*.sql"))
            if not (RELEASE_0_1_0 / path.name).exists()
        ]

        # Every applied migration now has its checksum, taken from the shipped file.
        recorded = dict(conn.execute("SELECT name, checksum FROM schema_migrations").fetchall())
        shipped = ROOT / "server/shopkeep_server/migrations"
        assert recorded == {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in shipped.glob("*.sql")
        }
        # The keys moved to the table partitioned by day of expiry (migration 0012) as they
        # were: the live ones into their days' partitions, the expired one into the default,
        # which the purge empties.
        assert (
            conn.execute(
                "SELECT game_id, subject, key, fingerprint, status, response_body, created_at,"
                " expires_at FROM idempotency_keys ORDER BY key"
            ).fetchall()
            == old_rows
        )
        placed = dict(
            conn.execute(
                "SELECT key, tableoid::regclass::text FROM idempotency_keys WHERE game_id = %s",
                (game.id,),
            ).fetchall()
        )
        assert placed.pop("old-expired-key-01") == "idempotency_keys_default"
        assert len(placed) == len(old.requests)
        assert all(re.fullmatch(r"idempotency_keys_\d{8}", where) for where in placed.values())
        assert purge_expired(conn) == 1
        assert conn.execute(
            "SELECT relkind FROM pg_class WHERE oid = 'idempotency_keys'::regclass"
        ).fetchone() == ("p",)
        # Today's function bodies are the live ones, and nothing of the old entry points is.
        assert live_functions(conn) == function_bodies_in_files()
        # The append-only triggers kept their function.
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("DELETE FROM ledger_entries WHERE game_id = %s", (game.id,))

        app = create_app(make_config(url))
        try:
            client = app.test_client()
            # Every old key replays through today's API, byte for byte.
            for role, subject, key, path, body, status, stored in old.requests:
                headers = game.headers(role, subject, **{"Idempotency-Key": key})
                response = client.post(path, json=body, headers=headers)
                assert response.status_code == status, (path, response.get_data(as_text=True))
                assert response.get_data() == stored.encode()
                assert response.headers["Idempotent-Replayed"] == "true"

            # New purchases work on the old data: p1 spent 800 + 0 (the pack is paid in gems);
            # the pack gave 200 coins; the potions were refunded.
            buy = client.post(
                "/v1/purchases",
                json={"sku": "shield", "currency": "COINS"},
                headers=game.headers("player", "p1", **{"Idempotency-Key": f"new-{uuid.uuid4()}"}),
            )
            assert buy.status_code == 201, buy.get_json()
            assert {"currency": "COINS", "amount": 5000 - 800 + 200 - 120} in buy.get_json()[
                "balances"
            ]
            grant = client.post(
                "/v1/players/p2/grants",
                json={"currency": "COINS", "amount": 1000, "reason": "welcome"},
                headers=game.headers(
                    "service", "backend", **{"Idempotency-Key": f"new-{uuid.uuid4()}"}
                ),
            )
            assert grant.status_code == 201
            egg = client.post(
                "/v1/purchases",
                json={"sku": "dragon_egg"},
                headers=game.headers("player", "p2", **{"Idempotency-Key": f"new-{uuid.uuid4()}"}),
            )
            assert egg.status_code == 201, egg.get_json()
            stock = client.get("/v1/stock?sku=dragon_egg", headers=game.headers())
            assert stock.get_json()["stock"] == [{"sku": "dragon_egg", "remaining": 98}]
        finally:
            app.extensions["shopkeep"].db.close()

        # What today's code did on the old data wrote its events; the old store's wrote none.
        written = conn.execute(
            "SELECT type, player_id FROM events WHERE game_id = %s ORDER BY seq", (game.id,)
        ).fetchall()
        assert written == [
            ("purchase.completed", "p1"),
            ("grant.created", "p2"),
            ("purchase.completed", "p2"),
        ]
        # The old store kept no player rows: p1, seen by today's code first, counts from its
        # first ledger entry (the old welcome grant), not from the upgrade; p2 from today.
        first_entries = dict(
            conn.execute(
                "SELECT DISTINCT ON (player_id) player_id, created_at FROM ledger_entries"
                " WHERE game_id = %s ORDER BY player_id, id",
                (game.id,),
            ).fetchall()
        )
        seen = dict(
            conn.execute(
                "SELECT player_id, first_seen FROM player_profiles WHERE game_id = %s", (game.id,)
            ).fetchall()
        )
        assert seen == first_entries
        assert seen["p1"] < seen["p2"]
        assert audit(conn) == []
        audited = subprocess.run(
            [CLI, "audit"],
            env={**os.environ, "SHOPKEEP_DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert audited.returncode == 0, audited.stdout + audited.stderr
        assert audited.stdout.startswith("audit passed")

        # A second start changes nothing: no migration, no function replaced.
        oids = function_oids(conn)
        assert db.migrate(conn) == []
        assert function_oids(conn) == oids


def test_a_fresh_database_runs_todays_functions_only(database_url: str) -> None:
    with scratch_database(database_url) as url, db.connect(url) as conn:
        db.migrate(conn)
        assert live_functions(conn) == function_bodies_in_files()
        assert "sk_idempotent" not in live_functions(conn)


def test_an_applied_migration_that_changed_stops_migrate(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with scratch_database(database_url) as url, db.connect(url) as conn:
        db.migrate(conn)
        shipped = db.migration_files()
        edited = [
            (number, name, sql_text + "\n-- edited in place\n" if number == 2 else sql_text)
            for number, name, sql_text in shipped
        ]
        monkeypatch.setattr(db, "migration_files", lambda: edited)
        recorded = hashlib.sha256(shipped[1][2].encode()).hexdigest()
        current = hashlib.sha256(edited[1][2].encode()).hexdigest()
        with pytest.raises(db.MigrationChanged) as caught:
            db.migrate(conn)
        message = str(caught.value)
        assert "0002_money.sql" in message
        assert recorded in message and current in message
        assert "restore 0002_money.sql" in message and "new migration" in message
        monkeypatch.undo()

        # The command line says the same, without a traceback, and exits 1.
        conn.execute("UPDATE schema_migrations SET checksum = %s WHERE version = 3", ("0" * 64,))
        result = subprocess.run(
            [CLI, "migrate"],
            env={**os.environ, "SHOPKEEP_DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 1
        assert "Error: migration 0003_studio_sessions.sql was changed" in result.stderr
        assert "0" * 64 in result.stderr
        assert "Traceback" not in result.stderr + result.stdout


def test_a_changed_function_file_is_applied_at_the_next_migrate(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with scratch_database(database_url) as url, db.connect(url) as conn:
        db.migrate(conn)
        before = function_oids(conn)
        applied_at = conn.execute("SELECT max(applied_at) FROM schema_functions").fetchone()

        # Unchanged files: nothing is dropped or created.
        assert db.apply_functions(conn) == []
        assert function_oids(conn) == before

        # One file edited: it is live after the next migrate, recorded with its new checksum.
        files = db.function_files()
        edited = [
            db.SqlFile(f.name, f.sql.replace("the price is not the one the player saw", "moved"))
            if f.name == "60_purchase.sql"
            else f
            for f in files
        ]
        assert edited != files
        monkeypatch.setattr(db, "function_files", lambda: edited)
        assert db.migrate(conn) == []
        source = conn.execute("SELECT prosrc FROM pg_proc WHERE proname = 'sk_purchase'").fetchone()
        assert source is not None and "'moved'" in source[0]
        recorded = dict(conn.execute("SELECT name, checksum FROM schema_functions").fetchall())
        assert recorded == {f.name: f.checksum for f in edited}
        assert conn.execute("SELECT max(applied_at) FROM schema_functions").fetchone() != applied_at

        # And again: nothing to do.
        after = function_oids(conn)
        assert db.apply_functions(conn) == []
        assert function_oids(conn) == after

        # A function dropped from the files does not linger.
        trimmed = [f for f in edited if f.name != "63_consume.sql"]
        monkeypatch.setattr(db, "function_files", lambda: trimmed)
        db.migrate(conn)
        assert "sk_consume" not in function_oids(conn)
        assert "sk_purchase" in function_oids(conn)


def migrate_to(conn: psycopg.Connection, last: int) -> None:
    """The store as db.migrate left it when ``last`` was the newest migration shipped: those
    migrations applied and recorded with their checksums (the function files, which change
    with every release, are applied by the upgrade that follows)."""
    with conn.transaction():
        conn.execute(
            "CREATE TABLE schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now(), checksum text)"
        )
        for number, name, sql_text in db.migration_files():
            if number <= last:
                conn.execute(sql_text)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (number, name, db.SqlFile(name, sql_text).checksum),
                )


# Players of a store at migration 0013, in player_risk (first_seen_at, tier, freeze) and
# player_profiles (first_seen, country, attributes): (game, player, risk row or None, profile
# row or None), ages in hours before now.
PLAYERS_AT_0013: list[tuple[str, str, dict[str, Any] | None, dict[str, Any] | None]] = [
    (
        "g1",
        "risk_older",
        {
            "age": 72,
            "tier": "new",
            "tier_reason": "chargeback",
            "tier_set_by": "backend",
            "tier_age": 48,
            "frozen_by": "fraud",
            "frozen_reason": "stolen card",
            "frozen_age": 24,
        },
        {"age": 24, "country": "BR", "attributes": {"level": 3}},
    ),
    ("g1", "profile_older", {"age": 1}, {"age": 120, "country": None, "attributes": {}}),
    (
        "g1",
        "risk_only",
        {
            "age": 2,
            "tier": "trusted",
            "tier_reason": "kyc",
            "tier_set_by": "support",
            "tier_age": 1,
        },
        None,
    ),
    ("g1", "profile_only", None, {"age": 4, "country": "DE", "attributes": {"vip": True}}),
    # The same player id in another game is another player.
    ("g2", "risk_older", {"age": 5}, None),
]
COLUMNS = (
    "game_id, player_id, first_seen, country, attributes, updated_at, tier, tier_reason,"
    " tier_set_by, tier_set_at, frozen_at, frozen_by, frozen_reason"
)


def _hours_before(base: dt.datetime, hours: int | None) -> dt.datetime | None:
    return None if hours is None else base - dt.timedelta(hours=hours)


def test_a_store_at_0013_keeps_its_players_in_one_row(database_url: str) -> None:
    with scratch_database(database_url) as url, db.connect(url) as conn:
        migrate_to(conn, 13)
        for game_id in ("g1", "g2"):
            conn.execute("INSERT INTO games (id, name) VALUES (%s, %s)", (game_id, game_id))
        expected: list[tuple[Any, ...]] = []
        now = dt.datetime.now(dt.UTC)
        for game_id, player, risk_row, profile in PLAYERS_AT_0013:
            r = risk_row or {}
            if risk_row is not None:
                conn.execute(
                    "INSERT INTO player_risk (game_id, player_id, first_seen_at, tier,"
                    " tier_reason, tier_set_by, tier_set_at, frozen_at, frozen_by, frozen_reason)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        game_id,
                        player,
                        _hours_before(now, r["age"]),
                        r.get("tier"),
                        r.get("tier_reason"),
                        r.get("tier_set_by"),
                        _hours_before(now, r.get("tier_age")),
                        _hours_before(now, r.get("frozen_age")),
                        r.get("frozen_by"),
                        r.get("frozen_reason"),
                    ),
                )
            if profile is not None:
                conn.execute(
                    "INSERT INTO player_profiles (game_id, player_id, first_seen, country,"
                    " attributes, updated_at) VALUES (%s, %s, %s, %s, %s, %s)",
                    (
                        game_id,
                        player,
                        _hours_before(now, profile["age"]),
                        profile["country"],
                        Jsonb(profile["attributes"]),
                        _hours_before(now, profile["age"]),
                    ),
                )
            # One row: first seen at the earlier of the two; the profile as it was (a player
            # new to the table was last updated when first seen); the risk state as it was.
            first_seen = _hours_before(now, max(r.get("age", 0), (profile or {}).get("age", 0)))
            expected.append(
                (
                    game_id,
                    player,
                    first_seen,
                    (profile or {}).get("country"),
                    (profile or {}).get("attributes", {}),
                    _hours_before(now, profile["age"]) if profile else first_seen,
                    r.get("tier"),
                    r.get("tier_reason"),
                    r.get("tier_set_by"),
                    _hours_before(now, r.get("tier_age")),
                    _hours_before(now, r.get("frozen_age")),
                    r.get("frozen_by"),
                    r.get("frozen_reason"),
                )
            )

        # The upgrade, with today's code.
        assert db.migrate(conn) == [name for number, name, _ in db.migration_files() if number > 13]
        assert "0014_one_player_row.sql" in {
            name for (name,) in conn.execute("SELECT name FROM schema_migrations")
        }
        assert conn.execute("SELECT to_regclass('player_risk')").fetchone() == (None,)
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM player_profiles ORDER BY game_id, player_id"
        ).fetchall()
        assert rows == sorted(expected, key=lambda row: (row[0], row[1]))

        # Today's API reads the one row: the freeze and tiers hold, and the trust tiers go by
        # the first_seen the segments see.
        key = games.add_key(conn, "g1", issuer="shopkeep")
        content = {
            "currencies": [{"code": "COINS", "name": "Coins", "scale": 0}],
            "items": [
                {
                    "sku": "potion",
                    "name": "Potion",
                    "kind": "consumable",
                    "prices": [{"currency": "COINS", "amount": 0}],
                }
            ],
            "risk": {
                "tiers": [
                    {"name": "young", "while_younger_than_seconds": 86_400},
                    {"name": "new", "while_younger_than_seconds": 60},
                ]
            },
        }
        with conn.transaction():
            catalog.put_draft(conn, "g1", content, if_match="*")
            catalog.publish(conn, "g1", actor="lead", stock_buckets=1)
        game = Game("g1", key)
        app = create_app(make_config(url))
        try:
            client = app.test_client()
            service = game.headers("service", "backend")
            by_player = {row[1]: row for row in rows if row[0] == "g1"}
            tiers = {}
            for player, row in by_player.items():
                risk_view = client.get(f"/v1/players/{player}/risk", headers=service).get_json()
                attributes = client.get(
                    f"/v1/players/{player}/attributes", headers=service
                ).get_json()
                assert risk_view["first_seen_at"] == attributes["first_seen"]
                assert risk_view["first_seen_at"] == rules.format_timestamp(row[2])
                assert risk_view["frozen"] is (row[10] is not None)
                tiers[player] = (risk_view["tier"], (risk_view["tier_set"] or {}).get("tier"))
            # risk_older stays in the tier the service set; profile_older is five days old by
            # its profile (an hour by its old risk row); risk_only was lifted by the service;
            # profile_only is four hours old.
            assert tiers == {
                "risk_older": ("new", "new"),
                "profile_older": (None, None),
                "risk_only": (None, "trusted"),
                "profile_only": ("young", None),
            }
            frozen = client.get("/v1/players/risk_older/risk", headers=service).get_json()
            assert frozen["freeze"] == {
                "reason": "stolen card",
                "frozen_by": "fraud",
                "frozen_at": rules.format_timestamp(by_player["risk_older"][10]),
            }

            def buy(player: str) -> Any:
                return client.post(
                    "/v1/purchases",
                    json={"sku": "potion"},
                    headers=game.headers("player", player, **{"Idempotency-Key": new_key()}),
                )

            refused = buy("risk_older")
            assert (refused.status_code, refused.get_json()["error"]["code"]) == (
                403,
                "account_frozen",
            )
            assert buy("profile_older").status_code == 201
            # A player new to the store gets its one row, seen now.
            assert buy("newcomer").status_code == 201
        finally:
            app.extensions["shopkeep"].db.close()
        assert conn.execute(
            "SELECT count(*) FROM player_profiles WHERE game_id = 'g1' AND player_id = 'newcomer'"
            " AND first_seen > now() - interval '1 minute' AND frozen_at IS NULL"
        ).fetchone() == (1,)
