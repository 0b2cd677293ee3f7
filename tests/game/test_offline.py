"""The network fails mid-purchase: the game keeps drawing, and the purchase lands exactly once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sample_game.scenes import ShopScene

PLAYER = "offline-1"


def test_purchase_survives_an_outage_exactly_once(
    live_server: Any,
    fault_proxy: Any,
    start_game: Any,
    store_tools: Any,
    screenshot_dir: Path,
) -> None:
    game = live_server.new_game()
    game.grant(PLAYER, "COINS", 500)
    service = store_tools.service(game)
    run = start_game(fault_proxy.url, game.token("player", PLAYER))
    driver, session, app = run.driver, run.session, run.app
    driver.wait_idle()
    driver.tap("tab")
    assert isinstance(app.scene, ShopScene)
    driver.wait_idle()
    driver.select("sword")
    # Only the purchase may cross the proxy while it drops answers: no stock polling meanwhile.
    session.watch_stock = False
    driver.wait_idle()

    # The purchase reaches the store, which sells the sword; the answer is lost on the way back.
    fault_proxy.mode = "drop"
    driver.tap("enter")
    assert session.buying["sword"] == "sending"
    driver.until(lambda: fault_proxy.dropped >= 1, what="a lost response")
    # ... and then the store is unreachable altogether.
    fault_proxy.mode = "down"
    assert [p.sku for p in service.player_purchases(PLAYER)] == ["sword"]
    frames_while_sending = driver.until(
        lambda: session.buying.get("sword") == "pending", what="the purchase to go pending"
    )
    # The SDK retried on its worker thread, with back-off, while the frame loop kept drawing.
    assert frames_while_sending > 10
    assert not session.online
    assert session.retrying
    assert [entry.sku for entry in session.client.pending()] == ["sword"]
    assert session.owned("sword") == 0

    # Offline for a while: every frame still renders, the purchase stays pending.
    drawn = app.frame_no
    driver.until(lambda: app.frame_no - drawn >= 150, what="150 offline frames")
    assert app.frame_no - drawn == 150
    assert session.buying.get("sword") == "pending"
    assert isinstance(app.scene, ShopScene)
    assert session.purchases_made == 0
    run.driver.screenshot_dir = screenshot_dir
    driver.screenshot("game-offline")

    # The store comes back: the journaled purchase is re-sent with its key and replayed.
    fault_proxy.mode = "up"
    driver.wait_idle()
    assert session.online
    assert session.client.pending() == []
    assert "sword" not in session.buying
    assert session.owned("sword") == 1
    assert session.balance("COINS") == 200
    assert session.purchases_made == 1
    assert sum("Bought Sword" in t.text for t in session.toasts) == 1

    purchases = list(service.player_purchases(PLAYER))
    assert [(p.sku, p.price.amount) for p in purchases] == [("sword", 300)]
    assert service.player_wallet(PLAYER).balance("COINS") == 200
    kinds = [(e.kind, e.delta) for e in service.player_ledger(PLAYER)]
    assert kinds == [("purchase", -300), ("grant", 500)]
