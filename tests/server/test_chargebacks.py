"""Refunds and chargebacks from the stores: an App Store notification (REFUND, REVOKE), Google's
voided purchases and Steam's report take back what a receipt granted, as far as the player
still has it; the rest is debt that blocks purchases until a top-up repays it; the audit
reconciles top-ups, chargebacks and debts throughout."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from flask import Flask

from shopkeep_server import db, roles
from shopkeep_server.app import create_app
from shopkeep_server.sandbox_store import SandboxAppStore
from shopkeep_server.store import chargebacks
from shopkeep_server.store.audit import audit
from shopkeep_server.store.store_accounts import StoreAccount, load_account
from support import Game, balances, buy, inventory, make_config, make_game, new_key, post
from support import stores as s
from support.events import event_mismatches, read_feed


@pytest.fixture(scope="module")
def apple() -> SandboxAppStore:
    return SandboxAppStore.create()


@pytest.fixture
def google() -> Iterator[s.FakeGooglePlay]:
    fake = s.FakeGooglePlay()
    with s.serving(fake.route) as server:
        fake.server = server
        yield fake


@pytest.fixture
def steam() -> Iterator[s.FakeSteam]:
    fake = s.FakeSteam()
    with s.serving(fake.route) as server:
        fake.server = server
        yield fake


@pytest.fixture
def config(google: s.FakeGooglePlay, steam: s.FakeSteam) -> Any:
    return make_config(
        google_play_api_url=google.url,
        google_token_url=f"{google.url}/token",
        steam_api_url=steam.url,
        store_timeout=5.0,
    )


@pytest.fixture
def app(conn: psycopg.Connection, config: Any) -> Flask:
    return create_app(config, database=db.SingleConnectionDatabase(conn, role=roles.APP_ROLE))


@pytest.fixture
def shop(
    conn: psycopg.Connection,
    client: Any,
    apple: SandboxAppStore,
    google: s.FakeGooglePlay,
) -> Game:
    game = make_game(conn, s.money_catalog())
    studio = game.headers("studio", "studio-1")
    for store, settings in {
        "app_store": {
            "bundle_id": s.BUNDLE_ID,
            "environment": "sandbox",
            "root_certificates": [apple.root_pem()],
        },
        "google_play": {
            "package_name": s.PACKAGE_NAME,
            "service_account": google.service_account(),
        },
        "steam": {
            "app_id": s.STEAM_APP_ID,
            "publisher_key": s.FakeSteam.PUBLISHER_KEY,
            "prices": {"usd_5": {"currency": "USD", "amount": 499}},
        },
    }.items():
        response = client.put(f"/v1/admin/stores/{store}", json=settings, headers=studio)
        assert response.status_code == 200, response.get_json()
    return game


def account(conn: psycopg.Connection, game: Game, store: str) -> StoreAccount:
    """The game's account on ``store``, as the polling job reads it (its cursor included)."""
    return load_account(conn, game.id, store)


def top_up_on_the_app_store(client: Any, game: Game, apple: SandboxAppStore, **kwargs: Any) -> str:
    jws = apple.transaction(bundle_id=s.BUNDLE_ID, product_id=s.USD_5["app_store"], **kwargs)
    response = post(client, "/v1/receipts", {"store": "app_store", "signed_transaction": jws}, game)
    assert response.status_code == 201, response.get_json()
    return jws


def notify(client: Any, game: Game, apple: SandboxAppStore, kind: str, jws: str) -> Any:
    payload = apple.notification(kind, jws, bundle_id=s.BUNDLE_ID)
    return client.post(
        f"/v1/stores/app_store/notifications/{game.id}", json={"signedPayload": payload}
    )


def test_a_refund_notification_takes_back_an_unspent_top_up(
    client: Any, conn: psycopg.Connection, shop: Game, apple: SandboxAppStore
) -> None:
    jws = top_up_on_the_app_store(client, shop, apple, transaction_id="3000001")
    response = notify(client, shop, apple, "REFUND", jws)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        "notification_type": "REFUND",
        "transaction_id": "3000001",
        "taken_back": True,
    }
    assert balances(client, shop)["USD"] == 0
    ledger = client.get("/v1/wallet/ledger", headers=shop.headers()).get_json()["entries"]
    assert [(e["delta"], e["kind"]) for e in ledger] == [(-50_000, "chargeback"), (50_000, "topup")]
    # Apple sends a notification again until it hears 200: the second changes nothing.
    again = notify(client, shop, apple, "REFUND", jws)
    assert again.get_json()["taken_back"] is False
    assert balances(client, shop)["USD"] == 0
    # Nothing is owed: purchases go on (after a new top-up).
    top_up_on_the_app_store(client, shop, apple)
    assert buy(client, shop, "tip").status_code == 201
    assert audit(conn) == []


def test_a_spent_top_up_leaves_debt_that_blocks_purchases_until_repaid(
    client: Any, conn: psycopg.Connection, shop: Game, apple: SandboxAppStore
) -> None:
    jws = top_up_on_the_app_store(client, shop, apple)
    for _ in range(100):  # spends 1.5000 USD of the 5.0000 in tips
        assert buy(client, shop, "tip").status_code == 201
    assert balances(client, shop)["USD"] == 35_000
    assert notify(client, shop, apple, "REVOKE", jws).get_json()["taken_back"] is True
    assert balances(client, shop)["USD"] == 0
    row = conn.execute(
        "SELECT taken, owed, policy, source FROM chargebacks WHERE game_id = %s", (shop.id,)
    ).fetchone()
    assert row == (
        [{"currency": "USD", "amount": 35_000}],
        [{"currency": "USD", "amount": 15_000}],
        "debt",
        "app_store_notification",
    )
    assert audit(conn) == []

    # Debt blocks purchases, in any currency, as a final refusal.
    before = s.money_state(conn, shop.id)
    blocked = buy(client, shop, "potion")
    assert blocked.status_code == 409
    assert blocked.get_json()["error"]["code"] == "debt_outstanding"
    assert blocked.get_json()["error"]["details"] == {
        "debts": [{"currency": "USD", "amount": 15_000}]
    }
    assert s.money_state(conn, shop.id) == before

    # The next top-up repays the debt first, then the rest is the player's.
    repaid = post(
        client,
        "/v1/receipts",
        {
            "store": "app_store",
            "signed_transaction": apple.transaction(
                bundle_id=s.BUNDLE_ID, product_id=s.USD_5["app_store"]
            ),
        },
        shop,
    ).get_json()
    assert repaid["granted"] == [{"currency": "USD", "amount": 50_000}]
    assert repaid["repaid"] == [{"currency": "USD", "amount": 15_000}]
    assert repaid["debts"] == []
    assert balances(client, shop)["USD"] == 35_000
    assert buy(client, shop, "tip").status_code == 201
    assert audit(conn) == []


def test_the_freeze_policy_takes_back_and_freezes_the_player(
    client: Any, conn: psycopg.Connection, shop: Game, apple: SandboxAppStore
) -> None:
    settings = {
        "bundle_id": s.BUNDLE_ID,
        "environment": "sandbox",
        "root_certificates": [apple.root_pem()],
        "chargeback_policy": "freeze",
    }
    put = client.put("/v1/admin/stores/app_store", json=settings, headers=shop.headers("studio"))
    assert put.status_code == 200, put.get_json()
    jws = top_up_on_the_app_store(client, shop, apple, transaction_id="3000777")
    assert buy(client, shop, "tip").status_code == 201
    assert notify(client, shop, apple, "REFUND", jws).get_json()["taken_back"] is True
    assert balances(client, shop)["USD"] == 0

    service = shop.headers("service", "backend")
    risk = client.get("/v1/players/p1/risk", headers=service).get_json()
    assert risk["frozen"] is True
    assert risk["freeze"]["frozen_by"] == "store:app_store"
    assert "3000777" in risk["freeze"]["reason"]
    # Frozen: a purchase is refused before anything else, and changes nothing.
    before = s.money_state(conn, shop.id)
    refused = buy(client, shop, "potion")
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "account_frozen"
    assert s.money_state(conn, shop.id) == before
    assert audit(conn) == []


def test_a_chargeback_takes_back_granted_items_as_far_as_they_are_left(
    client: Any, conn: psycopg.Connection, shop: Game, apple: SandboxAppStore
) -> None:
    jws = apple.transaction(bundle_id=s.BUNDLE_ID, product_id=s.COIN_PACK["app_store"])
    key = new_key()
    body = {"store": "app_store", "signed_transaction": jws}
    assert post(client, "/v1/receipts", body, shop, key=key).status_code == 201
    consume = client.post(
        "/v1/inventory/potion/consume",
        json={"quantity": 1},
        headers=shop.headers(**{"Idempotency-Key": new_key()}),
    )
    assert consume.status_code == 200
    notify(client, shop, apple, "REFUND", jws)
    assert inventory(client, shop) == {}
    assert balances(client, shop)["COINS"] == 0
    owed = conn.execute("SELECT owed FROM chargebacks WHERE game_id = %s", (shop.id,)).fetchone()
    assert owed == ([{"sku": "potion", "quantity": 1}],)
    # The receipt shows it; replaying the original request still answers what was credited.
    replay = post(client, "/v1/receipts", body, shop, key=key)
    assert replay.get_json()["receipt"]["status"] == "credited"
    assert audit(conn) == []


def test_a_notification_that_does_not_verify_changes_nothing(
    client: Any, conn: psycopg.Connection, shop: Game, apple: SandboxAppStore
) -> None:
    jws = top_up_on_the_app_store(client, shop, apple)
    before = s.money_state(conn, shop.id)
    forged = SandboxAppStore.create().notification("REFUND", jws, bundle_id=s.BUNDLE_ID)
    response = client.post(
        f"/v1/stores/app_store/notifications/{shop.id}", json={"signedPayload": forged}
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == {"reason": "certificate_chain"}
    other_kind = notify(client, shop, apple, "CONSUMPTION_REQUEST", jws)
    assert other_kind.status_code == 200
    assert other_kind.get_json()["taken_back"] is False
    assert s.money_state(conn, shop.id) == before


def test_google_voided_purchases_are_polled_and_taken_back(
    client: Any,
    conn: psycopg.Connection,
    shop: Game,
    google: s.FakeGooglePlay,
    config: Any,
) -> None:
    token = google.add(s.USD_5["google_play"])
    body = {"store": "google_play", "product_id": s.USD_5["google_play"], "purchase_token": token}
    assert post(client, "/v1/receipts", body, shop).status_code == 201
    assert chargebacks.poll_google_play(conn, config, account(conn, shop, "google_play")) == 0
    google.void(token)
    assert chargebacks.poll_google_play(conn, config, account(conn, shop, "google_play")) == 1
    assert balances(client, shop)["USD"] == 0
    # Polled again: nothing more is taken.
    assert chargebacks.poll_google_play(conn, config, account(conn, shop, "google_play")) == 0
    assert audit(conn) == []


def test_steam_refunds_in_the_report_are_taken_back(
    client: Any,
    conn: psycopg.Connection,
    shop: Game,
    steam: s.FakeSteam,
    config: Any,
) -> None:
    opened = client.post(
        "/v1/receipts/steam/orders",
        json={"product_id": "usd_5", "steam_id": "76561197960287930"},
        headers=shop.headers(),
    ).get_json()
    steam.approve(opened["order_id"])
    redeemed = post(
        client, "/v1/receipts", {"store": "steam", "order_id": opened["order_id"]}, shop
    )
    assert redeemed.status_code == 201
    assert buy(client, shop, "tip").status_code == 201
    steam.refund(opened["order_id"])
    assert chargebacks.poll_steam(conn, config, account(conn, shop, "steam")) == 1
    assert balances(client, shop)["USD"] == 0
    debts = conn.execute(
        "SELECT currency, amount FROM player_debts WHERE game_id = %s", (shop.id,)
    ).fetchall()
    assert debts == [("USD", 150)]
    assert buy(client, shop, "tip").get_json()["error"]["code"] == "debt_outstanding"
    assert audit(conn) == []


def test_the_audit_catches_books_that_do_not_reconcile(
    client: Any, conn: psycopg.Connection, shop: Game, apple: SandboxAppStore
) -> None:
    jws = top_up_on_the_app_store(client, shop, apple, transaction_id="3000009")
    notify(client, shop, apple, "REFUND", jws)
    assert audit(conn) == []
    with conn.transaction(force_rollback=True):
        conn.execute(
            'UPDATE receipts SET granted = \'[{"currency": "USD", "amount": 60000}]\''
            " WHERE game_id = %s",
            (shop.id,),
        )
        found = audit(conn)
    assert any(line.startswith("every receipt credited exactly") for line in found), found
    assert any(line.startswith("every chargeback took back") for line in found), found
    with conn.transaction(force_rollback=True):
        conn.execute(
            "INSERT INTO player_debts (game_id, player_id, currency, amount)"
            " VALUES (%s, 'p1', 'USD', 5)",
            (shop.id,),
        )
        found = audit(conn)
    assert found == [
        f"what players owe is what chargebacks left owed less what top-ups repaid: debt"
        f" {shop.id}/p1/USD: owed 0, repaid 0, but 5 is recorded"
    ]


# ---------------------------------------------------------------------------------------------
# Events: money in (receipt.redeemed) and out (receipt.charged_back)
# ---------------------------------------------------------------------------------------------


def _ledger(event: dict[str, Any]) -> list[tuple[str, int, int, str, str]]:
    return [
        (e["currency"], e["delta"], e["balance_after"], e["kind"], e["reference"])
        for e in event["data"]["ledger"]
    ]


def test_top_ups_chargebacks_and_repayments_write_their_events(
    client: Any, conn: psycopg.Connection, shop: Game, apple: SandboxAppStore
) -> None:
    jws = apple.transaction(
        bundle_id=s.BUNDLE_ID, product_id=s.USD_5["app_store"], transaction_id="3100001"
    )
    body = {"store": "app_store", "signed_transaction": jws}
    key = new_key()
    redeemed = post(client, "/v1/receipts", body, shop, key=key)
    assert redeemed.status_code == 201
    answer = redeemed.get_json()
    receipt_id = answer["receipt"]["id"]
    # A replay, a cross-player reuse and a forged notification write no event.
    assert post(client, "/v1/receipts", body, shop, key=key).status_code == 201
    assert post(client, "/v1/receipts", body, shop, sub="p2").status_code == 409
    forged = SandboxAppStore.create().notification("REFUND", jws, bundle_id=s.BUNDLE_ID)
    assert (
        client.post(
            f"/v1/stores/app_store/notifications/{shop.id}", json={"signedPayload": forged}
        ).status_code
        == 422
    )
    assert [e["type"] for e in read_feed(client, shop)] == [
        "catalog.published",
        "receipt.redeemed",
    ]
    top_up = read_feed(client, shop)[-1]
    assert (top_up["type"], top_up["player_id"]) == ("receipt.redeemed", "p1")
    assert {k: v for k, v in top_up["data"].items() if k not in ("ledger", "item_ledger")} == {
        k: v for k, v in answer.items() if k != "balances"
    }
    assert _ledger(top_up) == [("USD", 50_000, 50_000, "topup", f"receipt:{receipt_id}")]
    assert top_up["data"]["item_ledger"] == []

    for _ in range(100):  # 1.5000 USD of tips
        assert buy(client, shop, "tip").status_code == 201
    assert notify(client, shop, apple, "REVOKE", jws).get_json()["taken_back"] is True
    assert notify(client, shop, apple, "REVOKE", jws).get_json()["taken_back"] is False
    charged = [e for e in read_feed(client, shop) if e["type"] == "receipt.charged_back"]
    assert len(charged) == 1
    [event] = charged
    assert event["player_id"] == "p1"
    chargeback = event["data"]["chargeback"]
    assert {k: v for k, v in chargeback.items() if k != "created_at"} == {
        "receipt_id": receipt_id,
        "player_id": "p1",
        "store": "app_store",
        "transaction_id": "3100001",
        "source": "app_store_notification",
        "reason": "app_store revoke",
        "policy": "debt",
        "taken": [{"currency": "USD", "amount": 35_000}],
        "owed": [{"currency": "USD", "amount": 15_000}],
    }
    assert event["data"]["receipt"]["status"] == "charged_back"
    assert event["data"]["receipt"]["id"] == receipt_id
    assert event["data"]["debts"] == [{"currency": "USD", "amount": 15_000}]
    assert _ledger(event) == [("USD", -35_000, 0, "chargeback", f"chargeback:{receipt_id}")]
    assert event["data"]["item_ledger"] == []

    # The next top-up repays the debt first: its event carries the repayment's rows too.
    repaid = post(
        client,
        "/v1/receipts",
        {
            "store": "app_store",
            "signed_transaction": apple.transaction(
                bundle_id=s.BUNDLE_ID, product_id=s.USD_5["app_store"]
            ),
        },
        shop,
    ).get_json()
    second = read_feed(client, shop)[-1]
    assert second["type"] == "receipt.redeemed"
    assert second["data"]["repaid"] == [{"currency": "USD", "amount": 15_000}]
    assert second["data"]["debts"] == []
    second_id = repaid["receipt"]["id"]
    assert _ledger(second) == [
        ("USD", 50_000, 50_000, "topup", f"receipt:{second_id}"),
        ("USD", -15_000, 35_000, "chargeback", f"repay:{second_id}"),
    ]
    # Every ledger row of the game is in exactly one event.
    assert event_mismatches(conn, shop.id) == []


def test_a_chargeback_of_items_lists_its_item_rows(
    client: Any, conn: psycopg.Connection, shop: Game, apple: SandboxAppStore
) -> None:
    jws = apple.transaction(bundle_id=s.BUNDLE_ID, product_id=s.COIN_PACK["app_store"])
    answer = post(
        client, "/v1/receipts", {"store": "app_store", "signed_transaction": jws}, shop
    ).get_json()
    receipt_id = answer["receipt"]["id"]
    top_up = read_feed(client, shop)[-1]
    assert [
        (e["sku"], e["delta"], e["quantity_after"], e["kind"], e["reference"])
        for e in top_up["data"]["item_ledger"]
    ] == [("potion", 2, 2, "topup", f"receipt:{receipt_id}")]
    assert _ledger(top_up) == [("COINS", 1000, 1000, "topup", f"receipt:{receipt_id}")]
    notify(client, shop, apple, "REFUND", jws)
    event = read_feed(client, shop)[-1]
    assert event["type"] == "receipt.charged_back"
    assert event["data"]["chargeback"]["taken"] == [
        {"sku": "potion", "quantity": 2},
        {"currency": "COINS", "amount": 1000},
    ]
    assert event["data"]["chargeback"]["owed"] == []
    assert [
        (e["sku"], e["delta"], e["quantity_after"], e["kind"]) for e in event["data"]["item_ledger"]
    ] == [("potion", -2, 0, "chargeback")]
    assert _ledger(event) == [("COINS", -1000, 0, "chargeback", f"chargeback:{receipt_id}")]
    assert event_mismatches(conn, shop.id) == []
