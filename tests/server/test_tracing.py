"""Tracing through OpenTelemetry (the `otel` extra, installed by the dev extra): a request
makes a server span named by its route, with the SQL it ran as child spans."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shopkeep_server import db, tracing
from shopkeep_server.app import create_app
from support import Game, app_database_url, make_config


@pytest.fixture
def traced(database_url: str) -> Iterator[tuple[Flask, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = tracing.start(exporter, batch=False)
    config = make_config(app_database_url(database_url), pool_min=1, pool_max=2)
    database = db.PooledDatabase(config, config.database_url or "", open_wait=True)
    app = create_app(config, database=database)
    tracing.trace_app(app, provider)
    try:
        yield app, exporter
    finally:
        database.close()
        FlaskInstrumentor().uninstrument_app(app)
        tracing.stop()
        provider.shutdown()


def test_a_request_is_a_span_with_its_sql_inside(
    traced: tuple[Flask, InMemorySpanExporter], committed_game: Game
) -> None:
    app, exporter = traced
    response = app.test_client().get("/v1/wallet", headers=committed_game.headers())
    assert response.status_code == 200
    spans = exporter.get_finished_spans()
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    assert [s.name for s in servers] == ["GET /v1/wallet"]
    server: Any = servers[0]
    assert server.attributes["http.route"] == "/v1/wallet"
    statements = [
        s
        for s in spans
        if s.kind is SpanKind.CLIENT
        and s.parent is not None
        and s.parent.span_id == server.context.span_id
    ]
    assert statements, [(s.name, s.kind) for s in spans]
    assert all(s.attributes.get("db.system") == "postgresql" for s in statements)


def test_tracing_is_off_unless_asked() -> None:
    assert tracing.available()
    assert tracing.start_from_env({}) is None
    assert tracing.start_from_env({"OTEL_TRACES_EXPORTER": "none"}) is None
    with pytest.raises(ValueError, match="otlp"):
        tracing.start_from_env({"OTEL_TRACES_EXPORTER": "zipkin-by-carrier-pigeon"})
