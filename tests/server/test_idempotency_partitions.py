"""idempotency_keys partitioned by day of expiry (migration 0012, sql/10_idempotency.sql):
partitions made ahead, keys found whichever partition holds them and unique across partitions,
expiry by dropping whole days without touching a live key, one purger at a time."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import threading
from typing import Any

import psycopg
import pytest

from shopkeep_server import db
from shopkeep_server.config import MIN_IDEMPOTENCY_TTL
from shopkeep_server.metrics import Metrics
from shopkeep_server.serving import Janitor, estimated_keys
from shopkeep_server.store.idempotency import (
    PARTITION_MARGIN_DAYS,
    PURGE_LOCK,
    add_partitions,
    purge_expired,
    purge_if_free,
)
from support import Game, app_database_url, balances, buy, grant, lock_held, make_config, new_key

DAY = dt.timedelta(days=1)


def utc_today(conn: psycopg.Connection) -> dt.date:
    row = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()
    assert row is not None
    today: dt.date = row[0]
    return today


def day_partitions(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'idempotency_keys'::regclass ORDER BY c.relname"
    ).fetchall()
    return [name for (name,) in rows]


def partition_name(day: dt.date) -> str:
    return f"idempotency_keys_{day:%Y%m%d}"


def where_is(conn: psycopg.Connection, game: Game, key: str) -> list[str]:
    """The partitions holding (game, key), one entry per row."""
    rows = conn.execute(
        "SELECT tableoid::regclass::text FROM idempotency_keys WHERE game_id = %s AND key = %s",
        (game.id, key),
    ).fetchall()
    return [name for (name,) in rows]


def purchases(conn: psycopg.Connection, game: Game) -> int:
    row = conn.execute("SELECT count(*) FROM purchases WHERE game_id = %s", (game.id,)).fetchone()
    assert row is not None
    return int(row[0])


def test_migrate_made_the_days_ahead_and_a_default(conn: psycopg.Connection) -> None:
    today = utc_today(conn)
    horizon = (MIN_IDEMPOTENCY_TTL // 86400) + PARTITION_MARGIN_DAYS
    names = day_partitions(conn)
    assert "idempotency_keys_default" in names
    for ahead in range(horizon + 1):
        assert partition_name(today + ahead * DAY) in names
    kind = conn.execute(
        "SELECT relkind FROM pg_class WHERE oid = 'idempotency_keys'::regclass"
    ).fetchone()
    assert kind == ("p",)


def test_a_longer_ttl_gets_its_days_made_once(conn: psycopg.Connection) -> None:
    today = utc_today(conn)
    before = set(day_partitions(conn))
    ttl = 10 * 86400
    wanted = {partition_name(today + n * DAY) for n in range(10 + PARTITION_MARGIN_DAYS + 1)}
    made = add_partitions(conn, ttl)
    after = set(day_partitions(conn))
    assert after - before == wanted - before
    assert made == len(wanted - before) > 0
    assert add_partitions(conn, ttl) == 0  # nothing missing any more
    # Each made day holds exactly its own day of expiry.
    bound = conn.execute(
        "SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = %s",
        (partition_name(today + 10 * DAY),),
    ).fetchone()
    day = today + 10 * DAY
    assert bound == (f"FOR VALUES FROM ('{day} 00:00:00+00') TO ('{day + DAY} 00:00:00+00')",)


def test_a_key_stored_in_an_earlier_partition_still_replays(
    client: Any, conn: psycopg.Connection, game: Game
) -> None:
    grant(client, game, "p1", "COINS", 100)
    key = new_key()
    first = buy(client, game, "potion", key=key)
    assert first.status_code == 201
    # As if bought yesterday: it expires before today's midnight (halfway there), in today's
    # partition, while a claim made now computes its expiry in tomorrow's.
    conn.execute(
        "UPDATE idempotency_keys SET created_at = now() - interval '23 hours',"
        " expires_at = now() + ((date_trunc('day', now() AT TIME ZONE 'UTC')"
        "  + interval '1 day') AT TIME ZONE 'UTC' - now()) / 2"
        " WHERE game_id = %s AND key = %s",
        (game.id, key),
    )
    stored_in = where_is(conn, game, key)
    today = utc_today(conn)
    assert stored_in == [partition_name(today)]
    claim_day = conn.execute(
        "SELECT ((now() + interval '1 day') AT TIME ZONE 'UTC')::date"
    ).fetchone()
    assert claim_day == (today + DAY,)  # a claim now would land in another partition

    again = buy(client, game, "potion", key=key)
    assert again.status_code == 201
    assert again.data == first.data
    assert again.headers["Idempotent-Replayed"] == "true"
    assert where_is(conn, game, key) == stored_in
    assert purchases(conn, game) == 1
    assert balances(client, game)["COINS"] == 50


def test_an_expired_key_counts_as_new(client: Any, conn: psycopg.Connection, game: Game) -> None:
    grant(client, game, "p1", "COINS", 100)
    key = new_key()
    first = buy(client, game, "potion", key=key)
    conn.execute(
        "UPDATE idempotency_keys SET expires_at = now() - interval '1 second'"
        " WHERE game_id = %s AND key = %s",
        (game.id, key),
    )
    again = buy(client, game, "potion", key=key)
    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again.headers
    assert again.get_json()["purchase"]["id"] != first.get_json()["purchase"]["id"]
    assert purchases(conn, game) == 2
    # Two rows, told apart by their expiry; the new outcome went to the live one only.
    rows = conn.execute(
        "SELECT expires_at > now(), response_body FROM idempotency_keys"
        " WHERE game_id = %s AND key = %s ORDER BY expires_at",
        (game.id, key),
    ).fetchall()
    assert rows == [(False, first.get_data(as_text=True)), (True, again.get_data(as_text=True))]
    # And the new one replays.
    third = buy(client, game, "potion", key=key)
    assert third.data == again.data and third.headers["Idempotent-Replayed"] == "true"


def test_dropping_the_days_that_are_over_keeps_every_live_key(
    client: Any, conn: psycopg.Connection, game: Game
) -> None:
    grant(client, game, "p1", "COINS", 1000)
    live = new_key()
    bought = buy(client, game, "potion", key=live)
    # A live key expiring in a minute, in today's partition, and two expired days of keys in
    # partitions of their own (long gone days, so no other test's keys are in the default).
    soon = new_key()
    assert buy(client, game, "potion", key=soon).status_code == 201
    conn.execute(
        "UPDATE idempotency_keys SET expires_at = now() + interval '1 minute'"
        " WHERE game_id = %s AND key = %s",
        (game.id, soon),
    )
    old_days = [dt.date(2001, 1, 1), dt.date(2001, 1, 2)]
    for day in old_days:
        conn.execute(
            f"CREATE TABLE {partition_name(day)} PARTITION OF idempotency_keys"
            f" FOR VALUES FROM ('{day} 00:00:00+00') TO ('{day + DAY} 00:00:00+00')"
        )
        for n in range(3):
            conn.execute(
                "INSERT INTO idempotency_keys (game_id, subject, key, fingerprint, status,"
                " response_body, expires_at) VALUES (%s, 'p1', %s, 'f', 201, '{}', %s)",
                (game.id, f"old-{day}-{n}", dt.datetime(day.year, 1, day.day, 12, tzinfo=dt.UTC)),
            )
    conn.execute("ANALYZE idempotency_keys")  # the dropped partitions' keys are estimated
    today = partition_name(utc_today(conn))

    purged = purge_expired(conn)

    names = day_partitions(conn)
    assert not {partition_name(day) for day in old_days} & set(names)
    assert today in names
    assert purged >= 6  # and whatever else had expired in the session's database
    keys = {
        key
        for (key,) in conn.execute(
            "SELECT key FROM idempotency_keys WHERE game_id = %s AND subject = 'p1'", (game.id,)
        ).fetchall()
    }
    assert keys == {live, soon}
    again = buy(client, game, "potion", key=live)
    assert again.data == bought.data and again.headers["Idempotent-Replayed"] == "true"


def test_the_purge_empties_the_default_partition_of_expired_keys_only(
    conn: psycopg.Connection, game: Game
) -> None:
    # Days nobody made a partition for (far behind, far ahead) land in the default one.
    conn.execute(
        "INSERT INTO idempotency_keys (game_id, subject, key, fingerprint, status,"
        " response_body, expires_at) VALUES"
        " (%(g)s, 'p1', 'default-expired-1', 'f', 201, '{}', '1999-06-01T00:00:00Z'),"
        " (%(g)s, 'p1', 'default-expired-2', 'f', 201, '{}', '1999-06-02T00:00:00Z'),"
        " (%(g)s, 'p1', 'default-live-0001', 'f', 201, '{}', now() + interval '400 days')",
        {"g": game.id},
    )
    assert set(
        where_is(conn, game, "default-expired-1") + where_is(conn, game, "default-live-0001")
    ) == {"idempotency_keys_default"}
    assert purge_expired(conn, batch=1) >= 2  # one key per batch: the loop goes on
    left = conn.execute(
        "SELECT key FROM idempotency_keys WHERE game_id = %s", (game.id,)
    ).fetchall()
    assert left == [("default-live-0001",)]


def test_a_day_whose_keys_are_in_the_default_partition_is_left_to_it(
    conn: psycopg.Connection, game: Game
) -> None:
    today = utc_today(conn)
    far = today + 40 * DAY
    conn.execute(
        "INSERT INTO idempotency_keys (game_id, subject, key, fingerprint, status,"
        " response_body, expires_at) VALUES (%s, 'p1', 'in-the-default-01', 'f', 201, '{}', %s)",
        (game.id, dt.datetime(far.year, far.month, far.day, 12, tzinfo=dt.UTC)),
    )
    made = add_partitions(conn, 41 * 86400)
    names = day_partitions(conn)
    assert partition_name(far) not in names  # its key would not fit the default any more
    assert partition_name(far + DAY) in names
    assert made > 0
    assert where_is(conn, game, "in-the-default-01") == ["idempotency_keys_default"]


def test_two_claims_of_one_key_in_two_partitions_make_one_effect(
    database_url: str, committed_game: Game
) -> None:
    """The claim at a day's boundary: each claim computes its expiry in another partition (two
    TTLs here), so the unique index cannot see the twin; the key's lock does."""
    key = new_key()
    begin = "SELECT status, body FROM sk_idempotency_begin(%s, 'p1', %s, 'fp', %s, %s)"
    with db.connect(database_url) as first, db.connect(database_url) as second:
        with first.transaction():
            claimed = first.execute(
                begin, (committed_game.id, key, MIN_IDEMPOTENCY_TTL, 1000)
            ).fetchone()
            assert claimed == (None, None)  # ours
            with pytest.raises(psycopg.Error) as caught, second.transaction():
                second.execute(begin, (committed_game.id, key, 3 * MIN_IDEMPOTENCY_TTL, 200))
            assert caught.value.diag.message_primary == "idempotency_key_in_use"
            first.execute(
                "SELECT sk_idempotency_finish(%s, 'p1', %s, 'fp', %s, 201, '{\"done\":1}')",
                (committed_game.id, key, MIN_IDEMPOTENCY_TTL),
            )
        with second.transaction():
            replayed = second.execute(
                begin, (committed_game.id, key, 3 * MIN_IDEMPOTENCY_TTL, 200)
            ).fetchone()
        rows = first.execute(
            "SELECT count(*) FROM idempotency_keys WHERE game_id = %s AND key = %s",
            (committed_game.id, key),
        ).fetchone()
    assert replayed == (201, '{"done":1}')
    assert rows == (1,)


def test_two_janitors_at_once_do_the_work_once(database_url: str) -> None:
    """Two servers' janitors wake together: each makes the partitions ahead (the days one made
    are skipped by the other) and purges under the lock; neither fails."""
    config = make_config(app_database_url(database_url), idempotency_ttl=20 * 86400)
    janitors = [Janitor(config, Metrics()) for _ in range(2)]
    start = threading.Barrier(2)

    def wake(janitor: Janitor) -> int | None:
        start.wait()
        janitor.add_partitions()
        start.wait()
        return janitor.purge_once()

    with db.connect(database_url) as owner:
        today = utc_today(owner)
        before = set(day_partitions(owner))
        try:
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                results = list(pool.map(wake, janitors))
            after = set(day_partitions(owner))
            registries: list[Any] = [janitor.metrics.registry for janitor in janitors]
            failed = [
                r.get_sample_value("shopkeep_idempotency_purges_total", {"result": "failed"})
                for r in registries
            ]
            done = [
                r.get_sample_value("shopkeep_idempotency_purges_total", {"result": "done"})
                for r in registries
            ]
        finally:
            # The far days are empty: dropped again, so later tests' lookups stay short.
            for name in set(day_partitions(owner)) - before:
                owner.execute(f"DROP TABLE {name}")
    assert (
        after - before
        == {partition_name(today + n * DAY) for n in range(20 + PARTITION_MARGIN_DAYS + 1)} - before
    )
    assert failed == [None, None] or failed == [0.0, 0.0]
    assert sum(result is not None for result in results) >= 1
    assert sum(d or 0 for d in done) == sum(result is not None for result in results)


def test_a_purge_while_another_holds_the_lock_changes_nothing(
    conn: psycopg.Connection, database_url: str
) -> None:
    before = day_partitions(conn)
    with psycopg.connect(database_url, autocommit=True) as other, lock_held(other, PURGE_LOCK):
        assert purge_if_free(conn, ttl_seconds=30 * 86400) is None
    assert day_partitions(conn) == before


def test_the_size_metric_sums_the_partitions(conn: psycopg.Connection, game: Game) -> None:
    conn.execute(
        "INSERT INTO idempotency_keys (game_id, subject, key, fingerprint, status,"
        " response_body, expires_at) SELECT %s, 'p1', 'estimated-' || n, 'f', 201, '{}',"
        " now() + interval '1 hour' * n FROM generate_series(1, 40) n",
        (game.id,),
    )
    conn.execute("ANALYZE idempotency_keys")  # small tables: every row sampled, exact
    total = conn.execute("SELECT count(*) FROM idempotency_keys").fetchone()
    spread = conn.execute(
        "SELECT count(DISTINCT tableoid) FROM idempotency_keys WHERE game_id = %s", (game.id,)
    ).fetchone()
    assert spread is not None and spread[0] >= 2
    assert total is not None and estimated_keys(conn) == total[0] >= 40
