"""Every call of StoreClient against canned responses: paths, bodies, headers and typed results."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

import shopkeep
from shopkeep import (
    Amount,
    Catalog,
    GrantResult,
    ItemQuantity,
    LedgerEntry,
    Money,
    Purchase,
    StoreClient,
)
from support.sdk_fakes import CREATED_AT, FakeStore, purchase_json


class Recorder:
    """Answers each request from a route table and records what was sent."""

    def __init__(self, routes: dict[tuple[str, str], Any]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        # The raw (still escaped) path, so an escaped "/" inside an id stays visible.
        path = request.url.raw_path.decode().partition("?")[0]
        answer = self.routes[(request.method, path)]
        if callable(answer):
            return answer(request)
        status, body = answer
        return httpx.Response(status, json=body, headers={"X-Request-Id": "req-7"})

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def body(self) -> Any:
        return json.loads(self.last.content)


def test_headers_identify_the_caller(
    store: FakeStore, make_client: Callable[..., StoreClient]
) -> None:
    make_client(store).purchase("potion")
    request = store.requests[0]
    assert request.headers["Authorization"] == "Bearer test-token"
    assert request.headers["User-Agent"].startswith(f"shopkeep-python/{shopkeep.__version__} ")
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Content-Type"] == "application/json"
    assert str(request.url) == "http://shop.test/v1/purchases"


def test_catalog_is_typed(store: FakeStore, make_client: Callable[..., StoreClient]) -> None:
    catalog = make_client(store).catalog()
    assert isinstance(catalog, Catalog)
    assert catalog.version == 3
    assert catalog.etag == '"catalog-3"'
    assert [c.code for c in catalog.currencies] == ["COINS", "GEMS", "USD"]
    assert catalog.currency("USD").scale == 4
    assert catalog.currency("COINS").max_balance is None
    potion = catalog.item("potion")
    assert potion.kind == "consumable"
    assert potion.prices == (Money.from_minor(50, "COINS", scale=0),)
    assert potion.tags == ("heal",)
    assert potion.metadata == {"color": "red"}
    pack = catalog.item("starter_pack")
    assert pack.contents == (ItemQuantity("potion", 3), Money.from_minor(500, "COINS", scale=0))
    assert pack.per_player_limit == 1
    assert pack.available_from == datetime(2026, 1, 1, tzinfo=UTC)
    assert pack.on_sale(datetime(2026, 6, 1, tzinfo=UTC))
    assert not pack.on_sale(datetime(2025, 6, 1, tzinfo=UTC))
    assert catalog.item("shield").stock == 10
    with pytest.raises(KeyError):
        catalog.item("nothing")


def test_catalog_304_keeps_the_cached_catalog(
    store: FakeStore, make_client: Callable[..., StoreClient]
) -> None:
    client = make_client(store)
    assert client.cached_catalog is None
    first = client.catalog()
    second = client.catalog()
    assert second is first
    assert client.cached_catalog is first
    assert "If-None-Match" not in store.requests[0].headers
    assert store.requests[1].headers["If-None-Match"] == '"catalog-3"'
    # A new version (new ETag) replaces the cache.
    store.catalog_etag = '"catalog-4"'
    third = client.catalog()
    assert third is not first and third.etag == '"catalog-4"'
    assert store.requests[2].headers["If-None-Match"] == '"catalog-3"'


def test_stock_sends_every_sku(make_client: Callable[..., StoreClient]) -> None:
    recorder = Recorder(
        {
            ("GET", "/v1/stock"): (
                200,
                {
                    "stock": [
                        {"sku": "dragon_egg", "remaining": 3},
                        {"sku": "shield", "remaining": 0},
                    ]
                },
            )
        }
    )
    client = make_client(recorder)
    levels = client.stock(["dragon_egg", "shield"])
    assert recorder.last.url.params.get_list("sku") == ["dragon_egg", "shield"]
    assert [(s.sku, s.remaining) for s in levels] == [("dragon_egg", 3), ("shield", 0)]
    client.stock("dragon_egg")
    assert recorder.last.url.params.get_list("sku") == ["dragon_egg"]


def test_wallet_and_inventory(store: FakeStore, make_client: Callable[..., StoreClient]) -> None:
    client = make_client(store)
    client.purchase("potion", quantity=2)
    wallet = client.wallet()
    assert wallet.balances == (Amount("COINS", 900), Amount("GEMS", 0), Amount("USD", 0))
    assert wallet.balance("COINS") == 900
    assert wallet.balance("NOPE") == 0
    inventory = client.inventory()
    assert inventory.items == (ItemQuantity("potion", 2),)
    assert inventory.quantity("potion") == 2
    assert inventory.quantity("sword") == 0
    assert "potion" in inventory and "sword" not in inventory


def test_ledger_fetches_pages_lazily(
    store: FakeStore, make_client: Callable[..., StoreClient]
) -> None:
    client = make_client(store)
    for _ in range(5):
        client.purchase("potion")
    before = len(store.requests)

    entries = client.ledger(limit=2)
    assert len(store.requests) == before  # nothing fetched until iterated
    first = next(entries)
    assert len(store.requests) == before + 1
    rest = list(entries)

    ledger_requests = store.requests[before:]
    assert [r.url.params.get("cursor") for r in ledger_requests] == [None, "2", "4"]
    assert {r.url.params["limit"] for r in ledger_requests} == {"2"}
    all_entries = [first, *rest]
    assert all(isinstance(e, LedgerEntry) for e in all_entries)
    assert [e.balance_after for e in all_entries] == [750, 800, 850, 900, 950]
    assert [e.delta for e in all_entries] == [-50] * 5
    assert all_entries[0].id == "5"
    assert all_entries[0].created_at == datetime(2026, 11, 21, 14, 47, 37, 123456, tzinfo=UTC)

    page = client.ledger_page(limit=3)
    assert len(page.items) == 3 and page.next_cursor == "3"
    assert len(client.ledger_page(limit=3, cursor=page.next_cursor).items) == 2


def test_purchase_body_and_result(make_client: Callable[..., StoreClient]) -> None:
    body = {
        "purchase": purchase_json(sku="potion", quantity=2, unit=50),
        "balances": [{"currency": "COINS", "amount": 900}],
        "granted": [{"sku": "potion", "quantity": 2}, {"currency": "GEMS", "amount": 1}],
    }
    recorder = Recorder({("POST", "/v1/purchases"): (201, body)})
    client = make_client(recorder)
    result = client.purchase(
        "potion",
        quantity=2,
        currency="COINS",
        expected_price=Money.from_minor(50, "COINS", scale=0),
        idempotency_key="my-own-key-000000001",
    )
    assert recorder.body() == {
        "sku": "potion",
        "quantity": 2,
        "currency": "COINS",
        "expected_price": {"currency": "COINS", "amount": 50},
    }
    assert recorder.last.headers["Idempotency-Key"] == "my-own-key-000000001"
    purchase = result.purchase
    assert isinstance(purchase, Purchase)
    assert purchase.price == Amount("COINS", 100)
    assert purchase.unit_price == Amount("COINS", 50)
    assert purchase.quantity == 2
    assert purchase.status == "completed" and not purchase.refunded
    assert purchase.refunded_at is None
    assert purchase.created_at == datetime(2026, 11, 21, 14, 47, 37, 123456, tzinfo=UTC)
    assert result.granted == (ItemQuantity("potion", 2), Amount("GEMS", 1))
    assert result.balances == (Amount("COINS", 900),)
    assert result.replayed is False
    assert result.request_id == "req-7"
    assert result.idempotency_key == "my-own-key-000000001"


def test_purchase_defaults_send_a_minimal_body(make_client: Callable[..., StoreClient]) -> None:
    body = {"purchase": purchase_json(), "balances": [], "granted": []}
    recorder = Recorder({("POST", "/v1/purchases"): (201, body)})
    make_client(recorder).purchase("sword", expected_price=Amount("COINS", 300))
    assert recorder.body() == {
        "sku": "sword",
        "quantity": 1,
        "expected_price": {"currency": "COINS", "amount": 300},
    }


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: c.purchase("sword", quantity=1.0), TypeError),
        (lambda c: c.purchase("sword", quantity=True), TypeError),
        (lambda c: c.purchase("sword", expected_price=300), TypeError),
        (lambda c: c.purchase("sword", currency="coins"), ValueError),
        (lambda c: c.purchase(""), ValueError),
        (lambda c: c.consume("potion", 0.5), TypeError),
        (lambda c: c.grant("p1", currency="COINS", amount=1.5, reason="x"), TypeError),
        (lambda c: c.grant("p1", currency="COINS", reason="x"), ValueError),
        (lambda c: c.grant("p1", reason="x"), ValueError),
        (
            lambda c: c.grant("p1", currency="COINS", amount=1, sku="a", quantity=1, reason="x"),
            ValueError,
        ),
        (lambda c: c.get_purchase(""), ValueError),
    ],
)
def test_bad_arguments_fail_before_sending(
    call: Callable[[StoreClient], object],
    error: type[Exception],
    make_client: Callable[..., StoreClient],
) -> None:
    sent: list[httpx.Request] = []
    client = make_client(lambda r: sent.append(r) or httpx.Response(500))
    with pytest.raises(error):
        call(client)
    assert sent == []


def test_purchases_and_get_purchase(make_client: Callable[..., StoreClient]) -> None:
    first = purchase_json(purchase_id="00000000-0000-4000-8000-000000000002")
    second = purchase_json(purchase_id="00000000-0000-4000-8000-000000000001", status="refunded")

    def purchases(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("cursor") is None:
            return httpx.Response(200, json={"purchases": [first], "next_cursor": "c1"})
        return httpx.Response(200, json={"purchases": [second], "next_cursor": None})

    recorder = Recorder(
        {
            ("GET", "/v1/purchases"): purchases,
            ("GET", "/v1/purchases/00000000-0000-4000-8000-000000000001"): (
                200,
                {"purchase": second},
            ),
        }
    )
    client = make_client(recorder)
    listed = list(client.purchases(limit=1))
    assert [p.id for p in listed] == [first["id"], second["id"]]
    assert listed[1].refunded and listed[1].refund_reason == "support"
    assert listed[1].refunded_at == datetime(2026, 11, 21, 15, 0, 0, 1, tzinfo=UTC)
    assert client.get_purchase(second["id"]) == listed[1]
    page = client.purchases_page(limit=1)
    assert page.next_cursor == "c1" and [p.id for p in page] == [first["id"]]


def test_consume(make_client: Callable[..., StoreClient]) -> None:
    recorder = Recorder(
        {("POST", "/v1/inventory/potion/consume"): (200, {"sku": "potion", "quantity": 4})}
    )
    left = make_client(recorder).consume("potion", 2)
    assert left == ItemQuantity("potion", 4)
    assert recorder.body() == {"quantity": 2}
    assert len(recorder.last.headers["Idempotency-Key"]) == 36


def _grant_body(granted: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "grant": {
            "id": "9d1c1f8e-0c0e-4a3a-9d0b-5f3b1d1e2a10",
            "player_id": "player/7",
            "reason": "welcome",
            "granted": granted,
            "created_at": CREATED_AT,
        },
        "balances": [{"currency": "COINS", "amount": 250}],
        "inventory": [{"sku": "potion", "quantity": 3}],
    }


def test_grant_of_currency_and_of_items(make_client: Callable[..., StoreClient]) -> None:
    path = "/v1/players/player%2F7/grants"
    recorder = Recorder(
        {("POST", path): (201, _grant_body([{"currency": "COINS", "amount": 250}]))}
    )
    client = make_client(recorder)
    result = client.grant("player/7", currency="COINS", amount=250, reason="welcome")
    # The id is one path segment however it is spelled.
    assert recorder.last.url.raw_path == b"/v1/players/player%2F7/grants"
    assert recorder.body() == {"reason": "welcome", "currency": "COINS", "amount": 250}
    assert isinstance(result, GrantResult)
    assert result.grant.granted == (Amount("COINS", 250),)
    assert result.balance("COINS") == 250
    assert result.inventory.quantity("potion") == 3

    client.grant("player/7", amount=Money.from_minor(250, "COINS", scale=0), reason="welcome")
    assert recorder.body() == {"reason": "welcome", "currency": "COINS", "amount": 250}
    client.grant("player/7", sku="potion", quantity=3, reason="welcome")
    assert recorder.body() == {"reason": "welcome", "sku": "potion", "quantity": 3}
    keys = [r.headers["Idempotency-Key"] for r in recorder.requests]
    assert len(set(keys)) == 3


def test_refund(make_client: Callable[..., StoreClient]) -> None:
    refunded = purchase_json(status="refunded")
    recorder = Recorder(
        {("POST", f"/v1/purchases/{refunded['id']}/refund"): (200, {"purchase": refunded})}
    )
    purchase = make_client(recorder).refund(refunded["id"], reason="support")
    assert recorder.body() == {"reason": "support"}
    assert purchase.refunded


def test_service_reads_of_a_player(make_client: Callable[..., StoreClient]) -> None:
    entry = {
        "id": 17,
        "currency": "USD",
        "delta": 10000,
        "balance_after": 10000,
        "kind": "grant",
        "reference": "grant:x",
        "created_at": CREATED_AT,
    }
    recorder = Recorder(
        {
            ("GET", "/v1/players/p1/wallet"): (
                200,
                {"balances": [{"currency": "USD", "amount": 1}]},
            ),
            ("GET", "/v1/players/p1/inventory"): (200, {"items": [{"sku": "tip", "quantity": 1}]}),
            ("GET", "/v1/players/p1/ledger"): (200, {"entries": [entry], "next_cursor": None}),
            ("GET", "/v1/players/p1/purchases"): (
                200,
                {"purchases": [purchase_json()], "next_cursor": None},
            ),
        }
    )
    client = make_client(recorder)
    assert client.player_wallet("p1").balance("USD") == 1
    assert client.player_inventory("p1").quantity("tip") == 1
    ledger = list(client.player_ledger("p1", limit=10))
    assert recorder.last.url.params["limit"] == "10"
    assert [(e.id, e.delta, e.kind) for e in ledger] == [("17", 10000, "grant")]
    assert [p.sku for p in client.player_purchases("p1")] == ["sword"]
    assert client.player_ledger_page("p1").next_cursor is None
    assert len(client.player_purchases_page("p1").items) == 1


def test_a_malformed_success_body_is_a_server_error(
    make_client: Callable[..., StoreClient],
) -> None:
    client = make_client(lambda r: httpx.Response(200, json={"unexpected": True}))
    with pytest.raises(shopkeep.ServerError, match="unexpected response body"):
        client.wallet()


def test_context_manager_closes(store: FakeStore) -> None:
    with StoreClient("http://shop.test", "t", transport=httpx.MockTransport(store)) as client:
        client.wallet()
    with pytest.raises(RuntimeError):
        client.wallet()


def test_base_url_with_a_path_prefix(store: FakeStore) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json={"balances": []})

    with StoreClient("http://shop.test/store", "t", transport=httpx.MockTransport(handler)) as c:
        c.wallet()
    assert seen == ["/store/v1/wallet"]
