"""The studio page's offers (issue 15): segments, offers and codes edited field by field in the
draft through put_draft (refused at their fields), a code created from its form and redeemed by
a player once published, the preview of what one player would see of the draft, and the sales
per offer."""

from __future__ import annotations

import html
import re
from typing import Any

import psycopg

from support import Game, buy, coins_catalog, coins_item, grant, make_game, post, snapshot


def _value(response: Any, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', response.text)
    assert found is not None, name
    return html.unescape(found.group(1))


def _sign_in(client: Any, game: Game) -> str:
    form = client.get("/studio/login")
    client.post(
        "/studio/login",
        data={"csrf_token": _value(form, "csrf_token"), "token": game.token("studio", "alice")},
    )
    return _value(client.get("/studio/catalog"), "csrf_token")


def _alerts(response: Any) -> list[str]:
    return [
        html.unescape(m)
        for m in re.findall(r'<p class="field-error" role="alert">([^<]*)</p>', response.text)
    ]


def _publish(client: Any, csrf: str) -> None:
    review = client.get("/studio/diff")
    published = client.post(
        "/studio/publish",
        data={
            "csrf_token": csrf,
            "key": _value(review, "key"),
            "etag": _value(review, "etag"),
            "notes": "offers",
        },
    )
    assert published.status_code == 303, published.text


def test_edit_offers_preview_a_player_create_a_code_and_see_the_sales(
    client: Any, conn: psycopg.Connection
) -> None:
    game = make_game(conn, coins_catalog(coins_item("potion", 100), coins_item("sword", 300)))
    csrf = _sign_in(client, game)
    assert client.get("/studio/offers").status_code == 200
    etag = _value(client.get("/studio/offers/new-segment"), "etag")

    # A rule that does not parse is refused at its field with its path and column; the draft
    # is unchanged.
    before = snapshot(conn, game.id)
    refused = client.post(
        "/studio/offers/new-segment",
        data={"csrf_token": csrf, "etag": etag, "id": "vets", "rule": "attr.level >="},
    )
    assert refused.status_code == 422
    assert _alerts(refused) == [
        'segments.0.rule: column 14: expected a "string", an integer, true or false,'
        " found 'the end'"
    ]
    assert _value(refused, "rule") == "attr.level >="  # the input is kept
    assert snapshot(conn, game.id) == before

    saved = client.post(
        "/studio/offers/new-segment",
        data={"csrf_token": csrf, "etag": etag, "id": "vets", "rule": "attr.level >= 10"},
    )
    assert saved.status_code == 303, _alerts(saved)
    offer = {
        "csrf_token": csrf,
        "id": "vet-potion",
        "sku": "potion",
        "segment": "vets",
        "pricing": "discount_percent",
        "value": "133",
        "currency": "",
        "starts_at": "",
        "ends_at": "",
        "per_player_limit": "",
    }
    etag = _value(client.get("/studio/offers/new-offer"), "etag")
    refused = client.post("/studio/offers/new-offer", data={**offer, "etag": etag})
    assert refused.status_code == 422
    assert _alerts(refused) == [
        "offers.0.discount_percent: Must be greater than or equal to 1 and less than or equal"
        " to 100."
    ]
    saved = client.post("/studio/offers/new-offer", data={**offer, "etag": etag, "value": "33"})
    assert saved.status_code == 303, _alerts(saved)
    draft = client.get(
        "/v1/admin/catalog/draft", headers=game.headers("studio", "alice")
    ).get_json()
    assert draft["segments"] == [{"id": "vets", "rule": "attr.level >= 10"}]
    assert draft["offers"] == [
        {
            "id": "vet-potion",
            "segment": "vets",
            "sku": "potion",
            "price": None,
            "discount_percent": 33,
            "discount_amount": None,
            "starts_at": None,
            "ends_at": None,
            "per_player_limit": None,
        }
    ]
    assert [i["sku"] for i in draft["items"]] == ["potion", "sword"]  # items kept
    # The offer's form shows it again as it was saved.
    form = client.get("/studio/offers/offers/vet-potion")
    assert (_value(form, "id"), _value(form, "value")) == ("vet-potion", "33")
    # A segment an offer names cannot be removed: refused with the offer's path.
    removing = client.post(
        "/studio/offers/segments/vets/remove",
        data={"csrf_token": csrf, "etag": _value(client.get("/studio/offers"), "etag")},
    )
    assert removing.status_code == 422
    assert _alerts(removing) == [
        "offers.0.segment — offers[0] (vet-potion) segment: not a segment of this catalog"
    ]

    # The preview prices the draft for one player, before anything is published.
    response = client.put(
        "/v1/players/vet/attributes",
        json={"attributes": {"level": 12}},
        headers=game.headers("service", "backend"),
    )
    assert response.status_code == 200
    preview = client.get("/studio/offers?player=vet")
    row = re.search(r'<tr data-sku="potion" data-currency="COINS">(.*?)</tr>', preview.text, re.S)
    assert row is not None
    assert "<s>100 COINS</s>" in row.group(1) and ">67 COINS<" in row.group(1)
    assert "vet-potion" in row.group(1)
    rookie = client.get("/studio/offers?player=rookie")
    row = re.search(r'<tr data-sku="potion" data-currency="COINS">(.*?)</tr>', rookie.text, re.S)
    assert row is not None and "list price" in row.group(1)
    # Nothing was published by the preview.
    versions = client.get("/v1/admin/catalog/versions", headers=game.headers("studio", "a"))
    assert [v["version"] for v in versions.get_json()["versions"]] == [1]

    # A code made on the page, published, and redeemed by a player.
    created = client.post(
        "/studio/offers/new-code",
        data={
            "csrf_token": csrf,
            "etag": _value(client.get("/studio/offers/new-code"), "etag"),
            "code": "stream-42",
            "budget": "5",
            "offer": "",
            "grant-0-type": "currency",
            "grant-0-ref": "COINS",
            "grant-0-number": "40",
            "segment": "",
        },
    )
    assert created.status_code == 303, _alerts(created)
    _publish(client, csrf)
    redeemed = post(client, "/v1/promo-codes/redeem", {"code": "STREAM-42"}, game, sub="fan")
    assert redeemed.status_code == 200, redeemed.get_json()
    assert redeemed.get_json()["granted"] == [{"currency": "COINS", "amount": 40}]

    # Sales per offer, from the purchases.
    grant(client, game, "vet", "COINS", 1000)
    assert buy(client, game, "potion", sub="vet", quantity=3).status_code == 201
    figures = client.get("/studio/offers")
    sales = re.search(
        r'<tr data-offer="vet-potion" data-currency="COINS">(.*?)</tr>', figures.text, re.S
    )
    assert sales is not None
    cells = re.findall(r'<td class="num">([^<]*)</td>', sales.group(1))
    assert cells == ["1", "3", "201 COINS", "0"]
    assert "<svg" in sales.group(1)
    usage = re.search(r'<tr data-code="STREAM-42">(.*?)</tr>', figures.text, re.S)
    assert usage is not None
    assert re.findall(r'<td class="num">([^<]*)</td>', usage.group(1)) == ["1", "5"]

    # The player page shows the attributes and the offer of a purchase.
    player = client.get("/studio/players?id=vet")
    assert '<tr data-attribute="level"><th><code>level</code></th><td>12</td></tr>' in player.text
    assert "offer <code>vet-potion</code>" in player.text


def test_the_item_form_chooses_its_segment_and_keeps_its_localized_text(
    client: Any, conn: psycopg.Connection
) -> None:
    potion = coins_item("potion", 100, localized={"pt-BR": {"name": "Poção"}})
    game = make_game(
        conn,
        {
            **coins_catalog(potion, coins_item("sword", 300)),
            "segments": [{"id": "vets", "rule": "attr.level >= 10"}],
        },
    )
    csrf = _sign_in(client, game)
    form = client.get("/studio/items/potion")
    assert '<option value="vets" >segment vets only</option>' in form.text
    fields = {
        "csrf_token": csrf,
        "etag": _value(form, "etag"),
        "sku": "potion",
        "name": "Potion",
        "kind": "consumable",
        "prices-0-currency": "COINS",
        "prices-0-amount": "100",
        "segment": "vets",
    }
    saved = client.post("/studio/items/potion", data=fields)
    assert saved.status_code == 303, _alerts(saved)
    draft = client.get(
        "/v1/admin/catalog/draft", headers=game.headers("studio", "alice")
    ).get_json()
    assert draft["items"][0]["segment"] == "vets"
    assert draft["items"][0]["localized"] == {"pt-BR": {"name": "Poção"}}
    # The preview leaves the item out for a player outside the segment, and says so.
    preview = client.get("/studio/offers?player=rookie").text
    assert 'data-sku="potion"' not in preview and 'data-sku="sword"' in preview
    hidden = re.search(r'<p class="small muted" id="preview-hidden">(.*?)</p>', preview, re.S)
    assert hidden is not None and "<code>potion</code>" in hidden.group(1)
    # A segment the catalog does not hold is refused at the field.
    refused = client.post(
        "/studio/items/potion",
        data={**fields, "etag": _value(client.get("/studio/items/potion"), "etag"), "segment": "x"},
    )
    assert refused.status_code == 422
    assert _alerts(refused) == ["items.0.segment: not a segment of this catalog"]
