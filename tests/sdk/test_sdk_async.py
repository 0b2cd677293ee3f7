"""AsyncStoreClient: the same rules as StoreClient, awaited (run with asyncio.run)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from shopkeep import AsyncStoreClient, InsufficientFunds, Timeout
from support.sdk_fakes import Crash, FakeStore, faulty

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def make(
    handler: Callable[[httpx.Request], httpx.Response], sleeps: list[float], **options: Any
) -> AsyncStoreClient:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    options.setdefault("jitter", lambda ceiling: ceiling)
    return AsyncStoreClient(
        "http://shop.test", "t", transport=httpx.MockTransport(handler), sleep=sleep, **options
    )


def test_dropped_response_is_retried_with_the_same_key(
    store: FakeStore, sleeps: list[float]
) -> None:
    async def main() -> None:
        async with make(faulty(store, ["drop"]), sleeps) as client:
            result = await client.purchase("sword")
            assert result.replayed is True
            assert result.balance("COINS") == 700

    run(main())
    keys = store.purchase_keys
    assert len(keys) == 2 and keys[0] == keys[1]
    assert len(store.purchases) == 1
    assert sleeps == [0.5]


def test_ledger_is_an_async_iterator(store: FakeStore, sleeps: list[float]) -> None:
    async def main() -> list[int]:
        async with make(store, sleeps) as client:
            for _ in range(3):
                await client.purchase("potion")
            return [entry.balance_after async for entry in client.ledger(limit=2)]

    assert run(main()) == [850, 900, 950]
    cursors = [r.url.params.get("cursor") for r in store.requests if r.url.path.endswith("ledger")]
    assert cursors == [None, "2"]


def test_reads_errors_and_the_catalog_cache(store: FakeStore, sleeps: list[float]) -> None:
    async def main() -> None:
        async with make(store, sleeps) as client:
            first = await client.catalog()
            assert await client.catalog() is first
            assert client.cached_catalog is first
            assert (await client.wallet()).balance("COINS") == 1000
            assert (await client.inventory()).items == ()
            store.balances["COINS"] = 0
            with pytest.raises(InsufficientFunds):
                await client.purchase("sword")

    run(main())
    assert store.requests[1].headers["If-None-Match"] == '"catalog-3"'
    assert sleeps == []


def test_timeouts_exhaust_the_budget(store: FakeStore, sleeps: list[float]) -> None:
    async def main() -> None:
        async with make(faulty(store, ["timeout"] * 9), sleeps, max_retries=2) as client:
            await client.wallet()

    with pytest.raises(Timeout):
        run(main())
    assert sleeps == [0.5, 1.0]


def test_resume_pending_after_a_crash(
    tmp_path: Path, store: FakeStore, sleeps: list[float]
) -> None:
    path = tmp_path / "pending.json"

    async def crash() -> None:
        async with make(faulty(store, ["crash_after"]), sleeps, pending_path=path) as client:
            await client.purchase("sword")

    with pytest.raises(Crash):
        run(crash())

    async def restart() -> list[Any]:
        async with make(store, sleeps, pending_path=path) as client:
            assert len(client.pending()) == 1
            return await client.resume_pending()

    [outcome] = run(restart())
    assert outcome.state == "completed"
    assert outcome.result.replayed is True
    assert len(store.purchases) == 1
    assert store.balances["COINS"] == 700
