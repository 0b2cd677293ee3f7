"""`shopkeep.studio.StudioClient` against the live server: the draft and its ETag, publishing
only the draft that was read, versions and rollback, restock, validate, and player support with
a service token: exact stock, exact balances, nothing changed after a refusal."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shopkeep import (
    Amount,
    ItemQuantity,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    StockLevel,
    StoreClient,
    ValidationError,
)
from shopkeep.studio import ANY_DRAFT, AsyncStudioClient, StudioClient
from support import GameHandle, LiveServer, coins_catalog, coins_item

CATALOG = coins_catalog(
    coins_item("potion", 50),
    coins_item("egg", 800, kind="durable", stock=10),
)


@pytest.fixture
def shop(live_server: LiveServer) -> GameHandle:
    return live_server.new_game(catalog=CATALOG)


@pytest.fixture
def studio(live_server: LiveServer, shop: GameHandle) -> Iterator[StudioClient]:
    with StudioClient(
        live_server.url,
        shop.token("studio", "alice"),
        service_token=shop.token("service", "support"),
    ) as client:
        yield client


def _with_price(content: dict[str, Any], sku: str, amount: int) -> dict[str, Any]:
    items = [
        {**item, "prices": [{"currency": "COINS", "amount": amount}]}
        if item["sku"] == sku
        else item
        for item in content["items"]
    ]
    return {**content, "items": items}


def _live_price(url: str, shop: GameHandle, sku: str) -> tuple[int, int]:
    with StoreClient(url, shop.token("player", "reader")) as player:
        catalog = player.catalog()
    return catalog.version, catalog.item(sku).price().minor


def test_publish_sends_the_etag_of_the_pushed_draft_and_a_change_meanwhile_publishes_nothing(
    live_server: LiveServer, shop: GameHandle, studio: StudioClient
) -> None:
    draft = studio.draft()
    assert draft.etag == '"draft-2"'  # the fixture put and published it
    assert studio.draft_etag == draft.etag
    pushed = studio.put_draft(_with_price(draft.content, "potion", 60), if_match=draft.etag)
    assert pushed.etag == '"draft-3"' and studio.draft_etag == '"draft-3"'
    assert pushed.content["items"][0]["prices"] == [{"currency": "COINS", "amount": 60}]

    # Someone else changes the draft between the push and the publish.
    with StudioClient(live_server.url, shop.token("studio", "bob")) as bob:
        theirs = bob.draft()
        bob.put_draft(_with_price(theirs.content, "potion", 1), if_match=theirs.etag)

    with pytest.raises(PreconditionFailed) as stale:
        studio.publish(notes="potion at 60")
    assert stale.value.status == 412
    assert stale.value.details == {"etag": '"draft-4"'}
    # Nothing was published: one version, the live price is the first one.
    assert [v.version for v in studio.versions()] == [1]
    assert _live_price(live_server.url, shop, "potion") == (1, 50)

    # Read again (now bob's draft), then publish exactly that.
    assert studio.draft().content["items"][0]["prices"][0]["amount"] == 1
    published = studio.publish(notes="bob's price")
    assert (published.version, published.notes, published.published_by) == (
        2,
        "bob's price",
        "alice",
    )
    assert _live_price(live_server.url, shop, "potion") == (2, 1)


def test_a_stale_put_is_refused_and_publish_needs_an_etag_or_the_opt_out(
    live_server: LiveServer, shop: GameHandle
) -> None:
    with StudioClient(live_server.url, shop.token("studio", "carol")) as carol:
        with pytest.raises(ValueError, match="ETag"):
            carol.publish(notes="never read")
        with pytest.raises(PreconditionFailed) as stale:
            carol.put_draft(CATALOG, if_match='"draft-1"')
        assert stale.value.details == {"etag": '"draft-2"'}
        assert carol.draft_etag is None
        assert [v.version for v in carol.versions()] == [1]
        # The explicit opt-out publishes whatever the draft is.
        assert carol.publish(notes="unchecked", if_match=ANY_DRAFT).version == 2
        # An ETag a reviewer saw, named: published only while it is the draft.
        with pytest.raises(PreconditionFailed):
            carol.publish(if_match='"draft-1"')
        assert carol.publish(if_match='"draft-2"').version == 3


def test_versions_and_rollback(live_server: LiveServer, shop: GameHandle) -> None:
    with StudioClient(live_server.url, shop.token("studio", "alice")) as studio:
        draft = studio.draft()
        studio.put_draft(_with_price(draft.content, "potion", 75), if_match=draft.etag)
        assert studio.publish(notes="dearer").version == 2
        rolled = studio.rollback(1)
        assert (rolled.version, rolled.notes) == (3, "rollback to version 1")

        listed = studio.versions()
        assert [(v.version, v.live, v.content) for v in listed] == [
            (3, True, None),
            (2, False, None),
            (1, False, None),
        ]
        first, third = studio.version(1), studio.version(3)
        assert third.live and not first.live
        assert third.content == first.content
        live = studio.live()
        assert live is not None and live.version == 3
        # The draft is left as it was: the dearer potion.
        assert studio.draft().content["items"][0]["prices"][0]["amount"] == 75
        assert _live_price(live_server.url, shop, "potion") == (3, 50)
        with pytest.raises(NotFound):
            studio.rollback(99)
        assert [v.version for v in studio.versions()] == [3, 2, 1]


def test_restock_adds_exactly_once_per_key(
    live_server: LiveServer, shop: GameHandle, studio: StudioClient
) -> None:
    shop.grant("buyer", "COINS", 800)
    with StoreClient(live_server.url, shop.token("player", "buyer")) as player:
        player.purchase("egg")
    assert studio.stock(["egg"]) == [StockLevel("egg", 9)]

    key = "restock-egg-0001-once"
    assert studio.restock("egg", 5, idempotency_key=key) == StockLevel("egg", 14)
    # The same key again (a retry) adds nothing more.
    assert studio.restock("egg", 5, idempotency_key=key) == StockLevel("egg", 14)
    assert studio.restock("egg", 1) == StockLevel("egg", 15)
    assert studio.stock() == [StockLevel("egg", 15)]
    with pytest.raises(NotFound):
        studio.restock("potion", 5)  # not a limited item
    assert studio.stock(["egg", "potion"]) == [StockLevel("egg", 15)]


def test_refund_returns_exact_balances_and_a_studio_token_alone_may_not(
    live_server: LiveServer, shop: GameHandle, studio: StudioClient
) -> None:
    shop.grant("p9", "COINS", 1000)
    with StoreClient(live_server.url, shop.token("player", "p9")) as player:
        bought = player.purchase("potion", quantity=2)
    purchase_id = bought.purchase.id
    assert studio.player_wallet("p9").balances == (Amount("COINS", 900),)
    assert studio.player_inventory("p9").items == (ItemQuantity("potion", 2),)

    # Without a service token the studio token is sent, and the API refuses it: nothing moves.
    with (
        StudioClient(live_server.url, shop.token("studio", "alice")) as studio_only,
        pytest.raises(PermissionDenied),
    ):
        studio_only.refund(purchase_id, reason="no role")
    assert studio.purchase(purchase_id).status == "completed"
    assert studio.player_wallet("p9").balances == (Amount("COINS", 900),)

    refunded = studio.refund(purchase_id, reason="bought by mistake")
    assert (refunded.status, refunded.refund_reason) == ("refunded", "bought by mistake")
    assert studio.player_wallet("p9").balances == (Amount("COINS", 1000),)
    assert studio.player_inventory("p9").items == ()
    assert [p.status for p in studio.player_purchases("p9")] == ["refunded"]
    deltas = [(e.delta, e.balance_after) for e in studio.player_ledger("p9")]
    assert deltas == [(100, 1000), (-100, 900), (1000, 1000)]
    # A refund of a refunded purchase returns it unchanged; the balance stays exact.
    assert studio.refund(purchase_id, reason="again").status == "refunded"
    assert studio.player_wallet("p9").balances == (Amount("COINS", 1000),)


def test_validate_answers_the_store_view_and_refuses_with_field_paths(
    studio: StudioClient,
) -> None:
    before = studio.draft()
    stored = studio.validate(coins_catalog(coins_item("potion", 50)))
    assert stored["items"][0]["tags"] == [] and stored["items"][0]["stock"] is None
    broken = coins_catalog(coins_item("potion", -5), coins_item("gem", 1, kind="bundle"))
    with pytest.raises(ValidationError) as refused:
        studio.validate(broken)
    assert refused.value.fields == {
        "items.0.prices.0.amount": [
            "Must be greater than or equal to 0 and less than or equal to 9007199254740991."
        ],
        "items.1.contents": ["a bundle must contain something"],
    }
    after = studio.draft()
    assert (after.etag, after.content) == (before.etag, before.content)


def test_a_player_token_gets_permission_denied(live_server: LiveServer, shop: GameHandle) -> None:
    with (
        StudioClient(live_server.url, shop.token("player", "p1")) as wrong,
        pytest.raises(PermissionDenied) as denied,
    ):
        wrong.draft()
    assert denied.value.code == "forbidden"


def test_studio_calls_are_retried_with_one_key_and_the_draft_etag(
    sleeps: list[float],
) -> None:
    """A publish that met a 503 is re-sent with the same key and the same If-Match."""
    seen: list[tuple[str, str | None, str | None]] = []

    def store(request: httpx.Request) -> httpx.Response:
        seen.append(
            (
                request.url.path,
                request.headers.get("Idempotency-Key"),
                request.headers.get("If-Match"),
            )
        )
        if request.url.path.endswith("/draft"):
            return httpx.Response(
                200, json={"currencies": [], "items": []}, headers={"ETag": '"draft-5"'}
            )
        if len(seen) == 2:
            return httpx.Response(
                503,
                json={"error": {"code": "unavailable", "message": "x", "details": {}}},
                headers={"Retry-After": "1"},
            )
        return httpx.Response(
            201,
            json={
                "version": 4,
                "notes": "",
                "published_by": "alice",
                "published_at": "2026-01-01T00:00:00.000000Z",
            },
        )

    with StudioClient(
        "http://store.test",
        "token",
        transport=httpx.MockTransport(store),
        jitter=lambda ceiling: ceiling,
        sleep=sleeps.append,
    ) as client:
        client.draft()
        assert client.publish().version == 4
    (_, _, _), (path, first_key, first_etag), (_, second_key, second_etag) = seen
    assert path == "/v1/admin/catalog/publish"
    assert first_key and first_key == second_key
    assert first_etag == second_etag == '"draft-5"'
    assert sleeps == [1.0]


def test_the_async_twin_guards_publish_restocks_and_refunds_the_same(
    live_server: LiveServer, shop: GameHandle
) -> None:
    shop.grant("p5", "COINS", 1000)
    with StoreClient(live_server.url, shop.token("player", "p5")) as player:
        purchase_id = player.purchase("egg").purchase.id

    async def main() -> None:
        async with (
            AsyncStudioClient(
                live_server.url,
                shop.token("studio", "alice"),
                service_token=shop.token("service", "support"),
            ) as studio,
            AsyncStudioClient(live_server.url, shop.token("studio", "bob")) as bob,
        ):
            draft = await studio.draft()
            await studio.put_draft(_with_price(draft.content, "potion", 70), if_match=draft.etag)
            theirs = await bob.draft()
            await bob.put_draft(_with_price(theirs.content, "potion", 2), if_match=theirs.etag)
            with pytest.raises(PreconditionFailed):
                await studio.publish(notes="stale")
            assert [v.version for v in await studio.versions()] == [1]
            assert (await bob.publish(notes="bob")).version == 2
            live = await studio.live()
            assert live is not None and live.content is not None
            assert live.content["items"][0]["prices"] == [{"currency": "COINS", "amount": 2}]

            assert await studio.restock("egg", 3) == StockLevel("egg", 12)
            assert await studio.stock(["egg"]) == [StockLevel("egg", 12)]
            refunded = await studio.refund(purchase_id, reason="async support")
            assert refunded.status == "refunded"
            wallet = await studio.player_wallet("p5")
            assert wallet.balances == (Amount("COINS", 1000),)
            assert [p.status async for p in studio.player_purchases("p5")] == ["refunded"]

    asyncio.run(main())
