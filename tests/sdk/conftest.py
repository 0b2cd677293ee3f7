"""Fixtures of the SDK tests: MockTransport clients with recorded sleeps, and the live server.
The in-memory store and its fault injection are in tests/support/sdk_fakes.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from shopkeep import StoreClient
from support.sdk_fakes import BASE_URL, TOKEN, FakeStore


@pytest.fixture
def sleeps() -> list[float]:
    """Delays the client asked to sleep, in order (nothing really sleeps)."""
    return []


@pytest.fixture
def store() -> FakeStore:
    """A fresh in-memory store with 1000 COINS."""
    return FakeStore()


@pytest.fixture
def make_client(sleeps: list[float]) -> Iterator[Callable[..., StoreClient]]:
    """Build a StoreClient on a MockTransport; jitter is the identity, sleeps are recorded."""
    clients: list[StoreClient] = []

    def make(handler: Callable[[httpx.Request], httpx.Response], **options: Any) -> StoreClient:
        options.setdefault("jitter", lambda ceiling: ceiling)
        options.setdefault("sleep", sleeps.append)
        client = StoreClient(BASE_URL, TOKEN, transport=httpx.MockTransport(handler), **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def server(live_server: Any) -> Any:
    """The session's live server (tests/conftest.py's ``live_server``)."""
    return live_server
