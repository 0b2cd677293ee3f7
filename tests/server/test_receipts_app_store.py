"""App Store receipts: StoreKit 2 signed transactions from a certificate chain made here, signed
as the App Store signs them; every way a transaction can be wrong; exactly once per
transaction; nothing changes on a refusal."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import psycopg
import pytest

from shopkeep_server.sandbox_store import SandboxAppStore
from support import Game, balances, buy, inventory, make_game, new_key, post
from support import stores as s

PRODUCT = s.USD_5["app_store"]


@pytest.fixture(scope="module")
def apple() -> SandboxAppStore:
    return SandboxAppStore.create()


@pytest.fixture
def shop(conn: psycopg.Connection, client: Any, apple: SandboxAppStore) -> Game:
    game = make_game(conn, s.money_catalog())
    response = client.put(
        "/v1/admin/stores/app_store",
        json={
            "bundle_id": s.BUNDLE_ID,
            "environment": "sandbox",
            "root_certificates": [apple.root_pem()],
        },
        headers=game.headers("studio", "studio-1"),
    )
    assert response.status_code == 200, response.get_json()
    return game


def redeem(client: Any, game: Game, jws: str, *, sub: str = "p1", key: str | None = None) -> Any:
    return post(
        client,
        "/v1/receipts",
        {"store": "app_store", "signed_transaction": jws},
        game,
        sub=sub,
        key=key,
    )


def test_a_valid_transaction_credits_its_product_once(
    client: Any, conn: psycopg.Connection, shop: Game, apple: SandboxAppStore
) -> None:
    jws = apple.transaction(bundle_id=s.BUNDLE_ID, product_id=PRODUCT, transaction_id="2000001")
    response = redeem(client, shop, jws)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["receipt"]["store"] == "app_store"
    assert body["receipt"]["transaction_id"] == "2000001"
    assert body["receipt"]["product_id"] == "usd_5"
    assert body["receipt"]["status"] == "credited"
    assert body["granted"] == [{"currency": "USD", "amount": 50_000}]
    assert body["repaid"] == [] and body["debts"] == []
    assert balances(client, shop) == {"COINS": 0, "USD": 50_000}
    ledger = client.get("/v1/wallet/ledger", headers=shop.headers()).get_json()["entries"]
    assert [(e["currency"], e["delta"], e["kind"], e["reference"]) for e in ledger] == [
        ("USD", 50_000, "topup", f"receipt:{body['receipt']['id']}")
    ]
    # The prepaid balance pays for the tip in fractions of a cent: 0.0150 USD.
    assert buy(client, shop, "tip").status_code == 201
    assert balances(client, shop) == {"COINS": 0, "USD": 49_850}


def test_a_product_with_currency_and_items(client: Any, shop: Game, apple: SandboxAppStore) -> None:
    jws = apple.transaction(bundle_id=s.BUNDLE_ID, product_id=s.COIN_PACK["app_store"])
    response = redeem(client, shop, jws)
    assert response.status_code == 201
    assert response.get_json()["granted"] == [
        {"sku": "potion", "quantity": 2},
        {"currency": "COINS", "amount": 1000},
    ]
    assert balances(client, shop) == {"COINS": 1000, "USD": 0}
    assert inventory(client, shop) == {"potion": 2}


def test_the_same_player_and_key_replay(client: Any, shop: Game, apple: SandboxAppStore) -> None:
    jws = apple.transaction(bundle_id=s.BUNDLE_ID, product_id=PRODUCT)
    key = new_key()
    first = redeem(client, shop, jws, key=key)
    again = redeem(client, shop, jws, key=key)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.data == first.data
    assert balances(client, shop)["USD"] == 50_000


def test_the_receipt_remembers_its_key_after_the_key_record_is_gone(
    client: Any, conn: psycopg.Connection, shop: Game, apple: SandboxAppStore
) -> None:
    jws = apple.transaction(bundle_id=s.BUNDLE_ID, product_id=PRODUCT)
    key = new_key()
    first = redeem(client, shop, jws, key=key)
    # The purge of expired keys (24 h or more later).
    conn.execute("DELETE FROM idempotency_keys WHERE game_id = %s", (shop.id,))
    again = redeem(client, shop, jws, key=key)
    assert (again.status_code, again.data) == (201, first.data)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert balances(client, shop)["USD"] == 50_000


@pytest.mark.parametrize("who", ["another player", "another key"])
def test_a_used_receipt_is_refused_and_changes_nothing(
    client: Any, conn: psycopg.Connection, shop: Game, apple: SandboxAppStore, who: str
) -> None:
    jws = apple.transaction(bundle_id=s.BUNDLE_ID, product_id=PRODUCT, transaction_id="2000002")
    assert redeem(client, shop, jws, sub="p1").status_code == 201
    before = s.money_state(conn, shop.id)
    key = new_key()
    sub = "p2" if who == "another player" else "p1"
    response = redeem(client, shop, jws, sub=sub, key=key)
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "receipt_already_used"
    assert error["details"] == {"store": "app_store", "transaction_id": "2000002"}
    assert s.money_state(conn, shop.id) == before
    # Final: stored with the key and replayed.
    replay = redeem(client, shop, jws, sub=sub, key=key)
    assert (replay.status_code, replay.data) == (409, response.data)
    assert replay.headers["Idempotent-Replayed"] == "true"


def _tampered(jws: str) -> str:
    header, payload, signature = jws.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["productId"] = s.COIN_PACK["app_store"]  # a richer product, same signature
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


def _expired_leaf() -> SandboxAppStore:
    now = dt.datetime.now(dt.UTC)
    return SandboxAppStore.create(
        leaf_valid_from=now - dt.timedelta(days=60), leaf_valid_until=now - dt.timedelta(days=30)
    )


REFUSALS = {
    "tampered": ("signature", lambda apple: _tampered(_valid(apple))),
    "wrong bundle": (
        "bundle_id",
        lambda apple: apple.transaction(bundle_id="com.other.game", product_id=PRODUCT),
    ),
    "wrong environment": (
        "environment",
        lambda apple: apple.transaction(
            bundle_id=s.BUNDLE_ID, product_id=PRODUCT, environment="Production"
        ),
    ),
    "untrusted root": (
        "certificate_chain",
        lambda apple: SandboxAppStore.create().transaction(
            bundle_id=s.BUNDLE_ID, product_id=PRODUCT
        ),
    ),
    "unknown product": (
        "unknown_product",
        lambda apple: apple.transaction(bundle_id=s.BUNDLE_ID, product_id="com.example.nothing"),
    ),
    "revoked": (
        "revoked",
        lambda apple: apple.transaction(bundle_id=s.BUNDLE_ID, product_id=PRODUCT, revoked=True),
    ),
    "not a JWS": ("signature", lambda apple: "not.a.jws"),
}


def _valid(apple: SandboxAppStore) -> str:
    return apple.transaction(bundle_id=s.BUNDLE_ID, product_id=PRODUCT)


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_transaction_that_does_not_verify_is_refused_and_changes_nothing(
    client: Any, conn: psycopg.Connection, shop: Game, apple: SandboxAppStore, case: str
) -> None:
    reason, make = REFUSALS[case]
    before = s.money_state(conn, shop.id)
    key = new_key()
    response = redeem(client, shop, make(apple), key=key)
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "receipt_invalid"
    assert error["details"] == {"reason": reason}
    assert "Traceback" not in error["message"]
    assert s.money_state(conn, shop.id) == before
    # Not stored: the key is free for the request once it verifies.
    stored = conn.execute(
        "SELECT count(*) FROM idempotency_keys WHERE game_id = %s AND key = %s", (shop.id, key)
    ).fetchone()
    assert stored == (0,)


def test_an_expired_certificate_is_refused(
    client: Any, conn: psycopg.Connection, apple: SandboxAppStore
) -> None:
    expired = _expired_leaf()
    game = make_game(conn, s.money_catalog())
    client.put(
        "/v1/admin/stores/app_store",
        json={
            "bundle_id": s.BUNDLE_ID,
            "environment": "sandbox",
            "root_certificates": [expired.root_pem(), apple.root_pem()],
        },
        headers=game.headers("studio", "studio-1"),
    )
    before = s.money_state(conn, game.id)
    response = redeem(client, game, expired.transaction(bundle_id=s.BUNDLE_ID, product_id=PRODUCT))
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == {"reason": "certificate_chain"}
    assert s.money_state(conn, game.id) == before
    # The same game still takes a transaction signed by a valid chain.
    assert redeem(client, game, _valid(apple)).status_code == 201


def test_a_game_that_does_not_sell_on_the_app_store(
    client: Any, conn: psycopg.Connection, apple: SandboxAppStore
) -> None:
    game = make_game(conn, s.money_catalog())
    response = redeem(client, game, _valid(apple))
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == {"reason": "store_not_configured"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"store": "app_store"}, "signed_transaction"),
        ({"store": "app_store", "signed_transaction": "x", "order_id": "1"}, "order_id"),
        ({"store": "itch", "signed_transaction": "x"}, "store"),
    ],
)
def test_a_receipt_needs_its_store_s_proof(
    client: Any, shop: Game, body: dict[str, Any], field: str
) -> None:
    response = post(client, "/v1/receipts", body, shop)
    assert response.status_code == 422
    assert field in response.get_json()["error"]["details"]


def test_store_settings_never_echo_secrets_and_check_their_fields(
    client: Any, shop: Game, apple: SandboxAppStore
) -> None:
    studio = shop.headers("studio", "studio-1")
    listed = client.get("/v1/admin/stores", headers=studio).get_json()["stores"]
    assert [entry["store"] for entry in listed] == ["app_store"]
    assert listed[0]["settings"]["bundle_id"] == s.BUNDLE_ID
    assert listed[0]["chargeback_policy"] == "debt"
    bad = client.put(
        "/v1/admin/stores/app_store",
        json={"bundle_id": "x", "environment": "production", "root_certificates": ["nope"]},
        headers=studio,
    )
    assert bad.status_code == 422
    assert set(bad.get_json()["error"]["details"]) == {"app_apple_id", "root_certificates.0"}
    google = client.put(
        "/v1/admin/stores/google_play",
        json={
            "package_name": s.PACKAGE_NAME,
            "service_account": s.FakeGooglePlay().service_account(),
        },
        headers=studio,
    )
    assert google.status_code == 200
    assert google.get_json()["secrets_set"] == ["service_account"]
    assert "PRIVATE KEY" not in google.get_data(as_text=True)
    # Changing a setting keeps the secret stored before.
    again = client.put(
        "/v1/admin/stores/google_play",
        json={"package_name": s.PACKAGE_NAME, "chargeback_policy": "freeze"},
        headers=studio,
    )
    assert again.get_json()["secrets_set"] == ["service_account"]
    assert again.get_json()["chargeback_policy"] == "freeze"
    assert client.put("/v1/admin/stores/itch", json={}, headers=studio).status_code == 404
    player = client.put("/v1/admin/stores/app_store", json={}, headers=shop.headers())
    assert player.status_code == 403


def test_the_sdk_mirrors_each_store_s_proof_fields() -> None:
    from shopkeep._core import RECEIPT_PROOFS
    from shopkeep_server.api.receipts import PROOF_FIELDS
    from shopkeep_server.store.rules import STORES

    assert RECEIPT_PROOFS == PROOF_FIELDS
    assert tuple(PROOF_FIELDS) == STORES
