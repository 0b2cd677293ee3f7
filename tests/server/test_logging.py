"""Logs an operator can search: one JSON access line per request with its request id, the same
id on an unhandled error's line as in the response, never the token, and SHOPKEEP_LOG_LEVEL
applied to every logger of the real server (the app's own and gunicorn's)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shopkeep_server import logs
from shopkeep_server.store import players
from support import Game, start_server, stop_server


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger writing JSON lines to a buffer for the test, as the server does."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    for handler in saved_handlers:
        root.removeHandler(handler)
    buffer = io.StringIO()
    logs.configure("INFO", stream=buffer, json_lines=True)
    try:
        yield buffer
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)


def _lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line]


def test_one_access_line_per_request(client, game: Game, captured: io.StringIO) -> None:
    token = game.token("service", "support-bot")
    response = client.get(
        "/v1/players/p1/wallet",
        headers={"Authorization": f"Bearer {token}", "X-Request-Id": "support-ticket-4711"},
    )
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] == "support-ticket-4711"
    lines = _lines(captured)
    access = [line for line in lines if line["logger"] == logs.ACCESS_LOGGER]
    assert len(access) == 1, lines
    line = access[0]
    assert line["request_id"] == "support-ticket-4711"
    assert line["method"] == "GET"
    assert line["route"] == "/v1/players/{player_id}/wallet"
    assert line["path"] == "/v1/players/p1/wallet"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert (line["game"], line["subject"]) == (game.id, "support-bot")
    assert line["level"] == "INFO"
    assert line["time"].endswith("+00:00")
    assert token not in captured.getvalue()
    assert token.split(".")[2] not in captured.getvalue()


def test_an_unhandled_error_logs_the_request_id_of_the_response(
    client, game: Game, captured: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("the wallet broke")

    monkeypatch.setattr(players, "wallet_json", broken)
    response = client.get("/v1/wallet", headers=game.headers())
    assert response.status_code == 500
    request_id = response.headers["X-Request-Id"]
    assert response.get_json()["error"] == {
        "code": "internal_error",
        "message": "internal error",
        "details": {},
        "request_id": request_id,
    }
    lines = _lines(captured)
    errors = [line for line in lines if line["level"] == "ERROR"]
    assert len(errors) == 1, lines
    assert errors[0]["request_id"] == request_id
    assert "RuntimeError: the wallet broke" in errors[0]["exc_info"]
    access = [line for line in lines if line["logger"] == logs.ACCESS_LOGGER]
    assert [(a["status"], a["request_id"]) for a in access] == [(500, request_id)]


def test_lines_outside_a_request_have_no_request_id(captured: io.StringIO) -> None:
    logging.getLogger("shopkeep_server.janitor").warning("purge failed")
    (line,) = _lines(captured)
    assert line["request_id"] is None
    assert line["message"] == "purge failed"


def test_a_terminal_gets_readable_lines() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    handler = logs.make_handler(stream)
    token = logs.request_id_var.set("abc123")
    try:
        record = logging.LogRecord(
            "shopkeep_server.x", logging.INFO, __file__, 1, "hello", None, None
        )
        handler.handle(record)
    finally:
        logs.request_id_var.reset(token)
    text = stream.getvalue()
    assert not text.startswith("{")
    assert "INFO shopkeep_server.x [abc123] hello" in text


def test_openapi_route() -> None:
    assert logs.openapi_route("/v1/purchases/<uuid:purchase_id>/refund") == (
        "/v1/purchases/{purchase_id}/refund"
    )
    assert logs.openapi_route("/v1/players/<string:player_id>/grants") == (
        "/v1/players/{player_id}/grants"
    )
    assert logs.openapi_route("/v1/admin/catalog/versions/<int:version>") == (
        "/v1/admin/catalog/versions/{version}"
    )


# --- the real server ---------------------------------------------------------------------------


def _server_lines(log_path: Path) -> list[dict[str, Any]]:
    lines = []
    for text in log_path.read_text().splitlines():
        if text.startswith("Shopkeep serving on"):  # the command's banner, on stdout
            continue
        lines.append(json.loads(text))  # every other line is one JSON object
    return lines


@pytest.mark.slow
def test_the_server_writes_json_lines_with_request_ids(database_url: str, tmp_path: Path) -> None:
    log_path = tmp_path / "server.log"
    server = start_server(database_url, log_path, workers=1)
    try:
        game = server.new_game()
        response = httpx.get(
            f"{server.url}/v1/players/p9/ledger?limit=5",
            headers={"Authorization": f"Bearer {game.token('service', 'backend')}"},
        )
        assert response.status_code == 200
        request_id = response.headers["X-Request-Id"]
    finally:
        stop_server(server)
    lines = _server_lines(log_path)
    loggers = {line["logger"] for line in lines}
    assert "gunicorn.error" in loggers  # gunicorn's own lines share the format
    mine = [line for line in lines if line.get("request_id") == request_id]
    assert len(mine) == 1, mine
    assert mine[0]["route"] == "/v1/players/{player_id}/ledger"
    assert (mine[0]["status"], mine[0]["game"], mine[0]["subject"]) == (200, game.id, "backend")
    assert not [line for line in lines if line["logger"] == "gunicorn.access"]


@pytest.mark.slow
def test_log_level_reaches_every_logger(database_url: str, tmp_path: Path) -> None:
    log_path = tmp_path / "server.log"
    server = start_server(database_url, log_path, workers=1, env={"SHOPKEEP_LOG_LEVEL": "WARNING"})
    try:
        game = server.new_game()
        response = httpx.get(f"{server.url}/v1/wallet", headers=game.headers())
        assert response.status_code == 200
        # Refused by the worker before the app: a WARNING line with the answer's request id.
        refused = httpx.get(f"{server.url}/v1/stock?sku=" + "a" * 9000, headers=game.headers())
        assert refused.status_code == 400
    finally:
        stop_server(server)
    lines = _server_lines(log_path)
    # Neither gunicorn's "Booting worker" nor the app's access lines: both are INFO.
    assert [line for line in lines if line["level"] in ("DEBUG", "INFO")] == []
    warnings = [line for line in lines if line["request_id"] == refused.headers["X-Request-Id"]]
    assert [(line["level"], line["logger"]) for line in warnings] == [
        ("WARNING", "shopkeep_server.serving")
    ]
