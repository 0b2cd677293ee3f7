"""The SDK against the real server (tests/conftest.py's ``live_server``): every call, every error.

Each test makes its own game, so balances and stock are exact. Faults the server cannot stage
(a dropped response, a crash) are injected in a transport wrapped around the real one.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from shopkeep import (
    Amount,
    AsyncStoreClient,
    AuthenticationError,
    BalanceCapExceeded,
    Handle,
    IdempotencyConflict,
    InsufficientFunds,
    ItemQuantity,
    ItemUnavailable,
    Money,
    NotEnoughItems,
    NotFound,
    PermissionDenied,
    PriceChanged,
    PurchaseLimitReached,
    PurchaseResult,
    ShopkeepError,
    SoldOut,
    StoreClient,
    ValidationError,
)
from support.sdk_fakes import Crash

pytestmark = pytest.mark.timeout(120)


def _item(sku: str, kind: str, price: int, **extra: Any) -> dict[str, Any]:
    return {
        "sku": sku,
        "name": sku.replace("_", " ").title(),
        "description": "",
        "kind": kind,
        "prices": [{"currency": "COINS", "amount": price}],
        "contents": [],
        "stock": None,
        "per_player_limit": None,
        "available_from": None,
        "available_until": None,
        "tags": [],
        "metadata": {},
        **extra,
    }


# A catalog of our own, for what the demo catalog cannot show: one unit of stock, closed
# sale windows, a low balance cap.
SMALL_CATALOG: dict[str, Any] = {
    "currencies": [{"code": "COINS", "name": "Coins", "scale": 0, "max_balance": 1000}],
    "items": [
        _item("relic", "durable", 10, stock=1),
        _item("future_hat", "durable", 10, available_from="2099-01-01T00:00:00Z"),
        _item(
            "old_hat",
            "durable",
            10,
            available_from="2020-01-01T00:00:00Z",
            available_until="2021-01-01T00:00:00Z",
        ),
    ],
}


class Attempts:
    """An on_request hook that records (method, path, status) of every attempt."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int | None]] = []

    def __call__(
        self, method: str, path: str, status: int | None, elapsed: float, error: object
    ) -> None:
        self.calls.append((method, path, status))


@pytest.fixture
def game(server: Any) -> Any:
    """A fresh game with the demo catalog."""
    return server.new_game()


@pytest.fixture
def connect(server: Any) -> Iterator[Callable[..., StoreClient]]:
    """``connect(game, role="player", sub="p1", **options)`` -> a StoreClient, closed after."""
    clients: list[StoreClient] = []

    def make(game: Any, role: str = "player", sub: str = "p1", **options: Any) -> StoreClient:
        client = StoreClient(server.url, game.token(role, sub), **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_catalog_is_typed_and_cached_by_etag(
    game: Any, connect: Callable[..., StoreClient]
) -> None:
    attempts = Attempts()
    client = connect(game, on_request=attempts)
    catalog = client.catalog()
    assert catalog.etag
    assert {c.code: c.scale for c in catalog.currencies} == {"COINS": 0, "GEMS": 0, "USD": 4}
    assert catalog.item("potion").price() == Money.from_minor(50, "COINS", scale=0)
    assert catalog.item("sword").kind == "durable"
    assert str(catalog.item("tip").price()) == "0.0150 USD"
    assert catalog.item("tip").price().to_decimal() == Decimal("0.0150")
    assert {p.currency for p in catalog.item("shield").prices} == {"COINS", "GEMS"}
    egg = catalog.item("dragon_egg")
    assert egg.stock == 100 and egg.per_player_limit == 1
    assert client.catalog() is catalog
    assert [status for _, _, status in attempts.calls] == [200, 304]


def test_grants_credit_the_wallet_once(game: Any, connect: Callable[..., StoreClient]) -> None:
    player = connect(game)
    service = connect(game, "service", "backend")
    assert {(b.currency, b.amount) for b in player.wallet()} == {
        ("COINS", 0),
        ("GEMS", 0),
        ("USD", 0),
    }
    key = f"welcome-{uuid.uuid4()}"
    granted = service.grant(
        "p1", currency="COINS", amount=1000, reason="welcome", idempotency_key=key
    )
    assert granted.balance("COINS") == 1000
    assert granted.grant.granted == (Amount("COINS", 1000),)
    assert granted.grant.player_id == "p1"
    assert granted.replayed is False
    again = service.grant(
        "p1", currency="COINS", amount=1000, reason="welcome", idempotency_key=key
    )
    assert again.replayed is True
    assert again.grant.id == granted.grant.id
    items = service.grant("p1", sku="potion", quantity=2, reason="gift")
    assert items.inventory.quantity("potion") == 2
    assert player.wallet().balance("COINS") == 1000
    assert player.inventory().items == (ItemQuantity("potion", 2),)


def test_a_purchase_charges_exactly_once(game: Any, connect: Callable[..., StoreClient]) -> None:
    game.grant("p1", "COINS", 1000)
    client = connect(game)
    price = client.catalog().item("potion").price()
    key = f"buy-{uuid.uuid4()}"

    bought = client.purchase("potion", expected_price=price, idempotency_key=key)
    replay = client.purchase("potion", expected_price=price, idempotency_key=key)

    assert bought.replayed is False and replay.replayed is True
    assert replay.purchase == bought.purchase
    assert bought.balance("COINS") == 950
    assert bought.purchase.price == Amount("COINS", 50)
    assert bought.purchase.unit_price == Amount("COINS", 50)
    assert bought.purchase.status == "completed"
    assert bought.purchase.player_id == "p1"
    assert bought.granted == (ItemQuantity("potion", 1),)
    assert bought.request_id
    assert client.wallet().balance("COINS") == 950
    assert client.inventory().quantity("potion") == 1
    assert [p.id for p in client.purchases()] == [bought.purchase.id]
    assert client.get_purchase(bought.purchase.id) == bought.purchase


def test_quantity_and_consume(game: Any, connect: Callable[..., StoreClient]) -> None:
    game.grant("p1", "COINS", 1000)
    client = connect(game)
    bought = client.purchase("potion", quantity=3)
    assert bought.purchase.price == Amount("COINS", 150)
    assert bought.purchase.unit_price == Amount("COINS", 50)
    assert client.consume("potion", 2) == ItemQuantity("potion", 1)
    with pytest.raises(NotEnoughItems) as caught:
        client.consume("potion", 5)
    assert caught.value.status == 409
    assert client.inventory().quantity("potion") == 1


def test_ledger_pages_newest_first(game: Any, connect: Callable[..., StoreClient]) -> None:
    for amount in (100, 200, 300):
        game.grant("p1", "COINS", amount)
    attempts = Attempts()
    client = connect(game, on_request=attempts)
    client.purchase("potion")
    entries = list(client.ledger(limit=2))
    assert [e.delta for e in entries] == [-50, 300, 200, 100]
    assert [e.balance_after for e in entries] == [550, 600, 300, 100]
    assert [e.kind for e in entries] == ["purchase", "grant", "grant", "grant"]
    assert {e.currency for e in entries} == {"COINS"}
    assert len({e.id for e in entries}) == 4
    ledger_pages = [c for c in attempts.calls if c[1] == "/v1/wallet/ledger"]
    assert len(ledger_pages) >= 2
    first = client.ledger_page(limit=3)
    assert len(first.items) == 3 and first.next_cursor is not None
    rest = client.ledger_page(limit=3, cursor=first.next_cursor)
    assert [e.delta for e in rest.items] == [100]


def test_an_item_with_two_prices_needs_a_currency(
    game: Any, connect: Callable[..., StoreClient]
) -> None:
    game.grant("p1", "GEMS", 10)
    client = connect(game)
    with pytest.raises(ValidationError) as caught:
        client.purchase("shield")
    assert caught.value.status == 422
    assert "currency" in caught.value.fields
    bought = client.purchase("shield", currency="GEMS")
    assert bought.purchase.price == Amount("GEMS", 2)
    assert bought.balance("GEMS") == 8


def test_a_bundle_grants_its_contents(game: Any, connect: Callable[..., StoreClient]) -> None:
    game.grant("p1", "GEMS", 5)
    client = connect(game)
    bought = client.purchase("starter_pack")
    assert set(bought.granted) == {
        ItemQuantity("potion", 3),
        ItemQuantity("shield", 1),
        Amount("COINS", 200),
    }
    assert bought.balance("COINS") == 200
    assert bought.balance("GEMS") == 0
    inventory = client.inventory()
    assert (inventory.quantity("potion"), inventory.quantity("shield")) == (3, 1)


def test_a_micro_priced_item(game: Any, connect: Callable[..., StoreClient]) -> None:
    game.grant("p1", "USD", 10_000)
    client = connect(game)
    catalog = client.catalog()
    bought = client.purchase("tip", expected_price=catalog.item("tip").price())
    assert bought.balance("USD") == 9850
    assert str(catalog.money(Amount("USD", bought.balance("USD")))) == "0.9850 USD"
    assert str(catalog.money(bought.purchase.price)) == "0.0150 USD"


def test_insufficient_funds_is_raised_once(game: Any, connect: Callable[..., StoreClient]) -> None:
    game.grant("p1", "COINS", 100)
    attempts = Attempts()
    client = connect(game, on_request=attempts)
    with pytest.raises(InsufficientFunds) as caught:
        client.purchase("sword")
    assert caught.value.status == 409
    assert caught.value.details["currency"] == "COINS"
    assert caught.value.details["required"] == 300
    assert caught.value.details["balance"] == 100
    assert caught.value.request_id
    assert attempts.calls == [("POST", "/v1/purchases", 409)]
    assert client.wallet().balance("COINS") == 100


def test_price_changed_gives_the_current_price(
    game: Any, connect: Callable[..., StoreClient]
) -> None:
    game.grant("p1", "COINS", 1000)
    client = connect(game)
    with pytest.raises(PriceChanged) as caught:
        client.purchase("sword", expected_price=Money.from_minor(250, "COINS", scale=0))
    assert caught.value.current_price == Amount("COINS", 300)
    assert caught.value.expected_price == Amount("COINS", 250)
    assert client.wallet().balance("COINS") == 1000


def test_purchase_limits(game: Any, connect: Callable[..., StoreClient]) -> None:
    game.grant("p1", "COINS", 5000)
    client = connect(game)
    client.purchase("sword")
    with pytest.raises(PurchaseLimitReached):
        client.purchase("sword")
    client.purchase("dragon_egg")
    with pytest.raises(PurchaseLimitReached):
        client.purchase("dragon_egg")
    assert [(s.sku, s.remaining) for s in client.stock(["dragon_egg"])] == [("dragon_egg", 99)]
    assert client.wallet().balance("COINS") == 5000 - 300 - 800


def test_sold_out(server: Any, connect: Callable[..., StoreClient]) -> None:
    game = server.new_game(catalog=SMALL_CATALOG)
    game.grant("p1", "COINS", 100)
    game.grant("p2", "COINS", 100)
    first, second = connect(game, sub="p1"), connect(game, sub="p2")
    assert first.stock(["relic"])[0].remaining == 1
    first.purchase("relic")
    with pytest.raises(SoldOut) as caught:
        second.purchase("relic")
    assert caught.value.details["sku"] == "relic"
    assert second.stock("relic")[0].remaining == 0
    assert second.wallet().balance("COINS") == 100


def test_items_outside_their_window_are_unavailable(
    server: Any, connect: Callable[..., StoreClient]
) -> None:
    game = server.new_game(catalog=SMALL_CATALOG)
    game.grant("p1", "COINS", 100)
    client = connect(game)
    for sku in ("future_hat", "old_hat"):
        with pytest.raises(ItemUnavailable):
            client.purchase(sku)
    assert client.wallet().balance("COINS") == 100


def test_balance_cap(server: Any, connect: Callable[..., StoreClient]) -> None:
    game = server.new_game(catalog=SMALL_CATALOG)
    service = connect(game, "service", "backend")
    service.grant("p1", currency="COINS", amount=900, reason="test")
    with pytest.raises(BalanceCapExceeded):
        service.grant("p1", currency="COINS", amount=200, reason="test")
    assert service.player_wallet("p1").balance("COINS") == 900


def test_not_found(game: Any, connect: Callable[..., StoreClient]) -> None:
    client = connect(game)
    with pytest.raises(NotFound):
        client.purchase("no_such_item")
    with pytest.raises(NotFound):
        client.get_purchase(str(uuid.uuid4()))
    with pytest.raises(NotFound):
        connect(game, "service", "backend").refund(str(uuid.uuid4()), reason="x")


@pytest.mark.parametrize("quantity", [0, 1001])
def test_validation(quantity: int, game: Any, connect: Callable[..., StoreClient]) -> None:
    with pytest.raises(ValidationError) as caught:
        connect(game).purchase("potion", quantity=quantity)
    assert "quantity" in caught.value.fields


def test_a_key_reused_for_another_request(game: Any, connect: Callable[..., StoreClient]) -> None:
    game.grant("p1", "COINS", 1000)
    client = connect(game)
    key = f"reused-{uuid.uuid4()}"
    client.purchase("potion", idempotency_key=key)
    with pytest.raises(IdempotencyConflict) as caught:
        client.purchase("sword", idempotency_key=key)
    assert caught.value.code == "idempotency_key_reused"
    assert client.wallet().balance("COINS") == 950


def test_authentication(server: Any, game: Any) -> None:
    for token in ("not-a-jwt", server.new_game().token("player", "p1")[:-4] + "AAAA"):
        with StoreClient(server.url, token) as client, pytest.raises(AuthenticationError):
            client.wallet()


def test_permissions(game: Any, connect: Callable[..., StoreClient]) -> None:
    player = connect(game)
    with pytest.raises(PermissionDenied):
        player.grant("p1", currency="COINS", amount=10, reason="cheat")
    with pytest.raises(PermissionDenied):
        player.player_wallet("p2")


def test_a_token_of_another_game_sees_nothing(
    server: Any, game: Any, connect: Callable[..., StoreClient]
) -> None:
    game.grant("p1", "COINS", 1000)
    bought = connect(game).purchase("potion")
    stranger = connect(server.new_game())
    with pytest.raises(NotFound):
        stranger.get_purchase(bought.purchase.id)


def test_refunds(game: Any, connect: Callable[..., StoreClient]) -> None:
    game.grant("p1", "COINS", 1000)
    player = connect(game)
    service = connect(game, "service", "backend")
    sword = player.purchase("sword")
    refunded = service.refund(sword.purchase.id, reason="support ticket 7")
    assert refunded.id == sword.purchase.id
    assert refunded.refunded and refunded.refund_reason == "support ticket 7"
    assert refunded.refunded_at is not None
    # A second refund (another key) changes nothing.
    assert service.refund(sword.purchase.id, reason="again").refunded
    assert player.wallet().balance("COINS") == 1000
    assert player.inventory().quantity("sword") == 0

    potion = player.purchase("potion")
    player.consume("potion", 1)
    with pytest.raises(NotEnoughItems):
        service.refund(potion.purchase.id, reason="used up")
    assert player.wallet().balance("COINS") == 950


def test_service_reads_a_player(game: Any, connect: Callable[..., StoreClient]) -> None:
    game.grant("p1", "COINS", 1000)
    player = connect(game)
    service = connect(game, "service", "backend")
    bought = player.purchase("potion", quantity=2)
    assert service.player_wallet("p1") == player.wallet()
    assert service.player_inventory("p1") == player.inventory()
    assert list(service.player_ledger("p1", limit=1)) == list(player.ledger())
    assert [p.id for p in service.player_purchases("p1")] == [bought.purchase.id]
    assert service.player_purchases_page("p1", limit=1).items[0] == bought.purchase
    assert len(service.player_ledger_page("p1").items) == 2


def test_a_dropped_response_is_retried_without_a_second_charge(server: Any, game: Any) -> None:
    game.grant("p1", "COINS", 1000)
    real = httpx.HTTPTransport()
    drops = ["drop"]
    keys: list[str] = []

    class DropOnce(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "POST":
                keys.append(request.headers["Idempotency-Key"])
            response = real.handle_request(request)
            if request.method == "POST" and drops:
                drops.pop()
                response.read()
                raise httpx.ReadError("connection reset", request=request)
            return response

    sleeps: list[float] = []
    with StoreClient(
        server.url, game.token("player", "p1"), transport=DropOnce(), sleep=sleeps.append
    ) as client:
        bought = client.purchase("sword")
        assert bought.replayed is True
        assert len(keys) == 2 and keys[0] == keys[1] == bought.idempotency_key
        assert client.wallet().balance("COINS") == 700
        assert len(list(client.purchases())) == 1
    assert len(sleeps) == 1


def test_the_journal_survives_a_crash(server: Any, game: Any, tmp_path: Path) -> None:
    game.grant("p1", "COINS", 1000)
    journal = tmp_path / "pending.json"
    real = httpx.HTTPTransport()

    class CrashAfterSending(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            real.handle_request(request).read()
            raise Crash

    doomed = StoreClient(
        server.url, game.token("player", "p1"), transport=CrashAfterSending(), pending_path=journal
    )
    with pytest.raises(Crash):
        doomed.purchase("sword")
    [pending] = doomed.pending()
    doomed.close()

    with StoreClient(server.url, game.token("player", "p1"), pending_path=journal) as restarted:
        [outcome] = restarted.resume_pending()
        assert outcome.state == "completed"
        assert outcome.result is not None and outcome.result.replayed is True
        assert outcome.result.idempotency_key == pending.idempotency_key
        assert restarted.wallet().balance("COINS") == 700
        assert len(list(restarted.purchases())) == 1
        assert restarted.pending() == []


def test_the_background_path_in_a_frame_loop(
    game: Any, connect: Callable[..., StoreClient]
) -> None:
    game.grant("p1", "COINS", 1000)
    shop = connect(game).background()
    game_thread = threading.get_ident()
    delivered: list[tuple[int, int]] = []

    def on_bought(handle: Handle[PurchaseResult]) -> None:
        delivered.append((threading.get_ident(), handle.result().balance("COINS")))

    shop.purchase("potion").add_done_callback(on_bought)
    frames = 0
    while not delivered and frames < 100_000:
        frames += 1
        shop.poll()
        time.sleep(0.001)
    assert delivered == [(game_thread, 950)]
    failed = shop.purchase("sword", quantity=2)
    assert isinstance(failed.exception(timeout=30), ShopkeepError)


def test_the_async_client(server: Any, game: Any) -> None:
    game.grant("p1", "COINS", 1000)

    async def main() -> tuple[int, list[int], int]:
        async with AsyncStoreClient(server.url, game.token("player", "p1")) as client:
            catalog = await client.catalog()
            assert await client.catalog() is catalog
            bought = await client.purchase("potion", expected_price=catalog.item("potion").price())
            deltas = [e.delta async for e in client.ledger(limit=1)]
            with pytest.raises(InsufficientFunds):
                await client.purchase("potion", quantity=100)
            return bought.balance("COINS"), deltas, (await client.wallet()).balance("COINS")

    assert asyncio.run(main()) == (950, [-50, 1000], 950)


@pytest.mark.parametrize(
    ("doc", "heading"),
    [("README.md", "### A game buys an item"), ("docs/sdk.md", "## Buy something in ten lines")],
)
def test_the_docs_example_runs(
    server: Any,
    game: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    doc: str,
    heading: str,
) -> None:
    docs = Path(__file__).resolve().parents[2] / doc
    section = docs.read_text().split(heading, 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert "http://127.0.0.1:8000" in example
    game.grant("player-1", "COINS", 1000)
    monkeypatch.setenv("SHOPKEEP_TOKEN", game.token("player", "player-1"))
    exec(compile(example.replace("http://127.0.0.1:8000", server.url), str(docs), "exec"), {})
    assert capsys.readouterr().out == "bought potion for 50 COINS; 950 COINS left\n"
