"""The studio client (and the catalog CLI on it) and the load tests decide retries by the
contract's categories (through the SDK's mirror), for every code of the table."""

from __future__ import annotations

import httpx
import pytest

from loadtests.common import unsettled
from shopkeep import catalog_cli
from shopkeep.catalog_cli import Exit, Failure
from shopkeep.errors import ShopkeepError, error_from_body
from shopkeep.studio import StudioClient
from shopkeep_server.contract import ERRORS, ErrorCategory, ErrorCode, error_body

RETRIES = 2


@pytest.mark.parametrize("entry", ERRORS, ids=lambda e: e.code)
def test_the_studio_client_resends_exactly_the_transient_answers_with_the_same_key(
    entry: ErrorCode,
) -> None:
    keys: list[str | None] = []
    etags: list[str | None] = []

    def store(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers.get("Idempotency-Key"))
        etags.append(request.headers.get("If-Match"))
        return httpx.Response(entry.status, json=error_body(entry.code, entry.message, {}, "r"))

    slept: list[float] = []
    client = StudioClient(
        "http://store.test",
        "token",
        transport=httpx.MockTransport(store),
        max_retries=RETRIES,
        sleep=slept.append,
    )
    try:
        with pytest.raises(ShopkeepError) as caught:
            client.publish(notes="", if_match='"draft-7"')
    finally:
        client.close()
    transient = entry.category is ErrorCategory.TRANSIENT
    assert len(keys) == (RETRIES + 1 if transient else 1)
    assert len(set(keys)) == 1 and keys[0]
    assert set(etags) == {'"draft-7"'}
    assert len(slept) == len(keys) - 1
    assert (caught.value.code, caught.value.status) == (entry.code, entry.status)


@pytest.mark.parametrize("entry", ERRORS, ids=lambda e: e.code)
def test_the_cli_exit_code_follows_the_category(entry: ErrorCode) -> None:
    error = error_from_body(entry.status, error_body(entry.code, entry.message, {}, "r"))
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
