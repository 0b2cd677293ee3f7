"""The sample game and personalized offers (issue 15): the shop shows the player's own price
with the list price struck through, buys at that price, and redeems a promo code typed in."""

from __future__ import annotations

from typing import Any

import pygame

from sample_game.scenes import ShopScene
from shopkeep_server.demo import demo_catalog

PLAYER = "newbie-1"


def test_the_shop_sells_at_the_players_own_price_and_redeems_a_typed_code(
    live_server: Any, start_game: Any, store_tools: Any
) -> None:
    game = live_server.new_game(catalog=demo_catalog())
    game.grant(PLAYER, "GEMS", 3)
    run = start_game(live_server.url, game.token("player", PLAYER))
    driver, session, app = run.driver, run.session, run.app
    driver.wait_idle()
    driver.tap("tab")
    shop = app.scene
    assert isinstance(shop, ShopScene)
    driver.select("starter_pack")
    driver.wait_idle()
    starter = shop.selected
    assert starter is not None and starter.sku == "starter_pack"
    # A new player: the starter offer's 2 gems, the list price of 5 beside it.
    assert str(shop.list_price_of(starter)) == "5 GEMS"
    assert str(shop.price_of(starter)) == "2 GEMS"
    assert starter.my_price("GEMS").offer_id == "starter"
    assert (
        shop._buy_label(starter, shop.price_of(starter))[0]
        == "Buy for 2 GEMS (was 5 GEMS)  [Enter]"
    )

    driver.tap("enter")
    driver.wait_idle()
    assert session.owned("starter_pack") == 0  # a bundle: it gives its contents
    assert session.owned("potion") == 3
    assert session.balance("GEMS") == 1
    bought = store_tools.service(game).player_purchases_page(PLAYER, limit=1).items[0]
    assert (bought.sku, bought.unit_price.amount, bought.offer_id) == ("starter_pack", 2, "starter")

    # A promo code typed into the shop: C opens the prompt, Enter redeems it.
    coins = session.balance("COINS") or 0
    driver.tap("c")
    assert shop.code == ""
    driver.frame([pygame.event.Event(pygame.TEXTINPUT, text="welcome")])
    assert shop.code == "WELCOME"
    driver.tap("enter")
    assert shop.code is None
    driver.until(lambda: session.balance("COINS") == coins + 100, what="the code's coins")
    assert any("Code WELCOME: you got 100 COINS" in t.text for t in session.toasts)
    # Twice is refused, and said so.
    driver.tap("c")
    driver.frame([pygame.event.Event(pygame.TEXTINPUT, text="WELCOME")])
    driver.tap("enter")
    driver.until(
        lambda: any("You already used WELCOME" in t.text for t in session.toasts),
        what="the already-redeemed toast",
    )
    assert session.balance("COINS") == coins + 100
