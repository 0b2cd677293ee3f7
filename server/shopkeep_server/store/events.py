"""Events: what happened to a game's money, items and catalog, exactly as the ledger says.

An event row is written by the transaction that makes its effect (``sk_emit_event``, called by
the money functions of sql/6x_*.sql and by publish, rollback and restock in
:mod:`.catalog`), so it exists exactly when the effect committed. Its public ``id``, the
position in the game's feed, is given afterwards by the sequencer (:func:`position_pending`,
``sk_position_events`` in sql/70_events.sql), only to committed rows and only ever upwards: a
reader that has seen position N never finds a new event below N. The server's processes run
the sequencer in the background (:mod:`shopkeep_server.sequencer`); the feed also runs one
pass itself when rows are waiting, so an event shows up as soon as it is committed.

The feed's cursor is the last event's ``id`` as a decimal string: ``next_cursor`` and an
event's ``id`` are interchangeable, so a consumer that got event 42 by webhook may pull from
``after=42``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any, LiteralString

import psycopg
from psycopg.types.json import Jsonb

from ..errors import ValidationFailed
from .idempotency import warnings_logged

log = logging.getLogger(__name__)

# Every event type, in the order docs/api.md describes them. The SQL writes them by name
# (sql/70_events.sql, sql/65_risk.sql, store/catalog.py) and a test checks every literal
# against this tuple.
EVENT_TYPES: tuple[str, ...] = (
    "purchase.completed",
    "purchase.refunded",
    "grant.created",
    "item.consumed",
    "stock.restocked",
    "stock.sold_out",
    "catalog.published",
    "catalog.rolled_back",
    "risk.limit_exceeded",
    "risk.breaker_tripped",
    "risk.breaker_reset",
    "risk.player_frozen",
    "risk.player_unfrozen",
    "risk.tier_changed",
    "receipt.redeemed",
    "receipt.charged_back",
    "code.redeemed",
)

# Events one sequencer pass positions at most (one transaction).
POSITION_BATCH = 1000
# Pages of the feed.
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# A cursor is a position: a positive integer below 10^18, as the ledger's cursors.
MAX_CURSOR_DIGITS = 18
# The advisory lock sk_position_events takes (sql/70_events.sql writes it as x'5E0B0012').
SEQUENCER_LOCK = 0x5E0B_0012
# How long the feed's own sequencer pass waits for a background pass to finish.
FEED_POSITION_WAIT_MS = 200


def emit(
    conn: psycopg.Connection,
    game: str,
    event_type: str,
    data: dict[str, Any],
    *,
    player: str | None = None,
) -> None:
    """Writes an event in the caller's transaction (publish, rollback, restock): the same SQL
    function the money operations call."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"not an event type: {event_type}")
    conn.execute("SELECT sk_emit_event(%s, %s, %s, %s)", (game, event_type, player, Jsonb(data)))


def position_pending(
    conn: psycopg.Connection, *, batch: int = POSITION_BATCH, wait_ms: int = 0
) -> Counter[str] | None:
    """One sequencer pass in a transaction of its own: positions up to ``batch`` committed
    events and returns how many of each type; None when another process held the sequencer's
    lock (for ``wait_ms``): it is positioning them."""
    with conn.transaction():
        row = conn.execute(
            "SELECT sk_position_events(%s, %s)", (batch, wait_ms), prepare=False
        ).fetchone()
    return None if row is None or row[0] is None else Counter(row[0])


def position_all(
    conn: psycopg.Connection, *, batch: int = POSITION_BATCH, wait_ms: int = 0
) -> Counter[str] | None:
    """Passes until nothing is left to position (or another process holds the lock); returns
    how many of each type were positioned, None if the lock was taken before any pass ran."""
    total: Counter[str] | None = None
    while True:
        positioned = position_pending(conn, batch=batch, wait_ms=wait_ms)
        if positioned is None:
            return total
        total = (total or Counter()) + positioned
        if positioned.total() < batch:
            return total


def unpositioned(conn: psycopg.Connection, *, at_most: int = 100_000) -> int:
    """Committed events still waiting for a position (the events_unpositioned index), counted
    up to ``at_most``: a gauge of the backlog that stays cheap when the backlog is not."""
    row = conn.execute(
        "SELECT count(*) FROM (SELECT FROM events WHERE id IS NULL LIMIT %s) w",
        (at_most,),
        prepare=False,
    ).fetchone()
    return int(row[0]) if row else 0


def parse_cursor(cursor: str | None) -> int:
    """The position a cursor names (0: from the oldest kept); 422 for anything else."""
    if cursor is None or cursor == "":
        return 0
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > MAX_CURSOR_DIGITS:
        raise ValidationFailed(details={"after": ["not a cursor this API gave out"]})
    return int(cursor)


def check_types(requested: list[str] | None) -> list[str] | None:
    """The types a feed asks for, each given once (repeated, comma-separated, or both);
    None for every type. An unknown type is a 422 (field ``type``)."""
    if not requested:
        return None
    wanted: list[str] = []
    for value in requested:
        for name in value.split(","):
            name = name.strip()
            if name not in EVENT_TYPES:
                raise ValidationFailed(
                    details={"type": [f"not an event type: {name!r} (see EVENT_TYPES)"]}
                )
            if name not in wanted:
                wanted.append(name)
    return wanted


def feed(
    conn: psycopg.Connection,
    game: str,
    *,
    after: str | None = None,
    types: list[str] | None = None,
    limit: int = DEFAULT_LIMIT,
    on_positioned: Callable[[Counter[str]], object] | None = None,
) -> dict[str, Any]:
    """Events of ``game`` after the cursor ``after``, oldest first, at most ``limit``; with
    ``types``, only those. ``next_cursor`` is where to go on from: the last event's id, or
    ``after`` itself when nothing new has come (a page shorter than ``limit`` means: at the
    end for now). ``on_positioned`` hears what the feed's own sequencer pass positioned."""
    position = parse_cursor(after)
    wanted = check_types(types)
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(details={"limit": [f"must be between 1 and {MAX_LIMIT}"]})
    waiting = conn.execute(
        "SELECT EXISTS (SELECT FROM events WHERE id IS NULL AND game_id = %s)", (game,)
    ).fetchone()
    if waiting and waiting[0]:
        # Committed but not positioned yet: position them now rather than leave the reader a
        # background pass behind. If a background pass holds the lock past the wait, the
        # events come in the next read.
        positioned = position_all(conn, wait_ms=FEED_POSITION_WAIT_MS)
        if positioned and on_positioned is not None:
            on_positioned(positioned)
    rows = conn.execute(
        "SELECT e.id, sk_event_json(e) FROM events e"
        " WHERE e.game_id = %s AND e.id > %s AND (%s::text[] IS NULL OR e.type = ANY(%s))"
        " ORDER BY e.id LIMIT %s",
        (game, position, wanted, wanted, limit),
    ).fetchall()
    last = rows[-1][0] if rows else position
    return {"events": [event for _, event in rows], "next_cursor": str(last)}


EVENT_PURGE_LOCK = 0x5E0B_0013
# The outbox is partitioned by UTC day of the event's time (migration 0016): partitions are
# made through this many days ahead. An event is written at its transaction's time, so today's
# and tomorrow's would do; two more leave the hourly purge two days to be noticed stopped before
# new events land in the default partition (where they still work, purged in batches).
PARTITION_DAYS_AHEAD = 2
PURGE_BATCH = 10_000


def add_partitions(conn: psycopg.Connection) -> int:
    """Makes the missing day partitions of the outbox up to PARTITION_DAYS_AHEAD; returns how
    many. Safe from several processes at once: a partition made by another is skipped."""
    with warnings_logged(conn):
        row = conn.execute(
            "SELECT sk_events_add_partitions(now() + make_interval(days => %s))",
            (PARTITION_DAYS_AHEAD,),
            prepare=False,
        ).fetchone()
    return int(row[0]) if row else 0


def purge_expired(
    conn: psycopg.Connection, *, retention_seconds: int, batch: int = PURGE_BATCH
) -> int:
    """Expires events: makes the days ahead, drops every day that ended more than the retention
    ago (a day still holding an unpositioned event is kept), and purges the default partition
    and the webhook delivery log past the retention in batches. Returns how many events went
    (the dropped days' by PostgreSQL's estimate)."""
    return _purge(conn, retention_seconds=retention_seconds, batch=batch, exclusive=False) or 0


def purge_if_free(conn: psycopg.Connection, *, retention_seconds: int) -> int | None:
    """Purges unless another process is purging events right now (then None)."""
    return _purge(conn, retention_seconds=retention_seconds, batch=PURGE_BATCH, exclusive=True)


def _purge(
    conn: psycopg.Connection, *, retention_seconds: int, batch: int, exclusive: bool
) -> int | None:
    # As the idempotency keys' purge: each step and each batch one short transaction, the
    # exclusive purge's lock taken inside each (transaction-scoped, so safe behind a pooler in
    # transaction mode); a purger that finds it taken stops, the holder goes on.
    def locked() -> bool:
        if not exclusive:
            return True
        row = conn.execute(
            "SELECT pg_try_advisory_xact_lock(%s)", (EVENT_PURGE_LOCK,), prepare=False
        ).fetchone()
        return bool(row and row[0])

    with conn.transaction():
        if not locked():
            return None
        add_partitions(conn)
    with conn.transaction():
        if not locked():
            return None
        with warnings_logged(conn):
            row = conn.execute(
                "SELECT events FROM sk_events_drop_partitions(%s)",
                (retention_seconds,),
                prepare=False,
            ).fetchone()
    total = int(row[0]) if row else 0

    def in_batches(query: LiteralString) -> int | None:
        """Runs ``query`` (retention, batch) until a batch is short; None if the lock went."""
        done = 0
        while True:
            with conn.transaction():
                if not locked():
                    return None
                row = conn.execute(query, (retention_seconds, batch), prepare=False).fetchone()
            deleted = int(row[0]) if row else 0
            done += deleted
            if deleted < batch:
                return done

    defaulted = in_batches("SELECT sk_events_purge_default(%s, %s)")
    if defaulted is None:
        return total
    total += defaulted
    attempts = in_batches("SELECT sk_webhook_deliveries_purge(%s, %s)")
    if attempts:
        log.info("purged %d webhook delivery attempts past the retention", attempts)
    return total
