"""Checks one HTTP answer against the contract the server documents for it.

The contract is the OpenAPI document flask-smorest builds from the routes' decorators (and the
shared responses of api/openapi.py): for an operation and a status, the marshmallow schema its
body must load through (unknown fields refused, required fields present), the headers it
declares and, for an error, the codes its description names. Nothing here restates a shape:
the schema class is found through the document's ``$ref`` in the marshmallow plugin's own
registry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
from flask import Flask
from flask_smorest.spec.plugins import FlaskPlugin
from marshmallow import RAISE, Schema, ValidationError
from werkzeug.exceptions import HTTPException

from shopkeep_server.api.schemas import ErrorSchema, documented_codes
from shopkeep_server.app import create_app
from shopkeep_server.config import Config

from .sdk_view import sdk_problems


@dataclasses.dataclass(frozen=True)
class Answer:
    """One HTTP answer the suite received, as the client saw it."""

    method: str
    path: str
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    source: str  # "test client" or the base URL of a live server

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip()

    def describe(self) -> str:
        return f"{self.method} {self.path} -> {self.status} ({self.source})"


@dataclasses.dataclass(frozen=True)
class Documented:
    """What the document says of one status of one operation."""

    schema: type[Schema] | None
    headers: frozenset[str]  # lower-case names
    required_headers: frozenset[str]
    # The error codes the description names for this status (api/schemas.documented_codes):
    # an error answer must carry one of them.
    codes: frozenset[str]


@dataclasses.dataclass(frozen=True)
class Operation:
    endpoint: str
    method: str
    path: str  # the OpenAPI path template
    responses: Mapping[int, Documented]


class _NoDatabase:
    """The document needs an app, not a database: any use of this one is a bug of the test."""

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        raise RuntimeError("the contract's app has no database")
        yield  # pragma: no cover

    def close(self) -> None:
        return None


class Contract:
    """The operations of the OpenAPI document, each with its documented responses."""

    def __init__(self, app: Flask) -> None:
        api = app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
        self.document: dict[str, Any] = api.spec.to_dict()
        schema_by_name = {name: key[0] for key, name in api.ma_plugin.converter.refs.items()}
        self.api_headers: set[str] = set()
        self.operations: dict[tuple[str, str], Operation] = {}
        for rule in app.url_map.iter_rules():
            path = FlaskPlugin.flaskpath2openapi(rule.rule)
            for method in sorted(rule.methods or ()):
                operation = self.document["paths"].get(path, {}).get(method.lower())
                if operation is None:
                    continue
                responses = {
                    int(status): self._documented(response, schema_by_name)
                    for status, response in operation["responses"].items()
                }
                self.operations[(rule.endpoint, method)] = Operation(
                    rule.endpoint, method, path, responses
                )
        self._urls = app.url_map.bind("localhost")

    def _documented(self, response: dict[str, Any], schemas: dict[str, type[Schema]]) -> Documented:
        headers = response.get("headers", {})
        self.api_headers.update(name.lower() for name in headers)
        schema = None
        ref = response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
        if ref is not None:
            schema = schemas[ref.rsplit("/", 1)[1]]
        return Documented(
            schema=schema,
            headers=frozenset(name.lower() for name in headers),
            required_headers=frozenset(
                name.lower() for name, header in headers.items() if header.get("required")
            ),
            codes=documented_codes(response.get("description", "")),
        )

    def operation_for(self, method: str, path: str) -> Operation | None:
        try:
            endpoint, _ = self._urls.match(path, method=method)
        except HTTPException:
            return None
        return self.operations.get((str(endpoint), method))

    def problems(self, answer: Answer) -> list[str]:
        """How ``answer`` departs from the document (nothing for a path that is not the API's)."""
        operation = self.operation_for(answer.method, answer.path)
        if operation is None:
            return []
        where = f"{answer.describe()} [{operation.endpoint}]"
        documented = operation.responses.get(answer.status)
        if documented is None:
            return [f"{where}: status {answer.status} is not documented for {operation.path}"]
        problems: list[str] = []
        present = {name.lower() for name in answer.headers}
        for name in sorted((present & self.api_headers) - documented.headers):
            problems.append(f"{where}: header {name} is sent but not documented")
        for name in sorted(documented.required_headers - present):
            problems.append(f"{where}: documented header {name} is missing")
        if documented.schema is None:
            return problems
        if answer.content_type != "application/json":
            return [*problems, f"{where}: documented as JSON, sent as {answer.content_type!r}"]
        body = json.loads(answer.body)
        try:
            documented.schema(unknown=RAISE).load(body)
        except ValidationError as error:
            problems.append(
                f"{where}: body does not match {documented.schema.__name__}: {error.messages}"
                f"\n    body: {answer.body[:2000].decode(errors='replace')}"
            )
        else:
            code = body["error"]["code"] if documented.schema is ErrorSchema else None
            if code is not None and code not in documented.codes:
                problems.append(
                    f"{where}: error code {code} is not documented for status {answer.status}"
                    f" (documented: {', '.join(sorted(documented.codes))})"
                )
        response = httpx.Response(
            answer.status,
            headers=answer.headers,
            content=answer.body,
            # The path as sent may hold what a URL cannot (a refused "potion\n"): quoted here.
            request=httpx.Request(answer.method, f"http://contract.test{quote(answer.path)}"),
        )
        problems += [f"{where}: SDK: {p}" for p in sdk_problems(operation.endpoint, response)]
        return problems


_contract: Contract | None = None


def contract() -> Contract:
    """The contract of this tree's app, built once per session."""
    global _contract
    if _contract is None:
        app = create_app(Config(database_url=None, rate_limit=None), database=_NoDatabase())
        _contract = Contract(app)
    return _contract
