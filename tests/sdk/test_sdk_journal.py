"""The pending journal: a purchase survives a crash or an outage and is charged exactly once."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from shopkeep import ConnectionError, ServiceUnavailable, SoldOut, StoreClient
from shopkeep.journal import PendingJournal, PendingPurchase
from support.sdk_fakes import Crash, FakeStore, error_response, faulty


def _journal(path: Path) -> list[dict[str, object]]:
    return json.loads(path.read_text())["entries"]


def test_the_purchase_is_journaled_before_it_is_sent(
    tmp_path: Path, store: FakeStore, make_client: Callable[..., StoreClient]
) -> None:
    path = tmp_path / "pending.json"
    seen_on_disk: list[list[dict[str, object]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen_on_disk.append(_journal(path))
        return store(request)

    client = make_client(handler, pending_path=path)
    result = client.purchase("sword", quantity=1)

    [entries] = seen_on_disk
    assert len(entries) == 1
    assert entries[0]["idempotency_key"] == result.idempotency_key
    assert entries[0]["body"] == {"sku": "sword", "quantity": 1}
    assert entries[0]["path"] == "/v1/purchases"
    # Settled with a 201: gone from the journal.
    assert _journal(path) == []
    assert client.pending() == []


def test_a_final_rejection_settles_the_entry(
    tmp_path: Path, make_client: Callable[..., StoreClient]
) -> None:
    path = tmp_path / "pending.json"
    client = make_client(lambda r: error_response(409, "sold_out"), pending_path=path)
    with pytest.raises(SoldOut):
        client.purchase("dragon_egg")
    assert _journal(path) == []


@pytest.mark.parametrize(
    "handler",
    [
        faulty(FakeStore(), ["refuse"] * 10),
        faulty(FakeStore(), ["drop"] * 10),
        lambda r: error_response(503, "unavailable", headers={"Retry-After": "1"}),
    ],
    ids=["refused", "dropped", "503"],
)
def test_network_failures_leave_the_entry(
    handler: Callable[[httpx.Request], httpx.Response],
    tmp_path: Path,
    make_client: Callable[..., StoreClient],
) -> None:
    path = tmp_path / "pending.json"
    client = make_client(handler, pending_path=path, max_retries=2)
    with pytest.raises((ConnectionError, ServiceUnavailable)) as caught:
        client.purchase("sword")
    [pending] = client.pending()
    assert pending.idempotency_key == caught.value.idempotency_key
    assert (pending.sku, pending.quantity) == ("sword", 1)


def test_crash_before_send_then_resume_buys_exactly_once(
    tmp_path: Path, store: FakeStore, make_client: Callable[..., StoreClient]
) -> None:
    path = tmp_path / "pending.json"
    doomed = make_client(faulty(store, ["crash"]), pending_path=path)
    with pytest.raises(Crash):
        doomed.purchase("sword")
    assert store.purchases == []
    [entry] = _journal(path)

    # The next start of the game: a new client on the same journal.
    restarted = make_client(store, pending_path=path)
    [outcome] = restarted.resume_pending()

    assert outcome.state == "completed"
    assert outcome.result is not None
    assert outcome.result.idempotency_key == entry["idempotency_key"]
    assert outcome.result.replayed is False
    assert store.purchase_keys == [entry["idempotency_key"]]
    assert len(store.purchases) == 1
    assert store.balances["COINS"] == 700
    assert _journal(path) == []
    assert restarted.resume_pending() == []


def test_crash_after_the_server_committed_then_resume_replays(
    tmp_path: Path, store: FakeStore, make_client: Callable[..., StoreClient]
) -> None:
    path = tmp_path / "pending.json"
    doomed = make_client(faulty(store, ["crash_after"]), pending_path=path)
    with pytest.raises(Crash):
        doomed.purchase("sword")
    assert len(store.purchases) == 1  # charged, but the game never heard

    [outcome] = make_client(store, pending_path=path).resume_pending()

    assert outcome.state == "completed"
    assert outcome.result is not None and outcome.result.replayed is True
    assert outcome.result.purchase.id == store.purchases[0]["id"]
    assert len(set(store.purchase_keys)) == 1
    assert len(store.purchases) == 1
    assert store.balances["COINS"] == 700
    assert _journal(path) == []


def test_resume_while_offline_keeps_everything_and_stops_early(
    tmp_path: Path, make_client: Callable[..., StoreClient], sleeps: list[float]
) -> None:
    path = tmp_path / "pending.json"
    journal = PendingJournal(path)
    for n in range(3):
        journal.add(PendingPurchase.new(f"key-{n:020d}", {"sku": "potion", "quantity": 1}))
    attempts: list[httpx.Request] = []

    def offline(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise httpx.ConnectError("network is unreachable", request=request)

    outcomes = make_client(offline, pending_path=path, max_retries=1).resume_pending()

    assert [o.state for o in outcomes] == ["pending"] * 3
    assert all(isinstance(o.error, ConnectionError) for o in outcomes)
    assert len(attempts) == 2  # the first entry and its one retry; the rest wait
    assert [e["idempotency_key"] for e in _journal(path)] == [f"key-{n:020d}" for n in range(3)]


def test_resume_reports_rejections_and_drops_them(
    tmp_path: Path, make_client: Callable[..., StoreClient]
) -> None:
    path = tmp_path / "pending.json"
    store = FakeStore(coins=100)
    PendingJournal(path).add(PendingPurchase.new("key-rejected-000000001", {"sku": "sword"}))
    PendingJournal(path).add(PendingPurchase.new("key-accepted-000000001", {"sku": "potion"}))

    outcomes = make_client(store, pending_path=path).resume_pending()

    assert [(o.pending.sku, o.state) for o in outcomes] == [
        ("sword", "rejected"),
        ("potion", "completed"),
    ]
    assert outcomes[0].error is not None and outcomes[0].error.code == "insufficient_funds"
    assert store.balances["COINS"] == 50
    assert _journal(path) == []


def test_entries_older_than_the_key_ttl_are_not_resent(
    tmp_path: Path, store: FakeStore, make_client: Callable[..., StoreClient]
) -> None:
    path = tmp_path / "pending.json"
    old = PendingPurchase(
        idempotency_key="key-from-two-days-ago",
        body={"sku": "sword", "quantity": 1},
        created_at=datetime.now(UTC) - timedelta(days=2),
    )
    PendingJournal(path).add(old)
    [outcome] = make_client(store, pending_path=path).resume_pending()
    assert outcome.state == "expired"
    assert outcome.pending == old
    assert store.requests == []
    assert _journal(path) == []


def test_a_caller_key_already_journaled_is_not_duplicated(
    tmp_path: Path, store: FakeStore, make_client: Callable[..., StoreClient]
) -> None:
    path = tmp_path / "pending.json"
    client = make_client(faulty(store, ["refuse"] * 3), pending_path=path, max_retries=0)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            client.purchase("sword", idempotency_key="game-chosen-key-00001")
    assert [e["idempotency_key"] for e in _journal(path)] == ["game-chosen-key-00001"]


def test_a_pending_key_is_not_reused_for_another_purchase(
    tmp_path: Path, store: FakeStore, make_client: Callable[..., StoreClient]
) -> None:
    path = tmp_path / "pending.json"
    client = make_client(faulty(store, ["refuse"]), pending_path=path, max_retries=0)
    with pytest.raises(ConnectionError):
        client.purchase("sword", idempotency_key="game-chosen-key-00002")
    with pytest.raises(ValueError, match="pending for another purchase"):
        client.purchase("potion", idempotency_key="game-chosen-key-00002")
    assert [e["body"] for e in _journal(path)] == [{"sku": "sword", "quantity": 1}]
    assert len(store.requests) == 0


def test_the_journal_is_rewritten_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "nested" / "pending.json"
    journal = PendingJournal(path)
    journal.add(PendingPurchase.new("key-one-00000000000001", {"sku": "sword"}))
    before = path.read_bytes()

    def power_cut(src: object, dst: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", power_cut)
    with pytest.raises(OSError, match="power cut"):
        journal.add(PendingPurchase.new("key-two-00000000000002", {"sku": "potion"}))
    monkeypatch.undo()

    # The old journal is intact and no temp file is left behind.
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["pending.json"]
    assert [e.idempotency_key for e in journal.entries()] == ["key-one-00000000000001"]


def test_a_damaged_journal_is_raised_not_dropped(
    tmp_path: Path, store: FakeStore, make_client: Callable[..., StoreClient]
) -> None:
    path = tmp_path / "pending.json"
    path.write_text("{not json")
    client = make_client(store, pending_path=path)
    with pytest.raises(ValueError):
        client.resume_pending()
    with pytest.raises(ValueError):
        client.purchase("sword")
    assert store.requests == []


def test_without_a_journal_nothing_is_pending(
    store: FakeStore, make_client: Callable[..., StoreClient]
) -> None:
    client = make_client(store)
    assert client.pending() == []
    assert client.resume_pending() == []
