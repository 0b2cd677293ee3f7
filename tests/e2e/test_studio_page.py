"""The studio page (/studio) in a real browser: headless Chromium driven by Playwright, against
the live server.

Chromium comes from Debian's ``chromium`` package (``apt-get install -y chromium``); Playwright
for Python drives it through ``executable_path`` (``playwright install`` is never needed).
Set SHOPKEEP_SCREENSHOTS to a folder (docs/screenshots) to keep the screenshots of the main
screens; otherwise they go to the test's temporary folder.
"""

from __future__ import annotations

import html
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shopkeep import AccountFrozenError, Amount, StoreClient, ValidationError
from shopkeep.studio import StudioClient

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PRICE_RANGE = "Must be greater than or equal to 0 and less than or equal to 9007199254740991."


def shows_badge(badge: Any, shown: str) -> None:
    """A badge reads ``shown`` as a person sees it: upper case, which the stylesheet makes of
    its lower-case text. Read the way the browser renders it (innerText), retried until the
    stylesheet applies: right after a navigation on a loaded machine it may not have yet."""
    from playwright.sync_api import expect

    expect(badge).to_have_text(shown, use_inner_text=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from Debian's package. A developer without it is told and the browser
    tests skip; in CI (CI=true, where .ci/run installs it) its absence is a failure."""
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if executable is None:
        message = "needs Debian's chromium package (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def shop(live_server):  # type: ignore[no-untyped-def]
    """A game of its own with the demo catalog published as version 1."""
    return live_server.new_game()


@pytest.fixture
def page(browser, live_server) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1360, "height": 900})
    tab = context.new_page()
    tab.on("dialog", lambda dialog: dialog.accept())  # the page asks before publishing etc.
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def shot(tmp_path: Path):  # type: ignore[no-untyped-def]
    folder = Path(os.environ.get("SHOPKEEP_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str) -> Path:
        path = folder / f"studio-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000  # a rendered page, not a blank one
        return path

    return take


def studio_api(live_server: Any, shop: Any, sub: str) -> StudioClient:
    """The API's side of the studio, beside the page: the SDK's studio client."""
    return StudioClient(live_server.url, shop.token("studio", sub))


def player_api(live_server: Any, shop: Any, sub: str) -> StoreClient:
    return StoreClient(live_server.url, shop.token("player", sub))


def sign_in(page: Any, token: str) -> None:
    page.goto("/studio/login")
    page.get_by_label("Studio token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def flash(page: Any) -> str:
    return page.locator(".flash").inner_text().strip()


def item_card(page: Any, column: str, sku: str) -> Any:
    return page.locator(f"#{column} li.item[data-sku='{sku}']")


def test_sign_in_change_a_price_publish_and_the_api_serves_it(
    page: Any,
    live_server,  # type: ignore[no-untyped-def]
    shop,
    shot,
) -> None:
    url = live_server.url
    page.goto("/studio/")
    assert page.url == f"{url}/studio/login"
    shot(page, "login")
    sign_in(page, shop.token("studio", "alice"))
    assert page.url == f"{url}/studio/catalog"
    assert page.locator(".who").inner_text().startswith(f"game {shop.id} · alice")

    # Start the draft from what players see (it already is: the game was published from it).
    page.get_by_role("button", name="Reset to live").click()
    assert flash(page) == "The draft is now a copy of live version 1."
    assert "Compared with live: no differences" in page.locator("#draft").inner_text()

    # A price the API refuses is refused here, with the API's field path and message.
    page.get_by_role("link", name="Edit potion").click()
    page.get_by_label("Price 1 amount").fill("-5")
    page.get_by_role("button", name="Save to draft").click()
    shown = page.locator(".field-error").all_inner_texts()
    assert shown == [f"items.0.prices.0.amount: {PRICE_RANGE}"]
    with studio_api(live_server, shop, "alice") as studio:
        draft = studio.draft()
        refused = draft.content
        refused["items"][0]["prices"][0]["amount"] = -5
        with pytest.raises(ValidationError) as api:
            studio.put_draft(refused, if_match=draft.etag)
    assert api.value.status == 422
    assert api.value.fields == {"items.0.prices.0.amount": [PRICE_RANGE]}
    shot(page, "item-error")

    page.get_by_label("Price 1 amount").fill("65")
    page.get_by_role("button", name="Save to draft").click()
    assert flash(page) == "Saved potion in the draft."
    shows_badge(item_card(page, "draft", "potion").locator(".badge"), "CHANGED")
    assert "65 COINS" in item_card(page, "draft", "potion").inner_text()
    assert "50 COINS" in item_card(page, "live", "potion").inner_text()
    shot(page, "catalog")

    page.get_by_role("link", name="Review & publish").first.click()
    assert page.locator(".fields tr").all_inner_texts() == ["prices\t50 COINS\t→\t65 COINS"]
    page.get_by_label("Notes for the history").fill("potion at 65")
    shot(page, "review")
    page.get_by_role("button", name="Publish the draft").click()
    assert flash(page) == "Published version 2: live now."

    with player_api(live_server, shop, "p1") as player:
        live = player.catalog()
    assert live.version == 2
    assert live.item("potion").price().minor == 65

    # Roll back from the history: version 1's price is live again, as version 3.
    page.get_by_role("link", name="History").click()
    shot(page, "history")
    page.get_by_role("button", name="Roll back to version 1").click()
    assert flash(page) == (
        "Rolled back: version 3 is live with the content of version 1. The draft is unchanged."
    )
    with player_api(live_server, shop, "p1") as player:
        live = player.catalog()
    assert live.version == 3
    assert live.item("potion").price().minor == 50

    # Restock a limited item through the same store function as POST /v1/admin/stock/{sku}.
    page.get_by_role("link", name="Catalog").click()
    page.get_by_label("Restock dragon_egg").fill("5")
    page.locator("#live li[data-sku='dragon_egg']").get_by_role("button", name="Add units").click()
    assert flash(page) == "Restocked dragon_egg: added 5, 105 left."
    with studio_api(live_server, shop, "alice") as studio:
        stock = studio.stock(["dragon_egg"])
    assert [(s.sku, s.remaining) for s in stock] == [("dragon_egg", 105)]

    # Signing out ends the session: the cookie no longer opens the page.
    page.get_by_role("button", name="Sign out").click()
    assert page.url == f"{url}/studio/login"
    page.goto("/studio/catalog")
    assert page.url == f"{url}/studio/login"


def test_player_lookup_and_refund(
    page: Any,
    live_server,  # type: ignore[no-untyped-def]
    shop,
    shot,
) -> None:
    player = player_api(live_server, shop, "p-7")
    shop.grant("p-7", "COINS", 1000)
    purchase_id = player.purchase("sword").purchase.id

    sign_in(page, shop.token("studio", "support-1"))
    page.get_by_role("link", name="Players").click()
    page.get_by_label("Player id").fill("p-7")
    page.get_by_role("button", name="Look up").click()
    assert page.locator("#balances tr[data-currency='COINS'] td").inner_text() == "700 COINS"
    assert page.locator("#inventory").inner_text() == "sword\t1"
    assert page.locator(f"tr[data-purchase='{purchase_id}']").inner_text().split("\t")[1:5] == [
        "sword",
        "300 COINS",
        "1",
        "COMPLETED",
    ]
    shot(page, "player")

    page.get_by_label(f"Refund reason for {purchase_id}").fill("bought by mistake")
    page.get_by_role("button", name="Refund").click()
    assert flash(page) == "Refunded sword: 300 COINS returned to the player."
    assert page.locator("#balances tr[data-currency='COINS'] td").inner_text() == "1000 COINS"

    # The API agrees: the money is back, the sword is gone, the purchase says why.
    with player:
        assert Amount("COINS", 1000) in player.wallet().balances
        assert player.inventory().items == ()
        refunded = player.get_purchase(purchase_id)
        ledger = list(player.ledger())
    assert (refunded.status, refunded.refund_reason) == ("refunded", "bought by mistake")
    assert [(e.kind, e.delta, e.balance_after) for e in ledger] == [
        ("refund", 300, 1000),
        ("purchase", -300, 700),
        ("grant", 1000, 1000),
    ]


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    page: Any,
    live_server,  # type: ignore[no-untyped-def]
    shop,
) -> None:
    url = live_server.url
    sign_in(page, shop.token("studio", "alice"))
    page.get_by_role("button", name="Reset to live").click()
    studio = studio_api(live_server, shop, "alice")
    before = studio.draft()

    # The browser's own session cookie goes along; only the CSRF token is missing or wrong.
    form = {
        "etag": before.etag,
        "sku": "potion",
        "name": "Free potion",
        "kind": "consumable",
        "prices-0-currency": "COINS",
        "prices-0-amount": "0",
    }
    for sent in (form, {**form, "csrf_token": "forged"}):
        response = page.request.post(f"{url}/studio/items/potion", form=sent)
        assert response.status == 403
        assert "CSRF token is missing or wrong" in response.text()
        assert "nothing was changed" in response.text()
    publish = page.request.post(f"{url}/studio/publish", form={"notes": "x", "key": "k" * 20})
    assert publish.status == 403

    with studio:
        after = studio.draft()
        versions = studio.versions()
    assert (after.etag, after.content) == (before.etag, before.content)
    assert [v.version for v in versions] == [1]


def test_player_and_service_tokens_are_refused_at_sign_in(
    page: Any,
    live_server,  # type: ignore[no-untyped-def]
    shop,
) -> None:
    url = live_server.url
    for role in ("player", "service"):
        sign_in(page, shop.token(role, "someone"))
        assert page.url == f"{url}/studio/login"
        assert page.get_by_role("alert").inner_text() == (
            f"This is a {role} token. The studio page needs a studio token: "
            f"shopkeep-server token --game {shop.id} --role studio --sub you"
        )
    sign_in(page, "not-a-token")
    assert page.get_by_role("alert").inner_text() == "This token was refused: malformed token."
    assert [c["name"] for c in page.context.cookies() if c["name"] == "shopkeep_studio"] == []
    page.goto("/studio/catalog")
    assert page.url == f"{url}/studio/login"


def test_an_edit_made_meanwhile_is_refused_never_overwritten(
    page: Any,
    live_server,  # type: ignore[no-untyped-def]
    shop,
) -> None:
    sign_in(page, shop.token("studio", "alice"))
    page.get_by_role("button", name="Reset to live").click()
    page.get_by_role("link", name="Edit sword").click()

    # While the form is open, someone else changes the draft through the API.
    bob = studio_api(live_server, shop, "bob")
    draft = bob.draft()
    theirs = draft.content
    theirs["items"][0]["name"] = "Bob's potion"
    put = bob.put_draft(theirs, if_match=draft.etag)

    page.get_by_label("Price 1 amount").fill("1")
    page.get_by_role("button", name="Save to draft").click()
    alert = page.get_by_role("alert").first.inner_text()
    assert alert == (
        "The draft was changed by someone else since this form was opened, so nothing was "
        "saved. Your input is kept below; open the catalog to see their changes first."
    )
    assert page.get_by_label("Price 1 amount").input_value() == "1"  # the input is kept

    with bob:
        after = bob.draft()
    assert after.etag == put.etag
    assert after.content["items"][0]["name"] == "Bob's potion"
    sword = next(item for item in after.content["items"] if item["sku"] == "sword")
    assert sword["prices"] == [{"currency": "COINS", "amount": 300}]


# ---------------------------------------------------------------------------------------------
# Without a browser: the page's refusals, on the fast rolled-back fixtures
# ---------------------------------------------------------------------------------------------


def _value(response: Any, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', response.text)
    assert found is not None, name
    return html.unescape(found.group(1))


def _messages(response: Any) -> list[str]:
    """What the page shows as errors: next to fields and in lists."""
    found = re.findall(r'class="field-error" role="alert">([^<]+)<', response.text)
    found += re.findall(r'<ul class="error-list">(.*?)</ul>', response.text, flags=re.S)
    items = []
    for entry in found:
        items.extend(re.findall(r"<li>([^<]+)</li>", entry) if "<li>" in entry else [entry])
    return [html.unescape(item) for item in items]


@pytest.fixture
def signed_in(client, game):  # type: ignore[no-untyped-def]
    """The test client signed in to the page, with the draft reset to live version 1."""
    form = client.get("/studio/login")
    client.post(
        "/studio/login",
        data={"csrf_token": _value(form, "csrf_token"), "token": game.token("studio", "alice")},
    )
    page = client.get("/studio/catalog")
    csrf = _value(page, "csrf_token")
    reset = client.post("/studio/draft/reset", data={"csrf_token": csrf, "etag": '"draft-2"'})
    assert reset.status_code == 303
    return csrf


def test_the_page_refuses_what_the_store_refuses_with_its_messages(client, signed_in) -> None:  # type: ignore[no-untyped-def]
    csrf, etag = signed_in, '"draft-3"'
    removed = client.post("/studio/items/potion/remove", data={"csrf_token": csrf, "etag": etag})
    assert removed.status_code == 422
    assert _messages(removed) == [
        "items.6.contents.0.sku — items[6] (starter_pack) contents[0].sku:"
        " not an item of this catalog"
    ]

    scale = client.post(
        "/studio/currencies/USD",
        data={"csrf_token": csrf, "etag": etag, "code": "USD", "name": "Dollar", "scale": "2"},
    )
    assert scale.status_code == 422
    assert _messages(scale) == ["currencies.2.scale: a published currency keeps its scale (4)"]

    bundle = client.post(
        "/studio/items/gem_pouch",
        data={
            "csrf_token": csrf,
            "etag": etag,
            "sku": "gem_pouch",
            "name": "Pouch of gems",
            "kind": "bundle",
            "prices-0-currency": "COINS",
            "prices-0-amount": "1000",
            "contents-0-type": "currency",
            "contents-0-ref": "GEMS",
            "contents-0-number": "",
            "available_from": "tomorrow",
        },
    )
    assert bundle.status_code == 422
    assert _messages(bundle) == [
        "items.8.contents.0: money needs both currency and amount",
        "items.8.available_from: Not a valid datetime.",
    ]

    restock = client.post(
        "/studio/stock/dragon_egg", data={"csrf_token": csrf, "key": "k" * 20, "add": "1.5"}
    )
    assert restock.status_code == 422
    assert _messages(restock) == ["add: Not a valid integer."]

    stale = client.post(
        "/studio/publish",
        data={"csrf_token": csrf, "key": "p" * 20, "etag": '"draft-1"', "notes": "old"},
    )
    assert stale.status_code == 412
    assert _messages(stale) == [
        "The draft was changed by someone else since this page was loaded, so nothing was "
        "published. Open the catalog again to see their changes."
    ]
    history = client.get("/studio/versions")
    assert re.findall(r"<td><b>(\d+)</b>", history.text) == ["1"]

    refund = client.post(
        "/studio/players/p1/refund",
        data={
            "csrf_token": csrf,
            "key": "r" * 20,
            "purchase_id": "00000000-0000-0000-0000-000000000000",
            "reason": "",
        },
    )
    assert refund.status_code == 422
    assert _messages(refund) == ["reason: Length must be between 1 and 500."]


def test_an_unknown_session_cookie_opens_nothing(client, game) -> None:  # type: ignore[no-untyped-def]
    client.set_cookie("shopkeep_studio", "made-up", path="/studio")
    response = client.get("/studio/catalog")
    assert (response.status_code, response.headers["Location"]) == (303, "/studio/login")
    posted = client.post("/studio/publish", data={"notes": "x"})
    assert (posted.status_code, posted.headers["Location"]) == (303, "/studio/login")


def test_a_players_risk_view_freezes_and_unfreezes_with_a_reason(
    page: Any,
    live_server,  # type: ignore[no-untyped-def]
    shop,
    shot,
) -> None:
    player = player_api(live_server, shop, "p-9")
    shop.grant("p-9", "COINS", 1000)

    sign_in(page, shop.token("studio", "support-2"))
    page.get_by_role("link", name="Players").click()
    page.get_by_label("Player id").fill("p-9")
    page.get_by_role("button", name="Look up").click()
    page.get_by_role("link", name="Risk: tier, freeze and refusals").click()
    shows_badge(page.locator("#frozen-state"), "NOT FROZEN")
    assert page.locator("#tier-now").inner_text() == "none"  # the demo catalog has no policy

    page.get_by_label("Freeze reason").fill("chargeback on the card")
    page.get_by_role("button", name="Freeze").click()
    assert flash(page) == "Frozen p-9: chargeback on the card"
    shows_badge(page.locator("#frozen-state"), "FROZEN")
    with pytest.raises(AccountFrozenError):
        player.purchase("sword")
    page.reload()
    rows = page.locator("#risk-events tbody tr")
    assert rows.nth(0).inner_text().split("\t")[1:] == [
        "refused account_frozen",
        "purchase",
        "",
        "",
        "",
    ]
    assert rows.nth(1).inner_text().split("\t")[1:] == [
        "frozen",
        "",
        "",
        "support-2",
        "chargeback on the card",
    ]
    shot(page, "risk")

    page.get_by_label("Unfreeze reason").fill("card owner confirmed")
    page.get_by_role("button", name="Unfreeze").click()
    assert flash(page) == "Unfrozen p-9: card owner confirmed"
    shows_badge(page.locator("#frozen-state"), "NOT FROZEN")
    with player:
        assert player.purchase("sword").purchase.sku == "sword"
