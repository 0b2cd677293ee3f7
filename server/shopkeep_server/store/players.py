"""A player's money and things: purchases, grants, refunds, consumption and the reads of them.

The state-changing functions hand their work to the SQL functions of migrations/0002_money.sql
through :func:`idempotency.run_operation`, so every path that moves money is the same code.
"""

from __future__ import annotations

from typing import Any

import psycopg

from ..errors import NotFound, ValidationFailed
from .idempotency import Outcome, Request, run_operation

MAX_PAGE = 200


def purchase(
    conn: psycopg.Connection,
    request: Request,
    *,
    sku: str,
    quantity: int,
    currency: str | None = None,
    expected_price: dict[str, Any] | None = None,
) -> Outcome:
    """Buys ``quantity`` of ``sku`` for the request's subject, exactly once per key."""
    args: dict[str, Any] = {"sku": sku, "quantity": quantity}
    if currency is not None:
        args["currency"] = currency
    if expected_price is not None:
        args["expected_price"] = expected_price
    return run_operation(conn, request, "purchase", args)


def grant(
    conn: psycopg.Connection,
    request: Request,
    *,
    player_id: str,
    reason: str,
    currency: str | None = None,
    amount: int | None = None,
    sku: str | None = None,
    quantity: int | None = None,
) -> Outcome:
    """Gives a player currency or an item (a bundle's contents); the request's subject is the
    granting service account."""
    args: dict[str, Any] = {"player_id": player_id, "reason": reason}
    if currency is not None:
        args |= {"currency": currency, "amount": amount}
    else:
        args |= {"sku": sku, "quantity": quantity}
    return run_operation(conn, request, "grant", args)


def refund(conn: psycopg.Connection, request: Request, *, purchase_id: str, reason: str) -> Outcome:
    """Returns a purchase's price and takes back what it granted."""
    return run_operation(conn, request, "refund", {"purchase_id": purchase_id, "reason": reason})


def consume(conn: psycopg.Connection, request: Request, *, sku: str, quantity: int) -> Outcome:
    """Uses up ``quantity`` of a consumable the request's subject owns."""
    return run_operation(conn, request, "consume", {"sku": sku, "quantity": quantity})


# ---------------------------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------------------------


def wallet(conn: psycopg.Connection, game: str, player: str) -> dict[str, Any]:
    """Balances in every currency of the live catalog, zeros included."""
    row = conn.execute(
        "SELECT CASE WHEN g.live_version_id IS NULL THEN '[]'::jsonb"
        " ELSE sk_balances_json(g.id, %s, g.live_version_id) END FROM games g WHERE g.id = %s",
        (player, game),
    ).fetchone()
    if row is None:
        raise NotFound("no such game")
    return {"balances": row[0]}


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
