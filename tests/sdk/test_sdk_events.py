"""The SDK's events: ``StoreClient.events`` (and the async twin) iterate the real server's feed
over several pages, with typed events; ``shopkeep.events.Event`` parses what the feed sends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shopkeep import AsyncStoreClient, PermissionDenied, StoreClient, ValidationError
from shopkeep.events import Event, EventPage, ItemLedgerEntry

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def busy_game(server: Any) -> tuple[Any, list[str]]:
    """A game with 11 events: its publish, 6 grants, 3 purchases and a refund."""
    game = server.new_game()
    with StoreClient(server.url, game.token("service", "backend")) as service:
        for n in range(6):
            service.grant(f"p{n % 2}", currency="COINS", amount=100 + n, reason="sdk events")
        with StoreClient(server.url, game.token("player", "p0")) as player:
            bought = [player.purchase("potion").purchase.id for _ in range(3)]
        service.refund(bought[0], reason="changed mind")
    return game, bought


def test_events_iterates_every_page_in_order(server: Any, busy_game: tuple[Any, list[str]]) -> None:
    game, bought = busy_game
    with StoreClient(server.url, game.token("service", "backend")) as client:
        found = list(client.events(page_size=4))
        assert [e.id for e in found] == list(range(1, 12))
        assert [e.type for e in found] == [
            "catalog.published",
            *["grant.created"] * 6,
            *["purchase.completed"] * 3,
            "purchase.refunded",
        ]
        grant = found[1]
        assert grant.player_id == "p0"
        assert grant.grant is not None and grant.grant.player_id == "p0"
        assert [(e.currency, e.delta, e.balance_after) for e in grant.ledger] == [
            ("COINS", 100, 100)
        ]
        purchase = found[7]
        assert purchase.purchase is not None and purchase.purchase.id == bought[0]
        assert purchase.purchase.price.amount == 50
        assert purchase.item_ledger == (
            ItemLedgerEntry(
                id=purchase.item_ledger[0].id,
                sku="potion",
                delta=1,
                quantity_after=1,
                kind="purchase",
                reference=f"purchase:{bought[0]}",
                created_at=purchase.item_ledger[0].created_at,
            ),
        )
        refund = found[-1]
        assert refund.purchase is not None and refund.purchase.refunded
        assert found[0].purchase is None and found[0].data["version"] == 1

        # Going on from any event's cursor gives the rest, whatever the page size.
        for cut in (0, 3, 8, 11):
            rest = list(client.events(after=found[cut - 1].cursor if cut else None, page_size=3))
            assert rest == found[cut:]
        assert list(client.events(after=found[-1].cursor)) == []
        # And off the frame loop's thread, for a game's own tools.
        assert client.background().events(page_size=4).result(timeout=60) == found
        page = client.background().events_page(after=9, limit=5).result(timeout=60)
        assert [e.id for e in page.events] == [10, 11]


def test_types_and_one_page(server: Any, busy_game: tuple[Any, list[str]]) -> None:
    game, _ = busy_game
    with StoreClient(server.url, game.token("service", "backend")) as client:
        purchases = list(client.events(types=["purchase.completed", "purchase.refunded"]))
        assert [e.type for e in purchases] == ["purchase.completed"] * 3 + ["purchase.refunded"]
        assert [e.type for e in client.events(types="purchase.refunded")] == ["purchase.refunded"]
        page = client.events_page(after=2, limit=5)
        assert isinstance(page, EventPage)
        assert [e.id for e in page.events] == [3, 4, 5, 6, 7]
        assert page.next_cursor == "7"
        assert client.events_page(after=11).next_cursor == "11"
        with pytest.raises(ValidationError) as refused:
            client.events_page(after="not-a-cursor")
        assert "after" in refused.value.fields
        with pytest.raises(ValidationError):
            list(client.events(types=["purchase.done"]))
    with (
        StoreClient(server.url, game.token("player", "p0")) as player,
        pytest.raises(PermissionDenied),
    ):
        list(player.events())


def test_the_async_client_iterates_the_same_events(
    server: Any, busy_game: tuple[Any, list[str]]
) -> None:
    game, _ = busy_game

    async def main() -> tuple[list[Event], EventPage]:
        async with AsyncStoreClient(server.url, game.token("service", "backend")) as client:
            found = [event async for event in client.events(page_size=2)]
            page = await client.events_page(after=found[4].cursor, limit=2)
            return found, page

    found, page = asyncio.run(main())
    with StoreClient(server.url, game.token("service", "backend")) as client:
        assert found == list(client.events())
    assert [e.id for e in page.events] == [6, 7]


def test_an_event_parses_what_it_does_not_know_yet() -> None:
    wire = {
        "id": 7,
        "type": "wallet.frozen",  # a type of a newer server
        "player_id": "p1",
        "created_at": "2026-12-01T10:00:00.000000Z",
        "data": {"reason": "fraud", "ledger": []},
    }
    event = Event.from_wire(wire)
    assert (event.id, event.type, event.player_id, event.cursor) == (7, "wallet.frozen", "p1", "7")
    assert event.data == {"reason": "fraud", "ledger": []}
    assert (event.purchase, event.grant, event.ledger, event.item_ledger) == (None, None, (), ())
    for broken in ({**wire, "id": "7"}, {**wire, "data": []}, {k: wire[k] for k in ("id", "type")}):
        with pytest.raises((TypeError, KeyError, ValueError)):
            Event.from_wire(broken)
