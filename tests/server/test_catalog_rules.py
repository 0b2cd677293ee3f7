"""One home for the catalog's rules: a catalog file is checked by the store's own rules
(store.catalog.check_catalog over the schemas of store/rules.py), and what a file leaves out
is exactly what the store fills in."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shopkeep_server import catalog_file
from shopkeep_server.errors import ValidationFailed
from shopkeep_server.store import rules
from support import Game, coins_catalog, coins_item


def _put_draft(client: Any, game: Game, content: dict[str, Any]) -> Any:
    studio = game.headers("studio", "alice")
    etag = client.get("/v1/admin/catalog/draft", headers=studio).headers["ETag"]
    return client.put("/v1/admin/catalog/draft", json=content, headers={**studio, "If-Match": etag})


def test_a_file_is_refused_offline_exactly_as_the_store_refuses_it(client, game: Game) -> None:
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

    with pytest.raises(ValidationFailed) as offline:
        catalog_file.normalize(content)
    assert offline.value.details == expected

    refused = _put_draft(client, game, content)
    assert refused.status_code == 422
    assert refused.get_json()["error"]["details"] == expected


def test_what_a_file_leaves_out_is_what_the_store_fills_in(client, game: Game) -> None:
    required_item = coins_item("potion", 50)
    required_currency = {"code": "COINS", "name": "Coins", "scale": 0}
    content = {"currencies": [required_currency], "items": [required_item]}
    assert _put_draft(client, game, content).status_code == 200
    draft = client.get("/v1/admin/catalog/draft", headers=game.headers("studio")).get_json()

    # The store filled in every optional field with the schemas' defaults, and only those.
    (item,) = draft["items"]
    assert {k: v for k, v in item.items() if k not in required_item} == rules.ITEM_DEFAULTS
    assert set(item) == set(rules.ITEM_FIELDS)
    (currency,) = draft["currencies"]
    assert {
        k: v for k, v in currency.items() if k not in required_currency
    } == rules.CURRENCY_DEFAULTS
    assert set(currency) == set(rules.CURRENCY_FIELDS)

    # Offline, a file is normalized to the same, and written back without the defaults.
    assert catalog_file.normalize(content) == draft
    assert json.loads(catalog_file.dumps(draft, "json")) == content
    assert catalog_file.diff_catalogs(content, draft).empty


def test_timestamps_are_kept_and_written_as_the_store_keeps_them(client, game: Game) -> None:
    content = coins_catalog(coins_item("egg", 800, available_from="2030-01-01T00:00:00+02:00"))
    assert _put_draft(client, game, content).status_code == 200
    draft = client.get("/v1/admin/catalog/draft", headers=game.headers("studio")).get_json()
    assert draft["items"][0]["available_from"] == "2029-12-31T22:00:00.000000Z"
    assert catalog_file.normalize(content) == draft
    written = json.loads(catalog_file.dumps(draft, "json"))
    assert written["items"][0]["available_from"] == "2029-12-31T22:00:00Z"
    assert catalog_file.diff_catalogs(content, draft).empty
    assert rules.TIMESTAMP_FIELDS == ("available_from", "available_until")
