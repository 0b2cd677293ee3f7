"""The catalog CLI and the load tests decide retries by the contract's categories (through the
SDK's mirror), for every code of the table."""

from __future__ import annotations

import httpx
import pytest

from loadtests.common import unsettled
from shopkeep.errors import error_from_body
from shopkeep_server import catalog_cli
from shopkeep_server.catalog_cli import ATTEMPTS, ApiError, Exit, Failure, StudioClient
from shopkeep_server.contract import ERRORS, ErrorCategory, ErrorCode, error_body


@pytest.mark.parametrize("entry", ERRORS, ids=lambda e: e.code)
def test_the_cli_resends_exactly_the_transient_answers_with_the_same_key(
    entry: ErrorCode, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys: list[str | None] = []

    def store(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers.get("Idempotency-Key"))
        return httpx.Response(entry.status, json=error_body(entry.code, entry.message, {}, "r"))

    slept: list[float] = []
    monkeypatch.setattr(catalog_cli.time, "sleep", slept.append)
    client = StudioClient("http://store.test", "token", transport=httpx.MockTransport(store))
    try:
        with pytest.raises(ApiError) as caught:
            client.call("POST", "/v1/admin/catalog/publish", json={"notes": ""})
    finally:
        client.close()
    transient = entry.category is ErrorCategory.TRANSIENT
    assert len(keys) == (ATTEMPTS if transient else 1)
    assert len(set(keys)) == 1 and keys[0]
    assert len(slept) == len(keys) - 1
    assert (caught.value.code, caught.value.status) == (entry.code, entry.status)


@pytest.mark.parametrize("entry", ERRORS, ids=lambda e: e.code)
def test_the_cli_exit_code_follows_the_category(entry: ErrorCode) -> None:
    error = ApiError(entry.status, entry.code, entry.message, {}, "r")
    with pytest.raises(Failure) as caught:
        catalog_cli._fail_api(error)
    if entry.category is ErrorCategory.TRANSIENT:
        expected = Exit.UNREACHABLE
    elif entry.status in (401, 403):
        expected = Exit.AUTH
    else:
        expected = Exit.REFUSED
    assert caught.value.exit_code == expected


@pytest.mark.parametrize("entry", ERRORS, ids=lambda e: e.code)
def test_the_load_tests_leave_open_exactly_the_transient_answers(entry: ErrorCode) -> None:
    error = error_from_body(entry.status, error_body(entry.code, entry.message, {}, "r"))
    assert unsettled(error) is (entry.category is ErrorCategory.TRANSIENT)
