"""Google Play receipts against a local Google that speaks the Play Developer API's JSON (and
issues OAuth tokens to the game's service account): purchased, pending, cancelled, already
acknowledged; Google down gives 503 and changes nothing, and the retry succeeds once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from flask import Flask

from shopkeep_server import db, roles
from shopkeep_server.app import create_app
from shopkeep_server.store import receipts, risk
from shopkeep_server.store.idempotency import IdempotencyKey
from support import Game, balances, make_config, make_game, new_key, post
from support import stores as s

PRODUCT = s.USD_5["google_play"]


@pytest.fixture
def google() -> Iterator[s.FakeGooglePlay]:
    fake = s.FakeGooglePlay()
    with s.serving(fake.route) as server:
        fake.server = server
        yield fake


@pytest.fixture
def app(conn: psycopg.Connection, google: s.FakeGooglePlay) -> Flask:
    config = make_config(
        google_play_api_url=google.url, google_token_url=f"{google.url}/token", store_timeout=5.0
    )
    return create_app(config, database=db.SingleConnectionDatabase(conn, role=roles.APP_ROLE))


@pytest.fixture
def shop(conn: psycopg.Connection, client: Any, google: s.FakeGooglePlay) -> Game:
    game = make_game(conn, s.money_catalog())
    response = client.put(
        "/v1/admin/stores/google_play",
        json={"package_name": s.PACKAGE_NAME, "service_account": google.service_account()},
        headers=game.headers("studio", "studio-1"),
    )
    assert response.status_code == 200, response.get_json()
    return game


def redeem(
    client: Any,
    game: Game,
    token: str,
    *,
    product: str = PRODUCT,
    sub: str = "p1",
    key: str | None = None,
) -> Any:
    body = {"store": "google_play", "product_id": product, "purchase_token": token}
    return post(client, "/v1/receipts", body, game, sub=sub, key=key)


def acknowledgements(google: s.FakeGooglePlay) -> int:
    return sum(1 for r in google.server.requests if r.path.endswith(":acknowledge"))  # type: ignore[union-attr]


def test_a_purchase_is_credited_and_acknowledged(
    client: Any, shop: Game, google: s.FakeGooglePlay
) -> None:
    token = google.add(PRODUCT)
    response = redeem(client, shop, token)
    assert response.status_code == 201, response.get_json()
    receipt = response.get_json()["receipt"]
    assert receipt["transaction_id"] == google.purchases[token]["orderId"]
    assert receipt["product_id"] == "usd_5"
    assert balances(client, shop) == {"COINS": 0, "USD": 50_000}
    assert google.purchases[token]["acknowledgementState"] == 1
    assert acknowledgements(google) == 1
    # Every call carried the access token Google issued to the service account.
    api_calls = [r for r in google.server.requests if r.path != "/token"]  # type: ignore[union-attr]
    assert api_calls and all(
        r.authorization and r.authorization.startswith("Bearer ya29.") for r in api_calls
    )


def test_an_already_acknowledged_purchase_is_credited_without_acknowledging_again(
    client: Any, shop: Game, google: s.FakeGooglePlay
) -> None:
    # Acknowledged before we credited it: our own crash between the two steps.
    token = google.add(PRODUCT, acknowledged=True)
    response = redeem(client, shop, token)
    assert response.status_code == 201
    assert balances(client, shop)["USD"] == 50_000
    assert acknowledgements(google) == 0


@pytest.mark.parametrize(("state", "reason"), [(2, "pending"), (1, "cancelled")])
def test_pending_and_cancelled_purchases_are_refused_and_change_nothing(
    client: Any,
    conn: psycopg.Connection,
    shop: Game,
    google: s.FakeGooglePlay,
    state: int,
    reason: str,
) -> None:
    token = google.add(PRODUCT, state=state)
    before = s.money_state(conn, shop.id)
    key = new_key()
    response = redeem(client, shop, token, key=key)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "receipt_invalid"
    assert response.get_json()["error"]["details"] == {"reason": reason}
    assert s.money_state(conn, shop.id) == before
    assert google.purchases[token]["acknowledgementState"] == 0
    if reason == "pending":
        # The payment completes: the same request, with the same key, now credits.
        google.purchases[token]["purchaseState"] = 0
        assert redeem(client, shop, token, key=key).status_code == 201
        assert balances(client, shop)["USD"] == 50_000


def test_an_unknown_token_or_product(
    client: Any, conn: psycopg.Connection, shop: Game, google: s.FakeGooglePlay
) -> None:
    before = s.money_state(conn, shop.id)
    unknown = redeem(client, shop, "token-that-google-never-issued")
    assert unknown.status_code == 422
    assert unknown.get_json()["error"]["details"] == {"reason": "unknown_purchase"}
    token = google.add("not_in_the_catalog")
    stranger = redeem(client, shop, token, product="not_in_the_catalog")
    assert stranger.get_json()["error"]["details"] == {"reason": "unknown_product"}
    # A product the catalog does not sell is never acknowledged: Google refunds it by itself.
    assert google.purchases[token]["acknowledgementState"] == 0
    assert s.money_state(conn, shop.id) == before


def test_google_down_gives_503_changes_nothing_and_the_retry_credits_once(
    client: Any, conn: psycopg.Connection, shop: Game, google: s.FakeGooglePlay
) -> None:
    token = google.add(PRODUCT)
    before = s.money_state(conn, shop.id)
    key = new_key()
    google.server.down = True  # type: ignore[union-attr]
    down = redeem(client, shop, token, key=key)
    assert down.status_code == 503
    assert down.get_json()["error"]["code"] == "store_unavailable"
    assert int(down.headers["Retry-After"]) >= 1
    assert s.money_state(conn, shop.id) == before
    google.server.down = False  # type: ignore[union-attr]
    retried = redeem(client, shop, token, key=key)
    assert retried.status_code == 201
    again = redeem(client, shop, token, key=key)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert balances(client, shop)["USD"] == 50_000
    assert acknowledgements(google) == 1


def test_a_token_redeemed_by_another_player_is_refused(
    client: Any, conn: psycopg.Connection, shop: Game, google: s.FakeGooglePlay
) -> None:
    token = google.add(PRODUCT)
    assert redeem(client, shop, token, sub="p1").status_code == 201
    before = s.money_state(conn, shop.id)
    response = redeem(client, shop, token, sub="p2")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "receipt_already_used"
    assert s.money_state(conn, shop.id) == before


def test_a_frozen_players_receipt_is_refused_before_google_hears_of_it(
    client: Any, conn: psycopg.Connection, shop: Game, google: s.FakeGooglePlay
) -> None:
    frozen = post(client, "/v1/players/p1/freeze", {"reason": "bot"}, shop, role="service")
    assert frozen.status_code == 200, frozen.get_json()
    token = google.add(PRODUCT)
    before = s.money_state(conn, shop.id)
    asked = len(google.server.requests)  # type: ignore[union-attr]
    key = new_key()
    refused = redeem(client, shop, token, key=key)
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "account_frozen"
    # Nothing changed, Google was not asked (nor told the purchase is taken: it stays theirs
    # to refund), and the refusal is the player's risk event of the operation `receipt`.
    assert s.money_state(conn, shop.id) == before
    assert len(google.server.requests) == asked  # type: ignore[union-attr]
    assert google.purchases[token]["acknowledgementState"] == 0
    assert conn.execute(
        "SELECT kind, operation, code FROM risk_events WHERE game_id = %s AND player_id = 'p1'"
        " ORDER BY id DESC LIMIT 1",
        (shop.id,),
    ).fetchone() == ("refused", "receipt", "account_frozen")

    # Not stored with the key: once unfrozen, the same request credits.
    unfrozen = post(client, "/v1/players/p1/unfreeze", {"reason": "human"}, shop, role="studio")
    assert unfrozen.status_code == 200, unfrozen.get_json()
    credited = redeem(client, shop, token, key=key)
    assert credited.status_code == 201, credited.get_json()
    assert balances(client, shop) == {"COINS": 0, "USD": 50_000}
    assert acknowledgements(google) == 1


def test_a_freeze_after_the_look_is_caught_where_the_receipt_is_credited(
    conn: psycopg.Connection, shop: Game
) -> None:
    """The frozen look before the store is asked and the credit are two transactions: a freeze
    that lands between them is refused by sk_redeem_receipt itself, and nothing is credited."""
    with conn.transaction():
        risk.freeze(conn, shop.id, "p1", actor="fraud", reason="chargeback")
    before = s.money_state(conn, shop.id)
    key = IdempotencyKey(new_key(), "fingerprint", "request-1", 86_400, 1_000)
    verified = receipts.VerifiedPurchase("google_play", "GPA.1234-5678", PRODUCT)
    with conn.transaction():
        outcome = receipts.credit(conn, shop.id, "p1", verified, key=key)
    assert (outcome.status, outcome.replayed) == (403, False)
    assert json.loads(outcome.body)["error"]["code"] == "account_frozen"
    assert s.money_state(conn, shop.id) == before
    assert conn.execute(
        "SELECT count(*) FROM idempotency_keys WHERE game_id = %s", (shop.id,)
    ).fetchone() == (0,)
