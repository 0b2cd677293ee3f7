"""Property-based: Schemathesis generates requests from the served OpenAPI document
(/openapi.json) for every operation, with the token of the role the operation is for, and every
answer must be no 5xx and exactly as documented (status, content type, headers, body schema).

Bounded so it runs in CI: a fixed number of examples per operation, derandomized so a run is
repeatable (a failure prints the request to replay), inside the rolled-back transaction of the
``app`` fixture, as the server's database role.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shopkeep_server.runtime.services import EXTENSION
from support import Game

EXAMPLES_PER_OPERATION = int(os.environ.get("SHOPKEEP_FUZZ_EXAMPLES", "12"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def role_for(path: str) -> str:
    """The role an operation is for (api.md): the studio's under /v1/admin, the game backend's
    on another player's records and refunds, the player's everywhere else (the operations
    several roles may call accept a player's token)."""
    if path.startswith("/v1/admin/"):
        return "studio"
    if path.startswith("/v1/players/") or path.endswith("/refund"):
        return "service"
    return "player"


def test_every_answer_is_documented_and_none_is_a_5xx(app: Flask, game: Game) -> None:
    # One test over every operation, each its own Hypothesis run: schemathesis' pytest loader
    # for fixtures (from_fixture) reads a private attribute pytest 9 no longer has.
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, [op.label for op in operations]
    failures: dict[str, str] = {}
    for operation in operations:
        try:
            fuzz(operation, game.token(role_for(operation.path), "fuzz-player"))
        except Exception as exc:  # every operation is tried; all failures are reported
            failures[operation.label] = f"{type(exc).__name__}: {exc}"
    assert failures == {}
    # Every operation was really called (the app counts what it answered), a few times each.
    answered = sum(
        sample.value
        for family in services_of(app).metrics.registry.collect()
        if family.name == "shopkeep_http_requests"
        for sample in family.samples
        if sample.name.endswith("_total")
    )
    assert answered >= 3 * len(operations)


def services_of(app: Flask) -> Any:
    return app.extensions[EXTENSION]


def fuzz(operation: Any, token: str) -> None:
    """One Hypothesis run over ``operation``: valid requests and invalid ones (negative mode:
    wrong types, missing fields, bad headers...), each sent with ``token``."""
    cases = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_documented(case: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
        case.call_and_validate(checks=CHECKS)

    answers_as_documented()
