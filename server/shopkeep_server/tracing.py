"""Optional tracing with OpenTelemetry: a span per request (Flask's instrumentation) with a
child per SQL statement (psycopg's), when the operator installs the extra
(`pip install './server[otel]'`) and asks for it with OpenTelemetry's own variable
``OTEL_TRACES_EXPORTER`` (``otlp`` or ``console``; ``OTEL_SERVICE_NAME``,
``OTEL_EXPORTER_OTLP_ENDPOINT`` and the other OTEL_* variables apply as documented by
OpenTelemetry). Without the extra, or without the variable, nothing is imported or patched.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

EXPORTER_VARIABLE = "OTEL_TRACES_EXPORTER"


def available() -> bool:
    """Whether the extra is installed: the SDK and both instrumentations."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in (
            "opentelemetry.sdk",
            "opentelemetry.instrumentation.flask",
            "opentelemetry.instrumentation.psycopg",
        )
    )


def start_from_env(env: Mapping[str, str] | None = None) -> Any | None:
    """The tracer provider when the extra is installed and OTEL_TRACES_EXPORTER names an
    exporter (psycopg traced from now on: call it before the pool opens), else None."""
    env = os.environ if env is None else env
    wanted = env.get(EXPORTER_VARIABLE, "").strip().lower()
    if wanted in ("", "none"):
        return None
    if not available():
        log.warning(
            "%s=%s but the tracing extra is not installed (pip install 'shopkeep-server[otel]'):"
            " tracing is off",
            EXPORTER_VARIABLE,
            wanted,
        )
        return None
    return start(_exporter(wanted), service_name=env.get("OTEL_SERVICE_NAME"))


def _exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name == "otlp":
        # The transport is the operator's choice: install opentelemetry-exporter-otlp-proto-http
        # (or -grpc, and set OTEL_EXPORTER_OTLP_PROTOCOL) beside the extra.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
            OTLPSpanExporter,
        )

        return OTLPSpanExporter()
    raise ValueError(f"{EXPORTER_VARIABLE}={name}: the server knows `otlp` and `console`")


def start(exporter: Any, *, service_name: str | None = None, batch: bool = True) -> Any:
    """A tracer provider exporting to ``exporter``, and every psycopg connection opened from
    now on traced into it (a span per statement); ``shutdown()`` flushes it."""
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    # Resource.create() also reads OTEL_RESOURCE_ATTRIBUTES.
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name or "shopkeep"})
    )
    provider.add_span_processor(
        BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    )
    instrumentor = PsycopgInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider, skip_dep_check=True)
    return provider


def trace_app(app: Flask, provider: Any) -> None:
    """A server span per request of ``app`` (named by its route), into ``provider``."""
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    FlaskInstrumentor().instrument_app(app, tracer_provider=provider)


def stop() -> None:
    """Stops tracing psycopg (tests: the patch is process-wide)."""
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    PsycopgInstrumentor().uninstrument()
