"""Holds: units of a limited item set aside for one player for a few minutes while the player
pays (at an app store, say); a purchase naming the hold then takes exactly those units.

The rules live in the SQL (sql/31_holds.sql: sk_place_hold, sk_release_hold, sk_consume_hold):
placing a hold is one statement, exactly once per idempotency key, like a purchase. An expired
hold needs no job to return its units: the stock functions count them as available at once and
the next take that needs them puts them back. :func:`tidy` is the janitor's housekeeping.
"""

from __future__ import annotations

from typing import Any

import psycopg

from ..errors import NotFound
from .idempotency import (
    KEY_ARGS,
    IdempotencyKey,
    Outcome,
    domain_errors,
    key_params,
    run_operation,
)
from .rules import MAX_HELD_UNITS

# Starts with the key's parameters, as every keyed money operation does.
_PLACE = (
    "SELECT status, body, replayed FROM sk_place_hold("
    + KEY_ARGS
    + ", %s, %s::integer, %s::integer, %s::integer)"
)


def place_hold(
    conn: psycopg.Connection,
    game: str,
    player: str,
    *,
    sku: str,
    quantity: int = 1,
    seconds: int,
    key: IdempotencyKey,
) -> Outcome:
    """Holds ``quantity`` units of the limited item ``sku`` for ``player`` for ``seconds``,
    exactly once per key (201 ``{hold}``). Refusals are checked in the order 31_holds.sql
    lists; at most :data:`~.rules.MAX_HELD_UNITS` units of one item are held at once."""
    return run_operation(
        conn,
        _PLACE,
        (*key_params(game, player, key), sku, quantity, seconds, MAX_HELD_UNITS),
    )


def get_hold(conn: psycopg.Connection, game: str, player: str, hold_id: str) -> dict[str, Any]:
    """The player's hold (404 for another player's or an unknown one)."""
    row = conn.execute(
        "SELECT sk_hold_json(h) FROM holds h WHERE h.game_id = %s AND h.player_id = %s"
        " AND h.id = %s",
        (game, player, hold_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"no hold {hold_id}")
    return {"hold": row[0]}


def release_hold(conn: psycopg.Connection, game: str, player: str, hold_id: str) -> dict[str, Any]:
    """Ends the player's hold and puts its units back on sale at once. Idempotent: a hold that
    has ended already is returned as it stands."""
    with domain_errors():
        row = conn.execute("SELECT sk_release_hold(%s, %s, %s)", (game, player, hold_id)).fetchone()
    assert row is not None
    result: dict[str, Any] = row[0]
    return result


def tidy(conn: psycopg.Connection, *, keep_seconds: int, batch: int = 10_000) -> tuple[int, int]:
    """Puts back the units of every expired hold (one short transaction per item), then deletes
    released and expired holds that ended more than ``keep_seconds`` ago. Returns (units put
    back, holds deleted). Consumed holds are kept: they are the record of a sale."""
    expired = conn.execute(
        "SELECT DISTINCT game_id, sku FROM holds WHERE status = 'active' AND expires_at <= now()",
        prepare=False,
    ).fetchall()
    returned = 0
    for game, sku in expired:
        with conn.transaction():
            row = conn.execute(
                "SELECT sk_reclaim_expired_holds(%s, %s)", (game, sku), prepare=False
            ).fetchone()
        returned += row[0] if row else 0
    deleted = 0
    while True:
        with conn.transaction():
            cur = conn.execute(
                "DELETE FROM holds WHERE ctid IN (SELECT ctid FROM holds"
                " WHERE status IN ('released', 'expired')"
                " AND ended_at < now() - make_interval(secs => %s) LIMIT %s)",
                (keep_seconds, batch),
                prepare=False,
            )
        deleted += cur.rowcount
        if cur.rowcount < batch:
            return returned, deleted
