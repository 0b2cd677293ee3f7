"""An in-memory stand-in for the store server, for httpx.MockTransport tests of the SDK.

It implements just enough of API.md (wallet, inventory, catalog with ETag, purchases with
idempotency records and replays, a paginated ledger) for the SDK's transport-level behaviour to
be tested without a database. The live tests cover the real server.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from typing import Any

import httpx

# Where the SDK tests' MockTransport clients point, and the token they send.
BASE_URL = "http://shop.test"
TOKEN = "test-token"

CREATED_AT = "2026-11-21T14:47:37.123456Z"

DEMO_CATALOG: dict[str, Any] = {
    "version": 3,
    "currencies": [
        {"code": "COINS", "name": "Coins", "scale": 0, "max_balance": None},
        {"code": "GEMS", "name": "Gems", "scale": 0, "max_balance": 100000},
        {"code": "USD", "name": "US dollar", "scale": 4, "max_balance": None},
    ],
    "items": [
        {
            "sku": "potion",
            "name": "Potion",
            "description": "Heals",
            "kind": "consumable",
            "prices": [{"currency": "COINS", "amount": 50}],
            "contents": [],
            "stock": None,
            "per_player_limit": None,
            "available_from": None,
            "available_until": None,
            "tags": ["heal"],
            "metadata": {"color": "red"},
        },
        {
            "sku": "sword",
            "name": "Sword",
            "description": "",
            "kind": "durable",
            "prices": [{"currency": "COINS", "amount": 300}],
            "contents": [],
            "stock": None,
            "per_player_limit": None,
            "available_from": None,
            "available_until": None,
            "tags": [],
            "metadata": {},
        },
        {
            "sku": "starter_pack",
            "name": "Starter pack",
            "description": "",
            "kind": "bundle",
            "prices": [{"currency": "GEMS", "amount": 20}],
            "contents": [{"sku": "potion", "quantity": 3}, {"currency": "COINS", "amount": 500}],
            "stock": None,
            "per_player_limit": 1,
            "available_from": "2026-01-01T00:00:00Z",
            "available_until": None,
            "tags": [],
            "metadata": {},
        },
        {
            "sku": "shield",
            "name": "Shield",
            "description": "",
            "kind": "durable",
            "prices": [{"currency": "COINS", "amount": 200}, {"currency": "GEMS", "amount": 5}],
            "contents": [],
            "stock": 10,
            "per_player_limit": None,
            "available_from": None,
            "available_until": None,
            "tags": [],
            "metadata": {},
        },
        {
            "sku": "tip",
            "name": "Tip",
            "description": "",
            "kind": "consumable",
            "prices": [{"currency": "USD", "amount": 150}],
            "contents": [],
            "stock": None,
            "per_player_limit": None,
            "available_from": None,
            "available_until": None,
            "tags": [],
            "metadata": {},
        },
    ],
}


class Crash(BaseException):
    """The game process dying mid-call: not an Exception, so nothing in the SDK catches it."""


def error_response(
    status: int,
    code: str,
    message: str = "refused",
    details: dict[str, Any] | None = None,
    *,
    request_id: str = "req-1",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """An API error response with the standard body."""
    body = {
        "error": {
            "code": code,
            "message": message,
            "details": details or {},
            "request_id": request_id,
        }
    }
    return httpx.Response(
        status, json=body, headers={"X-Request-Id": request_id, **(headers or {})}
    )


def purchase_json(
    *,
    purchase_id: str = "0b7c6f0e-5d3a-4c1e-9a52-8f6c2d1e0a01",
    sku: str = "sword",
    quantity: int = 1,
    currency: str = "COINS",
    unit: int = 300,
    status: str = "completed",
) -> dict[str, Any]:
    """A ``purchase`` object shaped like the server's."""
    return {
        "id": purchase_id,
        "player_id": "p1",
        "sku": sku,
        "quantity": quantity,
        "price": {"currency": currency, "amount": unit * quantity},
        "unit_price": {"currency": currency, "amount": unit},
        "catalog_version": 3,
        "status": status,
        "granted": [{"sku": sku, "quantity": quantity}],
        "created_at": CREATED_AT,
        "refunded_at": None if status == "completed" else "2026-11-21T15:00:00.000001Z",
        "refund_reason": None if status == "completed" else "support",
    }


class FakeStore:
    """A thread-safe, in-memory player store speaking the API's wire format."""

    def __init__(self, *, coins: int = 1000, prices: dict[str, int] | None = None) -> None:
        self.balances = {"COINS": coins, "GEMS": 0, "USD": 0}
        self.prices = prices or {"sword": 300, "potion": 50}
        self.inventory: dict[str, int] = {}
        self.purchases: list[dict[str, Any]] = []
        self.ledger: list[dict[str, Any]] = []
        self.keys: dict[str, tuple[str, int, dict[str, Any]]] = {}
        self.requests: list[httpx.Request] = []
        self.catalog_etag = '"catalog-3"'
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
            return self._handle(request)

    @property
    def purchase_keys(self) -> list[str]:
        """Idempotency keys of POST /v1/purchases, one per request received."""
        return [
            r.headers["Idempotency-Key"]
            for r in self.requests
            if r.method == "POST" and r.url.path == "/v1/purchases"
        ]

    def _handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        rid = f"req-{next(self._ids)}"
        if request.method == "GET" and path == "/v1/catalog":
            if request.headers.get("If-None-Match") == self.catalog_etag:
                return httpx.Response(304, headers={"ETag": self.catalog_etag, "X-Request-Id": rid})
            return httpx.Response(
                200, json=DEMO_CATALOG, headers={"ETag": self.catalog_etag, "X-Request-Id": rid}
            )
        if request.method == "GET" and path == "/v1/wallet":
            balances = [{"currency": c, "amount": a} for c, a in sorted(self.balances.items())]
            return httpx.Response(200, json={"balances": balances}, headers={"X-Request-Id": rid})
        if request.method == "GET" and path == "/v1/inventory":
            items = [{"sku": s, "quantity": q} for s, q in sorted(self.inventory.items()) if q]
            return httpx.Response(200, json={"items": items}, headers={"X-Request-Id": rid})
        if request.method == "GET" and path == "/v1/wallet/ledger":
            return self._ledger_page(request, rid)
        if request.method == "POST" and path == "/v1/purchases":
            return self._purchase(request, rid)
        return error_response(404, "not_found", f"no route {path}", request_id=rid)

    def _ledger_page(self, request: httpx.Request, rid: str) -> httpx.Response:
        limit = int(request.url.params.get("limit", "50"))
        start = int(request.url.params.get("cursor", "0"))
        newest_first = list(reversed(self.ledger))
        page = newest_first[start : start + limit]
        more = start + limit < len(newest_first)
        body = {"entries": page, "next_cursor": str(start + limit) if more else None}
        return httpx.Response(200, json=body, headers={"X-Request-Id": rid})

    def _purchase(self, request: httpx.Request, rid: str) -> httpx.Response:
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return error_response(400, "idempotency_key_missing", request_id=rid)
        body = json.loads(request.content)
        fingerprint = json.dumps(body, sort_keys=True)
        if key in self.keys:
            stored_fp, status, payload = self.keys[key]
            if stored_fp != fingerprint:
                return error_response(422, "idempotency_key_reused", request_id=rid)
            return httpx.Response(
                status, json=payload, headers={"Idempotent-Replayed": "true", "X-Request-Id": rid}
            )
        sku, quantity = body["sku"], body.get("quantity", 1)
        if sku not in self.prices:
            return error_response(404, "not_found", f"no item {sku}", request_id=rid)
        unit = self.prices[sku]
        total = unit * quantity
        if self.balances["COINS"] < total:
            status, payload = (
                409,
                {
                    "error": {
                        "code": "insufficient_funds",
                        "message": "not enough COINS",
                        "details": {
                            "currency": "COINS",
                            "required": total,
                            "balance": self.balances["COINS"],
                        },
                        "request_id": rid,
                    }
                },
            )
        else:
            self.balances["COINS"] -= total
            self.inventory[sku] = self.inventory.get(sku, 0) + quantity
            purchase = purchase_json(
                purchase_id=f"00000000-0000-4000-8000-{len(self.purchases) + 1:012d}",
                sku=sku,
                quantity=quantity,
                unit=unit,
            )
            self.purchases.append({**purchase, "idempotency_key": key})
            self.ledger.append(
                {
                    "id": len(self.ledger) + 1,
                    "currency": "COINS",
                    "delta": -total,
                    "balance_after": self.balances["COINS"],
                    "kind": "purchase",
                    "reference": f"purchase:{purchase['id']}",
                    "created_at": CREATED_AT,
                }
            )
            balances = [{"currency": c, "amount": a} for c, a in sorted(self.balances.items())]
            status, payload = (
                201,
                {
                    "purchase": purchase,
                    "balances": balances,
                    "granted": [{"sku": sku, "quantity": quantity}],
                },
            )
        self.keys[key] = (fingerprint, status, payload)
        return httpx.Response(status, json=payload, headers={"X-Request-Id": rid})


def faulty(
    handler: Callable[[httpx.Request], httpx.Response],
    faults: list[str],
) -> Callable[[httpx.Request], httpx.Response]:
    """Wrap ``handler`` so the n-th request suffers ``faults[n]`` (then none).

    - ``"ok"``: no fault.
    - ``"drop"``: the server handles it (and commits), then the response is lost.
    - ``"refuse"``: the connection fails before the server sees anything.
    - ``"timeout"``: a read timeout before the server sees anything.
    - ``"crash"``: the game process dies before the request leaves.
    - ``"crash_after"``: the server commits, then the game process dies.
    """
    pending = list(faults)

    def wrapped(request: httpx.Request) -> httpx.Response:
        fault = pending.pop(0) if pending else "ok"
        if fault == "refuse":
            raise httpx.ConnectError("connection refused", request=request)
        if fault == "timeout":
            raise httpx.ReadTimeout("timed out", request=request)
        if fault == "crash":
            raise Crash
        response = handler(request)
        if fault == "drop":
            raise httpx.ReadError("connection reset by peer", request=request)
        if fault == "crash_after":
            raise Crash
        return response

    return wrapped
