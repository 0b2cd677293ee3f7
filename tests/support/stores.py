"""Real money in, for tests: a catalog with products, the state a receipt may change, and local
stand-ins for Google Play and Steam that speak their Web APIs' documented JSON.

Imported by module (``from support import stores``)."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import jwt
import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

BUNDLE_ID = "com.example.shopkeep"
PACKAGE_NAME = "com.example.shopkeep"
STEAM_APP_ID = 480

# A top-up of 5.0000 USD and a pack of coins with two potions, each on all three stores.
USD_5 = {"app_store": "com.example.usd5", "google_play": "usd5", "steam": "1001"}
COIN_PACK = {"app_store": "com.example.coins", "google_play": "coins", "steam": "1002"}


def money_catalog() -> dict[str, Any]:
    """USD (scale 4) and COINS, a potion, a 0.0150 USD tip, and two real-money products."""
    return {
        "currencies": [
            {"code": "COINS", "name": "Coins", "scale": 0, "max_balance": 1_000_000},
            {"code": "USD", "name": "US dollar", "scale": 4},
        ],
        "items": [
            {
                "sku": "potion",
                "name": "Potion",
                "kind": "consumable",
                "prices": [{"currency": "COINS", "amount": 50}],
            },
            {
                "sku": "tip",
                "name": "Tip",
                "kind": "consumable",
                "prices": [{"currency": "USD", "amount": 150}],
            },
        ],
        "products": [
            {
                "id": "usd_5",
                "store_ids": USD_5,
                "grants": {"currencies": [{"currency": "USD", "amount": 50_000}]},
            },
            {
                "id": "coin_pack",
                "store_ids": COIN_PACK,
                "grants": {
                    "currencies": [{"currency": "COINS", "amount": 1000}],
                    "items": [{"sku": "potion", "quantity": 2}],
                },
            },
        ],
    }


def money_state(conn: psycopg.Connection, game_id: str) -> dict[str, Any]:
    """Everything a receipt or a chargeback may change for a game."""

    def rows(query: str) -> list[tuple[Any, ...]]:
        return conn.execute(query, {"g": game_id}).fetchall()

    return {
        "wallets": rows(
            "SELECT player_id, currency, balance FROM wallets WHERE game_id = %(g)s ORDER BY 1, 2"
        ),
        "ledger": rows(
            "SELECT player_id, currency, delta, kind FROM ledger_entries WHERE game_id = %(g)s"
            " ORDER BY id"
        ),
        "inventory": rows(
            "SELECT player_id, sku, quantity FROM inventories WHERE game_id = %(g)s ORDER BY 1, 2"
        ),
        "item_ledger": rows("SELECT count(*) FROM item_ledger WHERE game_id = %(g)s"),
        "receipts": rows(
            "SELECT player_id, store, transaction_id, status FROM receipts WHERE game_id = %(g)s"
            " ORDER BY 2, 3"
        ),
        "chargebacks": rows("SELECT count(*) FROM chargebacks WHERE game_id = %(g)s"),
        "debts": rows(
            "SELECT player_id, currency, amount FROM player_debts WHERE game_id = %(g)s"
            " ORDER BY 1, 2"
        ),
    }


# ---------------------------------------------------------------------------------------------
# Local stand-ins for the stores' Web APIs
# ---------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _StoreServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _answer(self) -> None:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        request = StoreRequest(
            method=self.command,
            path=unquote(url.path),
            query={k: v[0] for k, v in parse_qs(url.query).items()},
            form={k: v[0] for k, v in parse_qs(raw.decode()).items()}
            if self.headers.get("Content-Type", "").startswith("application/x-www-form")
            else {},
            json=json.loads(raw)
            if raw and "json" in self.headers.get("Content-Type", "")
            else None,
            authorization=self.headers.get("Authorization"),
        )
        self.server.requests.append(request)
        if self.server.down:
            status, body = 503, {"error": "down for the test"}
        else:
            status, body = self.server.route(request)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer


@dataclasses.dataclass
class StoreRequest:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    json: Any
    authorization: str | None


class _StoreServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, route: Callable[[StoreRequest], tuple[int, Any]]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.route = route
        self.down = False
        self.requests: list[StoreRequest] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def serving(route: Callable[[StoreRequest], tuple[int, Any]]) -> Iterator[_StoreServer]:
    server = _StoreServer(route)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class FakeGooglePlay:
    """Google's OAuth token endpoint and the Play Developer API's purchases.products (get,
    acknowledge) and purchases.voidedpurchases (list), as documented. Purchases are set up by
    the test: ``add(product_id, state=0|1|2)`` returns a purchase token."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.client_email = "shopkeep@example-project.iam.gserviceaccount.com"
        self.tokens: set[str] = set()
        self.purchases: dict[str, dict[str, Any]] = {}
        self.voided: list[dict[str, Any]] = []
        self.server: _StoreServer | None = None

    def service_account(self) -> dict[str, Any]:
        """The service account's JSON key, as Google Cloud gives it."""
        pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": "example-project",
            "private_key_id": "key-1",
            "private_key": pem,
            "client_email": self.client_email,
            "client_id": "1234567890",
            "token_uri": "https://oauth2.googleapis.com/token",
        }

    def add(self, product_id: str, *, state: int = 0, acknowledged: bool = False) -> str:
        token = f"token-{uuid.uuid4().hex}"
        self.purchases[token] = {
            "kind": "androidpublisher#productPurchase",
            "purchaseTimeMillis": str(int(time.time() * 1000)),
            "purchaseState": state,
            "consumptionState": 0,
            "orderId": f"GPA.{uuid.uuid4().int % 10**16:016d}",
            "purchaseType": 0,
            "acknowledgementState": 1 if acknowledged else 0,
            "productId": product_id,
            "quantity": 1,
            "regionCode": "US",
        }
        return token

    def void(self, token: str) -> None:
        self.voided.append(
            {
                "kind": "androidpublisher#voidedPurchase",
                "purchaseToken": token,
                "voidedTimeMillis": str(int(time.time() * 1000)),
                "orderId": self.purchases[token]["orderId"],
                "voidedSource": 2,
                "voidedReason": 1,
            }
        )

    def route(self, request: StoreRequest) -> tuple[int, Any]:
        if request.path == "/token":
            claims = jwt.decode(
                request.form["assertion"],
                self.key.public_key(),
                algorithms=["RS256"],
                # google-auth addresses every assertion to Google's own token endpoint.
                audience="https://oauth2.googleapis.com/token",
            )
            assert claims["iss"] == self.client_email
            assert "androidpublisher" in claims["scope"]
            token = f"ya29.{uuid.uuid4().hex}"
            self.tokens.add(token)
            return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
        if request.authorization is None or request.authorization[7:] not in self.tokens:
            return 401, {"error": {"code": 401, "message": "Request had invalid credentials."}}
        prefix = f"/androidpublisher/v3/applications/{PACKAGE_NAME}/purchases/"
        if not request.path.startswith(prefix):
            return 404, {"error": {"code": 404, "message": "Not found"}}
        rest = request.path[len(prefix) :]
        if rest == "voidedpurchases":
            return 200, {"voidedPurchases": list(self.voided)} if self.voided else {}
        # products/{productId}/tokens/{token}[:acknowledge]
        parts = rest.split("/")
        token, _, action = parts[3].partition(":")
        purchase = self.purchases.get(token)
        if purchase is None or purchase["productId"] != parts[1]:
            return 400, {"error": {"code": 400, "message": "Invalid Value"}}
        if action == "acknowledge":
            purchase["acknowledgementState"] = 1
            return 200, {}
        return 200, purchase

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url


class FakeSteam:
    """The Steam Web API's ISteamMicroTxn: InitTxn, QueryTxn, FinalizeTxn and GetReport, as
    documented (``{"response": {"result": "OK", "params": {...}}}``). ``approve(order_id)`` is
    the player's click in the overlay."""

    PUBLISHER_KEY = "steam-publisher-key-for-tests"

    def __init__(self) -> None:
        self.orders: dict[str, dict[str, Any]] = {}
        self.server: _StoreServer | None = None

    def approve(self, order_id: str) -> None:
        self.orders[order_id]["status"] = "Approved"

    def refund(self, order_id: str) -> None:
        self.orders[order_id]["status"] = "Refunded"
        self.orders[order_id]["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def route(self, request: StoreRequest) -> tuple[int, Any]:
        fields = request.form or request.query
        if fields.get("key") != self.PUBLISHER_KEY or fields.get("appid") != str(STEAM_APP_ID):
            return 403, {}
        method = request.path.split("/")[2]
        if method == "InitTxn":
            order_id = fields["orderid"]
            trans_id = str(uuid.uuid4().int % 10**18)
            self.orders[order_id] = {
                "orderid": order_id,
                "transid": trans_id,
                "steamid": fields["steamid"],
                "status": "Init",
                "currency": fields["currency"],
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "items": [
                    {
                        "itemid": fields["itemid[0]"],
                        "qty": int(fields["qty[0]"]),
                        "amount": int(fields["amount[0]"]),
                        "vat": 0,
                        "itemstatus": "Init",
                    }
                ],
            }
            return 200, _ok({"orderid": order_id, "transid": trans_id})
        order = self.orders.get(fields.get("orderid", ""))
        if method == "GetReport":
            return 200, _ok({"count": len(self.orders), "orders": list(self.orders.values())})
        if order is None:
            return 200, _failure(100, "Invalid order id")
        if method == "QueryTxn":
            return 200, _ok(order)
        if method == "FinalizeTxn":
            if order["status"] != "Approved":
                return 200, _failure(7, "Transaction not approved by the user")
            order["status"] = "Succeeded"
            return 200, _ok({"orderid": order["orderid"], "transid": order["transid"]})
        return 404, {}

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url


def _ok(params: dict[str, Any]) -> dict[str, Any]:
    return {"response": {"result": "OK", "params": params}}


def _failure(code: int, description: str) -> dict[str, Any]:
    return {
        "response": {"result": "Failure", "error": {"errorcode": code, "errordesc": description}}
    }
