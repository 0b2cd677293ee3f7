"""Errors, request ids, health, metrics, OpenAPI and the database's own guarantees."""

from __future__ import annotations

import re

import psycopg
import pytest

from shopkeep_server import db
from shopkeep_server.app import create_app
from shopkeep_server.contract import ERRORS
from shopkeep_server.store.audit import audit
from support import ROOT, Game, buy, grant, make_config


def test_request_id_is_echoed_or_made(client, game: Game) -> None:
    mine = client.get("/healthz", headers={"X-Request-Id": "trace-123"})
    assert mine.headers["X-Request-Id"] == "trace-123"
    made = client.get("/healthz", headers={"X-Request-Id": "bad id with spaces"})
    assert len(made.headers["X-Request-Id"]) == 32
    error = client.get("/v1/wallet")
    assert error.get_json()["error"]["request_id"] == error.headers["X-Request-Id"]


def test_unknown_route_and_method(client) -> None:
    missing = client.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "not_found"
    wrong_method = client.delete("/v1/wallet")
    assert wrong_method.status_code == 404
    assert wrong_method.get_json()["error"]["code"] == "not_found"


def test_health_and_readiness(client) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready"}


def test_metrics_count_requests_and_purchases(client, game: Game) -> None:
    grant(client, game, "p1", "COINS", 60)
    buy(client, game, "potion")
    buy(client, game, "potion")
    text = client.get("/metrics").data.decode()
    assert (
        'shopkeep_http_requests_total{endpoint="/v1/purchases",method="POST",status="201"} 1.0'
        in text
    )
    assert 'shopkeep_purchases_total{outcome="completed"} 1.0' in text
    assert 'shopkeep_purchases_total{outcome="insufficient_funds"} 1.0' in text
    assert 'shopkeep_http_request_duration_seconds_bucket{endpoint="/v1/purchases"' in text


def test_openapi_and_docs(client) -> None:
    spec = client.get("/openapi.json").get_json()
    assert spec["info"]["title"] == "Shopkeep"
    for path in [
        "/v1/catalog",
        "/v1/purchases",
        "/v1/players/{player_id}/grants",
        "/v1/admin/catalog/draft",
        "/v1/purchases/{purchase_id}/refund",
        "/v1/holds",
        "/v1/holds/{hold_id}",
    ]:
        assert path in spec["paths"], path
    purchase = spec["paths"]["/v1/purchases"]["post"]
    assert {"in": "header", "name": "Idempotency-Key"}.items() <= purchase["parameters"][0].items()
    request_schema = spec["components"]["schemas"]["PurchaseRequest"]
    assert set(request_schema["properties"]) == {
        "sku",
        "quantity",
        "currency",
        "expected_price",
        "hold_id",
    }
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert b"/docs/assets/swagger-ui-bundle.js" in docs.data
    asset = client.get("/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200
    assert len(asset.data) > 100_000


def test_rate_limit(conn: psycopg.Connection, game: Game) -> None:
    app = create_app(make_config(rate_limit="3/minute"), database=db.SingleConnectionDatabase(conn))
    client = app.test_client()
    statuses = [client.get("/v1/wallet", headers=game.headers()).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.get("/v1/wallet", headers=game.headers())
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # Another account has its own budget.
    assert client.get("/v1/wallet", headers=game.headers("player", "p2")).status_code == 200


def test_database_unreachable_is_503(game: Game, tmp_path) -> None:
    config = make_config(
        f"postgresql://nobody@/shopkeep?host={tmp_path}&connect_timeout=1", pool_timeout=1.0
    )
    app = create_app(config)
    try:
        client = app.test_client()
        response = client.get("/v1/wallet", headers=game.headers())
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] == "unavailable"
        assert response.headers["Retry-After"] == "1"
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert client.get("/healthz").status_code == 200
    finally:
        app.extensions["shopkeep"].db.close()


def test_internal_error_shows_no_internals(client, conn: psycopg.Connection, game: Game) -> None:
    # Break the schema inside the test's transaction (rolled back afterwards).
    conn.execute("ALTER TABLE wallets RENAME TO wallets_gone")
    response = client.get("/v1/wallet", headers=game.headers())
    assert response.status_code == 500
    body = response.get_json()
    assert body == {
        "error": {
            "code": "internal_error",
            "message": "internal error",
            "details": {},
            "request_id": response.headers["X-Request-Id"],
        }
    }
    text = response.data.decode().lower()
    for leak in ["wallets", "select", "traceback", "psycopg", "relation"]:
        assert leak not in text


def test_error_table_matches_docs_api_md() -> None:
    """docs/api.md, the contract, lists every code of the server's table with its status and
    category, and nothing else: adding a code without documenting it fails here."""
    text = (ROOT / "docs" / "api.md").read_text()
    table = text.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \| ([a-z ]+) \|", table, re.MULTILINE)
    documented = [(code, int(status), category) for code, status, category in rows]
    assert documented == [
        (entry.code, entry.status, entry.category.value.replace("_", " ")) for entry in ERRORS
    ]


def test_ledger_refuses_update_delete_truncate(client, conn: psycopg.Connection, game: Game):
    grant(client, game, "p1", "COINS", 60)
    buy(client, game, "potion")  # an item-ledger row too
    for statement in [
        "UPDATE ledger_entries SET delta = 1000",
        "DELETE FROM ledger_entries",
        "TRUNCATE ledger_entries CASCADE",
        "UPDATE item_ledger SET delta = 5",
        "DELETE FROM catalog_versions",
    ]:
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute(statement)
    rows = conn.execute(
        "SELECT delta FROM ledger_entries WHERE game_id = %s ORDER BY id", (game.id,)
    ).fetchall()
    assert rows == [(60,), (-50,)]


def test_balance_checks_hold_in_the_database(client, conn: psycopg.Connection, game: Game):
    grant(client, game, "p1", "COINS", 10)
    with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
        conn.execute("UPDATE wallets SET balance = -1 WHERE game_id = %s", (game.id,))
    with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
        conn.execute("UPDATE wallets SET balance = 9007199254740992 WHERE game_id = %s", (game.id,))


def test_audit_passes_then_catches_tampering(client, conn: psycopg.Connection, game: Game):
    grant(client, game, "p1", "COINS", 1000)
    grant(client, game, "p1", "GEMS", 5)
    buy(client, game, "starter_pack")
    buy(client, game, "dragon_egg")
    buy(client, game, "potion", quantity=2)
    assert [v for v in audit(conn) if game.id in v] == []
    conn.execute(
        "UPDATE wallets SET balance = balance + 5 WHERE game_id = %s AND currency = 'COINS'",
        (game.id,),
    )
    conn.execute(
        "UPDATE stock_buckets SET remaining = remaining + 1"
        " WHERE game_id = %s AND sku = 'dragon_egg' AND bucket = 0",
        (game.id,),
    )
    found = [v for v in audit(conn) if game.id in v]
    assert any(v.startswith("wallet balance equals the sum of its ledger deltas") for v in found)
    assert any(f"stock {game.id}/dragon_egg" in v for v in found)
