"""Events as tests read them: the whole feed of a game, and the check that a game's events
say exactly what its purchases, grants, ledgers and risk decisions say happened."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import psycopg

from shopkeep_server.store import events

from .games import Game


def position_everything(conn: psycopg.Connection) -> None:
    """Every committed event has its position when this returns. The suite's session-wide
    live server runs a sequencer on the same database, so the lock may be taken when a test
    asks: wait for it (position_all without a wait would return having done nothing, and a
    position read next could move on as the other sequencer finishes)."""
    events.position_all(conn, wait_ms=30_000)


def read_feed(client: Any, game: Game, *, limit: int = 1000, **params: Any) -> list[dict[str, Any]]:
    """Every event of ``game`` the feed shows now (through Flask's test client, as the
    service), oldest first, following ``next_cursor`` until a short page."""
    found: list[dict[str, Any]] = []
    cursor = params.pop("after", None)
    while True:
        query = {"limit": limit, **params, **({"after": cursor} if cursor is not None else {})}
        response = client.get(
            "/v1/events", query_string=query, headers=game.headers("service", "backend")
        )
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        found += page["events"]
        if len(page["events"]) < limit:
            return found
        cursor = page["next_cursor"]


def stored_events(conn: psycopg.Connection, game_id: str) -> list[dict[str, Any]]:
    """Every event row of a game, positioned or not, in the order written (seq)."""
    rows = conn.execute(
        "SELECT jsonb_build_object('seq', seq, 'id', id, 'type', type, 'player_id', player_id,"
        " 'data', data) FROM events WHERE game_id = %s ORDER BY seq",
        (game_id,),
    ).fetchall()
    return [row[0] for row in rows]


def event_mismatches(conn: psycopg.Connection, game_id: str) -> list[str]:
    """Where the events of ``game_id`` differ from its tables: one event per purchase, refund,
    grant, consumption, code redemption and risk decision, each ledger and item-ledger row in
    exactly one event, with the same content, and nothing else. Empty when they agree."""
    problems: list[str] = []
    written = stored_events(conn, game_id)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in written:
        if event["type"] not in events.EVENT_TYPES:
            problems.append(f"unknown event type {event['type']}")
        by_type.setdefault(event["type"], []).append(event)

    def ids(query: str) -> Counter[str]:
        return Counter(str(row[0]) for row in conn.execute(query, (game_id,)).fetchall())

    def compare(what: str, from_events: Counter[str], from_tables: Counter[str]) -> None:
        if from_events != from_tables:
            problems.append(
                f"{what}: events say {sorted(from_events.elements())},"
                f" tables say {sorted(from_tables.elements())}"
            )

    compare(
        "purchases",
        Counter(e["data"]["purchase"]["id"] for e in by_type.get("purchase.completed", [])),
        ids("SELECT id FROM purchases WHERE game_id = %s"),
    )
    compare(
        "refunds",
        Counter(e["data"]["purchase"]["id"] for e in by_type.get("purchase.refunded", [])),
        ids("SELECT id FROM purchases WHERE game_id = %s AND status = 'refunded'"),
    )
    compare(
        "grants",
        Counter(e["data"]["grant"]["id"] for e in by_type.get("grant.created", [])),
        ids("SELECT id FROM grants WHERE game_id = %s"),
    )
    compare(
        "consumptions",
        Counter(e["data"]["item_ledger"][0]["reference"] for e in by_type.get("item.consumed", [])),
        ids("SELECT reference FROM item_ledger WHERE game_id = %s AND kind = 'consume'"),
    )
    compare(
        "code redemptions",
        Counter(f"{e['player_id']}/{e['data']['code']}" for e in by_type.get("code.redeemed", [])),
        ids("SELECT player_id || '/' || code FROM promo_redemptions WHERE game_id = %s"),
    )
    for event in by_type.get("purchase.completed", []):
        if event["data"]["purchase"]["status"] != "completed":
            problems.append(f"purchase.completed of a purchase {event['data']['purchase']}")
    for key, query in (
        (
            "ledger",
            "SELECT sk_ledger_entry_json(e) FROM ledger_entries e WHERE game_id = %s",
        ),
        (
            "item_ledger",
            "SELECT sk_item_ledger_entry_json(e) FROM item_ledger e WHERE game_id = %s",
        ),
    ):
        in_events = sorted(
            (entry for e in written for entry in e["data"].get(key, [])), key=lambda r: r["id"]
        )
        in_table = sorted(
            (row[0] for row in conn.execute(query, (game_id,))), key=lambda r: r["id"]
        )
        if in_events != in_table:
            problems.append(f"{key}: events hold {in_events}, the table {in_table}")
    problems += _risk_mismatches(conn, game_id, by_type)
    return problems


# The risk decisions a player's events carry, by event type and the record's kind. A frozen
# player's refused attempts (account_frozen) are recorded and never emitted.
PLAYER_DECISIONS = {
    "risk.limit_exceeded": "refused",
    "risk.player_frozen": "frozen",
    "risk.player_unfrozen": "unfrozen",
    "risk.tier_changed": "tier_changed",
}
BREAKER_DECISIONS = {"risk.breaker_tripped": "tripped", "risk.breaker_reset": "reset"}


def _risk_mismatches(
    conn: psycopg.Connection, game_id: str, by_type: dict[str, list[dict[str, Any]]]
) -> list[str]:
    """Each risk decision of the game (risk_events but account_frozen, risk_breaker_log) in
    exactly one event of its type, whose data is the record as the API shows it."""
    problems: list[str] = []
    emitted: list[tuple[str, str | None, dict[str, Any]]] = [
        (e["type"], e["player_id"], e["data"])
        for kind in (*PLAYER_DECISIONS, *BREAKER_DECISIONS)
        for e in by_type.get(kind, [])
    ]
    recorded: list[tuple[str, str | None, dict[str, Any]]] = []
    for player, kind, data in conn.execute(
        "SELECT player_id, kind, sk_risk_event_json(r) FROM risk_events r"
        " WHERE game_id = %s AND code IS DISTINCT FROM 'account_frozen'",
        (game_id,),
    ).fetchall():
        event_type = next(t for t, k in PLAYER_DECISIONS.items() if k == kind)
        recorded.append((event_type, player, data))
    for kind, data in conn.execute(
        "SELECT kind, sk_risk_breaker_log_json(l) FROM risk_breaker_log l WHERE game_id = %s",
        (game_id,),
    ).fetchall():
        event_type = next(t for t, k in BREAKER_DECISIONS.items() if k == kind)
        player = data["details"].get("player_id") if kind == "tripped" else None
        recorded.append((event_type, player, data))

    def ordered(found: list[tuple[str, str | None, dict[str, Any]]]) -> list[str]:
        return sorted(json.dumps(entry, sort_keys=True) for entry in found)

    if ordered(emitted) != ordered(recorded):
        problems.append(f"risk decisions: events hold {emitted}, the tables {recorded}")
    return problems
