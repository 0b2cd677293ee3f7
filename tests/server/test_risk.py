"""Fraud and abuse controls: the catalog's risk policy enforced in the money operations' own
transactions (spend and earn limits, trust tiers, refund cooldowns, the mint breaker), freezes,
and the record of every decision.

The tests on the rolled-back connection run in one transaction, so every row they write has the
same created_at (the transaction's now()): a window holds all of them, and a refusal's retry_at
is exactly that instant plus the window. The concurrency and breaker tests commit, on the live
server."""

from __future__ import annotations

import concurrent.futures
import re
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from shopkeep_server.store import risk
from shopkeep_server.store.audit import audit
from support import (
    Game,
    LiveServer,
    balances,
    coins_item,
    grant,
    inventory,
    make_game,
    post,
    snapshot,
)
from support.events import event_mismatches

HOUR = 3600


def _catalog(policy: dict[str, Any] | None, *items: dict[str, Any]) -> dict[str, Any]:
    content: dict[str, Any] = {
        "currencies": [
            {"code": "COINS", "name": "Coins", "scale": 0},
            {"code": "GEMS", "name": "Gems", "scale": 0},
            {"code": "USD", "name": "US dollar", "scale": 4},
        ],
        "items": list(items)
        or [
            coins_item("potion", 50),
            coins_item("elixir", 200),
            coins_item("egg", 20, stock=5),
            {
                "sku": "tick",
                "name": "Tick",
                "kind": "consumable",
                "prices": [{"currency": "USD", "amount": 1}],
            },
        ],
    }
    if policy is not None:
        content["risk"] = policy
    return content


def _error(response: Any) -> dict[str, Any]:
    body = response.get_json() if hasattr(response, "get_json") else response.json()
    return dict(body["error"])


def _now_plus(conn: psycopg.Connection, seconds: int) -> str:
    """The API's timestamp of the transaction's now() plus ``seconds``."""
    row = conn.execute("SELECT sk_ts(now() + make_interval(secs => %s))", (seconds,)).fetchone()
    assert row is not None
    return str(row[0])


def _events(conn: psycopg.Connection, game: Game, player: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT kind, operation, code, rule FROM risk_events"
        " WHERE game_id = %s AND player_id = %s ORDER BY id",
        (game.id, player),
    ).fetchall()


# ---------------------------------------------------------------------------------------------
# Spend limits
# ---------------------------------------------------------------------------------------------


def test_card_testing_a_thousand_tiny_purchases_against_an_hourly_count(
    conn: psycopg.Connection, client: Any
) -> None:
    policy = {"spend_limits": [{"currency": "USD", "window_seconds": HOUR, "max_count": 100}]}
    game = make_game(conn, _catalog(policy))
    grant(client, game, "carder", "USD", 5_000)  # 0.5000 USD

    answers = [
        post(client, "/v1/purchases", {"sku": "tick"}, game, sub="carder") for _ in range(1000)
    ]

    assert [a.status_code for a in answers].count(201) == 100
    assert [a.status_code for a in answers[:100]] == [201] * 100
    refused = answers[100:]
    assert {a.status_code for a in refused} == {409}
    retry_at = _now_plus(conn, HOUR)
    for answer in refused:
        error = _error(answer)
        assert error["code"] == "limit_exceeded"
        assert error["details"] == {
            "rule": "spend_limit",
            "currency": "USD",
            "window_seconds": HOUR,
            "measure": "count",
            "limit": 100,
            "used": 100,
            "retry_at": retry_at,
        }
    # The ledger agrees: 100 debits of one minor unit, nothing else moved.
    ledger = conn.execute(
        "SELECT count(*), sum(delta) FROM ledger_entries"
        " WHERE game_id = %s AND player_id = 'carder' AND kind = 'purchase'",
        (game.id,),
    ).fetchone()
    assert ledger == (100, -100)
    assert balances(client, game, "carder")["USD"] == 4_900
    assert inventory(client, game, "carder") == {"tick": 100}
    assert (
        _events(conn, game, "carder")
        == [("refused", "purchase", "limit_exceeded", "spend_limit")] * 900
    )
    assert event_mismatches(conn, game.id) == []  # 100 purchases and 900 refusals, once each
    assert audit(conn) == []


def test_a_refused_key_replays_its_refusal_after_the_window_frees(
    conn: psycopg.Connection, client: Any
) -> None:
    policy = {"spend_limits": [{"currency": "COINS", "window_seconds": 60, "max_count": 1}]}
    game = make_game(conn, _catalog(policy))
    grant(client, game, "p1", "COINS", 500)
    assert post(client, "/v1/purchases", {"sku": "potion"}, game).status_code == 201
    refused = post(client, "/v1/purchases", {"sku": "potion"}, game, key="kept-refusal-0001")
    assert _error(refused)["code"] == "limit_exceeded"
    # The window empties (the purchase is moved out of it); the same key still says no.
    conn.execute(
        "UPDATE purchases SET created_at = created_at - interval '2 minutes' WHERE game_id = %s",
        (game.id,),
    )
    again = post(client, "/v1/purchases", {"sku": "potion"}, game, key="kept-refusal-0001")
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_data() == refused.get_data()
    assert post(client, "/v1/purchases", {"sku": "potion"}, game).status_code == 201


def test_an_amount_limit_counts_what_was_spent_and_frees_with_the_oldest(
    conn: psycopg.Connection, client: Any
) -> None:
    policy = {"spend_limits": [{"currency": "COINS", "window_seconds": HOUR, "max_amount": 120}]}
    game = make_game(conn, _catalog(policy))
    grant(client, game, "p1", "COINS", 1_000)
    # Two earlier purchases, ten and twenty minutes old: 100 spent in the window.
    for minutes in (20, 10):
        assert post(client, "/v1/purchases", {"sku": "potion"}, game).status_code == 201
        conn.execute(
            "UPDATE purchases SET created_at = now() - make_interval(mins => %s)"
            " WHERE game_id = %s AND created_at = now()",
            (minutes, game.id),
        )
    refused = post(client, "/v1/purchases", {"sku": "potion"}, game)
    assert refused.status_code == 409
    # 100 + 50 > 120: free once the oldest (20 minutes ago) leaves, in 40 minutes.
    assert _error(refused)["details"] == {
        "rule": "spend_limit",
        "currency": "COINS",
        "window_seconds": HOUR,
        "measure": "amount",
        "limit": 120,
        "used": 100,
        "retry_at": _now_plus(conn, HOUR - 20 * 60),
    }
    # A price above the limit itself never fits: no retry_at.
    too_big = post(client, "/v1/purchases", {"sku": "elixir"}, game)
    assert _error(too_big)["details"]["retry_at"] is None
    assert balances(client, game)["COINS"] == 900


def test_limits_of_another_currency_do_not_apply(conn: psycopg.Connection, client: Any) -> None:
    policy = {"spend_limits": [{"currency": "USD", "window_seconds": HOUR, "max_count": 0}]}
    game = make_game(conn, _catalog(policy))
    grant(client, game, "p1", "COINS", 100)
    assert post(client, "/v1/purchases", {"sku": "potion"}, game).status_code == 201


@pytest.mark.slow
def test_fifty_concurrent_purchases_take_exactly_what_the_limit_leaves(
    live_server: LiveServer,
) -> None:
    policy = {"spend_limits": [{"currency": "COINS", "window_seconds": HOUR, "max_count": 10}]}
    game = live_server.new_game(_catalog(policy))
    game.grant("p1", "COINS", 10_000)
    token = game.token("player", "p1")

    def buy() -> httpx.Response:
        return httpx.post(
            f"{live_server.url}/v1/purchases",
            json={"sku": "potion"},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"r-{uuid.uuid4()}"},
            timeout=60,
        )

    for _ in range(3):
        assert buy().status_code == 201
    start = threading.Barrier(50)

    def attempt(_: int) -> httpx.Response:
        start.wait()
        return buy()

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(attempt, range(50)))

    assert sorted(a.status_code for a in answers) == [201] * 7 + [409] * 43
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {
        "limit_exceeded"
    }
    with psycopg.connect(live_server.database_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM purchases WHERE game_id = %s", (game.id,)
        ).fetchone() == (10,)
        assert conn.execute(
            "SELECT balance FROM wallets WHERE game_id = %s AND player_id = 'p1'", (game.id,)
        ).fetchone() == (10_000 - 10 * 50,)
        assert conn.execute(
            "SELECT count(*) FROM risk_events WHERE game_id = %s AND rule = 'spend_limit'",
            (game.id,),
        ).fetchone() == (43,)
        # Each refusal is one event, as each purchase is: the events agree with the tables.
        assert conn.execute(
            "SELECT count(*) FROM events WHERE game_id = %s AND type = 'risk.limit_exceeded'",
            (game.id,),
        ).fetchone() == (43,)
        assert event_mismatches(conn, game.id) == []
        assert [v for v in audit(conn) if game.id in v] == []


# ---------------------------------------------------------------------------------------------
# Earn limits and the mint breaker
# ---------------------------------------------------------------------------------------------


def _grant(client: Any, game: Game, player: str, currency: str, amount: int) -> Any:
    return post(
        client,
        f"/v1/players/{player}/grants",
        {"currency": currency, "amount": amount, "reason": "quest reward"},
        game,
        role="service",
        sub="backend",
    )


def test_earn_limits_cap_what_one_player_is_granted(conn: psycopg.Connection, client: Any) -> None:
    policy = {
        "earn_limits": [
            {"currency": "COINS", "window_seconds": HOUR, "max_count": 3, "max_amount": 250}
        ]
    }
    game = make_game(conn, _catalog(policy))
    assert [_grant(client, game, "p1", "COINS", 100).status_code for _ in range(2)] == [201, 201]
    over = _grant(client, game, "p1", "COINS", 100)
    assert _error(over)["details"] == {
        "rule": "earn_limit",
        "currency": "COINS",
        "window_seconds": HOUR,
        "measure": "amount",
        "limit": 250,
        "used": 200,
        "retry_at": _now_plus(conn, HOUR),
    }
    assert _grant(client, game, "p1", "COINS", 50).status_code == 201
    fourth = _grant(client, game, "p1", "COINS", 1)
    assert _error(fourth)["details"]["measure"] == "count"
    assert _error(fourth)["details"]["used"] == 3
    assert _error(fourth)["details"]["retry_at"] == _now_plus(conn, HOUR)
    # Another player, and another currency, have their own room.
    assert _grant(client, game, "p2", "COINS", 250).status_code == 201
    assert _grant(client, game, "p1", "GEMS", 1_000).status_code == 201
    assert balances(client, game)["COINS"] == 250
    assert _events(conn, game, "p1") == [("refused", "grant", "limit_exceeded", "earn_limit")] * 2


@pytest.mark.slow
def test_the_mint_breaker_trips_at_its_threshold_for_every_player_until_reset(
    live_server: LiveServer,
) -> None:
    policy = {"mint_breakers": [{"currency": "COINS", "window_seconds": HOUR, "max_amount": 1_000}]}
    game = live_server.new_game(_catalog(policy))
    service = {"Authorization": f"Bearer {game.token('service', 'backend')}"}
    studio = {"Authorization": f"Bearer {game.token('studio', 'lead')}"}

    def give(player: str, currency: str = "COINS", amount: int = 100) -> httpx.Response:
        return httpx.post(
            f"{live_server.url}/v1/players/{player}/grants",
            json={"currency": currency, "amount": amount, "reason": "duplication loop"},
            headers={**service, "Idempotency-Key": f"m-{uuid.uuid4()}"},
            timeout=60,
        )

    # A grant loop over many players, eight at a time: exactly the threshold is minted.
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: give(f"p{n % 5}"), range(20)))
    assert sorted(a.status_code for a in answers) == [201] * 10 + [409] * 10
    for answer in answers:
        if answer.status_code == 409:
            assert answer.json()["error"]["code"] == "limit_exceeded"
            assert answer.json()["error"]["details"]["rule"] == "mint_breaker"
    # Tripped: every player's grants of COINS stop, even a tiny one; other currencies go on.
    tripped = give("newcomer", amount=1)
    assert tripped.status_code == 409
    assert tripped.json()["error"]["details"]["rule"] == "mint_breaker"
    assert tripped.json()["error"]["details"]["retry_at"] is None
    assert give("newcomer", currency="GEMS").status_code == 201
    listed = httpx.get(f"{live_server.url}/v1/admin/risk/breakers", headers=studio).json()
    assert [(b["currency"], b["tripped"]) for b in listed["breakers"]] == [("COINS", True)]
    assert [entry["kind"] for entry in listed["log"]] == ["tripped"]

    # The service cannot reset it; a studio member can, with a reason.
    as_service = httpx.post(
        f"{live_server.url}/v1/admin/risk/breakers/COINS/reset",
        json={"reason": "fixed the dupe"},
        headers={**service, "Idempotency-Key": f"reset-{uuid.uuid4()}"},
    )
    assert as_service.status_code == 403
    reset = httpx.post(
        f"{live_server.url}/v1/admin/risk/breakers/COINS/reset",
        json={"reason": "fixed the dupe"},
        headers={**studio, "Idempotency-Key": f"reset-{uuid.uuid4()}"},
    )
    assert reset.status_code == 200
    assert reset.json()["tripped"] is False
    assert reset.json()["reset_by"] == "lead"
    assert give("newcomer", amount=1).status_code == 201

    with psycopg.connect(live_server.database_url) as conn:
        minted = conn.execute(
            "SELECT sum(delta) FROM ledger_entries"
            " WHERE game_id = %s AND currency = 'COINS' AND kind = 'grant'",
            (game.id,),
        ).fetchone()
        assert minted == (1_001,)
        log = conn.execute(
            "SELECT kind, author, reason FROM risk_breaker_log WHERE game_id = %s ORDER BY id",
            (game.id,),
        ).fetchall()
        assert log == [("tripped", None, None), ("reset", "lead", "fixed the dupe")]
        # The trip and the reset are events once each, beside every refused grant's.
        risk_events = conn.execute(
            "SELECT type, count(*) FROM events WHERE game_id = %s AND type LIKE 'risk.%%'"
            " GROUP BY type ORDER BY type",
            (game.id,),
        ).fetchall()
        assert risk_events == [
            ("risk.breaker_reset", 1),
            ("risk.breaker_tripped", 1),
            ("risk.limit_exceeded", 11),
        ]
        assert event_mismatches(conn, game.id) == []
        assert [v for v in audit(conn) if game.id in v] == []


# ---------------------------------------------------------------------------------------------
# Trust tiers
# ---------------------------------------------------------------------------------------------

NEW_PLAYERS = {
    "tiers": [
        {
            "name": "new",
            "while_younger_than_seconds": HOUR,
            "limited_items": False,
            "max_price": [{"currency": "COINS", "amount": 100}],
        }
    ]
}


def test_a_new_player_cannot_buy_a_limited_item_until_the_service_raises_its_tier(
    conn: psycopg.Connection, client: Any
) -> None:
    game = make_game(conn, _catalog(NEW_PLAYERS))
    grant(client, game, "fresh", "COINS", 1_000)  # first seen now

    egg = post(client, "/v1/purchases", {"sku": "egg"}, game, sub="fresh")
    assert egg.status_code == 409
    assert _error(egg)["details"] == {
        "rule": "tier",
        "tier": "new",
        "sku": "egg",
        "currency": None,
        "window_seconds": None,
        "measure": None,
        "limit": None,
        "used": None,
        "retry_at": _now_plus(conn, HOUR),  # an hour after it was first seen
    }
    elixir = post(client, "/v1/purchases", {"sku": "elixir"}, game, sub="fresh")
    assert _error(elixir)["details"]["rule"] == "tier"
    assert _error(elixir)["details"]["limit"] == 100
    assert post(client, "/v1/purchases", {"sku": "potion"}, game, sub="fresh").status_code == 201

    service = game.headers("service", "backend")
    seen = client.get("/v1/players/fresh/risk", headers=service).get_json()
    assert (seen["tier"], seen["tier_set"], seen["tier_until"]) == (
        "new",
        None,
        _now_plus(conn, HOUR),
    )

    raised = client.put(
        "/v1/players/fresh/risk/tier",
        json={"tier": "trusted", "reason": "verified by support"},
        headers=service,
    )
    assert raised.status_code == 200
    assert raised.get_json()["tier"] is None
    assert raised.get_json()["tier_set"]["tier"] == "trusted"
    assert raised.get_json()["tier_set"]["set_by"] == "backend"
    assert post(client, "/v1/purchases", {"sku": "egg"}, game, sub="fresh").status_code == 201
    assert post(client, "/v1/purchases", {"sku": "elixir"}, game, sub="fresh").status_code == 201
    assert inventory(client, game, "fresh") == {"egg": 1, "elixir": 1, "potion": 1}

    # Lowered again by name, then back to placement by age.
    lowered = client.put(
        "/v1/players/fresh/risk/tier", json={"tier": "new", "reason": "chargeback"}, headers=service
    )
    assert lowered.get_json()["tier"] == "new"
    assert _error(post(client, "/v1/purchases", {"sku": "egg"}, game, sub="fresh"))["code"] == (
        "limit_exceeded"
    )
    unknown = client.put(
        "/v1/players/fresh/risk/tier", json={"tier": "vip", "reason": "x"}, headers=service
    )
    assert (unknown.status_code, _error(unknown)["details"]) == (
        422,
        {"tier": ["not a tier of the live policy: one of new, trusted or null"]},
    )
    assert [e[0] for e in _events(conn, game, "fresh")] == [
        "refused",
        "refused",
        "tier_changed",
        "tier_changed",
        "refused",
    ]


def test_an_old_player_is_past_the_new_tier(conn: psycopg.Connection, client: Any) -> None:
    game = make_game(conn, _catalog(NEW_PLAYERS))
    grant(client, game, "veteran", "COINS", 1_000)
    conn.execute(
        "UPDATE player_profiles SET first_seen = now() - interval '2 hours'"
        " WHERE game_id = %s AND player_id = 'veteran'",
        (game.id,),
    )
    assert post(client, "/v1/purchases", {"sku": "egg"}, game, sub="veteran").status_code == 201


def test_history_keeps_a_player_in_a_tier_until_it_has_bought_enough(
    conn: psycopg.Connection, client: Any
) -> None:
    policy = {
        "tiers": [{"name": "unproven", "while_fewer_purchases_than": 2, "limited_items": False}]
    }
    game = make_game(conn, _catalog(policy))
    grant(client, game, "p1", "COINS", 1_000)
    refused = post(client, "/v1/purchases", {"sku": "egg"}, game)
    assert _error(refused)["details"]["retry_at"] is None  # waiting does not help: buying does
    for _ in range(2):
        assert post(client, "/v1/purchases", {"sku": "potion"}, game).status_code == 201
    assert post(client, "/v1/purchases", {"sku": "egg"}, game).status_code == 201


# ---------------------------------------------------------------------------------------------
# Refund cooldowns
# ---------------------------------------------------------------------------------------------


def test_refunds_per_player_per_window(conn: psycopg.Connection, client: Any) -> None:
    policy = {"refund_limits": [{"window_seconds": 86_400, "max_count": 1}]}
    game = make_game(conn, _catalog(policy))
    grant(client, game, "p1", "COINS", 1_000)
    bought = [post(client, "/v1/purchases", {"sku": "potion"}, game).get_json() for _ in range(2)]
    ids = [b["purchase"]["id"] for b in bought]

    def refund(purchase_id: str) -> Any:
        return post(
            client,
            f"/v1/purchases/{purchase_id}/refund",
            {"reason": "asked"},
            game,
            role="service",
            sub="backend",
        )

    assert refund(ids[0]).status_code == 200
    second = refund(ids[1])
    assert second.status_code == 409
    assert _error(second)["details"] == {
        "rule": "refund_limit",
        "currency": None,
        "window_seconds": 86_400,
        "measure": "count",
        "limit": 1,
        "used": 1,
        "retry_at": _now_plus(conn, 86_400),
    }
    assert balances(client, game)["COINS"] == 950
    assert _events(conn, game, "p1") == [("refused", "refund", "limit_exceeded", "refund_limit")]


# ---------------------------------------------------------------------------------------------
# Freezes
# ---------------------------------------------------------------------------------------------


def test_a_frozen_player_can_read_but_not_write_until_unfrozen(
    conn: psycopg.Connection, client: Any
) -> None:
    game = make_game(conn, _catalog(None))
    grant(client, game, "p1", "COINS", 500)
    before_freeze = post(client, "/v1/purchases", {"sku": "potion"}, game, key="bought-before-01")
    assert before_freeze.status_code == 201

    frozen = post(
        client,
        "/v1/players/p1/freeze",
        {"reason": "stolen card"},
        game,
        role="service",
        sub="fraud",
    )
    assert frozen.status_code == 200
    assert frozen.get_json()["frozen"] is True
    assert frozen.get_json()["freeze"]["reason"] == "stolen card"
    assert frozen.get_json()["freeze"]["frozen_by"] == "fraud"
    state = snapshot(conn, game.id)

    purchase = post(client, "/v1/purchases", {"sku": "potion"}, game, key="frozen-attempt-01")
    consume = post(client, "/v1/inventory/potion/consume", {"quantity": 1}, game)
    granted = _grant(client, game, "p1", "COINS", 10)
    unknown = post(client, "/v1/purchases", {"sku": "no-such-thing"}, game)
    for answer in (purchase, consume, granted, unknown):
        assert (answer.status_code, _error(answer)["code"]) == (403, "account_frozen")
    assert _error(purchase)["details"] == {}
    assert snapshot(conn, game.id) == state
    # A purchase made before the freeze replays as it was.
    replay = post(client, "/v1/purchases", {"sku": "potion"}, game, key="bought-before-01")
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (201, "true")
    # Reads work, for the player and the service.
    assert balances(client, game) == {"COINS": 450, "GEMS": 0, "USD": 0}
    assert inventory(client, game) == {"potion": 1}
    assert client.get("/v1/purchases", headers=game.headers()).status_code == 200
    assert client.get("/v1/wallet/ledger", headers=game.headers()).status_code == 200
    view = client.get("/v1/players/p1/risk", headers=game.headers("service", "support"))
    assert view.status_code == 200
    assert [(e["kind"], e["operation"], e["code"]) for e in view.get_json()["events"]] == [
        ("refused", "purchase", "account_frozen"),
        ("refused", "grant", "account_frozen"),
        ("refused", "consume", "account_frozen"),
        ("refused", "purchase", "account_frozen"),
        ("frozen", None, None),
    ]
    # A player cannot unfreeze itself; the studio can.
    selfish = post(client, "/v1/players/p1/unfreeze", {"reason": "please"}, game, sub="p1")
    assert selfish.status_code == 403 and _error(selfish)["code"] == "forbidden"
    unfrozen = post(
        client,
        "/v1/players/p1/unfreeze",
        {"reason": "card owner confirmed"},
        game,
        role="studio",
        sub="support-lead",
    )
    assert unfrozen.get_json()["frozen"] is False
    # account_frozen was not stored with the key: the same request now runs.
    retried = post(client, "/v1/purchases", {"sku": "potion"}, game, key="frozen-attempt-01")
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried.headers
    assert balances(client, game)["COINS"] == 400
    assert post(client, "/v1/inventory/potion/consume", {"quantity": 1}, game).status_code == 200
    assert _grant(client, game, "p1", "COINS", 10).status_code == 201
    kinds = [e[0] for e in _events(conn, game, "p1")]
    assert kinds == ["frozen", *["refused"] * 4, "unfrozen"]
    authors = conn.execute(
        "SELECT kind, author, reason FROM risk_events WHERE game_id = %s AND kind <> 'refused'"
        " ORDER BY id",
        (game.id,),
    ).fetchall()
    assert authors == [
        ("frozen", "fraud", "stolen card"),
        ("unfrozen", "support-lead", "card owner confirmed"),
    ]


def test_a_frozen_player_can_neither_redeem_codes_nor_hold_stock(
    conn: psycopg.Connection, client: Any
) -> None:
    content = _catalog(None)
    content["promo_codes"] = [
        {"code": "WELCOME", "grant": [{"currency": "COINS", "amount": 100}], "budget": 10}
    ]
    game = make_game(conn, content)
    grant(client, game, "p1", "COINS", 500)
    frozen = post(client, "/v1/players/p1/freeze", {"reason": "bot"}, game, role="service")
    assert frozen.status_code == 200
    state = snapshot(conn, game.id)

    redeem_key, hold_key = "frozen-redeem-0001", "frozen-hold-00001"
    redeemed = post(client, "/v1/promo-codes/redeem", {"code": "WELCOME"}, game, key=redeem_key)
    held = post(client, "/v1/holds", {"sku": "egg", "quantity": 2}, game, key=hold_key)
    for answer in (redeemed, held):
        assert (answer.status_code, _error(answer)["code"]) == (403, "account_frozen")
    assert snapshot(conn, game.id) == state
    assert conn.execute("SELECT count(*) FROM holds WHERE game_id = %s", (game.id,)).fetchone() == (
        0,
    )
    assert _events(conn, game, "p1")[-2:] == [
        ("refused", "redeem", "account_frozen", None),
        ("refused", "hold", "account_frozen", None),
    ]

    # Nothing was stored with the keys: once unfrozen, the same requests run.
    unfrozen = post(client, "/v1/players/p1/unfreeze", {"reason": "human"}, game, role="studio")
    assert unfrozen.status_code == 200
    redeemed = post(client, "/v1/promo-codes/redeem", {"code": "WELCOME"}, game, key=redeem_key)
    held = post(client, "/v1/holds", {"sku": "egg", "quantity": 2}, game, key=hold_key)
    assert (redeemed.status_code, held.status_code) == (200, 201)
    assert balances(client, game)["COINS"] == 600


def test_a_frozen_players_purchases_can_still_be_refunded(
    conn: psycopg.Connection, client: Any
) -> None:
    game = make_game(conn, _catalog(None))
    grant(client, game, "p1", "COINS", 500)
    purchase_id = post(client, "/v1/purchases", {"sku": "potion"}, game).get_json()["purchase"][
        "id"
    ]
    with conn.transaction():
        risk.freeze(conn, game.id, "p1", actor="fraud", reason="chargeback")
    refunded = post(
        client,
        f"/v1/purchases/{purchase_id}/refund",
        {"reason": "clawback"},
        game,
        role="service",
        sub="backend",
    )
    assert refunded.status_code == 200
    assert balances(client, game)["COINS"] == 500


def test_freezing_twice_records_once_and_needs_a_reason(
    conn: psycopg.Connection, client: Any
) -> None:
    game = make_game(conn, _catalog(None))
    for _ in range(2):
        answer = post(client, "/v1/players/p9/freeze", {"reason": "bot"}, game, role="studio")
        assert answer.status_code == 200
    assert [e[0] for e in _events(conn, game, "p9")] == ["frozen"]
    no_reason = post(client, "/v1/players/p9/freeze", {}, game, role="service")
    assert no_reason.status_code == 422
    assert list(_error(no_reason)["details"]) == ["reason"]


# ---------------------------------------------------------------------------------------------
# The policy is catalog content
# ---------------------------------------------------------------------------------------------


def test_the_policy_is_published_rolled_back_and_never_shown_to_players(
    conn: psycopg.Connection, client: Any
) -> None:
    game = make_game(conn, _catalog(None))
    studio = game.headers("studio", "lead")
    policy = {"spend_limits": [{"currency": "COINS", "window_seconds": 60, "max_count": 1}]}
    put = client.put(
        "/v1/admin/catalog/draft",
        json=_catalog(policy),
        headers={**studio, "If-Match": "*"},
    )
    assert put.status_code == 200
    stored_limits = [{**policy["spend_limits"][0], "max_amount": None}]
    assert put.get_json()["risk"]["spend_limits"] == stored_limits
    published = post(client, "/v1/admin/catalog/publish", {"notes": "limits"}, game, role="studio")
    assert published.status_code == 201
    version = published.get_json()["version"]
    detail = client.get(f"/v1/admin/catalog/versions/{version}", headers=studio).get_json()
    assert detail["risk"]["spend_limits"] == stored_limits
    assert "risk" not in client.get("/v1/catalog", headers=game.headers()).get_json()

    grant(client, game, "p1", "COINS", 500)
    assert post(client, "/v1/purchases", {"sku": "potion"}, game).status_code == 201
    assert post(client, "/v1/purchases", {"sku": "potion"}, game).status_code == 409
    rolled = post(
        client, "/v1/admin/catalog/rollback", {"version": version - 1}, game, role="studio"
    )
    assert rolled.status_code == 201
    assert post(client, "/v1/purchases", {"sku": "potion"}, game).status_code == 201


def test_an_invalid_policy_is_refused_with_its_field_paths(
    conn: psycopg.Connection, client: Any
) -> None:
    game = make_game(conn, _catalog(None))
    policy = {
        "spend_limits": [{"currency": "EUR", "window_seconds": 60, "max_count": 1}],
        "earn_limits": [{"currency": "COINS", "window_seconds": 60}],
        "mint_breakers": [{"currency": "COINS", "window_seconds": 0, "max_amount": 5}],
        "tiers": [{"name": "trusted", "while_younger_than_seconds": 60}],
    }
    answer = client.put(
        "/v1/admin/catalog/draft",
        json=_catalog(policy),
        headers={**game.headers("studio", "lead"), "If-Match": "*"},
    )
    assert answer.status_code == 422
    assert _error(answer)["details"] == {
        "risk.earn_limits.0": ["give max_amount, max_count or both"],
        "risk.mint_breakers.0.window_seconds": [
            "Must be greater than or equal to 1 and less than or equal to 31622400."
        ],
        "risk.tiers.0.name": ["trusted is what the service sets to lift every tier"],
    }
    only_reference = client.put(
        "/v1/admin/catalog/draft",
        json=_catalog({"spend_limits": policy["spend_limits"]}),
        headers={**game.headers("studio", "lead"), "If-Match": "*"},
    )
    assert _error(only_reference)["details"] == {
        "risk.spend_limits.0.currency": ["not a currency of this catalog"]
    }


def test_refusals_and_freezes_are_counted_in_metrics(conn: psycopg.Connection, client: Any) -> None:
    policy = {"spend_limits": [{"currency": "COINS", "window_seconds": 60, "max_count": 0}]}
    game = make_game(conn, _catalog(policy))
    grant(client, game, "p1", "COINS", 100)
    post(client, "/v1/purchases", {"sku": "potion"}, game)
    post(client, "/v1/players/p1/freeze", {"reason": "bot"}, game, role="service")
    post(client, "/v1/purchases", {"sku": "potion"}, game)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'shopkeep_risk_events_total{kind="refused",rule="spend_limit"} 1.0' in text
    assert 'shopkeep_risk_events_total{kind="refused",rule="account_frozen"} 1.0' in text
    assert 'shopkeep_risk_events_total{kind="frozen",rule=""} 1.0' in text


def test_the_readmes_policy_is_a_policy_the_store_takes(
    conn: psycopg.Connection, client: Any
) -> None:
    """The README's catalog-file example (its studio section) is put as a draft: accepted, and
    read back as written."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.search(r"```yaml\n(risk:\n.*?)```", readme, flags=re.S)
    assert block is not None, "the README shows no risk policy"
    policy = yaml.safe_load(block.group(1))["risk"]
    game = make_game(conn, _catalog(None))
    put = client.put(
        "/v1/admin/catalog/draft",
        json=_catalog(policy),
        headers={**game.headers("studio", "lead"), "If-Match": "*"},
    )
    assert put.status_code == 200, put.get_json()
    stored = put.get_json()["risk"]
    for name, limits in policy.items():
        assert [
            {k: v for k, v in e.items() if k in limit}
            for e, limit in zip(stored[name], limits, strict=True)
        ] == limits
