"""The work a request does once instead of every time: a repeated body's arguments and the
pooled connection's cursor. Checked for what a client relies on: the same answers to good and
bad bodies, the same stored fingerprints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from shopkeep_server import db
from shopkeep_server.api import schemas
from shopkeep_server.api.common import REMEMBERED_BODY_BYTES, Blueprint, remembered
from shopkeep_server.app import create_app
from shopkeep_server.runtime import fingerprint
from support import Game, balances, buy, grant, inventory, make_config, new_key, snapshot

# --- bodies --------------------------------------------------------------------------------


_PURCHASE = {"sku": "potion", "quantity": 1}

# Bodies Flask's decoder reads (app._check_body) and webargs' (strict UTF-8) does not: refused
# as they always were, 400 bad_request, with nothing bought, however often they are sent.
OTHER_ENCODINGS = {
    "utf-16-with-bom": json.dumps(_PURCHASE).encode("utf-16"),
    "utf-16-le": json.dumps(_PURCHASE).encode("utf-16-le"),
    "utf-16-be": json.dumps(_PURCHASE).encode("utf-16-be"),
    "utf-32": json.dumps(_PURCHASE).encode("utf-32"),
    "utf-8-with-bom": b"\xef\xbb\xbf" + json.dumps(_PURCHASE).encode(),
    "encoded-surrogate": b'{"sku": "potion", "note": "\xed\xa0\x80"}',
}


def _post_raw(client: Any, game: Game, raw: bytes) -> Any:
    """A purchase sent as exactly these body bytes, under a fresh key."""
    return client.post(
        "/v1/purchases",
        data=raw,
        headers=game.headers(**{"Idempotency-Key": new_key(), "Content-Type": "application/json"}),
    )


@pytest.mark.parametrize("raw", OTHER_ENCODINGS.values(), ids=OTHER_ENCODINGS.keys())
def test_a_body_not_in_plain_utf8_is_refused_as_before(client, conn, game: Game, raw) -> None:
    grant(client, game, "p1", "COINS", 100)
    before = snapshot(conn, game.id)
    for _ in range(2):
        response = _post_raw(client, game, raw)
        assert response.status_code == 400
        body = response.get_json()
        assert body["error"]["code"] == "bad_request"
        assert body["error"]["request_id"] == response.headers["X-Request-Id"]
    assert snapshot(conn, game.id) == before


def test_a_body_with_unicode_text_reaches_the_schema_as_sent(client, game: Game) -> None:
    response = client.post(
        "/v1/purchases",
        data=json.dumps({"sku": "potion", "colour": "vermelho ☃"}, ensure_ascii=False).encode(),
        headers=game.headers(**{"Idempotency-Key": new_key(), "Content-Type": "application/json"}),
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == {"colour": ["Unknown field."]}


# --- a body's arguments, remembered by its bytes ----------------------------------------------


@pytest.fixture
def schema_loads(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every body the purchase schema loads from now on, in order."""
    loads: list[Any] = []
    original = schemas.PurchaseRequestSchema.load

    def counting(self: Any, data: Any, **kwargs: Any) -> Any:
        loads.append(data)
        return original(self, data, **kwargs)

    monkeypatch.setattr(schemas.PurchaseRequestSchema, "load", counting)
    return loads


def test_a_body_sent_again_is_not_loaded_again(
    client: Any, game: Game, schema_loads: list[Any]
) -> None:
    grant(client, game, "p1", "COINS", 150)
    # Bytes no other test sends: this body is new to the process's parser.
    raw = b'{"sku": "potion", "expected_price": {"currency": "COINS", "amount": 50}}' + b" " * 41
    for _ in range(3):
        assert _post_raw(client, game, raw).status_code == 201
    assert len(schema_loads) == 1
    assert inventory(client, game) == {"potion": 3}
    assert balances(client, game)["COINS"] == 0


def test_a_long_body_is_loaded_every_time(client: Any, game: Game, schema_loads: list[Any]) -> None:
    grant(client, game, "p1", "COINS", 100)
    raw = b'{"sku": "potion"}'.ljust(REMEMBERED_BODY_BYTES + 1)  # valid, but too long to keep
    for _ in range(2):
        assert _post_raw(client, game, raw).status_code == 201
    assert len(schema_loads) == 2
    assert inventory(client, game) == {"potion": 2}


def test_an_invalid_body_is_loaded_and_refused_every_time(client, game: Game) -> None:
    raw = b'{"sku": "potion", "quantity": 0, "expected_price": {"currency": "COINS"}}'
    answers = []
    for _ in range(3):
        response = _post_raw(client, game, raw)
        assert response.status_code == 422
        answers.append(response.get_json()["error"]["details"])
    assert answers[0] == {
        "quantity": answers[0]["quantity"],
        "expected_price.amount": ["Missing data for required field."],
    }
    assert answers[0]["quantity"]  # the range's message, whatever its words
    assert answers == [answers[0]] * 3


def test_each_request_gets_arguments_of_its_own(app) -> None:
    schema = remembered(schemas.PurchaseRequestSchema())
    parser = Blueprint.ARGUMENTS_PARSER
    raw = b'{"sku": "sword", "expected_price": {"currency": "COINS", "amount": 300}}'

    def parse() -> dict[str, Any]:
        with app.test_request_context(
            "/v1/purchases", method="POST", data=raw, content_type="application/json"
        ):
            parsed: dict[str, Any] = parser.parse(schema, location="json")
            return parsed

    first = parse()
    first["expected_price"]["amount"] = 1  # a handler changing its own arguments
    first["sku"] = "potion"
    second, third = parse(), parse()
    expected = {
        "sku": "sword",
        "quantity": 1,
        "expected_price": {"currency": "COINS", "amount": 300},
    }
    assert second == third == expected
    assert second is not third and second["expected_price"] is not third["expected_price"]


# --- the pooled connection's cursor ---------------------------------------------------------


@pytest.fixture
def one_connection_app(committed_url: str) -> Iterator[Any]:
    app = create_app(make_config(committed_url, pool_min=1, pool_max=1))
    try:
        yield app
    finally:
        app.extensions["shopkeep"].db.close()


def test_the_pooled_connection_keeps_its_cursor_through_a_refusal(
    one_connection_app, committed_game: Game
) -> None:
    client = one_connection_app.test_client()
    database = one_connection_app.extensions["shopkeep"].db
    game = committed_game
    with database.connection() as conn:
        assert isinstance(conn, db.StoreConnection)
        kept = db.statement_cursor(conn)
        assert db.statement_cursor(conn) is kept
    grant(client, game, "p1", "COINS", 370)
    assert buy(client, game, "sword").status_code == 201  # 300
    refused = buy(client, game, "sword")  # 70 left: the SQL function raises, on that cursor
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "insufficient_funds"
    assert buy(client, game, "potion").status_code == 201  # 50, on the cursor after the error
    assert balances(client, game)["COINS"] == 20
    assert inventory(client, game) == {"sword": 1, "potion": 1}
    with database.connection() as conn:
        assert db.statement_cursor(conn) is kept  # the same connection, the same cursor


def test_a_plain_connection_gets_a_cursor_of_its_own(conn) -> None:
    first, second = db.statement_cursor(conn), db.statement_cursor(conn)
    assert first is not second
    assert first.execute("SELECT 41 + 1").fetchone() == (42,)


# --- the fingerprint --------------------------------------------------------------------------


def test_the_fingerprint_of_a_body_stays_what_stored_keys_hold() -> None:
    """Stored keys replay only while the fingerprint of the same request stays the same: these
    are the values main computed (json.dumps with sorted keys, compact, unescaped text)."""
    body = {
        "sku": "potion",
        "quantity": 1,
        "expected_price": {"currency": "GOLD", "amount": 100},
        "note": "é☃",
        "list": [3, 1.5, None, True],
    }
    assert (
        fingerprint("POST", "/v1/purchases", body)
        == "0ea9b3d3c232532fec184f3b2592733b63b7560ac98e703bbe696409ee75be69"
    )
    assert (
        fingerprint("post", "/v1/x", None)
        == "bea17b78456990c58b9e36be7fe8c3fe9a92c787cb2a3e66052d9bc690c10b79"
    )
