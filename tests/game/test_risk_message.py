"""The sample game explains a refusal of the studio's risk policy in words a player reads."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sample_game.scenes import ShopScene
from sample_game.session import limit_message
from shopkeep import LimitExceededError
from shopkeep_server.demo import demo_catalog

PLAYER = "pilot-risk"


def test_a_spend_limit_stops_a_purchase_with_a_friendly_message(
    live_server: Any, start_game: Any
) -> None:
    content = demo_catalog()
    content["risk"] = {
        "spend_limits": [{"currency": "COINS", "window_seconds": 3600, "max_count": 1}]
    }
    game = live_server.new_game(catalog=content)
    game.grant(PLAYER, "COINS", 1500)
    run = start_game(live_server.url, game.token("player", PLAYER))
    driver, session = run.driver, run.session
    driver.wait_idle()
    driver.tap("tab")  # the title screen's way to the shop
    assert isinstance(run.app.scene, ShopScene)
    driver.wait_idle()
    driver.select("potion")
    driver.tap("enter")
    driver.wait_idle()
    assert session.owned("potion") == 1
    driver.tap("enter")  # a second purchase within the hour
    driver.until(
        lambda: any("spending limit" in t.text for t in session.toasts), what="the limit toast"
    )
    driver.wait_idle()
    toast = next(t.text for t in session.toasts if "spending limit" in t.text)
    assert toast.startswith("You've hit this hour's spending limit; try again at ")
    hh_mm = toast.rsplit(" ", 1)[1]
    assert len(hh_mm) == 5 and hh_mm[2] == ":"
    assert session.owned("potion") == 1
    assert session.balance("COINS") == 1500 - 50


def _limit(**details: Any) -> LimitExceededError:
    return LimitExceededError("limit", status=409, code="limit_exceeded", details=details)


def test_the_message_says_when_to_come_back_in_local_time() -> None:
    retry_at = dt.datetime(2026, 12, 1, 15, 4, tzinfo=dt.UTC)
    local = retry_at.astimezone().strftime("%H:%M")
    daily = _limit(rule="spend_limit", window_seconds=86_400, retry_at="2026-12-01T15:04:00Z")
    assert (
        limit_message(daily, "Potion") == f"You've hit today's spending limit; try again at {local}"
    )
    tier = _limit(rule="tier", retry_at=None)
    assert (
        limit_message(tier, "Dragon egg")
        == "Dragon egg unlocks once your account is a little older"
    )
