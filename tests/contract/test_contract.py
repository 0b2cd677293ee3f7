"""The contract machinery itself: it passes real answers and catches each kind of drift, the
document says what is always present, and a generated client reads real bodies in full."""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import attrs
import flask
import httpx
import pytest
from flask_smorest import Blueprint

from shopkeep import Amount
from shopkeep.models import ItemQuantity
from shopkeep_server.api.common import IDEMPOTENCY_HEADER
from shopkeep_server.api.openapi import CommonResponsesPlugin
from shopkeep_server.api.schemas import PageQuerySchema, StatusSchema
from shopkeep_server.app import ShopkeepApi

from .checker import Answer, contract
from .plugin import RECORDER
from .sdk_view import NOT_IN_SDK, SDK_READERS, kept, sdk_problems

# Shapes that are either one thing or another ({sku, quantity} or {currency, amount}), or some
# of several (a product's store ids: the stores that sell it): no field of theirs is always
# present, and the schema's own rule says which must be.
# An item's text in one locale holds its name, its description or both (the item's own
# text stands in for what it leaves out).
EITHER_OR = {"Granted", "Content", "StoreIds", "LocalizedText"}


class Shop:
    """Requests to the test client as a player p1 with funds, and as the game's backend."""

    def __init__(self, client: Any, game: Any) -> None:
        self.client = client
        self.game = game

    def call(
        self, method: str, path: str, *, role: str = "player", body: Any = None, keyed: bool = False
    ) -> Answer:
        headers = self.game.headers(role, "p1" if role == "player" else "backend")
        if keyed:
            headers["Idempotency-Key"] = f"contract-{uuid.uuid4()}"
        response = self.client.open(path, method=method, json=body, headers=headers)
        return Answer(
            method=method,
            path=path,
            status=response.status_code,
            headers={name.lower(): value for name, value in response.headers.items()},
            body=response.get_data(),
            source="test client",
        )


@pytest.fixture
def shop(client: Any, game: Any) -> Shop:
    shop = Shop(client, game)
    funds = {"currency": "COINS", "amount": 5000, "reason": "contract test"}
    granted = shop.call("POST", "/v1/players/p1/grants", role="service", body=funds, keyed=True)
    assert granted.status == 201
    return shop


@pytest.fixture
def purchase(shop: Shop) -> Answer:
    answer = shop.call(
        "POST", "/v1/purchases", body={"sku": "shield", "currency": "COINS"}, keyed=True
    )
    assert answer.status == 201, answer.body
    return answer


def _with_body(answer: Answer, body: Any) -> Answer:
    return Answer(
        answer.method,
        answer.path,
        answer.status,
        answer.headers,
        json.dumps(body).encode(),
        "edited",
    )


def test_a_real_purchase_meets_the_contract(purchase: Answer) -> None:
    assert contract().problems(purchase) == []


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda b: b["purchase"].update(discount=0), "discount': ['Unknown field.']"),
        (lambda b: b.pop("balances"), "balances': ['Missing data for required field.']"),
        (
            lambda b: b["purchase"]["price"].update(amount="120"),
            "amount': ['Not a valid integer.']",
        ),
        (lambda b: b["purchase"]["price"].update(amount=1.0), "amount': ['Not a valid integer.']"),
        (lambda b: b["purchase"].update(sku=None), "sku': ['Field may not be null.']"),
        (lambda b: b["purchase"].pop("unit_price"), "unit_price': ['Missing data"),
        (lambda b: b["purchase"].update(status="pending"), "status': ['Must be one of"),
        (lambda b: b["purchase"].update(created_at="today"), "not an RFC 3339 timestamp"),
        (lambda b: b["granted"].append({"sku": "potion"}), "either sku and quantity"),
    ],
    ids=[
        "unknown field",
        "missing field",
        "string amount",
        "float amount",
        "null",
        "missing nested",
        "bad enum",
        "bad timestamp",
        "half a grant",
    ],
)
def test_a_body_that_drifts_from_its_schema_is_caught(
    purchase: Answer, edit: Any, expected: str
) -> None:
    body = json.loads(purchase.body)
    edit(body)
    problems = contract().problems(_with_body(purchase, body))
    assert any("does not match PurchaseResult" in p and expected in p for p in problems), problems


def test_an_undocumented_status_or_header_is_caught(purchase: Answer) -> None:
    teapot = Answer(purchase.method, purchase.path, 418, purchase.headers, purchase.body, "edited")
    assert contract().problems(teapot) == [
        "POST /v1/purchases -> 418 (edited) [player.create_purchase]: "
        "status 418 is not documented for /v1/purchases"
    ]
    tagged = Answer(
        purchase.method,
        purchase.path,
        201,
        {**purchase.headers, "etag": '"x"'},
        purchase.body,
        "edited",
    )
    assert any("header etag is sent but not documented" in p for p in contract().problems(tagged))
    unnamed = {k: v for k, v in purchase.headers.items() if k != "x-request-id"}
    anonymous = Answer(purchase.method, purchase.path, 201, unnamed, purchase.body, "edited")
    assert any(
        "documented header x-request-id is missing" in p for p in contract().problems(anonymous)
    )


def test_an_error_code_the_operation_does_not_document_is_caught(shop: Shop) -> None:
    refused = shop.call("POST", "/v1/purchases", body={"sku": "sword", "quantity": 2}, keyed=True)
    assert refused.status == 409 and contract().problems(refused) == []
    body = json.loads(refused.body)
    body["error"]["code"] = "receipt_already_used"  # a 409, but not one a purchase answers
    assert contract().problems(_with_body(refused, body)) == [
        "POST /v1/purchases -> 409 (edited) [player.create_purchase]: error code"
        " receipt_already_used is not documented for status 409 (documented:"
        " balance_cap_exceeded, debt_outstanding, hold_expired, idempotency_key_in_use,"
        " insufficient_funds, item_unavailable, limit_exceeded, price_changed,"
        " purchase_limit_reached, sold_out)"
    ]


def test_an_error_body_is_held_to_the_envelope(shop: Shop) -> None:
    refused = shop.call("POST", "/v1/purchases", body={"sku": "sword", "quantity": 2}, keyed=True)
    assert refused.status == 409 and contract().problems(refused) == []
    body = json.loads(refused.body)
    del body["error"]["request_id"]
    problems = contract().problems(_with_body(refused, body))
    assert any("request_id': ['Missing data for required field.']" in p for p in problems)


def test_the_sdk_reads_each_route_through_its_own_parser(purchase: Answer) -> None:
    body = json.loads(purchase.body)
    response = httpx.Response(201, json=body, request=httpx.Request("POST", "http://x/"))
    assert sdk_problems("player.create_purchase", response) == []
    body["purchase"]["discount"] = 0
    body["purchase"]["quantity"] = "1"
    edited = httpx.Response(201, json=body, request=httpx.Request("POST", "http://x/"))
    assert sdk_problems("player.create_purchase", edited) == [
        "the parser refused the body: TypeError(\"quantity: expected an integer, got '1'\")"
    ]
    body["purchase"]["quantity"] = 1
    edited = httpx.Response(201, json=body, request=httpx.Request("POST", "http://x/"))
    assert sdk_problems("player.create_purchase", edited) == [
        "body.purchase.discount: dropped by Purchase"
    ]


def test_what_the_sdk_drops_or_misreads_is_caught() -> None:
    assert kept({"currency": "COINS", "amount": 5}, Amount("COINS", 5), "x") == []
    assert kept({"currency": "COINS", "amount": 5, "bonus": 1}, Amount("COINS", 5), "x") == [
        "x.bonus: dropped by Amount"
    ]
    assert kept({"sku": "potion", "quantity": 3}, ItemQuantity("potion", 2), "x") == [
        "x.quantity: sent 3, SDK has 2"
    ]
    assert kept([{"sku": "potion", "quantity": 3}], (), "x") != []


def test_every_operation_is_read_by_the_sdk_or_said_not_to_be() -> None:
    endpoints = {operation.endpoint for operation in contract().operations.values()}
    assert endpoints == set(SDK_READERS) | NOT_IN_SDK


def test_the_suite_s_answers_are_recorded(client: Any) -> None:
    client.get("/healthz")
    assert any(answer.path == "/healthz" for answer in RECORDER._answers)


def _response_components(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object schema a response body can contain, by component name."""
    schemas = document["components"]["schemas"]
    pending = [
        content["schema"]["$ref"]
        for path in document["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict) and "responses" in operation
        for response in operation["responses"].values()
        for content in response.get("content", {}).values()
    ]
    seen: set[str] = set()
    while pending:
        name = pending.pop().rsplit("/", 1)[1]
        if name in seen:
            continue
        seen.add(name)
        schema = schemas[name]
        yield name, schema
        text = json.dumps(schema)
        pending += [part.split('"')[0] for part in text.split('"$ref": "')[1:]]


def test_the_document_says_what_is_always_present() -> None:
    for name, schema in _response_components(contract().document):
        if name in EITHER_OR:
            assert "required" not in schema
            continue
        assert set(schema.get("required", [])) == set(schema["properties"]), name


def test_every_answer_is_documented_with_its_headers() -> None:
    for (endpoint, _), operation in contract().operations.items():
        for status, documented in operation.responses.items():
            assert "x-request-id" in documented.required_headers, (endpoint, status)
            if status in (429, 503):
                assert "retry-after" in documented.required_headers, (endpoint, status)
            if status >= 400:
                assert documented.schema is not None and documented.schema.__name__ == "ErrorSchema"


# --- a client generated from the served document --------------------------------------------


@pytest.fixture(scope="module")
def generated_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """openapi-python-client's package for this tree's document, imported."""
    root = tmp_path_factory.mktemp("generated")
    document = root / "openapi.json"
    document.write_text(json.dumps(contract().document))
    config = root / "config.yaml"
    config.write_text("post_hooks: []\n")  # no formatter run: the code is only imported
    subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(document),
            "--output-path",
            str(root / "shopkeep_generated"),
            "--meta",
            "none",
            "--config",
            str(config),
            "--fail-on-warning",
        ],
        check=True,
        capture_output=True,
    )
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("shopkeep_generated")
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.startswith("shopkeep_generated")]:
            del sys.modules[name]


# Generated models that hold a free-form JSON object: their keys are the data.
FREE_FORM = {
    "SentItemMetadata",
    "LiveItemMetadata",
    "ErrorDetailDetails",
    # Keyed by locale, and a studio's own attribute names.
    "SentItemLocalized",
    "LiveItemLocalized",
    "PlayerAttributesResultAttributes",
}


def _read_in_full(model: Any, where: str, unset: type) -> list[str]:
    """Walks a generated model: every field is one the generator made required (never Unset,
    so a client needs no check for it), and nothing of the body was left over in
    additional_properties (where the generator keeps keys the document does not name)."""
    problems: list[str] = []
    if isinstance(model, list):
        for i, entry in enumerate(model):
            problems += _read_in_full(entry, f"{where}[{i}]", unset)
        return problems
    if not attrs.has(type(model)):
        return problems
    kind = type(model).__name__
    extra = getattr(model, "additional_properties", {})
    if extra and kind not in FREE_FORM:
        problems.append(f"{where}: fields the document lacks: {sorted(extra)}")
    signature = inspect.signature(type(model).__init__)
    for field in attrs.fields(type(model)):
        if field.name == "additional_properties":
            continue
        value = getattr(model, field.name)
        optional = signature.parameters[field.name].default is not inspect.Parameter.empty
        if optional and kind not in EITHER_OR:
            problems.append(f"{where}.{field.name}: the generated client makes it optional")
        if isinstance(value, unset) and kind not in EITHER_OR:
            problems.append(f"{where}.{field.name}: Unset")
        problems += _read_in_full(value, f"{where}.{field.name}", unset)
    return problems


@pytest.mark.slow
def test_a_generated_client_reads_real_bodies_in_full(
    generated_client: Any, shop: Shop, purchase: Answer
) -> None:
    models = importlib.import_module(f"{generated_client.__name__}.models")
    unset = importlib.import_module(f"{generated_client.__name__}.types").Unset
    purchase_id = json.loads(purchase.body)["purchase"]["id"]
    answers = [
        purchase,
        shop.call("GET", "/v1/catalog"),
        shop.call("GET", "/v1/wallet"),
        shop.call("GET", "/v1/wallet/ledger"),
        shop.call("GET", "/v1/purchases"),
        shop.call(
            "POST",
            f"/v1/purchases/{purchase_id}/refund",
            role="service",
            body={"reason": "test"},
            keyed=True,
        ),
        shop.call("POST", "/v1/purchases", body={"sku": "sword", "quantity": 2}, keyed=True),
    ]
    read: dict[str, Any] = {}
    for answer in answers:
        operation = contract().operation_for(answer.method, answer.path)
        assert operation is not None
        schema = operation.responses[answer.status].schema
        assert schema is not None
        name = schema.__name__.removesuffix("Schema")
        model = getattr(models, name).from_dict(json.loads(answer.body))
        assert _read_in_full(model, name, unset) == []
        read[f"{answer.method} {answer.path} {answer.status}"] = model
    bought = read["POST /v1/purchases 201"]
    assert str(bought.purchase.id) == purchase_id
    assert bought.purchase.price.amount == 120 and bought.purchase.price.currency == "COINS"
    assert [(b.currency, b.amount) for b in bought.balances] == [
        ("COINS", 4880),
        ("GEMS", 0),
        ("USD", 0),
    ]
    refused = read["POST /v1/purchases 409"]
    assert refused.error.code == "purchase_limit_reached"


def test_a_new_route_gets_the_shared_answers_without_a_line_of_its_own() -> None:
    app = flask.Flask(__name__)
    app.config.update(API_TITLE="t", API_VERSION="1", OPENAPI_VERSION="3.0.3")
    api = ShopkeepApi(app, spec_kwargs={"extra_plugins": [CommonResponsesPlugin()]})
    blp = Blueprint("new", __name__, url_prefix="/v1")

    @blp.route("/things", methods=["POST"])
    @blp.arguments(PageQuerySchema, location="query")
    @blp.response(201, StatusSchema)
    @blp.doc(parameters=[IDEMPOTENCY_HEADER])
    def make_thing(query: dict[str, Any]) -> dict[str, Any]:
        return {"status": "made"}

    api.register_blueprint(blp)
    responses = api.spec.to_dict()["paths"]["/v1/things"]["post"]["responses"]
    assert sorted(responses) == ["201", "400", "401", "403", "409", "422", "429", "500", "503"]
    assert all("X-Request-Id" in response["headers"] for response in responses.values())
    assert "Idempotent-Replayed" in responses["201"]["headers"]
    assert responses["429"]["headers"]["Retry-After"]["required"] is True
    assert "`idempotency_key_in_use`" in responses["409"]["description"]
    assert responses["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
