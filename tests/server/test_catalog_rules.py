"""One home for the catalog's rules: the store's schemas (store/rules.py) and
store.catalog.validate_catalog. A catalog file is checked by the store it goes to
(``POST /v1/admin/catalog/validate``, which stores nothing, then ``PUT`` draft), and the SDK's
catalog file and diff (shopkeep.catalog_file, shopkeep.catalog_diff) follow the schemas' field
order and defaults: what a file leaves out is exactly what the store fills in."""

from __future__ import annotations

import json
from typing import Any

from shopkeep import catalog_diff, catalog_file
from shopkeep_server.store import catalog, rules
from support import Game, coins_catalog, coins_item


def _put_draft(client: Any, game: Game, content: dict[str, Any]) -> Any:
    studio = game.headers("studio", "alice")
    etag = client.get("/v1/admin/catalog/draft", headers=studio).headers["ETag"]
    return client.put("/v1/admin/catalog/draft", json=content, headers={**studio, "If-Match": etag})


def _validate(client: Any, game: Game, content: Any) -> Any:
    return client.post(
        "/v1/admin/catalog/validate", json=content, headers=game.headers("studio", "alice")
    )


def test_the_sdk_mirror_of_the_catalog_fields_is_the_schemas() -> None:
    assert catalog_diff.CURRENCY_FIELDS == rules.CURRENCY_FIELDS
    assert catalog_diff.ITEM_FIELDS == rules.ITEM_FIELDS
    assert catalog_diff.PRODUCT_FIELDS == rules.PRODUCT_FIELDS
    assert tuple(rules.ContentSchema().fields) == catalog_diff.ENTRY_FIELDS
    assert catalog_diff.CURRENCY_DEFAULTS == rules.CURRENCY_DEFAULTS
    assert catalog_diff.ITEM_DEFAULTS == rules.ITEM_DEFAULTS
    assert catalog_diff.TIMESTAMP_FIELDS == rules.TIMESTAMP_FIELDS
    # Segments, offers and promo codes (issue 15): fields in order, every optional one
    # defaulting to what the file leaves out (null, or an empty grant).
    part_schemas = {
        "segments": rules.SegmentSchema(),
        "offers": rules.OfferSchema(),
        "promo_codes": rules.PromoCodeSchema(),
    }
    assert tuple(catalog_diff.CATALOG_PARTS) == tuple(part_schemas)
    # The server's list of a catalog's parts is the schema's; the SDK names the same parts
    # (products with their own field list, the rest keyed as CATALOG_PARTS says).
    assert set(catalog.CONTENT_KEYS) == set(rules.CatalogSchema().fields)
    assert set(catalog.CATALOG_PARTS) == {"products", *catalog_diff.CATALOG_PARTS}
    for part, schema in part_schemas.items():
        assert catalog_diff.PART_FIELDS[part] == tuple(schema.fields)
        assert catalog_diff.CATALOG_PARTS[part] == next(iter(schema.fields))
        if part != "promo_codes":
            assert all(value is None for value in rules.load_defaults(schema).values())
    assert rules.load_defaults(rules.PromoCodeSchema()) == {
        "offer": None,
        "grant": [],
        "segment": None,
        "starts_at": None,
        "ends_at": None,
    }
    assert catalog_diff.WINDOW_FIELDS == rules.WINDOW_FIELDS


def test_the_sdk_mirror_of_the_risk_policy_is_the_schema() -> None:
    lists = rules.RiskSchema().fields
    assert tuple(lists) == catalog_diff.RISK_LISTS
    filled: set[str] = set()
    for name, field in lists.items():
        entry = field.inner.schema
        assert catalog_diff.RISK_FIELDS[name] == tuple(entry.fields), name
        for field_name, default in rules.load_defaults(entry).items():
            assert catalog_diff.RISK_ENTRY_DEFAULTS[field_name] == default, (name, field_name)
            filled.add(field_name)
    assert set(catalog_diff.RISK_ENTRY_DEFAULTS) == filled


def test_validate_refuses_a_file_exactly_as_the_draft_refuses_it(client, game: Game) -> None:
    content = coins_catalog(
        coins_item("potion", 50),
        coins_item("potion", 60),
        coins_item("gem", 5, prices=[{"currency": "GEMS", "amount": 5}]),
        coins_item("pack", 90, kind="bundle", contents=[{"sku": "box", "quantity": 1}]),
        coins_item("box", 90, kind="bundle", contents=[{"sku": "pack", "quantity": 1}]),
    )
    content["currencies"].append({"code": "COINS", "name": "Coins again", "scale": 0})
    expected = {
        "currencies.1.code": ["COINS appears twice"],
        "items.1.sku": ["potion appears twice"],
        "items.2.prices.0.currency": ["not a currency of this catalog"],
        "items.3.contents.0.sku": ["a bundle cannot hold another bundle"],
        "items.4.contents.0.sku": ["a bundle cannot hold another bundle"],
    }
    before = client.get("/v1/admin/catalog/draft", headers=game.headers("studio"))

    checked = _validate(client, game, content)
    assert checked.status_code == 422
    assert checked.get_json()["error"]["code"] == "validation_failed"
    assert checked.get_json()["error"]["details"] == expected

    refused = _put_draft(client, game, content)
    assert refused.status_code == 422
    assert refused.get_json()["error"]["details"] == expected

    # Also the rule that needs the store's history: a published currency keeps its scale.
    rescaled = coins_catalog(coins_item("potion", 50))
    rescaled["currencies"][0]["scale"] = 2
    scale = _validate(client, game, rescaled)
    assert scale.status_code == 422
    assert scale.get_json()["error"]["details"] == {
        "currencies.0.scale": ["a published currency keeps its scale (0)"]
    }
    after = client.get("/v1/admin/catalog/draft", headers=game.headers("studio"))
    assert after.headers["ETag"] == before.headers["ETag"]
    assert after.get_json() == before.get_json()


def test_what_a_file_leaves_out_is_what_the_store_fills_in(client, game: Game) -> None:
    required_item = coins_item("potion", 50)
    required_currency = {"code": "COINS", "name": "Coins", "scale": 0}
    content = {"currencies": [required_currency], "items": [required_item]}
    before = client.get("/v1/admin/catalog/draft", headers=game.headers("studio"))
    validated = _validate(client, game, content)
    assert validated.status_code == 200
    # validate stores nothing: the draft and its ETag are as they were.
    unchanged = client.get("/v1/admin/catalog/draft", headers=game.headers("studio"))
    assert unchanged.headers["ETag"] == before.headers["ETag"]
    assert unchanged.get_json() == before.get_json()

    assert _put_draft(client, game, content).status_code == 200
    draft = client.get("/v1/admin/catalog/draft", headers=game.headers("studio")).get_json()
    assert validated.get_json() == draft

    # The store filled in every optional field with the schemas' defaults, and only those.
    (item,) = draft["items"]
    assert {k: v for k, v in item.items() if k not in required_item} == rules.ITEM_DEFAULTS
    assert set(item) == set(rules.ITEM_FIELDS)
    (currency,) = draft["currencies"]
    assert {
        k: v for k, v in currency.items() if k not in required_currency
    } == rules.CURRENCY_DEFAULTS
    assert set(currency) == set(rules.CURRENCY_FIELDS)

    # A file is written back without the defaults, and compares equal to what it was.
    assert json.loads(catalog_file.dumps(draft, "json")) == content
    assert catalog_diff.diff_catalogs(content, draft).empty


def test_timestamps_are_kept_and_written_as_the_store_keeps_them(client, game: Game) -> None:
    content = coins_catalog(coins_item("egg", 800, available_from="2030-01-01T00:00:00+02:00"))
    validated = _validate(client, game, content).get_json()
    assert _put_draft(client, game, content).status_code == 200
    draft = client.get("/v1/admin/catalog/draft", headers=game.headers("studio")).get_json()
    assert draft["items"][0]["available_from"] == "2029-12-31T22:00:00.000000Z"
    assert validated == draft
    written = json.loads(catalog_file.dumps(draft, "json"))
    assert written["items"][0]["available_from"] == "2029-12-31T22:00:00Z"
    assert catalog_diff.diff_catalogs(content, draft).empty
    assert rules.TIMESTAMP_FIELDS == ("available_from", "available_until")
