"""The money operations called directly (store.players over the SQL functions of
shopkeep_server/sql/), inside the test's rolled-back transaction: exact balances, ledger rows,
stock and stored outcomes, and rejections that store their 409 and change nothing else."""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

import psycopg
import pytest

from shopkeep_server.errors import IdempotencyKeyReused, NotFound, ValidationFailed
from shopkeep_server.store import players
from shopkeep_server.store.idempotency import IdempotencyKey, Outcome, operation_fingerprint
from support import Game, snapshot


def new_key(operation: str = "test", **arguments: Any) -> IdempotencyKey:
    return IdempotencyKey(
        value=f"store-{uuid.uuid4()}",
        fingerprint=operation_fingerprint(operation, **arguments),
        request_id="req-store-test",
        ttl_seconds=86_400,
        wait_ms=1_000,
    )


def fund(conn: psycopg.Connection, game: Game, player: str, currency: str, amount: int) -> None:
    outcome = players.grant(
        conn,
        game.id,
        player,
        actor="backend",
        currency=currency,
        amount=amount,
        reason="test funds",
        key=new_key(),
    )
    assert outcome.status == 201, outcome.body


def body(outcome: Outcome) -> dict[str, Any]:
    return json.loads(outcome.body)


def wallet(conn: psycopg.Connection, game: Game, player: str = "p1") -> dict[str, int]:
    rows = conn.execute(
        "SELECT currency, balance FROM wallets WHERE game_id = %s AND player_id = %s",
        (game.id, player),
    ).fetchall()
    return dict(rows)


def owned(conn: psycopg.Connection, game: Game, player: str = "p1") -> dict[str, int]:
    rows = conn.execute(
        "SELECT sku, quantity FROM inventories WHERE game_id = %s AND player_id = %s",
        (game.id, player),
    ).fetchall()
    return dict(rows)


def ledger(conn: psycopg.Connection, game: Game, player: str = "p1") -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT currency, delta, balance_after, kind, reference FROM ledger_entries"
        " WHERE game_id = %s AND player_id = %s ORDER BY id",
        (game.id, player),
    ).fetchall()


def item_ledger(conn: psycopg.Connection, game: Game, player: str = "p1") -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT sku, delta, quantity_after, kind, reference FROM item_ledger"
        " WHERE game_id = %s AND player_id = %s ORDER BY id",
        (game.id, player),
    ).fetchall()


def stored(conn: psycopg.Connection, game: Game, subject: str, key: IdempotencyKey) -> Any:
    return conn.execute(
        "SELECT status, response_body FROM idempotency_keys"
        " WHERE game_id = %s AND subject = %s AND key = %s",
        (game.id, subject, key.value),
    ).fetchone()


def stock_left(conn: psycopg.Connection, game: Game, sku: str) -> int:
    row = conn.execute(
        "SELECT sum(remaining) FROM stock_buckets WHERE game_id = %s AND sku = %s", (game.id, sku)
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_purchase_debits_grants_writes_both_ledgers_and_stores_its_outcome(
    conn: psycopg.Connection, game: Game
) -> None:
    fund(conn, game, "p1", "COINS", 500)
    key = new_key("purchase", sku="potion", quantity=3)
    outcome = players.purchase(
        conn,
        game.id,
        "p1",
        sku="potion",
        quantity=3,
        expected_price={"currency": "COINS", "amount": 50},
        key=key,
    )
    assert (outcome.status, outcome.replayed) == (201, False)
    result = body(outcome)
    purchase_id = result["purchase"]["id"]
    assert result["purchase"]["price"] == {"currency": "COINS", "amount": 150}
    assert result["purchase"]["unit_price"] == {"currency": "COINS", "amount": 50}
    assert result["granted"] == [{"sku": "potion", "quantity": 3}]
    assert result["balances"] == [
        {"currency": "COINS", "amount": 350},
        {"currency": "GEMS", "amount": 0},
        {"currency": "USD", "amount": 0},
    ]
    assert wallet(conn, game) == {"COINS": 350}
    assert ledger(conn, game)[1:] == [("COINS", -150, 350, "purchase", f"purchase:{purchase_id}")]
    assert owned(conn, game) == {"potion": 3}
    assert item_ledger(conn, game) == [("potion", 3, 3, "purchase", f"purchase:{purchase_id}")]
    row = conn.execute(
        "SELECT sku, quantity, currency, unit_price, total_price, status, idempotency_key"
        " FROM purchases WHERE game_id = %s AND id = %s",
        (game.id, purchase_id),
    ).fetchone()
    assert row == ("potion", 3, "COINS", 50, 150, "completed", key.value)
    assert stored(conn, game, "p1", key) == (201, outcome.body)

    # The same key again: the stored bytes, and nothing else happens.
    before = snapshot(conn, game.id)
    again = players.purchase(conn, game.id, "p1", sku="potion", quantity=3, key=key)
    assert (again.status, again.body, again.replayed) == (201, outcome.body, True)
    assert snapshot(conn, game.id) == before


def test_a_rejection_stores_its_409_and_changes_nothing_else(
    conn: psycopg.Connection, game: Game
) -> None:
    fund(conn, game, "p1", "COINS", 40)
    before = snapshot(conn, game.id)
    key = new_key("purchase", sku="potion")
    outcome = players.purchase(conn, game.id, "p1", sku="potion", quantity=1, key=key)
    assert (outcome.status, outcome.replayed) == (409, False)
    assert body(outcome) == {
        "error": {
            "code": "insufficient_funds",
            "message": "not enough COINS",
            "details": {"currency": "COINS", "required": 50, "balance": 40},
            "request_id": "req-store-test",
        }
    }
    after = snapshot(conn, game.id)
    assert after.pop("keys") == [(before.pop("keys")[0][0] + 1,)]
    assert after == before
    assert stored(conn, game, "p1", key) == (409, outcome.body)
    # Funded now, the same key still answers the stored refusal.
    fund(conn, game, "p1", "COINS", 100)
    again = players.purchase(conn, game.id, "p1", sku="potion", quantity=1, key=key)
    assert (again.status, again.body, again.replayed) == (409, outcome.body, True)
    assert wallet(conn, game) == {"COINS": 140}


def test_a_limited_drop_takes_stock_once_per_player(conn: psycopg.Connection, game: Game) -> None:
    fund(conn, game, "p1", "COINS", 2000)
    assert stock_left(conn, game, "dragon_egg") == 100
    first = players.purchase(conn, game.id, "p1", sku="dragon_egg", key=new_key())
    assert first.status == 201
    assert stock_left(conn, game, "dragon_egg") == 99
    assert wallet(conn, game) == {"COINS": 1200}
    assert owned(conn, game) == {"dragon_egg": 1}
    counts = conn.execute(
        "SELECT purchased FROM player_item_counts WHERE game_id = %s AND player_id = 'p1'"
        " AND sku = 'dragon_egg'",
        (game.id,),
    ).fetchone()
    assert counts == (1,)

    before = snapshot(conn, game.id)
    second = players.purchase(conn, game.id, "p1", sku="dragon_egg", key=new_key())
    assert second.status == 409
    assert body(second)["error"]["code"] == "purchase_limit_reached"
    assert body(second)["error"]["details"] == {"sku": "dragon_egg", "limit": 1, "purchased": 1}
    after = snapshot(conn, game.id)
    after.pop("keys"), before.pop("keys")
    assert after == before
    assert stock_left(conn, game, "dragon_egg") == 99


def test_a_bundle_grants_its_items_and_currencies(conn: psycopg.Connection, game: Game) -> None:
    fund(conn, game, "p1", "GEMS", 7)
    outcome = players.purchase(conn, game.id, "p1", sku="starter_pack", key=new_key())
    assert outcome.status == 201, outcome.body
    purchase_id = body(outcome)["purchase"]["id"]
    assert body(outcome)["granted"] == [
        {"sku": "potion", "quantity": 3},
        {"sku": "shield", "quantity": 1},
        {"currency": "COINS", "amount": 200},
    ]
    assert wallet(conn, game) == {"GEMS": 2, "COINS": 200}
    assert owned(conn, game) == {"potion": 3, "shield": 1}
    reference = f"purchase:{purchase_id}"
    assert ledger(conn, game)[1:] == [
        ("GEMS", -5, 2, "purchase", reference),
        ("COINS", 200, 200, "purchase", reference),
    ]
    assert item_ledger(conn, game) == [
        ("potion", 3, 3, "purchase", reference),
        ("shield", 1, 1, "purchase", reference),
    ]


def test_grants_of_currency_and_items(conn: psycopg.Connection, game: Game) -> None:
    key = new_key()
    outcome = players.grant(
        conn, game.id, "p1", actor="backend", currency="GEMS", amount=30, reason="event", key=key
    )
    assert outcome.status == 201
    granted = body(outcome)["grant"]
    assert (granted["player_id"], granted["reason"]) == ("p1", "event")
    assert granted["granted"] == [{"currency": "GEMS", "amount": 30}]
    assert ledger(conn, game) == [("GEMS", 30, 30, "grant", f"grant:{granted['id']}")]
    assert stored(conn, game, "backend", key) == (201, outcome.body)

    item = players.grant(
        conn, game.id, "p1", actor="backend", sku="sword", quantity=1, reason="gift", key=new_key()
    )
    assert item.status == 201
    assert body(item)["inventory"] == [{"sku": "sword", "quantity": 1}]
    assert item_ledger(conn, game) == [
        ("sword", 1, 1, "grant", f"grant:{body(item)['grant']['id']}")
    ]
    rows = conn.execute(
        "SELECT currency, amount, sku, quantity, reason, granted_by FROM grants"
        " WHERE game_id = %s ORDER BY created_at, sku NULLS FIRST",
        (game.id,),
    ).fetchall()
    assert rows == [
        ("GEMS", 30, None, None, "event", "backend"),
        (None, None, "sword", 1, "gift", "backend"),
    ]

    # Past the currency's cap: a stored 409 and the wallet as it was.
    before = snapshot(conn, game.id)
    capped = players.grant(
        conn,
        game.id,
        "p1",
        actor="backend",
        currency="GEMS",
        amount=100_000,
        reason="too much",
        key=new_key(),
    )
    assert capped.status == 409
    assert body(capped)["error"]["details"] == {
        "currency": "GEMS",
        "balance": 30,
        "amount": 100_000,
        "max_balance": 100_000,
    }
    after = snapshot(conn, game.id)
    after.pop("keys"), before.pop("keys")
    assert after == before


def test_refund_returns_the_price_and_takes_back_what_was_granted(
    conn: psycopg.Connection, game: Game
) -> None:
    fund(conn, game, "p1", "GEMS", 5)
    bought = players.purchase(conn, game.id, "p1", sku="starter_pack", key=new_key())
    purchase_id = body(bought)["purchase"]["id"]
    key = new_key()
    refunded = players.refund(conn, game.id, purchase_id, actor="backend", reason="asked", key=key)
    assert refunded.status == 200
    purchase = body(refunded)["purchase"]
    assert (purchase["status"], purchase["refund_reason"]) == ("refunded", "asked")
    assert wallet(conn, game) == {"GEMS": 5, "COINS": 0}
    assert owned(conn, game) == {"potion": 0, "shield": 0}
    reference = f"refund:{purchase_id}"
    assert ledger(conn, game)[-2:] == [
        ("COINS", -200, 0, "refund", reference),
        ("GEMS", 5, 5, "refund", reference),
    ]
    assert item_ledger(conn, game)[-2:] == [
        ("potion", -3, 0, "refund", reference),
        ("shield", -1, 0, "refund", reference),
    ]
    counts = conn.execute(
        "SELECT purchased FROM player_item_counts WHERE game_id = %s AND sku = 'starter_pack'",
        (game.id,),
    ).fetchone()
    assert counts == (0,)
    assert stored(conn, game, "backend", key) == (200, refunded.body)

    # Refunding again (another key) changes nothing and answers the purchase as it stands.
    before = snapshot(conn, game.id)
    twice = players.refund(
        conn, game.id, purchase_id, actor="backend", reason="again", key=new_key()
    )
    assert twice.status == 200
    assert body(twice) == body(refunded)
    after = snapshot(conn, game.id)
    after.pop("keys"), before.pop("keys")
    assert after == before


def test_a_refund_of_spent_contents_is_refused_and_stored(
    conn: psycopg.Connection, game: Game
) -> None:
    fund(conn, game, "p1", "GEMS", 5)
    bought = players.purchase(conn, game.id, "p1", sku="starter_pack", key=new_key())
    purchase_id = body(bought)["purchase"]["id"]
    assert (
        players.purchase(conn, game.id, "p1", sku="potion", quantity=2, key=new_key()).status == 201
    )
    before = snapshot(conn, game.id)
    key = new_key()
    refused = players.refund(conn, game.id, purchase_id, actor="backend", reason="asked", key=key)
    assert refused.status == 409
    assert body(refused)["error"]["code"] == "not_enough_items"
    assert body(refused)["error"]["details"] == {
        "currency": "COINS",
        "required": 200,
        "balance": 100,
    }
    after = snapshot(conn, game.id)
    after.pop("keys"), before.pop("keys")
    assert after == before
    assert stored(conn, game, "backend", key) == (409, refused.body)


def test_consume_uses_up_owned_units(conn: psycopg.Connection, game: Game) -> None:
    fund(conn, game, "p1", "COINS", 150)
    assert (
        players.purchase(conn, game.id, "p1", sku="potion", quantity=3, key=new_key()).status == 201
    )
    key = new_key("consume", sku="potion", quantity=2)
    used = players.consume(conn, game.id, "p1", sku="potion", quantity=2, key=key)
    assert (used.status, body(used)) == (200, {"sku": "potion", "quantity": 1})
    assert owned(conn, game) == {"potion": 1}
    assert item_ledger(conn, game)[-1] == ("potion", -2, 1, "consume", f"consume:{key.value}")

    before = snapshot(conn, game.id)
    refused = players.consume(conn, game.id, "p1", sku="potion", quantity=2, key=new_key())
    assert refused.status == 409
    assert body(refused)["error"]["details"] == {"sku": "potion", "required": 2, "owned": 1}
    after = snapshot(conn, game.id)
    after.pop("keys"), before.pop("keys")
    assert after == before


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda conn, game, key: players.purchase(conn, game, "p1", sku="nope", key=key), NotFound),
        (
            lambda conn, game, key: players.purchase(conn, game, "p1", sku="shield", key=key),
            ValidationFailed,
        ),
        (
            lambda conn, game, key: players.consume(
                conn, game, "p1", sku="sword", quantity=1, key=key
            ),
            ValidationFailed,
        ),
        (
            lambda conn, game, key: players.refund(
                conn, game, str(uuid.uuid4()), actor="backend", reason="x", key=key
            ),
            NotFound,
        ),
    ],
)
def test_not_found_and_invalid_are_raised_and_store_nothing(
    conn: psycopg.Connection, game: Game, call: Any, error: type[Exception]
) -> None:
    before = snapshot(conn, game.id)
    with pytest.raises(error), conn.transaction():
        call(conn, game.id, new_key())
    assert snapshot(conn, game.id) == before


def test_the_same_key_for_another_operation_is_refused(
    conn: psycopg.Connection, game: Game
) -> None:
    fund(conn, game, "p1", "COINS", 500)
    key = new_key("purchase", sku="potion", quantity=1)
    assert players.purchase(conn, game.id, "p1", sku="potion", key=key).status == 201
    other = dataclasses.replace(key, fingerprint=operation_fingerprint("purchase", sku="sword"))
    before = snapshot(conn, game.id)
    with pytest.raises(IdempotencyKeyReused), conn.transaction():
        players.purchase(conn, game.id, "p1", sku="sword", key=other)
    assert snapshot(conn, game.id) == before
