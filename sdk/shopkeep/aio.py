"""The asyncio client, :class:`AsyncStoreClient`: the same calls as StoreClient, awaited."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

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

__all__ = ["AsyncStoreClient"]

T = TypeVar("T")


class AsyncStoreClient:
    """An asyncio client of one Shopkeep server; options as :class:`~shopkeep.StoreClient`.

    ``sleep`` is an async function (default ``asyncio.sleep``). ``ledger()`` and the other
    listing calls are async iterators: ``async for entry in client.ledger(): ...``. There is no
    ``background()``: an event loop already never blocks; wrap calls in tasks instead.
    """

    def __init__(
        self,
        base_url: str,
        token: str | Callable[[], str],
        *,
        timeout: float | httpx.Timeout = 10.0,
        max_retries: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
        on_request: RequestHook | None = None,
        pending_path: str | os.PathLike[str] | None = None,
        jitter: Jitter | random.Random | None = None,
        sleep: Callable[[float], Awaitable[object]] | None = None,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        pending_max_age: float = DEFAULT_MAX_AGE_SECONDS,
        accept_language: str | None = None,
    ) -> None:
        if isinstance(timeout, int) and not isinstance(timeout, bool):
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
        self._sleep = sleep or asyncio.sleep
        self._pending_max_age = pending_max_age
        self._catalog = CatalogCache()
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            # Accept-Language picks the locale of item names and descriptions in the catalog.
            headers={"User-Agent": USER_AGENT}
            | ({"Accept-Language": accept_language} if accept_language else {}),
        )

    # --- plumbing -------------------------------------------------------------------------------

    async def _send(self, request: Request) -> httpx.Response:
        self._engine.before(request)
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                response = await self._http.request(
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
            await self._sleep(step.delay)
            attempt += 1

    async def _run(self, operation: Operation[T]) -> T:
        return parse(operation, await self._send(operation.request))

    async def _pages(self, make: Callable[[str | None], Operation[Page[T]]]) -> AsyncIterator[T]:
        cursor: str | None = None
        while True:
            page = await self._run(make(cursor))
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # --- player calls ---------------------------------------------------------------------------

    @property
    def cached_catalog(self) -> Catalog | None:
        """The catalog last returned by :meth:`catalog`, without a request (``None`` before)."""
        return self._catalog.catalog

    async def catalog(self) -> Catalog:
        """The live catalog; an unchanged catalog costs a 304 and returns the cached one."""
        return await self._run(self._catalog.operation())

    async def stock(self, skus: Iterable[str]) -> list[StockLevel]:
        """Remaining units of the limited items ``skus``."""
        return await self._run(op_stock(skus))

    async def wallet(self) -> Wallet:
        """The player's balances, every currency of the catalog, zeros included."""
        return await self._run(op_wallet())

    def ledger(self, *, limit: int | None = None) -> AsyncIterator[LedgerEntry]:
        """The player's ledger, newest first, as an async iterator fetching pages lazily."""
        return self._pages(lambda cursor: op_ledger_page(None, limit, cursor))

    async def ledger_page(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[LedgerEntry]:
        """One page of the player's ledger; pass ``page.next_cursor`` for the next."""
        return await self._run(op_ledger_page(None, limit, cursor))

    async def inventory(self) -> Inventory:
        """The items the player owns."""
        return await self._run(op_inventory())

    async def purchase(
        self,
        sku: str,
        *,
        quantity: int = 1,
        currency: str | None = None,
        expected_price: Money | Amount | None = None,
        idempotency_key: str | None = None,
        hold_id: str | None = None,
    ) -> PurchaseResult:
        """Buy ``quantity`` of ``sku`` exactly once; see :meth:`StoreClient.purchase`."""
        key = check_idempotency_key(idempotency_key)
        body = purchase_body(sku, quantity, currency, expected_price, hold_id)
        return await self._run(op_purchase_body(body, key))

    async def redeem_receipt(
        self,
        store: str,
        proof: Mapping[str, Any],
        *,
        hold_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> ReceiptResult:
        """Credit an app-store purchase exactly once; see :meth:`StoreClient.redeem_receipt`."""
        key = check_idempotency_key(idempotency_key)
        return await self._run(op_receipt_body(receipt_body(store, proof, hold_id), key))

    async def open_steam_order(
        self, product_id: str, *, steam_id: str, language: str = "en"
    ) -> dict[str, str]:
        """Open a Steam order; see :meth:`StoreClient.open_steam_order`."""
        return await self._run(op_steam_order(product_id, steam_id, language))

    def purchases(self, *, limit: int | None = None) -> AsyncIterator[Purchase]:
        """The player's purchases, newest first, as an async iterator."""
        return self._pages(lambda cursor: op_purchases_page(None, limit, cursor))

    async def purchases_page(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Purchase]:
        """One page of the player's purchases."""
        return await self._run(op_purchases_page(None, limit, cursor))

    async def get_purchase(self, purchase_id: str) -> Purchase:
        """One purchase by id."""
        return await self._run(op_get_purchase(purchase_id))

    async def consume(
        self, sku: str, quantity: int, *, idempotency_key: str | None = None
    ) -> ItemQuantity:
        """Use up ``quantity`` of a consumable; returns how many are left."""
        return await self._run(op_consume(sku, quantity, check_idempotency_key(idempotency_key)))

    async def redeem_code(self, code: str, *, idempotency_key: str | None = None) -> RedeemResult:
        """Redeem a promo code: its offer's price then shows in the catalog's ``price_for_you``,
        or its contents are granted. ``NotFound`` for a code this player cannot use,
        ``CodeExhausted`` or ``CodeAlreadyRedeemed`` (final: never retried)."""
        return await self._run(op_redeem_code(code, check_idempotency_key(idempotency_key)))

    async def place_hold(
        self, sku: str, quantity: int = 1, *, idempotency_key: str | None = None
    ) -> Hold:
        """Set units of a limited item aside for the player; see
        :meth:`StoreClient.place_hold`."""
        return await self._run(op_place_hold(sku, quantity, check_idempotency_key(idempotency_key)))

    async def get_hold(self, hold_id: str) -> Hold:
        """One of the player's holds, with its current ``status``."""
        return await self._run(op_get_hold(hold_id))

    async def release_hold(self, hold_id: str) -> Hold:
        """Give a hold's units back at once; releasing an ended hold returns it unchanged."""
        return await self._run(op_release_hold(hold_id))

    # --- service calls --------------------------------------------------------------------------

    async def grant(
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
        """Give a player currency or items (service)."""
        key = check_idempotency_key(idempotency_key)
        return await self._run(
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

    async def refund(
        self, purchase_id: str, *, reason: str, idempotency_key: str | None = None
    ) -> Purchase:
        """Refund a purchase (service)."""
        key = check_idempotency_key(idempotency_key)
        return await self._run(op_refund(purchase_id, reason=reason, key=key))

    async def player_wallet(self, player_id: str) -> Wallet:
        """A player's balances (service)."""
        return await self._run(op_wallet(player_id))

    async def player_inventory(self, player_id: str) -> Inventory:
        """A player's items (service)."""
        return await self._run(op_inventory(player_id))

    def player_ledger(
        self, player_id: str, *, limit: int | None = None
    ) -> AsyncIterator[LedgerEntry]:
        """A player's ledger as an async iterator (service)."""
        return self._pages(lambda cursor: op_ledger_page(player_id, limit, cursor))

    async def player_ledger_page(
        self, player_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[LedgerEntry]:
        """One page of a player's ledger (service)."""
        return await self._run(op_ledger_page(player_id, limit, cursor))

    def player_purchases(
        self, player_id: str, *, limit: int | None = None
    ) -> AsyncIterator[Purchase]:
        """A player's purchases as an async iterator (service)."""
        return self._pages(lambda cursor: op_purchases_page(player_id, limit, cursor))

    async def player_purchases_page(
        self, player_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Purchase]:
        """One page of a player's purchases (service)."""
        return await self._run(op_purchases_page(player_id, limit, cursor))

    async def events(
        self,
        *,
        after: str | int | None = None,
        types: Iterable[str] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> AsyncIterator[Event]:
        """The game's events as an async iterator; see :meth:`StoreClient.events`."""
        cursor = after
        while True:
            page = await self._run(op_events_page(cursor, types, page_size))
            for event in page.events:
                yield event
            if len(page.events) < page_size:
                return
            cursor = page.next_cursor

    async def events_page(
        self,
        *,
        after: str | int | None = None,
        types: Iterable[str] | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> EventPage:
        """One page of the game's events (service)."""
        return await self._run(op_events_page(after, types, limit))

    # --- risk controls (service) ----------------------------------------------------------------

    async def player_risk(self, player_id: str) -> PlayerRisk:
        """A player's tier, freeze and recent risk decisions (service)."""
        return await self._run(op_player_risk(player_id))

    async def freeze_player(
        self, player_id: str, *, reason: str, idempotency_key: str | None = None
    ) -> PlayerRisk:
        """Freeze a player: its purchases, consumes, grants, code and receipt redemptions and
        holds are refused (service)."""
        key = check_idempotency_key(idempotency_key)
        return await self._run(op_freeze(player_id, frozen=True, reason=reason, key=key))

    async def unfreeze_player(
        self, player_id: str, *, reason: str, idempotency_key: str | None = None
    ) -> PlayerRisk:
        """Lift a player's freeze (service)."""
        key = check_idempotency_key(idempotency_key)
        return await self._run(op_freeze(player_id, frozen=False, reason=reason, key=key))

    async def set_player_tier(self, player_id: str, tier: str | None, *, reason: str) -> PlayerRisk:
        """Put a player in a tier of the policy, ``"trusted"`` (no tier), or None (placed by
        age and history again) (service)."""
        return await self._run(op_set_tier(player_id, tier=tier, reason=reason))

    # --- the pending journal --------------------------------------------------------------------

    def pending(self) -> list[PendingPurchase]:
        """Purchases whose outcome is not known yet; empty without a journal."""
        journal = self._engine.journal
        return journal.entries() if journal is not None else []

    async def resume_pending(self) -> list[PendingOutcome]:
        """Re-send each journaled purchase with its key; see :meth:`StoreClient.resume_pending`."""
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
                    result = await self._run(op_journaled(entry))
                except ShopkeepError as error:
                    if error.status is None:
                        offline = error
                    outcomes.append(
                        PendingOutcome(
                            entry, "pending" if is_unsettled(error) else "rejected", error=error
                        )
                    )
                else:
                    outcomes.append(PendingOutcome(entry, "completed", result=result))
        return outcomes

    # --- lifecycle ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    close = aclose

    async def __aenter__(self) -> AsyncStoreClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
