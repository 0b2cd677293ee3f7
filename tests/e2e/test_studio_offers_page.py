"""The studio page's Offers tab in a real browser (headless Chromium, see test_studio_page.py)
against the live server: a studio member makes a segment (a rule that does not parse refused at
its field first), an offer for it and a promo code through their forms, previews one player,
publishes, and players then see the offer's price, pay it, and redeem the code."""

from __future__ import annotations

from typing import Any

import httpx

# The page tests' fixtures and helpers (tests/e2e is on the path: pytest's prepend import mode).
from test_studio_page import browser, flash, page, player_api, shop, shot, sign_in

from shopkeep import Amount

__all__ = ["browser", "page", "shop", "shot"]  # the fixtures, shared with the page's tests


def _set_vip(live_server: Any, shop: Any, player: str) -> None:
    response = httpx.put(
        f"{live_server.url}/v1/players/{player}/attributes",
        json={"attributes": {"vip": True}},
        headers={"Authorization": f"Bearer {shop.token('service', 'backend')}"},
    )
    assert response.status_code == 200, response.text


def test_a_segment_an_offer_and_a_code_made_in_forms_reach_the_players(
    page: Any,
    live_server: Any,
    shop: Any,
    shot: Any,
) -> None:
    sign_in(page, shop.token("studio", "marketer"))
    page.get_by_role("link", name="Offers").click()
    assert page.get_by_text("No segment yet.").is_visible()

    page.get_by_role("link", name="New segment").click()
    page.get_by_label("Segment id").fill("vips")
    page.get_by_label("Rule").fill("attr.vip = yes")
    page.get_by_role("button", name="Add to draft").click()
    assert page.locator(".field-error").all_inner_texts() == [
        "segments.0.rule: column 12: expected a \"string\", an integer, true or false, found 'yes'"
    ]
    assert page.get_by_label("Rule").input_value() == "attr.vip = yes"  # kept to be fixed
    page.get_by_label("Rule").fill("attr.vip = true")
    page.get_by_role("button", name="Add to draft").click()
    assert flash(page) == "Added the segment vips in the draft: publish to make it live."

    page.get_by_role("link", name="New offer").click()
    page.get_by_label("Offer id").fill("vip-potion")
    page.get_by_label("Item").select_option("potion")
    page.get_by_label("For segment").select_option("vips")
    page.get_by_label("Kind").select_option("price")
    page.get_by_label("Amount or percent").fill("20")
    page.get_by_label("Currency (price or amount off)").select_option("COINS")
    page.get_by_label("Per-player limit").fill("3")
    shot(page, "offer-form")
    page.get_by_role("button", name="Add to draft").click()
    assert flash(page) == "Added the offer vip-potion in the draft: publish to make it live."
    row = page.locator("#offers tr[data-offer='vip-potion']").inner_text()
    assert "potion" in row and "vips" in row and "20 COINS" in row

    page.get_by_role("link", name="New promo code").click()
    page.get_by_label("Code", exact=True).fill("vip-week")
    page.get_by_label("Budget (redemptions in all)").fill("10")
    page.get_by_label("Grant 1 type").select_option("currency")
    page.get_by_label("Grant 1 SKU or currency").fill("COINS")
    page.get_by_label("Grant 1 quantity or amount").fill("75")
    page.get_by_role("button", name="Add to draft").click()
    assert flash(page) == "Added the code VIP-WEEK in the draft: publish to make it live."

    # The preview prices the draft for one player before anything is published.
    _set_vip(live_server, shop, "star")
    page.get_by_label("Player id").fill("star")
    page.get_by_role("button", name="Preview the draft").click()
    preview = page.locator("#preview-prices tr[data-sku='potion'][data-currency='COINS']")
    assert preview.locator("td").all_inner_texts()[1:] == ["50 COINS", "20 COINS", "vip-potion"]
    shot(page, "offers")

    page.get_by_role("link", name="Review & publish").first.click()
    page.get_by_label("Notes for the history").fill("vip offer and code")
    page.get_by_role("button", name="Publish the draft").click()
    assert flash(page) == "Published version 2: live now."

    with player_api(live_server, shop, "star") as star, player_api(live_server, shop, "fan") as fan:
        mine = star.catalog().item("potion").my_price()
        assert (mine.price.minor, mine.offer_id) == (20, "vip-potion")
        theirs = fan.catalog().item("potion").my_price()
        assert (theirs.price.minor, theirs.offer_id) == (50, None)
        assert star.wallet().balance("COINS") == 0
        redeemed = star.redeem_code("vip-week")
        assert redeemed.granted == (Amount("COINS", 75),)
        bought = star.purchase("potion", expected_price=mine.price)
        assert (bought.purchase.unit_price, bought.purchase.offer_id) == (
            Amount("COINS", 20),
            "vip-potion",
        )
        assert star.wallet().balance("COINS") == 75 - 20
