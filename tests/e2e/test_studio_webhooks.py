"""The studio page's Webhooks tab in a real browser (headless Chromium, see
test_studio_page.py) against the live server, whose workers deliver to a receiver the test
runs on 127.0.0.1: add an endpoint (the secret shown once), see a purchase arrive signed, the
delivery log, send again, rotate, disable (with the reason shown), enable and delete."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

# The page tests' fixtures and helpers (tests/e2e is on the path: pytest's prepend import mode).
from test_studio_page import browser, flash, page, shop, shot, sign_in

from shopkeep import StoreClient
from support.receiver import Receiver

__all__ = ["browser", "page", "shop", "shot"]  # the fixtures, shared with the page's tests

WAIT_SECONDS = 30.0


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"waited too long for {what}"
        time.sleep(0.1)


def rows_after_reload(page: Any, rows: Any) -> int:
    page.reload()
    return int(rows.count())


def test_add_a_webhook_get_a_purchase_send_it_again_rotate_disable_and_delete(
    page: Any,
    live_server: Any,
    shop: Any,
    shot: Any,
) -> None:
    with Receiver([]) as receiver:
        sign_in(page, shop.token("studio", "designer"))
        page.get_by_role("link", name="Webhooks").click()
        assert page.get_by_text("No webhooks yet.").is_visible()
        page.get_by_label("URL").fill(receiver.url)
        page.get_by_label("Event types").fill("purchase.completed")
        page.get_by_label("Description").fill("the test's receiver")
        page.get_by_role("button", name="Add webhook").click()
        secret = page.locator("#secret-value").inner_text().strip()
        assert secret.startswith("whsec_")
        receiver.secrets.append(secret)
        shot(page, "webhook-added")
        row = page.locator("#webhooks tr[data-webhook]")
        assert row.count() == 1
        webhook_id = row.get_attribute("data-webhook")
        assert "enabled" in (row.locator(".state").text_content() or "")
        # The secret is shown once: the list, loaded again, does not have it.
        page.get_by_role("link", name="Webhooks").click()
        assert secret not in page.content()

        shop.grant("ann", "COINS", 500)
        with StoreClient(live_server.url, shop.token("player", "ann")) as player:
            bought = player.purchase("potion")
        wait_for(lambda: len(receiver.events) == 1, "the purchase's event")
        (event,) = receiver.events.values()
        assert event.type == "purchase.completed"
        assert event.data["purchase"]["id"] == bought.purchase.id
        assert receiver.refused == []

        page.locator(f"#webhooks tr[data-webhook='{webhook_id}'] a").first.click()
        log = page.locator(f"#deliveries tr[data-event='{event.id}']")
        # The receiver has its answer before the worker writes the attempt to the log.
        wait_for(lambda: rows_after_reload(page, log) == 1, "the delivery in the log")
        assert "200" in log.inner_text()
        page.get_by_label("From event").fill(str(event.id))
        page.get_by_role("button", name="Send again").click()
        assert flash(page) == "Queued 1 event(s) to be sent again."
        wait_for(lambda: receiver.wire == [event.id, event.id], "the event sent again")
        wait_for(lambda: rows_after_reload(page, log) == 2, "the second delivery in the log")
        shot(page, "webhook-log")

        page.get_by_role("link", name="all webhooks").click()
        page.get_by_role("button", name="Rotate secret").click()
        rotated = page.locator("#secret-value").inner_text().strip()
        assert rotated.startswith("whsec_") and rotated != secret
        assert "old secret signs until" in (page.locator("#webhooks .state").text_content() or "")

        page.get_by_role("button", name="Disable").click()
        assert flash(page).startswith("Disabled")
        state = page.locator("#webhooks .state").text_content() or ""
        assert "disabled" in state and "disabled by the studio" in state
        page.get_by_role("button", name="Enable").click()
        assert flash(page).startswith("Enabled")
        page.get_by_role("button", name="Delete").click()
        assert flash(page) == "Deleted the webhook and its delivery log."
        assert page.get_by_text("No webhooks yet.").is_visible()
