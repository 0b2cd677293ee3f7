"""A scripted session against a live store: earn, buy, use, fail, and match the server."""

from __future__ import annotations

import copy
from typing import Any

from sample_game.rules import max_coins_per_round
from sample_game.scenes import PlayScene, ShopScene
from shopkeep import Money
from shopkeep_server.demo import demo_catalog

START_COINS = 1500
PLAYER = "pilot-1"
RIVAL = "rival-1"


def one_egg_catalog() -> dict[str, Any]:
    """The demo catalog with a single dragon egg in stock, for a rival to take first."""
    content = demo_catalog()
    for item in content["items"]:
        if item["sku"] == "dragon_egg":
            item["stock"] = 1
    return content


def with_price(content: dict[str, Any], sku: str, currency: str, amount: int) -> dict[str, Any]:
    """``content`` with ``sku`` repriced."""
    changed = copy.deepcopy(content)
    for item in changed["items"]:
        if item["sku"] == sku:
            item["prices"] = [{"currency": currency, "amount": amount}]
    return changed


def play_round(run: Any) -> PlayScene:
    """From a screen with [Space] to play: play one round on autopilot to its results."""
    run.driver.tap("space")
    scene = run.app.scene
    assert isinstance(scene, PlayScene)
    run.driver.until_scene("ResultsScene")
    run.driver.wait_idle()
    return scene


def test_scripted_session_earns_buys_uses_and_matches_the_server(
    live_server: Any, start_game: Any, studio_backend: Any, store_tools: Any
) -> None:
    content = one_egg_catalog()
    game = live_server.new_game(catalog=content)
    game.grant(PLAYER, "COINS", START_COINS)
    backend = studio_backend(game)
    service = store_tools.service(game)
    run = start_game(live_server.url, game.token("player", PLAYER), backend_url=backend.url)
    driver, session = run.driver, run.session
    driver.wait_idle()
    assert session.balance("COINS") == START_COINS
    assert session.balance("GEMS") == 0

    # --- a round earns coins, granted by the studio backend ------------------------------------
    first = play_round(run)
    earned = first.world.coins
    assert 0 < earned <= max_coins_per_round(run.app.options.round_seconds)
    payout = session.payouts[first.round_id]
    assert payout.coins_granted == earned
    assert payout.balance == START_COINS + earned
    newest = service.player_ledger_page(PLAYER, limit=1).items[0]
    assert (newest.kind, newest.currency, newest.delta) == ("grant", "COINS", earned)
    assert newest.balance_after == START_COINS + earned
    assert session.balance("COINS") == START_COINS + earned

    # --- the shop: a durable, a consumable -----------------------------------------------------
    driver.tap("enter")
    shop = run.app.scene
    assert isinstance(shop, ShopScene)
    driver.wait_idle()
    assert session.stock == {"dragon_egg": 1, "phoenix_feather": 50}
    driver.select("magnet")
    driver.tap("enter")
    driver.wait_idle()
    assert session.owned("magnet") == 1
    driver.select("shield")
    assert shop.price_of(shop.items[shop.index]) == Money.from_minor(120, "COINS", scale=0)
    driver.tap("enter")
    driver.wait_idle()
    assert session.owned("shield") == 1
    assert session.balance("COINS") == START_COINS + earned - 250 - 120

    # --- the studio raises a price while the shop shows the old one ----------------------------
    store_tools.publish(game, with_price(content, "potion", "COINS", 60))
    driver.select("potion")
    driver.tap("enter")
    driver.until(lambda: session.dialog is not None, what="the price dialog")
    assert session.dialog.old == Money.from_minor(50, "COINS", scale=0)
    assert session.dialog.new == Money.from_minor(60, "COINS", scale=0)
    assert session.owned("potion") == 0
    driver.tap("y")
    driver.wait_idle()
    assert session.owned("potion") == 1
    assert session.item("potion").prices == (Money.from_minor(60, "COINS", scale=0),)

    # --- not enough gems for the golden ship -----------------------------------------------------
    driver.select("ship_gold")
    driver.tap("right")  # the GEMS price
    assert shop.price_of(shop.items[shop.index]).currency == "GEMS"
    driver.tap("enter")
    driver.until(
        lambda: any("Not enough GEMS" in t.text for t in session.toasts), what="the funds toast"
    )
    driver.wait_idle()
    assert session.owned("ship_gold") == 0

    # --- a rival takes the last dragon egg first ------------------------------------------------
    game.grant(RIVAL, "COINS", 800)
    store_tools.player(game, RIVAL).purchase("dragon_egg")
    driver.select("dragon_egg")
    driver.tap("enter")
    driver.until(
        lambda: any("sold out" in t.text for t in session.toasts), what="the sold-out toast"
    )
    driver.wait_idle()
    assert session.stock["dragon_egg"] == 0
    assert shop._status(shop.items[shop.index])[0] == "SOLD OUT"
    assert session.owned("dragon_egg") == 0

    # --- another round: the magnet works, the shield and the potion are used -------------------
    driver.tap("space")
    second = run.app.scene
    assert isinstance(second, PlayScene)
    assert second.world.loadout.magnet
    driver.frames(30)
    driver.tap("1")
    assert second.world.shield_frames > 0
    assert session.owned("shield") == 0
    driver.tap("2")
    assert second.world.lives == 4
    assert session.owned("potion") == 0
    driver.until_scene("ResultsScene")
    driver.wait_idle()
    earned_too = second.world.coins
    assert earned_too > 0
    assert session.payouts[second.round_id].coins_granted == earned_too

    # --- what the screen shows is what the server holds ----------------------------------------
    session.refresh_all()
    driver.wait_idle()
    coins = START_COINS + earned + earned_too - 250 - 120 - 60
    server_wallet = service.player_wallet(PLAYER)
    assert server_wallet.balance("COINS") == coins
    assert {(b.currency, b.amount) for b in session.wallet.balances} == {
        (b.currency, b.amount) for b in server_wallet.balances
    }
    assert {(b.currency, b.amount) for b in server_wallet.balances} == {
        ("COINS", coins),
        ("GEMS", 0),
        ("USD", 0),
    }
    server_items = {e.sku: e.quantity for e in service.player_inventory(PLAYER) if e.quantity}
    assert server_items == {"magnet": 1}
    assert {e.sku: e.quantity for e in session.inventory if e.quantity} == server_items
    server_ledger = service.player_ledger_page(PLAYER, limit=len(session.ledger)).items
    assert [(e.id, e.delta, e.balance_after) for e in session.ledger] == [
        (e.id, e.delta, e.balance_after) for e in server_ledger
    ]
    assert [(e.kind, e.delta) for e in server_ledger] == [
        ("grant", earned_too),
        ("purchase", -60),
        ("purchase", -120),
        ("purchase", -250),
        ("grant", earned),
        ("grant", START_COINS),
    ]
    purchases = list(service.player_purchases(PLAYER))
    assert [(p.sku, p.price.amount) for p in purchases] == [
        ("potion", 60),
        ("shield", 120),
        ("magnet", 250),
    ]
    assert session.purchases_made == 3
