"""The blocking client, :class:`StoreClient`; see :mod:`shopkeep.background` for frame loops."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from ._core import (
    USER_AGENT,
    CatalogCache,
    Engine,
    Jitter,
    Operation,
    Request,
    RequestHook,
    check_idempotency_key,
    is_unsettled,
    op_consume,
    op_get_purchase,
    op_grant,
    op_inventory,
    op_journaled,
    op_ledger_page,
    op_purchase_body,
    op_purchases_page,
    op_receipt_body,
    op_redeem_code,
    op_refund,
    op_steam_order,
    op_stock,
    op_wallet,
    parse,
    purchase_body,
    receipt_body,
)
from .errors import ShopkeepError
from .events import DEFAULT_PAGE_SIZE, Event, EventPage, op_events_page
from .holds import Hold, op_get_hold, op_place_hold, op_release_hold
from .journal import DEFAULT_MAX_AGE_SECONDS, PendingOutcome, PendingPurchase, is_expired
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
from .risk import PlayerRisk, op_freeze, op_player_risk, op_set_tier

if TYPE_CHECKING:
    from .background import Background

__all__ = ["StoreClient"]

T = TypeVar("T")


class StoreClient:
    """A blocking client of one Shopkeep server, for one token (a player, or the service).

    ``base_url`` is the server's root (``http://127.0.0.1:8000``); ``token`` is a JWT, or a
    callable that returns the current one (asked on every attempt, so it may refresh).
    Keyword options:

    - ``timeout``: seconds per attempt (or an ``httpx.Timeout``).
    - ``max_retries``: re-sends after the first attempt of a GET or keyed POST that failed in a
      way that may pass: no response, timeout, 429, 5xx, ``idempotency_key_in_use``.
    - ``jitter``: a ``random.Random``, or ``f(ceiling) -> seconds`` mapping the exponential
      backoff ceiling (``backoff * 2**attempt``, at most ``max_backoff``) to the delay slept;
      a ``Retry-After`` from the server is a floor under it.
    - ``sleep``: the function that sleeps between attempts (tests pass a recorder).
    - ``transport``: an ``httpx`` transport (tests pass ``httpx.MockTransport``).
    - ``on_request``: ``f(method, path, status, elapsed_seconds, error)`` after every HTTP
      attempt, on the thread that made it; its exceptions are logged, never raised.
    - ``pending_path``: a JSON file journaling purchases until their outcome is known; see
      :meth:`resume_pending`.

    Use it as a context manager, or call :meth:`close`. Thread-safe; :meth:`background` runs
    calls on worker threads for games that must not block a frame.
    """

    def __init__(
        self,
        base_url: str,
        token: str | Callable[[], str],
        *,
        timeout: float | httpx.Timeout = 10.0,
        max_retries: int = 3,
        transport: httpx.BaseTransport | None = None,
        on_request: RequestHook | None = None,
        pending_path: str | os.PathLike[str] | None = None,
        jitter: Jitter | random.Random | None = None,
        sleep: Callable[[float], object] | None = None,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        pending_max_age: float = DEFAULT_MAX_AGE_SECONDS,
        accept_language: str | None = None,
        background_workers: int = 2,
    ) -> None:
        if isinstance(timeout, float | int) and not isinstance(timeout, bool):
            timeout = float(timeout)
        self._engine = Engine(
            token=token,
            max_retries=max_retries,
            jitter=jitter,
            on_request=on_request,
            pending_path=pending_path,
            backoff=backoff,
            max_backoff=max_backoff,
        )
        # Closing wakes a retry's back-off at once: a game quitting while offline must not hang
        # for the back-off; the unfinished purchase stays in the journal for resume_pending().
        self._closing = threading.Event()
        self._sleep = sleep or self._closing.wait
        self._pending_max_age = pending_max_age
        self._catalog = CatalogCache()
        self._http = httpx.Client(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            # Accept-Language picks the locale of item names and descriptions in the catalog.
            headers={"User-Agent": USER_AGENT}
            | ({"Accept-Language": accept_language} if accept_language else {}),
        )
        self._background_workers = background_workers
        self._background: Background | None = None
        self._background_lock = threading.Lock()

    # --- plumbing -------------------------------------------------------------------------------

    def _send(self, request: Request) -> httpx.Response:
        self._engine.before(request)
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                response = self._http.request(
                    request.method,
                    request.path,
                    params=request.params or None,
                    json=request.body,
                    headers=self._engine.headers(request),
                )
            except httpx.RequestError as exc:
                step = self._engine.after_exception(
                    request, exc, time.perf_counter() - started, attempt
                )
            else:
                step = self._engine.after_response(
                    request, response, time.perf_counter() - started, attempt
                )
            if step.response is not None:
                return step.response
            assert step.error is not None
            if step.delay is None:
                raise step.error
            self._sleep(step.delay)
            if self._closing.is_set():
                raise step.error
            attempt += 1

    def _run(self, operation: Operation[T]) -> T:
        return parse(operation, self._send(operation.request))

    def _pages(self, make: Callable[[str | None], Operation[Page[T]]]) -> Iterator[T]:
        cursor: str | None = None
        while True:
            page = self._run(make(cursor))
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # --- player calls ---------------------------------------------------------------------------

    @property
    def cached_catalog(self) -> Catalog | None:
        """The catalog last returned by :meth:`catalog`, without a request (``None`` before)."""
        return self._catalog.catalog

    def catalog(self) -> Catalog:
        """The live catalog; an unchanged catalog costs a 304 and returns the cached one."""
        return self._run(self._catalog.operation())

    def stock(self, skus: Iterable[str]) -> list[StockLevel]:
        """Remaining units of the limited items ``skus``."""
        return self._run(op_stock(skus))

    def wallet(self) -> Wallet:
        """The player's balances, every currency of the catalog, zeros included."""
        return self._run(op_wallet())

    def ledger(self, *, limit: int | None = None) -> Iterator[LedgerEntry]:
        """The player's ledger, newest first, fetched lazily ``limit`` entries per page."""
        return self._pages(lambda cursor: op_ledger_page(None, limit, cursor))

    def ledger_page(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[LedgerEntry]:
        """One page of the player's ledger; pass ``page.next_cursor`` for the next."""
        return self._run(op_ledger_page(None, limit, cursor))

    def inventory(self) -> Inventory:
        """The items the player owns."""
        return self._run(op_inventory())

    def purchase(
        self,
        sku: str,
        *,
        quantity: int = 1,
        currency: str | None = None,
        expected_price: Money | Amount | None = None,
        idempotency_key: str | None = None,
        hold_id: str | None = None,
    ) -> PurchaseResult:
        """Buy ``quantity`` of ``sku``, exactly once however often the request is re-sent.

        ``currency`` picks the price of an item sold in several currencies. ``expected_price``
        is the unit price the player saw (``catalog.item(sku).price()``); if the store's price
        differs, :class:`~shopkeep.errors.PriceChanged` is raised and nothing is charged. The
        idempotency key is made once here (or is ``idempotency_key``) and reused by every retry.
        ``hold_id`` buys the units of the player's hold (:meth:`place_hold`; same sku and
        quantity); a hold that has expired or ended raises :class:`~shopkeep.errors.HoldExpired`.
        """
        key = check_idempotency_key(idempotency_key)
        body = purchase_body(sku, quantity, currency, expected_price, hold_id)
        return self._run(op_purchase_body(body, key))

    def redeem_receipt(
        self,
        store: str,
        proof: Mapping[str, Any],
        *,
        hold_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> ReceiptResult:
        """Credit an app-store purchase: what its product grants, exactly once per store
        transaction however often this is sent (and by whoever).

        ``store`` is ``app_store`` (``proof``: ``signed_transaction``, StoreKit 2's JWS),
        ``google_play`` (``product_id``, ``purchase_token``) or ``steam`` (``order_id`` from
        :meth:`open_steam_order`, once the player approved it). The store has charged the
        player by now, so the request is journaled (with a ``pending_path``) before it is sent:
        after a crash or an outage, :meth:`resume_pending` sends it again with the same key and
        the player is credited once. :class:`~shopkeep.errors.StoreUnavailable` (the app store
        did not answer) leaves it pending too; :class:`~shopkeep.errors.ReceiptInvalid` and
        :class:`~shopkeep.errors.ReceiptAlreadyUsed` are final. ``hold_id`` names the
        player's hold (:meth:`place_hold`) the payment buys: the product must grant the held
        item in the held quantity; an ended hold raises :class:`~shopkeep.errors.HoldExpired`.
        """
        key = check_idempotency_key(idempotency_key)
        return self._run(op_receipt_body(receipt_body(store, proof, hold_id), key))

    def open_steam_order(
        self, product_id: str, *, steam_id: str, language: str = "en"
    ) -> dict[str, str]:
        """Open a Steam order (InitTxn) for a product of the catalog: ``{order_id, trans_id}``.
        Steam shows the player its overlay; once approved, redeem ``order_id``."""
        return self._run(op_steam_order(product_id, steam_id, language))

    def purchases(self, *, limit: int | None = None) -> Iterator[Purchase]:
        """The player's purchases, newest first, fetched lazily ``limit`` per page."""
        return self._pages(lambda cursor: op_purchases_page(None, limit, cursor))

    def purchases_page(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Purchase]:
        """One page of the player's purchases."""
        return self._run(op_purchases_page(None, limit, cursor))

    def get_purchase(self, purchase_id: str) -> Purchase:
        """One purchase by id."""
        return self._run(op_get_purchase(purchase_id))

    def consume(
        self, sku: str, quantity: int, *, idempotency_key: str | None = None
    ) -> ItemQuantity:
        """Use up ``quantity`` of a consumable; returns how many are left."""
        return self._run(op_consume(sku, quantity, check_idempotency_key(idempotency_key)))

    def redeem_code(self, code: str, *, idempotency_key: str | None = None) -> RedeemResult:
        """Redeem a promo code: its offer's price then shows in the catalog's ``price_for_you``,
        or its contents are granted. ``NotFound`` for a code this player cannot use,
        ``CodeExhausted`` or ``CodeAlreadyRedeemed`` (final: never retried)."""
        return self._run(op_redeem_code(code, check_idempotency_key(idempotency_key)))

    def place_hold(
        self, sku: str, quantity: int = 1, *, idempotency_key: str | None = None
    ) -> Hold:
        """Set ``quantity`` units of the limited item ``sku`` aside for the player for a few
        minutes (the server's ``SHOPKEEP_HOLD_SECONDS``): nobody else can buy them
        meanwhile. Buy them with ``purchase(sku, quantity=..., hold_id=hold.id)``; an unused
        hold expires by itself. Exactly once per key, like a purchase."""
        return self._run(op_place_hold(sku, quantity, check_idempotency_key(idempotency_key)))

    def get_hold(self, hold_id: str) -> Hold:
        """One of the player's holds, with its current ``status``."""
        return self._run(op_get_hold(hold_id))

    def release_hold(self, hold_id: str) -> Hold:
        """Give a hold's units back at once; releasing an ended hold returns it unchanged."""
        return self._run(op_release_hold(hold_id))

    # --- service calls --------------------------------------------------------------------------

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
    ) -> GrantResult:
        """Give a player ``amount`` of ``currency`` (int minor units, or Money) or items."""
        key = check_idempotency_key(idempotency_key)
        return self._run(
            op_grant(
                player_id,
                currency=currency,
                amount=amount,
                sku=sku,
                quantity=quantity,
                reason=reason,
                key=key,
            )
        )

    def refund(
        self, purchase_id: str, *, reason: str, idempotency_key: str | None = None
    ) -> Purchase:
        """Refund a purchase: return its price, take back what it granted (service)."""
        key = check_idempotency_key(idempotency_key)
        return self._run(op_refund(purchase_id, reason=reason, key=key))

    def player_wallet(self, player_id: str) -> Wallet:
        """A player's balances (service)."""
        return self._run(op_wallet(player_id))

    def player_inventory(self, player_id: str) -> Inventory:
        """A player's items (service)."""
        return self._run(op_inventory(player_id))

    def player_ledger(self, player_id: str, *, limit: int | None = None) -> Iterator[LedgerEntry]:
        """A player's ledger, newest first, fetched lazily (service)."""
        return self._pages(lambda cursor: op_ledger_page(player_id, limit, cursor))

    def player_ledger_page(
        self, player_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[LedgerEntry]:
        """One page of a player's ledger (service)."""
        return self._run(op_ledger_page(player_id, limit, cursor))

    def player_purchases(self, player_id: str, *, limit: int | None = None) -> Iterator[Purchase]:
        """A player's purchases, newest first, fetched lazily (service)."""
        return self._pages(lambda cursor: op_purchases_page(player_id, limit, cursor))

    def player_purchases_page(
        self, player_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Purchase]:
        """One page of a player's purchases (service)."""
        return self._run(op_purchases_page(player_id, limit, cursor))

    def events(
        self,
        *,
        after: str | int | None = None,
        types: Iterable[str] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[Event]:
        """The game's events after the cursor ``after`` (an event's id or a page's
        ``next_cursor``; None: the oldest kept), oldest first, fetched ``page_size`` per page,
        until the feed's current end (service). ``types`` keeps only those types. Iterate again
        from the last event's :attr:`~shopkeep.events.Event.cursor` to go on later."""
        cursor = after
        while True:
            page = self._run(op_events_page(cursor, types, page_size))
            yield from page.events
            if len(page.events) < page_size:
                return
            cursor = page.next_cursor

    def events_page(
        self,
        *,
        after: str | int | None = None,
        types: Iterable[str] | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> EventPage:
        """One page of the game's events (service); pass ``page.next_cursor`` for the next."""
        return self._run(op_events_page(after, types, limit))

    # --- risk controls (service) ----------------------------------------------------------------

    def player_risk(self, player_id: str) -> PlayerRisk:
        """A player's tier, freeze and recent risk decisions (service)."""
        return self._run(op_player_risk(player_id))

    def freeze_player(
        self, player_id: str, *, reason: str, idempotency_key: str | None = None
    ) -> PlayerRisk:
        """Freeze a player: its purchases, consumes, grants, code and receipt redemptions and
        holds are refused (service)."""
        key = check_idempotency_key(idempotency_key)
        return self._run(op_freeze(player_id, frozen=True, reason=reason, key=key))

    def unfreeze_player(
        self, player_id: str, *, reason: str, idempotency_key: str | None = None
    ) -> PlayerRisk:
        """Lift a player's freeze (service)."""
        key = check_idempotency_key(idempotency_key)
        return self._run(op_freeze(player_id, frozen=False, reason=reason, key=key))

    def set_player_tier(self, player_id: str, tier: str | None, *, reason: str) -> PlayerRisk:
        """Put a player in a tier of the policy, ``"trusted"`` (no tier), or None (placed by
        age and history again) (service)."""
        return self._run(op_set_tier(player_id, tier=tier, reason=reason))

    # --- the pending journal --------------------------------------------------------------------

    def pending(self) -> list[PendingPurchase]:
        """Journaled purchases whose outcome is not known yet (empty without a journal)."""
        journal = self._engine.journal
        return journal.entries() if journal is not None else []

    def resume_pending(self) -> list[PendingOutcome]:
        """Re-send every journaled purchase with its own key and report each outcome.

        Call it at start-up (and when the network is back). A purchase that had gone through
        before the crash comes back ``completed`` with ``result.replayed`` true; nothing is
        charged twice. After a failure with no response, the remaining entries are not tried
        this time (the network is likely down) and are reported ``pending``.
        """
        journal = self._engine.journal
        if journal is None:
            return []
        outcomes: list[PendingOutcome] = []
        offline: ShopkeepError | None = None
        for entry in journal.entries():
            if is_expired(entry, self._pending_max_age):
                journal.remove(entry.idempotency_key)
                outcomes.append(PendingOutcome(entry, "expired"))
            elif offline is not None:
                outcomes.append(PendingOutcome(entry, "pending", error=offline))
            else:
                try:
                    result = self._run(op_journaled(entry))
                except ShopkeepError as error:
                    unsettled = is_unsettled(error)
                    if error.status is None:
                        offline = error
                    outcomes.append(
                        PendingOutcome(entry, "pending" if unsettled else "rejected", error=error)
                    )
                else:
                    outcomes.append(PendingOutcome(entry, "completed", result=result))
        return outcomes

    # --- lifecycle ------------------------------------------------------------------------------

    def background(self) -> Background:
        """The non-blocking face of this client, for frame loops (one per client).

        Its methods return a :class:`~shopkeep.background.Handle` at once; call
        ``background().poll()`` once per frame to run finished calls' callbacks on your thread.
        """
        with self._background_lock:
            if self._background is None:
                from .background import Background

                self._background = Background(self, workers=self._background_workers)
            return self._background

    def close(self) -> None:
        """Cancel queued background calls, stop running ones at their next retry (their last
        error is raised; a journalled purchase stays pending), close connections."""
        self._closing.set()
        with self._background_lock:
            background, self._background = self._background, None
        if background is not None:
            background.shutdown()
        self._http.close()

    def __enter__(self) -> StoreClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
