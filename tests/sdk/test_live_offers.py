"""The SDK and personalized offers on a live store: the player's own price, the offer on the
purchase, Accept-Language, and promo codes with their typed errors (sync and async)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shopkeep import (
    AsyncStoreClient,
    CodeAlreadyRedeemed,
    CodeExhausted,
    Money,
    NotFound,
    OfferPrice,
    StoreClient,
)
from shopkeep_server.demo import demo_catalog


@pytest.fixture
def shop(live_server: Any) -> Any:
    content = demo_catalog()
    content["promo_codes"].append(
        {"code": "ONE-SHOT", "grant": [{"sku": "potion", "quantity": 2}], "budget": 1}
    )
    return live_server.new_game(catalog=content)


def test_the_players_own_price_is_what_it_pays(live_server: Any, shop: Any) -> None:
    shop.grant("p1", "GEMS", 10)
    with StoreClient(live_server.url, shop.token("player", "p1")) as client:
        starter = client.catalog().item("starter_pack")
        assert starter.price() == Money.from_minor(5, "GEMS", scale=0)
        mine = starter.my_price()
        assert mine == OfferPrice(Money.from_minor(2, "GEMS", scale=0), "starter")
        assert (mine.currency, mine.amount) == ("GEMS", 2)
        bought = client.purchase("starter_pack", expected_price=mine.price)
        assert bought.purchase.unit_price.amount == 2
        assert bought.purchase.offer_id == "starter"
        assert client.get_purchase(bought.purchase.id).offer_id == "starter"
        # Used once: the list price again (the offer's limit is one).
        assert client.catalog().item("starter_pack").my_price().offer_id is None


def test_accept_language_and_promo_codes(live_server: Any, shop: Any) -> None:
    token = shop.token("player", "p1")
    with StoreClient(live_server.url, token, accept_language="pt-BR, en;q=0.5") as client:
        catalog = client.catalog()
        assert catalog.locale == "pt-BR"
        assert catalog.item("potion").name == "Poção de vida"
        assert catalog.item("potion").price() == Money.from_minor(50, "COINS", scale=0)

        result = client.redeem_code("welcome")
        assert (result.code, result.offer_id, result.replayed) == ("WELCOME", None, False)
        assert [(g.currency, g.amount) for g in result.granted] == [("COINS", 100)]
        with pytest.raises(CodeAlreadyRedeemed):
            client.redeem_code("WELCOME")
        with pytest.raises(NotFound):
            client.redeem_code("NO-SUCH-CODE")
        assert client.redeem_code("ONE-SHOT").inventory.quantity("potion") == 2

    async def someone_else() -> None:
        async with AsyncStoreClient(live_server.url, shop.token("player", "p2")) as other:
            with pytest.raises(CodeExhausted):
                await other.redeem_code("ONE-SHOT")

    asyncio.run(someone_else())
