"""The sample game's Top up screen: the TEST store "charges", the game redeems the signed
transaction, the store credits 5.0000 USD once, and the shop's 0.0150 USD tip is paid from it;
a top-up interrupted by a crash is credited at the next start, once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sample_game.launch import journal_path
from sample_game.scenes import ShopScene
from sample_game.test_store import TEST_STORE_LABEL, TestAppStore
from sample_game.topup import TopUpScene
from shopkeep import StoreClient
from shopkeep.journal import PendingJournal, PendingPurchase

PLAYER = "topper-1"


def test_topping_up_from_the_test_store_then_tipping(
    live_server: Any, start_game: Any, tmp_path: Path
) -> None:
    game = live_server.new_game()  # the demo catalog, with its App Store products
    test_store = TestAppStore.load_or_create(tmp_path / "test-store")
    test_store.register(live_server.url, game.token("studio", "studio-1"))
    run = start_game(live_server.url, game.token("player", PLAYER))
    driver, session = run.driver, run.session
    session.test_store = test_store
    driver.wait_idle()
    assert session.balance("USD") == 0

    driver.tap("tab")
    assert isinstance(run.app.scene, ShopScene)
    driver.tap("u")
    scene = run.app.scene
    assert isinstance(scene, TopUpScene)
    driver.until(lambda: bool(scene.products), what="the products")
    assert [p.id for p in scene.products] == ["usd_5", "coins_500"]
    assert "TEST" in TEST_STORE_LABEL and "no real money" in TEST_STORE_LABEL
    driver.tap("enter")  # 5.0000 USD
    driver.wait_idle()
    assert session.balance("USD") == 50_000
    assert any("Topped up usd_5" in toast.text for toast in session.toasts)
    driver.screenshot("topup")

    driver.tap("escape")
    driver.select("tip")
    driver.tap("enter")
    driver.wait_idle()
    assert session.balance("USD") == 49_850
    with StoreClient(live_server.url, game.token("player", PLAYER)) as client:
        kinds = [(entry.kind, entry.delta) for entry in client.ledger()]
    assert kinds == [("purchase", -150), ("topup", 50_000)]


def test_a_top_up_interrupted_by_a_crash_is_credited_at_the_next_start(
    live_server: Any, start_game: Any, tmp_path: Path
) -> None:
    game = live_server.new_game()
    test_store = TestAppStore.load_or_create(tmp_path / "test-store")
    test_store.register(live_server.url, game.token("studio", "studio-1"))
    data_dir = tmp_path / "data"
    token = game.token("player", PLAYER)
    # The game paid the TEST store and journaled the receipt, then died before sending it.
    catalog = StoreClient(live_server.url, token).catalog()
    product = next(p for p in catalog.products if p.id == "usd_5")
    PendingJournal(journal_path(data_dir, live_server.url, PLAYER)).add(
        PendingPurchase.new(
            "topup-crash-key-000001",
            {"store": "app_store", "signed_transaction": test_store.pay(product)},
            path="/v1/receipts",
        )
    )

    second = start_game(live_server.url, token, data_dir=data_dir)
    second.driver.wait_idle()
    second.driver.until(lambda: second.session.balance("USD") == 50_000, what="the credit")
    assert second.session.pending_topups == set()
    assert second.session.client.pending() == []
