"""Calls that never block a frame: worker threads send, the game's thread gets the callbacks.

::

    shop = client.background()
    handle = shop.purchase("sword")                  # returns at once
    handle.add_done_callback(on_bought)              # queued, not run on the worker
    while running:
        shop.poll()                                  # runs finished callbacks, here, now
        draw_frame()

Every method of :class:`~shopkeep.client.StoreClient` has a twin here returning a
:class:`Handle`. Iterating methods (``ledger()``, ``purchases()``...) collect every page into
a list on the worker; use the ``*_page`` twins to page by hand.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from .events import DEFAULT_PAGE_SIZE, Event, EventPage
from .holds import Hold
from .journal import PendingOutcome
from .models import (
    Amount,
    Catalog,
    GrantResult,
    Inventory,
    ItemQuantity,
    LedgerEntry,
    Page,
    Purchase,
    PurchaseResult,
    ReceiptResult,
    RedeemResult,
    StockLevel,
    Wallet,
)
from .money import Money
from .risk import PlayerRisk

if TYPE_CHECKING:
    from .client import StoreClient

# CancelledError is re-exported: it is what result() raises for a cancelled handle.
__all__ = ["Background", "CancelledError", "Handle"]

T = TypeVar("T")
P = ParamSpec("P")


class Handle(Generic[T]):
    """A call running in the background: poll ``done()``, then read ``result()``.

    Like ``concurrent.futures.Future``, except that callbacks added with
    :meth:`add_done_callback` run on the thread that calls :meth:`Background.poll`.
    """

    def __init__(self, future: Future[T], deliver: Callable[[Callable[[], object]], None]) -> None:
        self._future = future
        self._deliver = deliver

    def done(self) -> bool:
        """Whether the call has finished (with a result, an error, or cancelled)."""
        return self._future.done()

    def cancelled(self) -> bool:
        """Whether the call was cancelled before it started."""
        return self._future.cancelled()

    def cancel(self) -> bool:
        """Cancel the call if it has not started; ``False`` if it is running or done."""
        return self._future.cancel()

    def result(self, timeout: float | None = None) -> T:
        """The call's result, or raise its error; blocks until done (check :meth:`done` first)."""
        return self._future.result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The call's error, or ``None``; blocks until done (check :meth:`done` first)."""
        return self._future.exception(timeout)

    def add_done_callback(self, fn: Callable[[Handle[T]], object]) -> None:
        """Call ``fn(handle)`` from the next :meth:`Background.poll` after the call finishes.

        The worker thread only queues it; if the call is already done, it is queued at once.
        """
        # Future runs this hook on the worker (or here, if already done): it only enqueues.
        self._future.add_done_callback(lambda _f: self._deliver(lambda: fn(self)))

    def __repr__(self) -> str:
        if not self._future.done():
            state = "running"
        elif self._future.cancelled():
            state = "cancelled"
        else:
            state = "failed" if self._future.exception() is not None else "done"
        return f"<Handle {state}>"


class Background:
    """A small pool of worker threads running a :class:`StoreClient`'s calls.

    Get it from :meth:`StoreClient.background`; call :meth:`poll` once per frame on the
    game's thread. Only :meth:`poll` runs callbacks, so game state is never touched by a worker.
    """

    def __init__(self, client: StoreClient, *, workers: int = 2) -> None:
        self._client = client
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="shopkeep")
        # deque append/popleft are atomic, so workers enqueue without a lock the game waits on.
        self._ready: collections.deque[Callable[[], object]] = collections.deque()
        self._closed = threading.Event()

    def poll(self, max_callbacks: int | None = None) -> int:
        """Run the callbacks of calls that finished since the last poll; return how many ran.

        Only callbacks queued before this poll began run now, so a callback that starts another
        quick call cannot keep a frame busy. A callback's exception propagates to the caller;
        the callbacks still queued run at the next poll.
        """
        budget = len(self._ready) if max_callbacks is None else min(max_callbacks, len(self._ready))
        ran = 0
        while ran < budget:
            try:
                callback = self._ready.popleft()
            except IndexError:
                break
            ran += 1
            callback()
        return ran

    @property
    def queued_callbacks(self) -> int:
        """Callbacks waiting for :meth:`poll`."""
        return len(self._ready)

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Handle[T]:
        """Run any callable on a worker (e.g. several client calls in a row)."""
        if self._closed.is_set():
            raise RuntimeError("this client is closed")
        return Handle(self._executor.submit(fn, *args, **kwargs), self._ready.append)

    def shutdown(self) -> None:
        """Let running calls finish and cancel queued ones (``StoreClient.close`` calls this)."""
        self._closed.set()
        self._executor.shutdown(wait=True, cancel_futures=True)

    # --- the client's calls -----------------------------------------------------------------

    def catalog(self) -> Handle[Catalog]:
        """:meth:`StoreClient.catalog` in the background."""
        return self.submit(self._client.catalog)

    def stock(self, skus: Iterable[str]) -> Handle[list[StockLevel]]:
        """:meth:`StoreClient.stock` in the background."""
        names = [skus] if isinstance(skus, str) else list(skus)
        return self.submit(self._client.stock, names)

    def wallet(self) -> Handle[Wallet]:
        """:meth:`StoreClient.wallet` in the background."""
        return self.submit(self._client.wallet)

    def ledger(self, *, limit: int | None = None) -> Handle[list[LedgerEntry]]:
        """The whole ledger (every page) as a list, in the background."""
        return self.submit(_collect, self._client.ledger, limit=limit)

    def ledger_page(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Handle[Page[LedgerEntry]]:
        """:meth:`StoreClient.ledger_page` in the background."""
        return self.submit(self._client.ledger_page, limit=limit, cursor=cursor)

    def inventory(self) -> Handle[Inventory]:
        """:meth:`StoreClient.inventory` in the background."""
        return self.submit(self._client.inventory)

    def purchase(
        self,
        sku: str,
        *,
        quantity: int = 1,
        currency: str | None = None,
        expected_price: Money | Amount | None = None,
        idempotency_key: str | None = None,
        hold_id: str | None = None,
    ) -> Handle[PurchaseResult]:
        """:meth:`StoreClient.purchase` in the background (same key on every retry)."""
        return self.submit(
            self._client.purchase,
            sku,
            quantity=quantity,
            currency=currency,
            expected_price=expected_price,
            idempotency_key=idempotency_key,
            hold_id=hold_id,
        )

    def redeem_receipt(
        self, store: str, proof: dict[str, Any], *, idempotency_key: str | None = None
    ) -> Handle[ReceiptResult]:
        """:meth:`StoreClient.redeem_receipt` in the background (journaled, same key)."""
        return self.submit(
            self._client.redeem_receipt, store, proof, idempotency_key=idempotency_key
        )

    def open_steam_order(
        self, product_id: str, *, steam_id: str, language: str = "en"
    ) -> Handle[dict[str, str]]:
        """:meth:`StoreClient.open_steam_order` in the background."""
        return self.submit(
            self._client.open_steam_order, product_id, steam_id=steam_id, language=language
        )

    def purchases(self, *, limit: int | None = None) -> Handle[list[Purchase]]:
        """Every purchase (all pages) as a list, in the background."""
        return self.submit(_collect, self._client.purchases, limit=limit)

    def purchases_page(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Handle[Page[Purchase]]:
        """:meth:`StoreClient.purchases_page` in the background."""
        return self.submit(self._client.purchases_page, limit=limit, cursor=cursor)

    def get_purchase(self, purchase_id: str) -> Handle[Purchase]:
        """:meth:`StoreClient.get_purchase` in the background."""
        return self.submit(self._client.get_purchase, purchase_id)

    def consume(
        self, sku: str, quantity: int, *, idempotency_key: str | None = None
    ) -> Handle[ItemQuantity]:
        """:meth:`StoreClient.consume` in the background."""
        return self.submit(self._client.consume, sku, quantity, idempotency_key=idempotency_key)

    def place_hold(
        self, sku: str, quantity: int = 1, *, idempotency_key: str | None = None
    ) -> Handle[Hold]:
        """:meth:`StoreClient.place_hold` in the background (same key on every retry)."""
        return self.submit(self._client.place_hold, sku, quantity, idempotency_key=idempotency_key)

    def get_hold(self, hold_id: str) -> Handle[Hold]:
        """:meth:`StoreClient.get_hold` in the background."""
        return self.submit(self._client.get_hold, hold_id)

    def release_hold(self, hold_id: str) -> Handle[Hold]:
        """:meth:`StoreClient.release_hold` in the background."""
        return self.submit(self._client.release_hold, hold_id)

    def redeem_code(self, code: str, *, idempotency_key: str | None = None) -> Handle[RedeemResult]:
        """:meth:`StoreClient.redeem_code` in the background."""
        return self.submit(self._client.redeem_code, code, idempotency_key=idempotency_key)

    def grant(
        self,
        player_id: str,
        *,
        currency: str | None = None,
        amount: int | Money | None = None,
        sku: str | None = None,
        quantity: int | None = None,
        reason: str,
        idempotency_key: str | None = None,
    ) -> Handle[GrantResult]:
        """:meth:`StoreClient.grant` in the background."""
        return self.submit(
            self._client.grant,
            player_id,
            currency=currency,
            amount=amount,
            sku=sku,
            quantity=quantity,
            reason=reason,
            idempotency_key=idempotency_key,
        )

    def refund(
        self, purchase_id: str, *, reason: str, idempotency_key: str | None = None
    ) -> Handle[Purchase]:
        """:meth:`StoreClient.refund` in the background."""
        return self.submit(
            self._client.refund, purchase_id, reason=reason, idempotency_key=idempotency_key
        )

    def player_wallet(self, player_id: str) -> Handle[Wallet]:
        """:meth:`StoreClient.player_wallet` in the background."""
        return self.submit(self._client.player_wallet, player_id)

    def player_inventory(self, player_id: str) -> Handle[Inventory]:
        """:meth:`StoreClient.player_inventory` in the background."""
        return self.submit(self._client.player_inventory, player_id)

    def player_ledger(
        self, player_id: str, *, limit: int | None = None
    ) -> Handle[list[LedgerEntry]]:
        """A player's whole ledger as a list, in the background."""
        return self.submit(_collect, self._client.player_ledger, player_id, limit=limit)

    def player_ledger_page(
        self, player_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Handle[Page[LedgerEntry]]:
        """:meth:`StoreClient.player_ledger_page` in the background."""
        return self.submit(self._client.player_ledger_page, player_id, limit=limit, cursor=cursor)

    def player_purchases(
        self, player_id: str, *, limit: int | None = None
    ) -> Handle[list[Purchase]]:
        """A player's purchases as a list, in the background."""
        return self.submit(_collect, self._client.player_purchases, player_id, limit=limit)

    def player_purchases_page(
        self, player_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Handle[Page[Purchase]]:
        """:meth:`StoreClient.player_purchases_page` in the background."""
        return self.submit(
            self._client.player_purchases_page, player_id, limit=limit, cursor=cursor
        )

    def events(
        self,
        *,
        after: str | int | None = None,
        types: Iterable[str] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Handle[list[Event]]:
        """The game's events up to the feed's current end as a list, in the background."""
        return self.submit(
            _collect, self._client.events, after=after, types=types, page_size=page_size
        )

    def events_page(
        self,
        *,
        after: str | int | None = None,
        types: Iterable[str] | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> Handle[EventPage]:
        """:meth:`StoreClient.events_page` in the background."""
        return self.submit(self._client.events_page, after=after, types=types, limit=limit)

    def player_risk(self, player_id: str) -> Handle[PlayerRisk]:
        """:meth:`StoreClient.player_risk` in the background."""
        return self.submit(self._client.player_risk, player_id)

    def freeze_player(
        self, player_id: str, *, reason: str, idempotency_key: str | None = None
    ) -> Handle[PlayerRisk]:
        """:meth:`StoreClient.freeze_player` in the background."""
        return self.submit(
            self._client.freeze_player, player_id, reason=reason, idempotency_key=idempotency_key
        )

    def unfreeze_player(
        self, player_id: str, *, reason: str, idempotency_key: str | None = None
    ) -> Handle[PlayerRisk]:
        """:meth:`StoreClient.unfreeze_player` in the background."""
        return self.submit(
            self._client.unfreeze_player,
            player_id,
            reason=reason,
            idempotency_key=idempotency_key,
        )

    def set_player_tier(
        self, player_id: str, tier: str | None, *, reason: str
    ) -> Handle[PlayerRisk]:
        """:meth:`StoreClient.set_player_tier` in the background."""
        return self.submit(self._client.set_player_tier, player_id, tier, reason=reason)

    def resume_pending(self) -> Handle[list[PendingOutcome]]:
        """:meth:`StoreClient.resume_pending` in the background."""
        return self.submit(self._client.resume_pending)


def _collect(fn: Callable[..., Iterable[T]], *args: Any, **kwargs: Any) -> list[T]:
    return list(fn(*args, **kwargs))
