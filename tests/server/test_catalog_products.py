"""Real-money products in the catalog: validated with the rest of the catalog (field rules and
the references to its currencies and items), published with it, and served to players."""

from __future__ import annotations

import copy
from typing import Any

import psycopg

from support import Game, coins_catalog, coins_item, make_game, snapshot
from support import stores as s


def _validate(client: Any, game: Game, content: Any) -> Any:
    return client.post(
        "/v1/admin/catalog/validate", json=content, headers=game.headers("studio", "alice")
    )


def test_products_are_published_and_served(client: Any, conn: psycopg.Connection) -> None:
    game = make_game(conn, s.money_catalog())
    live = client.get("/v1/catalog", headers=game.headers()).get_json()
    assert live["products"] == [
        {
            "id": "usd_5",
            "store_ids": s.USD_5,
            "grants": {"currencies": [{"currency": "USD", "amount": 50_000}], "items": []},
        },
        {
            "id": "coin_pack",
            "store_ids": s.COIN_PACK,
            "grants": {
                "currencies": [{"currency": "COINS", "amount": 1000}],
                "items": [{"sku": "potion", "quantity": 2}],
            },
        },
    ]
    rows = conn.execute(
        "SELECT p.store, p.store_product_id, p.product_id, p.grants FROM catalog_products p"
        " JOIN games g ON g.live_version_id = p.version_id WHERE g.id = %s ORDER BY 1, 2",
        (game.id,),
    ).fetchall()
    assert ("google_play", "coins", "coin_pack", [
        {"currency": "COINS", "amount": 1000}, {"sku": "potion", "quantity": 2}
    ]) in rows  # fmt: skip
    assert len(rows) == 6


def test_a_catalog_without_products_has_none(client: Any, conn: psycopg.Connection) -> None:
    game = make_game(conn, coins_catalog(coins_item("potion", 5)))
    assert client.get("/v1/catalog", headers=game.headers()).get_json()["products"] == []


def test_every_product_rule_is_checked_with_its_field_path(
    client: Any, conn: psycopg.Connection
) -> None:
    game = make_game(conn, s.money_catalog())
    content = copy.deepcopy(s.money_catalog())
    content["items"].append(
        {
            "sku": "kit",
            "name": "Kit",
            "kind": "bundle",
            "prices": [{"currency": "COINS", "amount": 5}],
            "contents": [{"sku": "potion", "quantity": 1}],
        }
    )
    fields = copy.deepcopy(content)
    fields["products"] += [
        {"id": "nothing", "store_ids": {}, "grants": {}},
        {
            "id": "free",
            "store_ids": {"steam": "77"},
            "grants": {"currencies": [{"currency": "USD", "amount": 0}]},
        },
        {"id": "ghost", "store_ids": {"itch": "x"}, "grants": {"items": []}},
    ]
    references = copy.deepcopy(content)
    references["products"] += [
        {
            "id": "usd_5",
            "store_ids": {"steam": "9"},
            "grants": {"items": [{"sku": "kit", "quantity": 1}]},
        },
        {
            "id": "gems",
            "store_ids": {"app_store": s.USD_5["app_store"]},
            "grants": {"currencies": [{"currency": "GEMS", "amount": 5}]},
        },
        {
            "id": "twice",
            "store_ids": {"steam": "78"},
            "grants": {"items": [{"sku": "potion", "quantity": 1}, {"sku": "nope", "quantity": 2}]},
        },
        {
            "id": "twice_again",
            "store_ids": {"steam": "79"},
            "grants": {
                "items": [{"sku": "potion", "quantity": 1}, {"sku": "potion", "quantity": 2}]
            },
        },
    ]
    before = snapshot(conn, game.id)
    refused = _validate(client, game, fields)
    assert refused.status_code == 422
    assert refused.get_json()["error"]["details"] == {
        "products.2.store_ids": [
            "name the product's id on at least one of app_store, google_play, steam"
        ],
        "products.2.grants": ["a product must grant a currency or an item"],
        "products.3.grants.currencies.0.amount": [
            "Must be greater than or equal to 1 and less than or equal to 9007199254740991."
        ],
        "products.4.store_ids.itch": ["Unknown field."],
        "products.4.grants": ["a product must grant a currency or an item"],
    }
    refused = _validate(client, game, references)
    assert refused.status_code == 422
    assert refused.get_json()["error"]["details"] == {
        "products.2.id": ["usd_5 appears twice"],
        "products.2.grants.items.0.sku": ["a product grants items, not bundles"],
        "products.3.store_ids.app_store": [f"{s.USD_5['app_store']} is already product usd_5"],
        "products.3.grants.currencies.0.currency": ["not a currency of this catalog"],
        "products.4.grants.items.1.sku": ["not an item of this catalog"],
        "products.5.grants.items": ["each sku may appear once"],
    }
    assert snapshot(conn, game.id) == before
