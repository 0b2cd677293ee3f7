"""The studio's catalog: draft with ETag, validation with field paths, versions, rollback."""

from __future__ import annotations

import copy

import pytest

from support import Game, buy, grant, post, snapshot


def _studio(game: Game, **extra: str) -> dict[str, str]:
    return game.headers("studio", "designer", **extra)


def _draft(client, game: Game) -> tuple[dict, str]:
    response = client.get("/v1/admin/catalog/draft", headers=_studio(game))
    assert response.status_code == 200
    return response.get_json(), response.headers["ETag"]


def _put(client, game: Game, content: dict, etag: str | None):
    headers = _studio(game) if etag is None else _studio(game, **{"If-Match": etag})
    return client.put("/v1/admin/catalog/draft", json=content, headers=headers)


def _live(client, game: Game) -> dict:
    return client.get("/v1/catalog", headers=game.headers()).get_json()


def _publish(client, game: Game, notes: str = "") -> dict:
    response = post(client, "/v1/admin/catalog/publish", {"notes": notes}, game, role="studio")
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_live_catalog_with_etag_and_304(client, game: Game) -> None:
    first = client.get("/v1/catalog", headers=game.headers())
    assert first.status_code == 200
    body = first.get_json()
    assert body["version"] == 1
    assert [c["code"] for c in body["currencies"]] == ["COINS", "GEMS", "USD"]
    assert len(body["items"]) == 12
    tip = next(i for i in body["items"] if i["sku"] == "tip")
    assert tip["prices"] == [{"currency": "USD", "amount": 150}]
    etag = first.headers["ETag"]
    cached = client.get("/v1/catalog", headers=game.headers(**{"If-None-Match": etag}))
    assert cached.status_code == 304
    assert cached.data == b""
    assert cached.headers["ETag"] == etag
    stale = client.get("/v1/catalog", headers=game.headers(**{"If-None-Match": '"v0"'}))
    assert stale.status_code == 200


def test_edit_publish_and_serve_new_price(client, game: Game) -> None:
    draft, etag = _draft(client, game)
    live_view = copy.deepcopy(_live(client, game))
    # The live view adds each reader's own prices and its locale (issue 15), and keeps the
    # segments, offers and codes to the studio; the rest is the draft as published.
    assert live_view.pop("locale") is None
    for item in live_view["items"]:
        assert item.pop("price_for_you") == [{**p, "offer_id": None} for p in item["prices"]]
    content = {part: live_view[part] for part in ("currencies", "items", "products")}
    assert draft.pop("risk") is None  # the studio's risk policy: never in the live catalog
    # the fixture published through the draft
    assert draft == {**content, "segments": [], "offers": [], "promo_codes": []}
    potion = next(i for i in content["items"] if i["sku"] == "potion")
    potion["prices"] = [{"currency": "COINS", "amount": 60}]
    put = _put(client, game, content, etag)
    assert put.status_code == 200
    new_etag = put.headers["ETag"]
    assert new_etag != etag
    # Publishing makes it live at once; the old ETag no longer matches.
    assert _publish(client, game, "potion to 60")["version"] == 2
    live = _live(client, game)
    assert live["version"] == 2
    assert next(i for i in live["items"] if i["sku"] == "potion")["prices"][0]["amount"] == 60
    grant(client, game, "p1", "COINS", 100)
    purchase = buy(client, game, "potion").get_json()["purchase"]
    assert purchase["price"]["amount"] == 60
    assert purchase["catalog_version"] == 2


def test_put_needs_if_match_and_refuses_stale(client, conn, game: Game) -> None:
    content = {"currencies": [{"code": "COINS", "name": "Coins", "scale": 0}], "items": []}
    _, etag = _draft(client, game)
    before = snapshot(conn, game.id)
    missing = _put(client, game, content, None)
    assert missing.status_code == 428
    assert missing.get_json()["error"]["code"] == "precondition_required"
    assert _put(client, game, content, etag).status_code == 200
    stale = _put(client, game, content, etag)
    assert stale.status_code == 412
    assert stale.get_json()["error"]["code"] == "precondition_failed"
    assert snapshot(conn, game.id)["catalog"][0][0] == before["catalog"][0][0] + 1


@pytest.mark.parametrize(
    "change, path, message",
    [
        (lambda c: c["items"][0]["prices"][0].update(amount=-1), "items.0.prices.0.amount", None),
        (lambda c: c["items"][0]["prices"][0].update(amount=1.5), "items.0.prices.0.amount", None),
        (lambda c: c["items"][0].update(sku="Bad Sku"), "items.0.sku", None),
        (lambda c: c["items"][0].update(kind="weapon"), "items.0.kind", None),
        (lambda c: c["items"][0].update(prices=[]), "items.0.prices", None),
        (lambda c: c["items"][0].update(colour="red"), "items.0.colour", "Unknown field."),
        (
            lambda c: c["items"][0]["prices"][0].update(currency="EUR"),
            "items.0.prices.0.currency",
            "not a currency of this catalog",
        ),
        (
            lambda c: c["items"].append(dict(c["items"][0])),
            "items.2.sku",
            "bundle appears twice",
        ),
        (
            lambda c: c["items"][1]["contents"].append({"sku": "ghost", "quantity": 1}),
            "items.1.contents.1.sku",
            "not an item of this catalog",
        ),
        (
            lambda c: c["items"][1]["contents"].append({"sku": "ghost"}),
            "items.1.contents.1",
            "an item needs both sku and quantity",
        ),
        (
            lambda c: c["items"][0].update(contents=[{"currency": "COINS", "amount": 5}]),
            "items.0.contents",
            "only a bundle has contents",
        ),
        (
            lambda c: c["items"][0].update(
                available_from="2030-01-02T00:00:00Z", available_until="2030-01-01T00:00:00Z"
            ),
            "items.0.available_until",
            "must be after available_from",
        ),
        (
            lambda c: c["items"][0].update(available_from="next tuesday"),
            "items.0.available_from",
            None,
        ),
        (
            lambda c: c["items"][0].update(available_from="2030-01-01T00:00:00"),
            "items.0.available_from",
            None,
        ),
        (
            lambda c: c["items"][0].update(metadata={"blob": "x" * 5000}),
            "items.0.metadata",
            "must be at most 4096 bytes of JSON",
        ),
        (lambda c: c["currencies"][0].update(scale=10), "currencies.0.scale", None),
        (lambda c: c["currencies"][0].update(code="coins"), "currencies.0.code", None),
        (
            lambda c: c["currencies"].append(dict(c["currencies"][0])),
            "currencies.1.code",
            "COINS appears twice",
        ),
        (lambda c: c.pop("items"), "items", "Missing data for required field."),
    ],
)
def test_validation_points_at_the_field(client, conn, game: Game, change, path, message) -> None:
    content = {
        "currencies": [{"code": "COINS", "name": "Coins", "scale": 0, "max_balance": None}],
        "items": [
            {
                "sku": "bundle",
                "name": "B",
                "kind": "consumable",
                "prices": [{"currency": "COINS", "amount": 5}],
            },
            {
                "sku": "box",
                "name": "Box",
                "kind": "bundle",
                "prices": [{"currency": "COINS", "amount": 9}],
                "contents": [{"sku": "bundle", "quantity": 2}],
            },
        ],
    }
    _, etag = _draft(client, game)
    assert _put(client, game, content, etag).status_code == 200
    _, etag = _draft(client, game)
    before = snapshot(conn, game.id)
    broken = copy.deepcopy(content)
    change(broken)
    response = _put(client, game, broken, etag)
    assert response.status_code == 422, response.get_json()
    details = response.get_json()["error"]["details"]
    assert path in details, details
    if message is not None:
        assert message in details[path]
    assert snapshot(conn, game.id) == before


def test_published_currency_keeps_its_scale(client, game: Game) -> None:
    content = copy.deepcopy(_live(client, game))
    content.pop("version")
    content["currencies"][2]["scale"] = 2  # USD was published with scale 4
    _, etag = _draft(client, game)
    response = _put(client, game, content, etag)
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == {
        "currencies.2.scale": ["a published currency keeps its scale (4)"]
    }


def test_versions_detail_and_rollback(client, game: Game) -> None:
    content = copy.deepcopy(_live(client, game))
    content.pop("version")
    content["items"] = [i for i in content["items"] if i["sku"] != "tip"]
    _, etag = _draft(client, game)
    assert _put(client, game, content, etag).status_code == 200
    _publish(client, game, "no more tips")
    assert "tip" not in {i["sku"] for i in _live(client, game)["items"]}
    grant(client, game, "p1", "USD", 1000)
    gone = buy(client, game, "tip")
    assert gone.status_code == 404

    versions = client.get("/v1/admin/catalog/versions", headers=_studio(game)).get_json()
    assert [(v["version"], v["notes"], v["live"]) for v in versions["versions"]] == [
        (2, "no more tips", True),
        (1, "", False),
    ]
    one = client.get("/v1/admin/catalog/versions/1", headers=_studio(game)).get_json()
    assert one["version"] == 1 and "tip" in {i["sku"] for i in one["items"]}
    missing = client.get("/v1/admin/catalog/versions/9", headers=_studio(game))
    assert missing.status_code == 404

    rolled = post(client, "/v1/admin/catalog/rollback", {"version": 1}, game, role="studio")
    assert rolled.status_code == 201
    assert rolled.get_json()["version"] == 3
    assert rolled.get_json()["notes"] == "rollback to version 1"
    assert _live(client, game)["version"] == 3
    assert buy(client, game, "tip").status_code == 201
    nowhere = post(client, "/v1/admin/catalog/rollback", {"version": 42}, game, role="studio")
    assert nowhere.status_code == 404


def test_publish_keeps_live_stock(client, game: Game) -> None:
    grant(client, game, "p1", "COINS", 800)
    assert buy(client, game, "dragon_egg").status_code == 201
    content = copy.deepcopy(_live(client, game))
    content.pop("version")
    _, etag = _draft(client, game)
    _put(client, game, content, etag)
    _publish(client, game)
    stock = client.get("/v1/stock?sku=dragon_egg", headers=game.headers()).get_json()
    assert stock == {"stock": [{"sku": "dragon_egg", "remaining": 99}]}


def test_stock_lists_limited_items_only(client, game: Game) -> None:
    everything = client.get("/v1/stock", headers=game.headers()).get_json()
    assert everything == {
        "stock": [
            {"sku": "dragon_egg", "remaining": 100},
            {"sku": "phoenix_feather", "remaining": 50},
        ]
    }
    one = client.get("/v1/stock?sku=phoenix_feather&sku=potion", headers=game.headers())
    assert one.get_json() == {"stock": [{"sku": "phoenix_feather", "remaining": 50}]}


def test_restock(client, game: Game) -> None:
    response = post(client, "/v1/admin/stock/dragon_egg", {"add": 7}, game, role="studio")
    assert response.status_code == 200
    assert response.get_json() == {"sku": "dragon_egg", "remaining": 107}
    unlimited = post(client, "/v1/admin/stock/potion", {"add": 7}, game, role="studio")
    assert unlimited.status_code == 404


def test_publish_without_body(client, game: Game) -> None:
    response = client.post(
        "/v1/admin/catalog/publish", headers=_studio(game, **{"Idempotency-Key": "x" * 20})
    )
    assert response.status_code == 201
    assert response.get_json()["notes"] == ""


def test_publish_only_the_reviewed_draft(client, game: Game) -> None:
    _, etag = _draft(client, game)
    content = copy.deepcopy(_live(client, game))
    content.pop("version")
    content["items"] = content["items"][:3]
    changed = _put(client, game, content, etag)
    assert changed.status_code == 200
    stale = client.post(
        "/v1/admin/catalog/publish",
        json={"notes": "what I reviewed"},
        headers=_studio(game, **{"If-Match": etag, "Idempotency-Key": "r" * 20}),
    )
    assert stale.status_code == 412
    assert stale.get_json()["error"]["details"] == {"etag": changed.headers["ETag"]}
    assert _live(client, game)["version"] == 1
    fresh = client.post(
        "/v1/admin/catalog/publish",
        json={"notes": "what I reviewed"},
        headers=_studio(game, **{"If-Match": changed.headers["ETag"], "Idempotency-Key": "s" * 20}),
    )
    assert fresh.status_code == 201
    assert len(_live(client, game)["items"]) == 3
