"""Google Play real-time developer notifications, pushed by Cloud Pub/Sub with authentication:
the push's OIDC token is verified with google-auth against certificates a local server built
here publishes (as Google's certificate endpoint does), for the game's audience and service
account. A voided purchase is taken back as the polled job takes it back, once; a test or
one-time product notification is acknowledged; anything unverified is 401 and changes nothing."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from flask import Flask

from shopkeep_server import db, roles
from shopkeep_server.app import create_app
from shopkeep_server.store import chargebacks
from shopkeep_server.store.audit import audit
from shopkeep_server.store.store_accounts import load_account
from support import Game, balances, buy, make_config, make_game, post
from support import stores as s
from support.events import event_mismatches, read_feed

AUDIENCE = "https://shop.example.com/v1/stores/google_play/notifications"
PUSHER = "play-push@example-project.iam.gserviceaccount.com"


class FakeGoogleCerts:
    """Google's OAuth2 certificate endpoint (``{key id: x509 PEM}``, the v1 format) and the
    Pub/Sub service that signs push tokens with the matching key."""

    KEY_ID = "push-key-1"

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "securetoken.test")])
        now = dt.datetime.now(dt.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(self.key, hashes.SHA256())
        )

    def route(self, request: s.StoreRequest) -> tuple[int, Any]:
        if request.path != "/certs":
            return 404, {}
        pem = self.certificate.public_bytes(serialization.Encoding.PEM).decode()
        return 200, {self.KEY_ID: pem}

    def token(self, *, key: rsa.RSAPrivateKey | None = None, **changes: Any) -> str:
        """An OIDC token as Pub/Sub push sends it, with any claim changed (None drops it)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": "https://accounts.google.com",
            "aud": AUDIENCE,
            "azp": "104176025330667568672",
            "sub": "104176025330667568672",
            "email": PUSHER,
            "email_verified": True,
            "iat": now,
            "exp": now + 3600,
            **changes,
        }
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": self.KEY_ID})


@pytest.fixture
def google() -> Iterator[s.FakeGooglePlay]:
    fake = s.FakeGooglePlay()
    with s.serving(fake.route) as server:
        fake.server = server
        yield fake


@pytest.fixture
def certs() -> Iterator[tuple[FakeGoogleCerts, str]]:
    fake = FakeGoogleCerts()
    with s.serving(fake.route) as server:
        yield fake, f"{server.url}/certs"


@pytest.fixture
def config(google: s.FakeGooglePlay, certs: tuple[FakeGoogleCerts, str]) -> Any:
    return make_config(
        google_play_api_url=google.url,
        google_token_url=f"{google.url}/token",
        google_pubsub_certs_url=certs[1],
        store_timeout=5.0,
    )


@pytest.fixture
def app(conn: psycopg.Connection, config: Any) -> Flask:
    return create_app(config, database=db.SingleConnectionDatabase(conn, role=roles.APP_ROLE))


@pytest.fixture
def pubsub(certs: tuple[FakeGoogleCerts, str]) -> FakeGoogleCerts:
    return certs[0]


@pytest.fixture
def shop(conn: psycopg.Connection, client: Any, google: s.FakeGooglePlay) -> Game:
    game = make_game(conn, s.money_catalog())
    response = client.put(
        "/v1/admin/stores/google_play",
        json={
            "package_name": s.PACKAGE_NAME,
            "service_account": google.service_account(),
            "pubsub_audience": AUDIENCE,
            "pubsub_service_account": PUSHER,
        },
        headers=game.headers("studio", "studio-1"),
    )
    assert response.status_code == 200, response.get_json()
    return game


def top_up(client: Any, game: Game, google: s.FakeGooglePlay) -> str:
    token = google.add(s.USD_5["google_play"])
    body = {"store": "google_play", "product_id": s.USD_5["google_play"], "purchase_token": token}
    assert post(client, "/v1/receipts", body, game).status_code == 201
    return token


def envelope(notification: dict[str, Any], *, package: str = s.PACKAGE_NAME) -> dict[str, Any]:
    developer_notification = {
        "version": "1.0",
        "packageName": package,
        "eventTimeMillis": str(int(time.time() * 1000)),
        **notification,
    }
    return {
        "message": {
            "data": base64.b64encode(json.dumps(developer_notification).encode()).decode(),
            "messageId": "2070443601311540",
            "publishTime": "2026-12-01T16:00:00.000Z",
        },
        "subscription": "projects/example-project/subscriptions/play-notifications",
    }


def voided(google: s.FakeGooglePlay, token: str) -> dict[str, Any]:
    return {
        "voidedPurchaseNotification": {
            "purchaseToken": token,
            "orderId": google.purchases[token]["orderId"],
            "productType": 2,
            "refundType": 1,
        }
    }


def push(client: Any, game: Game, body: dict[str, Any], token: str | None) -> Any:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return client.post(
        f"/v1/stores/google_play/notifications/{game.id}", json=body, headers=headers
    )


def test_a_voided_purchase_notification_takes_the_top_up_back_once(
    client: Any,
    conn: psycopg.Connection,
    shop: Game,
    google: s.FakeGooglePlay,
    pubsub: FakeGoogleCerts,
    config: Any,
) -> None:
    token = top_up(client, shop, google)
    assert buy(client, shop, "tip").status_code == 201
    order_id = google.purchases[token]["orderId"]
    response = push(client, shop, envelope(voided(google, token)), pubsub.token())
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        "notification_type": "voidedPurchaseNotification",
        "transaction_id": order_id,
        "taken_back": True,
    }
    assert balances(client, shop)["USD"] == 0
    row = conn.execute(
        "SELECT source, reason, taken, owed FROM chargebacks WHERE game_id = %s", (shop.id,)
    ).fetchone()
    assert row == (
        "google_play_notification",
        "google_play voided (refund type 1)",
        [{"currency": "USD", "amount": 49_850}],
        [{"currency": "USD", "amount": 150}],
    )
    assert buy(client, shop, "tip").get_json()["error"]["code"] == "debt_outstanding"
    charged = [e for e in read_feed(client, shop) if e["type"] == "receipt.charged_back"]
    assert [e["data"]["chargeback"]["transaction_id"] for e in charged] == [order_id]

    # Pub/Sub delivers again (at least once): nothing more is taken.
    state = s.money_state(conn, shop.id)
    again = push(client, shop, envelope(voided(google, token)), pubsub.token())
    assert again.status_code == 200
    assert again.get_json()["taken_back"] is False
    assert s.money_state(conn, shop.id) == state
    # The polled job finds the same voided purchase later: one home, taken back once.
    google.void(token)
    account = load_account(conn, shop.id, "google_play")
    assert chargebacks.poll_google_play(conn, config, account) == 0
    assert s.money_state(conn, shop.id) == state
    assert audit(conn) == []
    assert event_mismatches(conn, shop.id) == []


def test_test_and_product_notifications_are_acknowledged(
    client: Any,
    conn: psycopg.Connection,
    shop: Game,
    google: s.FakeGooglePlay,
    pubsub: FakeGoogleCerts,
) -> None:
    top_up(client, shop, google)
    before = s.money_state(conn, shop.id)
    for notification, kind in [
        ({"testNotification": {"version": "1.0"}}, "testNotification"),
        (
            {
                "oneTimeProductNotification": {
                    "version": "1.0",
                    "notificationType": 1,
                    "purchaseToken": "token-pending",
                    "sku": s.USD_5["google_play"],
                }
            },
            "oneTimeProductNotification",
        ),
    ]:
        response = push(client, shop, envelope(notification), pubsub.token())
        assert response.status_code == 200, response.get_json()
        assert response.get_json() == {
            "notification_type": kind,
            "transaction_id": None,
            "taken_back": False,
        }
    # Fields Pub/Sub may add to its envelope are ignored, not refused.
    extended = envelope({"testNotification": {"version": "1.0"}})
    extended["deliveryAttempt"] = 3
    extended["message"]["orderingKey"] = ""
    extended["message"]["someFutureField"] = {"x": 1}
    assert push(client, shop, extended, pubsub.token()).status_code == 200
    # A void of a purchase this game never credited is acknowledged and changes nothing.
    unknown = {"voidedPurchaseNotification": {"purchaseToken": "t-1", "orderId": "GPA.1"}}
    answer = push(client, shop, envelope(unknown), pubsub.token()).get_json()
    assert answer == {
        "notification_type": "voidedPurchaseNotification",
        "transaction_id": "GPA.1",
        "taken_back": False,
    }
    assert s.money_state(conn, shop.id) == before


def test_a_push_that_does_not_verify_is_401_and_changes_nothing(
    client: Any,
    conn: psycopg.Connection,
    shop: Game,
    google: s.FakeGooglePlay,
    pubsub: FakeGoogleCerts,
) -> None:
    token = top_up(client, shop, google)
    before = s.money_state(conn, shop.id)
    body = envelope(voided(google, token))
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refusals = {
        "no token": None,
        "another signer": pubsub.token(key=stranger),
        "another audience": pubsub.token(aud="https://elsewhere.example.com/push"),
        "another service account": pubsub.token(email="someone@example.com"),
        "an unverified e-mail": pubsub.token(email_verified=False),
        "not Google": pubsub.token(iss="https://issuer.example.com"),
        "expired": pubsub.token(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
        "not a JWT": "not-a-token",
    }
    for why, token_sent in refusals.items():
        response = push(client, shop, body, token_sent)
        assert response.status_code == 401, why
        error = response.get_json()["error"]
        assert error["code"] == "unauthenticated", why
        assert set(error) == {"code", "message", "details", "request_id"}
        assert s.money_state(conn, shop.id) == before, why
    # A notification of another app, even well signed, changes nothing either.
    other = push(
        client, shop, envelope(voided(google, token), package="com.other.app"), pubsub.token()
    )
    assert (other.status_code, other.get_json()["error"]["code"]) == (422, "validation_failed")
    garbled = push(client, shop, {"message": {"data": "%%%"}}, pubsub.token())
    assert (garbled.status_code, garbled.get_json()["error"]["code"]) == (422, "validation_failed")
    assert s.money_state(conn, shop.id) == before


def test_a_game_without_pubsub_settings_takes_no_notifications(
    client: Any,
    conn: psycopg.Connection,
    google: s.FakeGooglePlay,
    pubsub: FakeGoogleCerts,
) -> None:
    game = make_game(conn, s.money_catalog())
    put = client.put(
        "/v1/admin/stores/google_play",
        json={"package_name": s.PACKAGE_NAME, "service_account": google.service_account()},
        headers=game.headers("studio", "studio-1"),
    )
    assert put.status_code == 200
    token = top_up(client, game, google)
    before = s.money_state(conn, game.id)
    refused = push(client, game, envelope(voided(google, token)), pubsub.token())
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (401, "unauthenticated")
    assert s.money_state(conn, game.id) == before
