"""Screenshots of the game for the docs: produced headless, and checked not to be blank."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pygame

from sample_game.scenes import PlayScene, ShopScene
from shopkeep_server.demo import demo_catalog

PLAYER = "screenshot-1"


def distinct_colours(path: Path) -> int:
    """How many distinct colours a PNG has (sampled on a 4-pixel grid)."""
    image = pygame.image.load(str(path))
    width, height = image.get_size()
    return len(
        {tuple(image.get_at((x, y))) for x in range(0, width, 4) for y in range(0, height, 4)}
    )


def test_screenshots_of_the_game_the_shop_and_an_error(
    live_server: Any,
    start_game: Any,
    studio_backend: Any,
    store_tools: Any,
    screenshot_dir: Path,
) -> None:
    content = demo_catalog()
    game = live_server.new_game(catalog=content)
    game.grant(PLAYER, "COINS", 1500)
    # One gem: short even of the starter offer's price (2 gems instead of 5) a new player sees.
    game.grant(PLAYER, "GEMS", 1)
    service = store_tools.service(game)
    for sku, quantity in (("ship_gold", 1), ("trail_rainbow", 1), ("shield", 2), ("potion", 3)):
        service.grant(PLAYER, sku=sku, quantity=quantity, reason="screenshot kit")
    backend = studio_backend(game)
    run = start_game(live_server.url, game.token("player", PLAYER), backend_url=backend.url, seed=7)
    driver, session, app = run.driver, run.session, run.app
    driver.screenshot_dir = screenshot_dir

    driver.wait_idle()
    driver.frames(40)
    shots = [driver.screenshot("game-title")]

    driver.tap("space")
    assert isinstance(app.scene, PlayScene)
    assert app.scene.world.loadout.gold and app.scene.world.loadout.trail_colors
    driver.frames(330)
    driver.tap("1")
    driver.frames(25)
    shots.append(driver.screenshot("game-play"))

    driver.until_scene("ResultsScene")
    driver.wait_idle()
    driver.frames(60)
    shots.append(driver.screenshot("game-results"))

    driver.tap("enter")
    assert isinstance(app.scene, ShopScene)
    driver.wait_idle()
    driver.select("dragon_egg")
    driver.frames(200)  # let the banking toast fade
    shots.append(driver.screenshot("game-shop"))

    driver.select("starter_pack")
    driver.tap("enter")
    driver.until(lambda: any(t.kind == "error" for t in session.toasts), what="an error toast")
    driver.frames(2)
    assert "Not enough GEMS" in session.toasts[-1].text
    shots.append(driver.screenshot("game-toast"))
    driver.wait_idle()

    repriced = copy.deepcopy(content)
    for item in repriced["items"]:
        if item["sku"] == "magnet":
            item["prices"] = [{"currency": "COINS", "amount": 275}]
    store_tools.publish(game, repriced)
    driver.select("magnet")
    driver.tap("enter")
    driver.until(lambda: session.dialog is not None, what="the price dialog")
    driver.frames(2)
    shots.append(driver.screenshot("game-price-changed"))
    driver.tap("n")
    driver.wait_idle()
    assert session.owned("magnet") == 0

    for path in shots:
        assert path.exists()
        assert pygame.image.load(str(path)).get_size() == (960, 600)
        # Not blank: a drawn screen has text, icons and panels in many colours.
        assert distinct_colours(path) > 40, path
