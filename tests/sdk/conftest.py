"""Fixtures of the SDK tests: MockTransport clients with recorded sleeps, and the live server."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

_HERE = Path(__file__).resolve().parent


def _sdk_importable() -> bool:
    try:
        import shopkeep
    except ImportError:
        return False
    # An editable install made before sdk/shopkeep/__init__.py existed finds a namespace package.
    return getattr(shopkeep, "__file__", None) is not None


# The SDK is importable once the project is installed; otherwise, test the tree in place.
if not _sdk_importable():
    sys.modules.pop("shopkeep", None)
    sys.path.insert(0, str(_HERE.parents[1] / "sdk"))
# sdk_fakes sits next to this file; make it importable under any pytest import mode. Appended,
# not prepended: this directory must never shadow tests/conftest.py, which tests/server imports.
if str(_HERE) not in sys.path:
    sys.path.append(str(_HERE))

from sdk_fakes import FakeStore  # noqa: E402

from shopkeep import StoreClient  # noqa: E402

BASE_URL = "http://shop.test"
TOKEN = "test-token"


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
