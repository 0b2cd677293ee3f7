"""The pytest plugin that captures every answer the suite's requests get and checks it.

Two sources: Flask's ``request_finished`` signal (every app the tests build, whatever client
they use) and httpx's ``send`` (the live servers the SDK, CLI and game tests talk to over real
HTTP; an answer counts as the store's when it comes from 127.0.0.1 with the X-Request-Id every
store answer carries, so the suite's fake upstreams are left out). The answers of a test are
checked when its call ends, so a drift fails the test that produced it; answers got while a
fixture tears down fail that teardown.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Generator
from typing import Any

import flask
import httpx
import pytest

from .checker import Answer, contract


class Recorder:
    """Answers captured since the last check (requests may come from the test's threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: list[Answer] = []
        self.checked = 0
        self.seen: set[tuple[str, str, int]] = set()

    def add(self, answer: Answer) -> None:
        with self._lock:
            self._answers.append(answer)

    def clear(self) -> None:
        with self._lock:
            self._answers.clear()

    def check(self, *, planted: bool = False) -> list[str]:
        with self._lock:
            answers, self._answers = self._answers, []
        if planted:
            answers = [a for a in answers if a.headers.get("idempotent-replayed") != "true"]
        the_contract = contract()
        problems: list[str] = []
        for answer in answers:
            operation = the_contract.operation_for(answer.method, answer.path)
            if operation is not None:
                self.checked += 1
                self.seen.add((operation.method, operation.path, answer.status))
            problems += the_contract.problems(answer)
        return problems


RECORDER = Recorder()


def _from_flask(sender: flask.Flask, response: flask.Response, **_: Any) -> None:
    if response.is_streamed or response.direct_passthrough:
        return
    RECORDER.add(
        Answer(
            method=flask.request.method,
            path=flask.request.path,
            status=response.status_code,
            headers={name.lower(): value for name, value in response.headers.items()},
            body=response.get_data(),
            source="test client",
        )
    )


def _from_httpx(response: httpx.Response) -> None:
    url = response.request.url
    if url.host != "127.0.0.1" or "X-Request-Id" not in response.headers:
        return
    RECORDER.add(
        Answer(
            method=response.request.method,
            path=url.path,
            status=response.status_code,
            headers={name.lower(): value for name, value in response.headers.items()},
            body=response.content,
            source=f"{url.scheme}://{url.host}:{url.port}",
        )
    )


def _watch_sync(send: Any) -> Any:
    @functools.wraps(send)
    def watched(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = send(self, request, **kwargs)
        if not kwargs.get("stream"):
            _from_httpx(response)
        return response

    return watched


def _watch_async(send: Any) -> Any:
    @functools.wraps(send)
    async def watched(
        self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any
    ) -> httpx.Response:
        response = await send(self, request, **kwargs)
        if not kwargs.get("stream"):
            _from_httpx(response)
        return response

    return watched


_patches = pytest.MonkeyPatch()


PLANTED = "planted_outcome"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{PLANTED}: the test writes an idempotency outcome into the store itself; its replays "
        "are the test's data, not the server's, and are not held to the wire contract",
    )
    flask.request_finished.connect(_from_flask)
    _patches.setattr(httpx.Client, "send", _watch_sync(httpx.Client.send))
    _patches.setattr(httpx.AsyncClient, "send", _watch_async(httpx.AsyncClient.send))


def pytest_unconfigure(config: pytest.Config) -> None:
    flask.request_finished.disconnect(_from_flask)
    _patches.undo()


class ContractDrift(AssertionError):
    """An answer the suite got departs from the OpenAPI document or the SDK's reading of it."""


def _raise_drift(problems: list[str]) -> None:
    if problems:
        raise ContractDrift("wire contract broken:\n  " + "\n  ".join(problems))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    RECORDER.clear()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    result = yield  # a test that failed already says why; its answers are not checked
    _raise_drift(RECORDER.check(planted=item.get_closest_marker(PLANTED) is not None))
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    result = yield
    _raise_drift(RECORDER.check(planted=item.get_closest_marker(PLANTED) is not None))
    return result


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if RECORDER.checked:
        operations = {(method, path) for method, path, _ in RECORDER.seen}
        terminalreporter.write_line(
            f"wire contract: {RECORDER.checked} answers checked over {len(operations)} operations"
        )
