"""A player's money and things: purchases, grants, refunds, consumption and the reads of them.

The state-changing functions each call one SQL function of shopkeep_server/sql/ (sk_purchase,
sk_grant, sk_refund, sk_consume) in one statement, so every path that moves money is the same
code and each is one round trip. Each runs exactly once per idempotency key, scoped to the
game and to whoever acts: the player for a purchase or a consumption, the service account for
a grant or a refund.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, TypedDict

import psycopg

from ..errors import NotFound, ValidationFailed
from .idempotency import KEY_ARGS, IdempotencyKey, Outcome, key_params, run_operation

MAX_PAGE = 200


class Money(TypedDict):
    """An amount in minor units of a currency."""

    currency: str
    amount: int


# Each statement starts with the key's parameters (key_params), then the operation's own.
_KEY_ARGS = KEY_ARGS
_PURCHASE = (
    "SELECT status, body, replayed FROM sk_purchase("
    + _KEY_ARGS
    + ", %s, %s::integer, %s, %s, %s::bigint, %s::uuid)"
)
_GRANT = (
    "SELECT status, body, replayed FROM sk_grant("
    + _KEY_ARGS
    + ", %s, %s, %s, %s::bigint, %s, %s::bigint)"
)
_REFUND = "SELECT status, body, replayed FROM sk_refund(" + _KEY_ARGS + ", %s::uuid, %s)"
_CONSUME = "SELECT status, body, replayed FROM sk_consume(" + _KEY_ARGS + ", %s, %s::integer)"


def purchase(
    conn: psycopg.Connection,
    game: str,
    player: str,
    *,
    sku: str,
    quantity: int = 1,
    currency: str | None = None,
    expected_price: Money | None = None,
    hold_id: uuid.UUID | str | None = None,
    key: IdempotencyKey,
) -> Outcome:
    """Buys ``quantity`` of ``sku`` for ``player``, exactly once per key. ``currency`` picks
    one of several prices; ``expected_price`` is the unit price the player saw (a different
    one now is price_changed); ``hold_id`` names the player's hold whose units this buys
    (store/holds.py). Rejections are checked in the order 60_purchase.sql lists."""
    return run_operation(
        conn,
        _PURCHASE,
        (
            *key_params(game, player, key),
            sku,
            quantity,
            currency,
            expected_price["currency"] if expected_price else None,
            expected_price["amount"] if expected_price else None,
            hold_id,
        ),
    )


def grant(
    conn: psycopg.Connection,
    game: str,
    player: str,
    *,
    actor: str,
    reason: str,
    currency: str | None = None,
    amount: int | None = None,
    sku: str | None = None,
    quantity: int | None = None,
    key: IdempotencyKey,
) -> Outcome:
    """Gives ``player`` ``amount`` of ``currency``, or ``quantity`` of ``sku`` (a bundle gives
    its contents), on behalf of ``actor`` (the service account: the key's subject)."""
    return run_operation(
        conn,
        _GRANT,
        (*key_params(game, actor, key), player, reason, currency, amount, sku, quantity),
    )


def refund(
    conn: psycopg.Connection,
    game: str,
    purchase_id: str,
    *,
    actor: str,
    reason: str,
    key: IdempotencyKey,
) -> Outcome:
    """Returns a purchase's price and takes back what it granted, on behalf of ``actor``."""
    return run_operation(
        conn,
        _REFUND,
        (*key_params(game, actor, key), purchase_id, reason),
    )


def consume(
    conn: psycopg.Connection,
    game: str,
    player: str,
    *,
    sku: str,
    quantity: int,
    key: IdempotencyKey,
) -> Outcome:
    """Uses up ``quantity`` of a consumable ``player`` owns."""
    return run_operation(
        conn,
        _CONSUME,
        (*key_params(game, player, key), sku, quantity),
    )


# ---------------------------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------------------------


def wallet_json(conn: psycopg.Connection, game: str, player: str) -> str:
    """The wallet's answer (api.schemas.BalancesSchema), rendered by the database: balances in
    every currency of the live catalog, zeros included. The API sends it as it comes, without
    parsing it into Python and writing it again (a sixth of a wallet read's Python)."""
    row = conn.execute(
        "SELECT jsonb_build_object('balances', CASE WHEN g.live_version_id IS NULL THEN"
        " '[]'::jsonb ELSE sk_balances_json(g.id, %s, g.live_version_id) END)::text"
        " FROM games g WHERE g.id = %s",
        (player, game),
    ).fetchone()
    if row is None:
        raise NotFound("no such game")
    return str(row[0])


def wallet(conn: psycopg.Connection, game: str, player: str) -> dict[str, Any]:
    """Balances in every currency of the live catalog, zeros included."""
    answer: dict[str, Any] = json.loads(wallet_json(conn, game, player))
    return answer


def inventory(conn: psycopg.Connection, game: str, player: str) -> dict[str, Any]:
    row = conn.execute("SELECT sk_inventory_json(%s, %s)", (game, player)).fetchone()
    assert row is not None
    return {"items": row[0]}


def _cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 18:
        raise ValidationFailed(details={"cursor": ["not a cursor this API gave out"]})
    return int(cursor)


def _page(
    conn: psycopg.Connection, query: str, params: tuple[Any, ...], *, limit: int
) -> tuple[list[Any], str | None]:
    """One keyset page: ``query`` selects (position, json) newest first, taking the last
    parameter as its LIMIT; one row more than asked tells whether another page follows."""
    rows = conn.execute(query, (*params, limit + 1)).fetchall()
    page = rows[:limit]
    next_cursor = str(page[-1][0]) if len(rows) > limit else None
    return [document for _, document in page], next_cursor


def ledger(
    conn: psycopg.Connection, game: str, player: str, *, limit: int, cursor: str | None
) -> dict[str, Any]:
    """Ledger entries, newest first, keyset-paginated by entry id."""
    before = _cursor(cursor)
    entries, next_cursor = _page(
        conn,
        "SELECT id, jsonb_build_object('id', id, 'currency', currency, 'delta', delta,"
        " 'balance_after', balance_after, 'kind', kind, 'reference', reference,"
        " 'created_at', sk_ts(created_at)) FROM ledger_entries"
        " WHERE game_id = %s AND player_id = %s AND (%s::bigint IS NULL OR id < %s)"
        " ORDER BY id DESC LIMIT %s",
        (game, player, before, before),
        limit=limit,
    )
    return {"entries": entries, "next_cursor": next_cursor}


def purchases(
    conn: psycopg.Connection, game: str, player: str, *, limit: int, cursor: str | None
) -> dict[str, Any]:
    """A player's purchases, newest first, keyset-paginated."""
    before = _cursor(cursor)
    found, next_cursor = _page(
        conn,
        "SELECT p.seq, sk_purchase_json(p) FROM purchases p"
        " WHERE p.game_id = %s AND p.player_id = %s AND (%s::bigint IS NULL OR p.seq < %s)"
        " ORDER BY p.seq DESC LIMIT %s",
        (game, player, before, before),
        limit=limit,
    )
    return {"purchases": found, "next_cursor": next_cursor}


def get_purchase(
    conn: psycopg.Connection, game: str, purchase_id: str, *, player: str | None
) -> dict[str, Any]:
    """One purchase; with ``player`` set, only if it is that player's (404 otherwise)."""
    row = conn.execute(
        "SELECT sk_purchase_json(p) FROM purchases p WHERE p.game_id = %s AND p.id = %s"
        " AND (%s::text IS NULL OR p.player_id = %s)",
        (game, purchase_id, player, player),
    ).fetchone()
    if row is None:
        raise NotFound("no such purchase")
    return {"purchase": row[0]}
