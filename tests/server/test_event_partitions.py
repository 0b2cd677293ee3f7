"""The events outbox partitioned by UTC day of the event's time (migration 0016, the day
partitions of sql/05_partitions.sql): positions and the feed's cursor across partition
boundaries, retention by dropping whole days (never one with an event still unpositioned), the
default partition and the webhook delivery log purged in batches, and the upgrade of a
database with events at the previous migration, every row and cursor as it was."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from shopkeep_server import db
from shopkeep_server.store import events
from support import Game, app_database_url, create_database, drop_database, lock_held, make_game

DAY = dt.timedelta(days=1)
# Every column of an event, in a stable order.
EVENT_COLUMNS = "game_id, seq, id, type, player_id, created_at, data"


@pytest.fixture
def fresh_url(database_server: str) -> Iterator[str]:
    """A database of its own, migrated: its days hold only this test's events."""
    name = f"shopkeep_events_{uuid.uuid4().hex[:10]}"
    url = create_database(database_server, name)
    try:
        yield url
    finally:
        drop_database(database_server, name)


def utc_midnight(conn: psycopg.Connection, days_ago: int) -> dt.datetime:
    row = conn.execute(
        "SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
        " - make_interval(days => %s)",
        (days_ago,),
    ).fetchone()
    assert row is not None
    midnight: dt.datetime = row[0]
    return midnight.astimezone(dt.UTC)


def make_past_day(conn: psycopg.Connection, days_ago: int) -> str:
    """The partition of a past day (the store makes days from today on only), as an upgrade
    from an older outbox leaves them; returns its name."""
    start = utc_midnight(conn, days_ago)
    row = conn.execute("SELECT sk_day_partition_name('events', %s)", (start,)).fetchone()
    assert row is not None
    name: str = row[0]
    conn.execute(
        sql.SQL("CREATE TABLE {} PARTITION OF events FOR VALUES FROM ({}) TO ({})").format(
            sql.Identifier(name), sql.Literal(start), sql.Literal(start + DAY)
        )
    )
    return name


def emit_at(conn: psycopg.Connection, game: Game, when: dt.datetime, player: str) -> int:
    """An event written at ``when`` (a transaction's time: one that began then); its seq."""
    row = conn.execute(
        "INSERT INTO events (game_id, type, player_id, created_at, data)"
        " VALUES (%s, 'grant.created', %s, %s, '{}') RETURNING seq",
        (game.id, player, when),
    ).fetchone()
    assert row is not None
    return int(row[0])


def partition_of(conn: psycopg.Connection, seq: int) -> str:
    row = conn.execute(
        "SELECT tableoid::regclass::text FROM events WHERE seq = %s", (seq,)
    ).fetchone()
    assert row is not None
    name: str = row[0]
    return name


def day_partitions(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'events'::regclass ORDER BY c.relname"
    ).fetchall()
    return [name for (name,) in rows]


def feed_ids(conn: psycopg.Connection, game: Game, after: str, limit: int = 100) -> list[int]:
    page = events.feed(conn, game.id, after=after, limit=limit)
    return [event["id"] for event in page["events"]]


def test_migrate_made_the_days_ahead_and_a_default(fresh_url: str) -> None:
    with db.connect(fresh_url) as conn:
        names = day_partitions(conn)
        assert "events_default" in names
        for ahead in range(events.PARTITION_DAYS_AHEAD + 1):
            row = conn.execute(
                "SELECT sk_day_partition_name('events', now() + make_interval(days => %s))",
                (ahead,),
            ).fetchone()
            assert row is not None and row[0] in names
        kind = conn.execute("SELECT relkind FROM pg_class WHERE oid = 'events'::regclass")
        assert kind.fetchone() == ("p",)


def test_positions_and_the_cursor_run_across_partition_boundaries(fresh_url: str) -> None:
    with db.connect(fresh_url) as conn:
        game = make_game(conn)  # its catalog.published event is position 1, today
        two_days_ago, yesterday = make_past_day(conn, 2), make_past_day(conn, 1)
        noon = dt.timedelta(hours=12)
        first = emit_at(conn, game, utc_midnight(conn, 2) + noon, "p1")
        second = emit_at(conn, game, utc_midnight(conn, 1) + noon, "p2")
        # The last second of yesterday and the first of today: two partitions, one apart.
        third = emit_at(conn, game, utc_midnight(conn, 0) - dt.timedelta(microseconds=1), "p3")
        fourth = emit_at(conn, game, utc_midnight(conn, 0), "p4")
        # A transaction that began two days ago and commits now: an old day, the next position.
        late = emit_at(conn, game, utc_midnight(conn, 2) + noon, "p5")
        today = f"events_{utc_midnight(conn, 0):%Y%m%d}"
        assert [partition_of(conn, seq) for seq in (first, second, third, fourth, late)] == [
            two_days_ago,
            yesterday,
            yesterday,
            today,
            two_days_ago,
        ]
        positioned = events.position_all(conn)
        assert positioned == {"catalog.published": 1, "grant.created": 5}

        # Positions follow the order the rows were written in, whatever day holds them.
        found = events.feed(conn, game.id)["events"]
        assert [(e["id"], e["player_id"]) for e in found] == [
            (1, None),
            (2, "p1"),
            (3, "p2"),
            (4, "p3"),
            (5, "p4"),
            (6, "p5"),
        ]
        # Every cursor goes on from where it was, a page at a time across the days.
        assert feed_ids(conn, game, "2") == [3, 4, 5, 6]
        assert feed_ids(conn, game, "3", limit=1) == [4]
        assert feed_ids(conn, game, "4", limit=2) == [5, 6]
        assert events.feed(conn, game.id, after="6")["next_cursor"] == "6"
        # The next event, today, takes the next position.
        emit_at(conn, game, utc_midnight(conn, 0) + dt.timedelta(seconds=1), "p6")
        events.position_all(conn)
        assert feed_ids(conn, game, "6") == [7]


def test_the_feed_reads_each_partition_through_its_index(fresh_url: str) -> None:
    with db.connect(fresh_url) as conn, conn.transaction():
        game = make_game(conn)
        make_past_day(conn, 1)
        # Whatever the planner would pick for a handful of rows: what matters is that the feed's
        # lookup has an index in every partition (a unique index could not serve it any more:
        # it would have to contain the partition column).
        conn.execute("SET LOCAL enable_seqscan = off")
        conn.execute("SET LOCAL enable_sort = off")
        plan = "\n".join(
            line
            for (line,) in conn.execute(
                "EXPLAIN SELECT e.id FROM events e WHERE e.game_id = %s AND e.id > %s"
                " ORDER BY e.id LIMIT 100",
                (game.id, 0),
            ).fetchall()
        )
        assert "Merge Append" in plan, plan
        assert "Seq Scan" not in plan and "Sort" not in plan.replace("Sort Key", ""), plan
        for partition in day_partitions(conn):
            assert f"Scan using {partition}_game_id_id_idx on {partition}" in plan, plan


def test_retention_drops_whole_days_and_keeps_an_unpositioned_event(fresh_url: str) -> None:
    retention = 2 * 86400  # days that ended two days ago go: four and three days ago
    noon = dt.timedelta(hours=12)
    with db.connect(fresh_url) as conn:
        game = make_game(conn)
        days = {ago: make_past_day(conn, ago) for ago in (4, 3, 2, 1)}
        for ago in (3, 3, 2, 1):
            emit_at(conn, game, utc_midnight(conn, ago) + noon, f"d{ago}")
        # Ten days ago has no partition: the default holds it (positioned) ...
        emit_at(conn, game, utc_midnight(conn, 10) + noon, "d10")
        events.position_all(conn)
        # ... and one event of four days ago still waits for its position: no sequencer may
        # run (another connection holds its lock), not even the feed's own pass.
        with db.connect(fresh_url) as holder, lock_held(holder, events.SEQUENCER_LOCK):
            waiting = emit_at(conn, game, utc_midnight(conn, 4) + noon, "d4")
            # In the order written: today's publish, d3, d3, d2, d1, d10.
            assert feed_ids(conn, game, "0") == [1, 2, 3, 4, 5, 6]
            # The server's role, as the janitor runs: three days ago (2 events) and the
            # default's one go; four days ago stays for its unpositioned event.
            with psycopg.connect(app_database_url(fresh_url), autocommit=True) as app_conn:
                assert events.purge_expired(app_conn, retention_seconds=retention) == 3
            names = day_partitions(conn)
            assert days[3] not in names
            assert {days[4], days[2], days[1]} <= set(names)
            assert partition_of(conn, waiting) == days[4]
            # The feed goes on from any cursor, the purged ones simply gone.
            assert feed_ids(conn, game, "0") == [1, 4, 5]
            assert feed_ids(conn, game, "2") == [4, 5]

        # Positioned now: the next purge drops its day as well.
        events.position_all(conn)
        assert feed_ids(conn, game, "5") == [7]
        with psycopg.connect(app_database_url(fresh_url), autocommit=True) as app_conn:
            assert events.purge_expired(app_conn, retention_seconds=retention) == 1
        assert days[4] not in day_partitions(conn)
        assert feed_ids(conn, game, "0") == [1, 4, 5]
        # The days the retention keeps, and today's and those ahead, are all still there.
        assert {days[2], days[1]} <= set(day_partitions(conn))


def test_the_server_role_cannot_delete_events_or_the_delivery_log(fresh_url: str) -> None:
    with db.connect(fresh_url) as conn:
        game = make_game(conn)
    with psycopg.connect(app_database_url(fresh_url), autocommit=True) as app_conn:
        for table in ("events", "webhook_deliveries"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app_conn.execute(
                    sql.SQL("DELETE FROM {} WHERE game_id = %s").format(sql.Identifier(table)),
                    (game.id,),
                )
        # Nor reach a partition, nor make or drop one itself.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app_conn.execute("SELECT count(*) FROM events_default")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app_conn.execute("SELECT sk_add_day_partitions('events', now() + interval '9 days')")


def test_the_delivery_log_keeps_the_retention(fresh_url: str) -> None:
    retention = 7 * 86400
    with db.connect(fresh_url) as conn:
        game = make_game(conn)
        webhook = uuid.uuid4()
        conn.execute(
            "INSERT INTO webhook_endpoints (game_id, id, url, secret)"
            " VALUES (%s, %s, 'https://example.test/hook', %s)",
            (game.id, webhook, b"s" * 32),
        )
        for age_days, attempt in ((8, 1), (8, 2), (6, 1), (0, 1)):
            conn.execute(
                "INSERT INTO webhook_deliveries (game_id, webhook_id, event_id, attempt,"
                " status_code, latency_ms, attempted_at)"
                " VALUES (%s, %s, 1, %s, 500, 3, now() - make_interval(days => %s))",
                (game.id, webhook, attempt, age_days),
            )
        with psycopg.connect(app_database_url(fresh_url), autocommit=True) as app_conn:
            # As the janitor runs it: no event was old enough, two attempts were.
            assert events.purge_if_free(app_conn, retention_seconds=retention) == 0
        left = conn.execute(
            "SELECT attempt, extract(day FROM now() - attempted_at)::int FROM webhook_deliveries"
            " ORDER BY attempted_at"
        ).fetchall()
        assert left == [(1, 6), (1, 0)]
        # In batches (of one here): every old attempt goes, however many batches it takes.
        conn.execute(
            "INSERT INTO webhook_deliveries (game_id, webhook_id, event_id, attempt, latency_ms,"
            " attempted_at) SELECT %s, %s, 2, n, 1, now() - interval '30 days'"
            " FROM generate_series(1, 3) n",
            (game.id, webhook),
        )
        assert events.purge_expired(conn, retention_seconds=retention, batch=1) == 0
        count = conn.execute("SELECT count(*) FROM webhook_deliveries").fetchone()
        assert count == (2,)


# ---------------------------------------------------------------------------------------------
# The upgrade from the previous migration
# ---------------------------------------------------------------------------------------------


def test_an_outbox_at_the_previous_migration_upgrades_row_for_row(
    database_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"shopkeep_events_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database_server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(database_server, dbname=name)
    try:
        with db.connect(url) as conn:
            _upgrade_and_compare(conn, url, monkeypatch)
    finally:
        drop_database(database_server, name)


def _upgrade_and_compare(
    conn: psycopg.Connection, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store as the previous migration left it: every migration before 0016 (the outbox
    # not partitioned), and no partitions of it to make yet.
    shipped = db.migration_files()
    with monkeypatch.context() as before:
        before.setattr(db, "migration_files", lambda: [m for m in shipped if m[0] < 16])
        before.setattr(events, "add_partitions", lambda conn: 0)
        db.migrate(conn)
    kind = conn.execute("SELECT relkind FROM pg_class WHERE oid = 'events'::regclass")
    assert kind.fetchone() == ("r",)

    game = make_game(conn)
    other = make_game(conn)
    for days_ago in (5, 3, 1, 0):
        conn.execute(
            "INSERT INTO events (game_id, type, player_id, created_at, data) VALUES"
            " (%s, 'grant.created', 'p1', now() - make_interval(days => %s, hours => 1),"
            " jsonb_build_object('days_ago', %s))",
            (game.id, days_ago, days_ago),
        )
    events.position_all(conn)
    # One written but not positioned yet, as a sequencer between passes leaves it.
    conn.execute(
        "INSERT INTO events (game_id, type, player_id, data)"
        " VALUES (%s, 'stock.restocked', NULL, '{\"sku\": \"potion\"}')",
        (other.id,),
    )
    # A seq drawn and rolled back: the sequence is ahead of the rows.
    with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
        conn.execute(
            "INSERT INTO events (game_id, type, data) VALUES (%s, 'grant.created', '[]')",
            (game.id,),
        )
    rows_before = conn.execute(f"SELECT {EVENT_COLUMNS} FROM events ORDER BY seq").fetchall()
    positions_before = conn.execute("SELECT * FROM event_positions ORDER BY game_id").fetchall()
    pages_before = [events.feed(conn, game.id, after=str(after), limit=2) for after in range(6)]
    last_seq = rows_before[-1][1]

    # The upgrade, with today's code: the migration has the function files applied again for
    # the new table (and their privileges with them), as they already were today's.
    assert db.migrate(conn) == [name for number, name, _ in shipped if number >= 16]

    kind = conn.execute("SELECT relkind FROM pg_class WHERE oid = 'events'::regclass")
    assert kind.fetchone() == ("p",)
    assert conn.execute(f"SELECT {EVENT_COLUMNS} FROM events ORDER BY seq").fetchall() == (
        rows_before
    )
    assert (
        conn.execute("SELECT * FROM event_positions ORDER BY game_id").fetchall()
        == positions_before
    )
    # Each old event sits in its day's partition, none in the default.
    placed = conn.execute(
        "SELECT tableoid::regclass::text, created_at FROM events ORDER BY seq"
    ).fetchall()
    for partition, created_at in placed:
        assert partition == f"events_{created_at.astimezone(dt.UTC):%Y%m%d}"
    # The server's role reads the same pages from every cursor, and positions what waited.
    with psycopg.connect(app_database_url(url), autocommit=True) as app_conn:
        pages_after = [
            events.feed(app_conn, game.id, after=str(after), limit=2) for after in range(6)
        ]
        assert pages_after == pages_before
        waiting = events.feed(app_conn, other.id)["events"]
        assert [e["type"] for e in waiting] == ["catalog.published", "stock.restocked"]
        assert [e["id"] for e in waiting] == [1, 2]
        # New events go on: the next seq after the old sequence's (one was rolled back), the
        # game's next position.
        app_conn.execute(
            "SELECT sk_emit_event(%s, 'grant.created', 'p2', %s::jsonb)",
            (game.id, json.dumps({"after": "upgrade"})),
        )
        after_upgrade = events.feed(app_conn, game.id, after=pages_before[-1]["next_cursor"])
    new_seq = conn.execute("SELECT max(seq) FROM events").fetchone()
    assert new_seq == (last_seq + 2,)
    assert [(e["id"], e["data"]) for e in after_upgrade["events"]] == [(6, {"after": "upgrade"})]
