"""The background path: calls never block a frame, callbacks arrive on the game's thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest

from shopkeep import ConnectionError, Handle, InsufficientFunds, PurchaseResult, StoreClient
from shopkeep.background import CancelledError
from support.sdk_fakes import FakeStore

pytestmark = pytest.mark.timeout(60)


def test_a_frame_loop_keeps_ticking_while_a_purchase_is_in_flight(
    store: FakeStore, make_client: Callable[..., StoreClient]
) -> None:
    release = threading.Event()
    handler_threads: list[int] = []

    def slow_server(request: httpx.Request) -> httpx.Response:
        handler_threads.append(threading.get_ident())
        # The server answers only once the game has drawn 100 frames: were any call on this
        # path blocking, the loop below could never reach frame 100 and the test would hang.
        assert release.wait(timeout=30)
        return store(request)

    shop = make_client(slow_server).background()
    game_thread = threading.get_ident()
    state = {"polling": False}
    delivered: list[tuple[int, bool, int]] = []

    def on_bought(handle: Handle[PurchaseResult]) -> None:
        delivered.append(
            (threading.get_ident(), state["polling"], handle.result().balance("COINS"))
        )

    handle = shop.purchase("sword")
    handle.add_done_callback(on_bought)

    frames = 0
    done_before_release = None
    while not delivered:
        frames += 1
        if frames == 100:
            done_before_release = handle.done()
            release.set()
        state["polling"] = True
        shop.poll()
        state["polling"] = False
        time.sleep(0.001)  # the rest of the frame

    assert frames > 100
    assert done_before_release is False
    assert delivered == [(game_thread, True, 700)]
    assert handler_threads and handler_threads[0] != game_thread
    assert len(store.purchases) == 1


def test_callbacks_wait_for_poll(store: FakeStore, make_client: Callable[..., StoreClient]) -> None:
    shop = make_client(store).background()
    calls: list[str] = []
    handle = shop.wallet()
    handle.add_done_callback(lambda h: calls.append("first"))
    handle.result(timeout=30)  # the call is finished...
    assert calls == []  # ...but nothing ran on the worker
    # Registered after completion: queued as well, not run here and now.
    handle.add_done_callback(lambda h: calls.append("second"))
    assert calls == []
    assert shop.queued_callbacks == 2
    assert shop.poll(max_callbacks=1) == 1
    assert calls == ["first"]
    assert shop.poll() == 1
    assert calls == ["first", "second"]
    assert shop.poll() == 0


def test_errors_come_back_through_the_handle(make_client: Callable[..., StoreClient]) -> None:
    shop = make_client(FakeStore(coins=10)).background()
    handle = shop.purchase("sword")
    errors: list[BaseException | None] = []
    handle.add_done_callback(lambda h: errors.append(h.exception()))
    assert isinstance(handle.exception(timeout=30), InsufficientFunds)
    with pytest.raises(InsufficientFunds):
        handle.result()
    shop.poll()
    assert len(errors) == 1 and isinstance(errors[0], InsufficientFunds)
    assert "failed" in repr(handle)


def test_a_callback_error_reaches_the_game_and_the_rest_still_run(
    store: FakeStore, make_client: Callable[..., StoreClient]
) -> None:
    shop = make_client(store).background()
    ran: list[str] = []
    handle = shop.inventory()
    handle.result(timeout=30)

    def broken(h: Handle[object]) -> None:
        raise RuntimeError("game bug")

    handle.add_done_callback(broken)
    handle.add_done_callback(lambda h: ran.append("next"))
    with pytest.raises(RuntimeError, match="game bug"):
        shop.poll()
    assert ran == []
    assert shop.poll() == 1
    assert ran == ["next"]


def test_every_call_has_a_background_twin(
    store: FakeStore, make_client: Callable[..., StoreClient]
) -> None:
    client = make_client(store)
    shop = client.background()
    assert client.background() is shop
    for _ in range(3):
        shop.purchase("potion").result(timeout=30)
    assert [e.balance_after for e in shop.ledger(limit=2).result(timeout=30)] == [850, 900, 950]
    assert shop.ledger_page(limit=2).result(timeout=30).next_cursor == "2"
    assert shop.inventory().result(timeout=30).quantity("potion") == 3
    assert shop.wallet().result(timeout=30).balance("COINS") == 850
    assert shop.catalog().result(timeout=30).version == 3
    assert shop.submit(lambda: client.wallet().balance("COINS")).result(timeout=30) == 850

    public = {
        name
        for name in dir(StoreClient)
        if not name.startswith("_") and callable(getattr(StoreClient, name))
    }
    lifecycle = {"background", "close", "pending"}
    missing = sorted(name for name in public - lifecycle if not hasattr(shop, name))
    assert missing == []


def test_close_cancels_queued_calls(store: FakeStore) -> None:
    gate = threading.Event()
    started = threading.Event()

    def blocked(request: httpx.Request) -> httpx.Response:
        started.set()
        gate.wait(timeout=30)
        return store(request)

    client = StoreClient(
        "http://shop.test",
        "t",
        transport=httpx.MockTransport(blocked),
        background_workers=1,
    )
    shop = client.background()
    running = shop.wallet()
    queued = shop.wallet()
    assert started.wait(timeout=30)
    closer = threading.Thread(target=client.close)
    closer.start()
    # close() cancels the queued call at once, then waits for the running one.
    with pytest.raises(CancelledError):
        queued.exception(timeout=30)
    assert queued.cancelled()
    gate.set()
    closer.join(timeout=30)
    assert running.result(timeout=30).balance("COINS") == 1000
    with pytest.raises(RuntimeError):
        shop.wallet()


def test_close_while_offline_does_not_wait_out_the_back_off(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A game quitting while the store is unreachable: close() wakes the retry's back-off, the
    purchase fails with its network error and stays in the journal for the next start."""
    attempts = threading.Event()

    def offline(request: httpx.Request) -> httpx.Response:
        attempts.set()
        raise httpx.ConnectError("store unreachable", request=request)

    client = StoreClient(
        "http://shop.test",
        "t",
        transport=httpx.MockTransport(offline),
        max_retries=50,
        backoff=3600.0,  # an hour: without the wake-up, close() would wait that long
        max_backoff=3600.0,
        jitter=lambda ceiling: ceiling,
        pending_path=tmp_path / "pending.json",
    )
    buying = client.background().purchase("potion")
    assert attempts.wait(timeout=30)
    closer = threading.Thread(target=client.close)
    closer.start()
    closer.join(timeout=30)
    assert not closer.is_alive()
    with pytest.raises(ConnectionError):
        buying.result(timeout=30)
    assert [p.sku for p in client.pending()] == ["potion"]
