"""The game's view of the store: every call through the SDK's background path, polled per frame.

Nothing in here blocks. A call returns a :class:`shopkeep.Handle` at once; its callback runs
inside :meth:`StoreSession.tick`, on the game's thread, so game state is only ever touched by
the frame loop. Failures become toasts or a dialog; calls whose outcome is unknown (no
response, 5xx) are retried with the same idempotency key until they settle:

- purchases through the SDK's pending journal (``pending_path=`` and ``resume_pending()``),
  which also completes a purchase left open by a crash at the next start;
- consumes and round payouts through small in-memory outboxes of (key, request).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from shopkeep import (
    Amount,
    AuthenticationError,
    Background,
    BalanceCapExceeded,
    Catalog,
    CodeAlreadyRedeemed,
    CodeExhausted,
    Handle,
    InsufficientFunds,
    Inventory,
    Item,
    ItemQuantity,
    ItemUnavailable,
    LedgerEntry,
    Money,
    NotEnoughItems,
    NotFound,
    PendingOutcome,
    PriceChanged,
    Product,
    PurchaseLimitReached,
    PurchaseResult,
    ReceiptInvalid,
    ReceiptResult,
    RedeemResult,
    ShopkeepError,
    SoldOut,
    StockLevel,
    StoreClient,
    Wallet,
)
from shopkeep.errors import ErrorCategory

from .backend import BackendClient, BackendError, RoundPayout
from .test_store import TestAppStore

__all__ = ["ConsumeOrder", "PriceDialog", "RoundOrder", "StoreSession", "Toast", "countdown"]

T = TypeVar("T")
ToastKind = Literal["ok", "error", "info", "warn"]

TOAST_FRAMES = 240
RETRY_SECONDS = 2.0
STOCK_REFRESH_SECONDS = 5.0
# How often the game asks the studio backend for sale announcements (webhooks it received).
ANNOUNCE_SECONDS = 1.0
LEDGER_ROWS = 6
# Where the SDK's journal keeps a receipt (not a purchase) until its credit is heard.
RECEIPTS_PATH = "/v1/receipts"


@dataclasses.dataclass
class Toast:
    """A message that fades after ``frames_left`` frames."""

    text: str
    kind: ToastKind
    frames_left: int = TOAST_FRAMES


@dataclasses.dataclass(frozen=True)
class PriceDialog:
    """The store's price moved since the player looked: ask again at ``new`` price."""

    sku: str
    name: str
    old: Money
    new: Money


@dataclasses.dataclass(frozen=True)
class ConsumeOrder:
    """One use of a consumable, sent (and re-sent) with the same key until the store settles it."""

    sku: str
    key: str


@dataclasses.dataclass(frozen=True)
class RoundOrder:
    """One round to bank through the studio backend; the round id makes it pay once."""

    round_id: str
    coins: int


def countdown(until: datetime, now: datetime) -> str:
    """``until - now`` as ``1:02:03`` or ``2:03`` (whole seconds, never negative)."""
    seconds = max(0, int((until - now).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _unsettled(error: BaseException) -> bool:
    # The SDK's own rule (the contract's categories): no response, a 5xx, a 429 or a key still
    # in flight leave the outcome open.
    return isinstance(error, ShopkeepError) and error.category is ErrorCategory.TRANSIENT


class StoreSession:
    """The player's store state (catalog, wallet, inventory, stock, ledger) and its calls.

    ``client`` is a :class:`shopkeep.StoreClient` made with the PLAYER token (and a
    ``pending_path`` journal); ``backend`` banks rounds, or ``None`` when the game runs without
    a studio backend. Call :meth:`tick` once per frame.
    """

    def __init__(
        self,
        client: StoreClient,
        backend: BackendClient | None = None,
        *,
        player_id: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.backend = backend
        self.player_id = player_id
        self._clock = clock
        self._bg = client.background()
        # Backend calls get their own worker, so a slow backend never delays a purchase.
        self._backend_bg = Background(client, workers=1)
        self.catalog: Catalog | None = None
        self.wallet: Wallet | None = None
        self.inventory: Inventory | None = None
        self.stock: dict[str, int] = {}
        self.ledger: list[LedgerEntry] = []
        self.online = True
        self.auth_failed = False
        self.toasts: list[Toast] = []
        self.dialog: PriceDialog | None = None
        # sku -> "sending" (a purchase call is running) or "pending" (journaled, retrying).
        self.buying: dict[str, str] = {}
        self.pending_purchases: dict[str, str] = {}  # idempotency key -> sku
        self.consume_outbox: list[ConsumeOrder] = []
        self.round_outbox: list[RoundOrder] = []
        self.payouts: dict[str, RoundPayout | BackendError] = {}
        # Consumes (by key) and rounds (by id) whose last attempt failed without an answer.
        self.stalled: set[str] = set()
        self.watch_stock = False
        self.purchases_made = 0
        # The TEST store the Top up screen pays (None when the game plays a store it did not
        # start: that store trusts only real app stores), and the top-up being sent.
        self.test_store: TestAppStore | None = None
        self.topping_up: str | None = None
        self.pending_topups: set[str] = set()  # idempotency keys of journaled receipts
        self._in_flight: dict[str, int] = {}
        self._reported: set[str] = set()
        self._next_retry = 0.0
        self._next_stock = 0.0
        self._next_announce = 0.0
        # The last announcement shown (an event id of the store's feed): announced once each.
        self.announced_through = 0

    # --- per frame ------------------------------------------------------------------------------

    def tick(self) -> None:
        """Run finished calls' callbacks, age toasts, and schedule retries and refreshes."""
        self._bg.poll()
        self._backend_bg.poll()
        for toast in self.toasts:
            toast.frames_left -= 1
        self.toasts = [t for t in self.toasts if t.frames_left > 0]
        now = self._clock()
        if now >= self._next_retry and self._needs_retry():
            self._next_retry = now + RETRY_SECONDS
            self._retry()
        if self.watch_stock and now >= self._next_stock and not self._busy("stock"):
            self._next_stock = now + STOCK_REFRESH_SECONDS
            self.refresh_stock()
        if self.backend is not None and now >= self._next_announce and not self._busy("announce"):
            self._next_announce = now + ANNOUNCE_SECONDS
            self._poll_announcements(self.backend)

    def _poll_announcements(self, backend: BackendClient) -> None:
        """Shows what the studio backend announced since the last poll ("The last Dragon egg
        just sold!"), each once; a backend that does not answer is asked again later."""

        def shown(found: tuple[list[str], int]) -> None:
            texts, last = found
            for text in texts:
                self.notify(text, "info")
            self.announced_through = max(self.announced_through, last)
            if any("just sold" in text for text in texts):
                self.refresh_stock()

        handle = self._backend_bg.submit(backend.announcements, self.announced_through)
        self._call("announce", handle, shown, lambda error: None)

    def _needs_retry(self) -> bool:
        return (
            not self.online
            or bool(self.pending_purchases)
            or bool(self.pending_topups)
            or bool(self.consume_outbox)
            or bool(self.round_outbox)
        )

    def _retry(self) -> None:
        if not self.online and not self._busy("probe"):
            # A cheap read tells us when the store is back.
            self._call("probe", self._bg.wallet(), self._set_wallet)
        if (
            (self.pending_purchases or self.pending_topups)
            and not self._busy("purchase")
            and not self._busy("topup")
            and not self._busy("resume")
        ):
            self._resume()
        if not self._busy("consume"):
            for order in self.consume_outbox:
                self._send_consume(order)
        if not self._busy("round"):
            for round_order in self.round_outbox:
                self._send_round(round_order)

    def close(self) -> None:
        """Finish running calls and stop the workers (the client is closed by its owner)."""
        self._backend_bg.shutdown()

    # --- bookkeeping ------------------------------------------------------------------------------

    def _busy(self, kind: str) -> bool:
        return self._in_flight.get(kind, 0) > 0

    @property
    def calls_in_flight(self) -> int:
        """Store and backend calls running now (the announcements' poll, which never ends,
        aside)."""
        return sum(n for kind, n in self._in_flight.items() if kind != "announce")

    @property
    def idle(self) -> bool:
        """Nothing running and nothing left to retry (tests and scripts wait for this)."""
        return self.calls_in_flight == 0 and not self._needs_retry() and self.dialog is None

    @property
    def retrying(self) -> bool:
        """Whether the "retrying…" indicator should show: something failed and waits to be
        re-sent (a call merely in flight does not count)."""
        return (
            not self.online
            or bool(self.pending_purchases)
            or bool(self.pending_topups)
            or bool(self.stalled)
        )

    def _call(
        self,
        kind: str,
        handle: Handle[T],
        on_ok: Callable[[T], object],
        on_error: Callable[[BaseException], object] | None = None,
    ) -> None:
        self._in_flight[kind] = self._in_flight.get(kind, 0) + 1

        def done(finished: Handle[T]) -> None:
            self._in_flight[kind] -= 1
            error = finished.exception()
            if error is None:
                if kind not in ("round", "announce"):
                    # Any answer from the store means it is reachable again.
                    self.online = True
                on_ok(finished.result())
                return
            if _unsettled(error) and kind not in ("round", "announce"):
                self.online = False
            if on_error is not None:
                on_error(error)
            else:
                self._on_read_error(error)

        handle.add_done_callback(done)

    def _on_read_error(self, error: BaseException) -> None:
        if isinstance(error, AuthenticationError):
            self._auth_failed()
        elif not _unsettled(error):
            self.notify(f"Store error: {error}", "error")

    def _auth_failed(self) -> None:
        if not self.auth_failed:
            self.auth_failed = True
            self.notify("The store refused this player token (expired?)", "error")

    def notify(self, text: str, kind: ToastKind = "info") -> None:
        """Show a toast; the same text twice in a row is shown once."""
        if self.toasts and self.toasts[-1].text == text:
            self.toasts[-1].frames_left = TOAST_FRAMES
            return
        self.toasts.append(Toast(text, kind))
        del self.toasts[:-4]

    # --- reads ----------------------------------------------------------------------------------

    def start(self) -> None:
        """First load, and completion of any purchase a previous run left in the journal."""
        self.refresh_all()
        if self.client.pending():
            for entry in self.client.pending():
                if entry.path == RECEIPTS_PATH:
                    self.pending_topups.add(entry.idempotency_key)
                else:
                    self.pending_purchases[entry.idempotency_key] = entry.sku
            self._resume()

    def refresh_all(self) -> None:
        """Reload the catalog, wallet, inventory, stock and ledger."""
        self.refresh_catalog()
        self.refresh_wallet()
        self.refresh_inventory()
        self.refresh_ledger()

    def refresh_catalog(self) -> None:
        """Reload the live catalog (a 304 when unchanged), then the stock of its limited items."""

        def loaded(catalog: Catalog) -> None:
            self.catalog = catalog
            self.refresh_stock()

        self._call("catalog", self._bg.catalog(), loaded)

    def refresh_wallet(self) -> None:
        """Reload the balances."""
        self._call("wallet", self._bg.wallet(), self._set_wallet)

    def refresh_inventory(self) -> None:
        """Reload what the player owns."""
        self._call("inventory", self._bg.inventory(), self._set_inventory)

    def refresh_ledger(self) -> None:
        """Reload the newest ledger rows."""
        self._call("ledger", self._bg.ledger_page(limit=LEDGER_ROWS), self._set_ledger)

    def refresh_stock(self) -> None:
        """Reload the remaining stock of the catalog's limited items."""
        if self.catalog is None:
            return
        limited = [i.sku for i in self.catalog.items if i.stock is not None]
        if limited:
            self._call("stock", self._bg.stock(limited), self._set_stock)

    def _set_wallet(self, wallet: Wallet) -> None:
        self.wallet = wallet

    def _set_inventory(self, inventory: Inventory) -> None:
        # Uses not yet confirmed by the store stay subtracted, so a count never jumps back up.
        unsent: dict[str, int] = {}
        for order in self.consume_outbox:
            unsent[order.sku] = unsent.get(order.sku, 0) + 1
        self.inventory = Inventory(
            tuple(
                ItemQuantity(e.sku, max(0, e.quantity - unsent.get(e.sku, 0)))
                for e in inventory.items
            )
        )

    def _set_ledger(self, page: Any) -> None:
        self.ledger = list(page.items)

    def _set_stock(self, levels: list[StockLevel]) -> None:
        self.stock.update({level.sku: level.remaining for level in levels})

    # --- what the screens show ------------------------------------------------------------------

    def balance(self, currency: str) -> int | None:
        """The balance in minor units, or ``None`` before the wallet has loaded."""
        return None if self.wallet is None else self.wallet.balance(currency)

    def money(self, currency: str, minor: int) -> Money:
        """``minor`` units of ``currency`` as Money, with the catalog's scale."""
        scale = 0
        if self.catalog is not None:
            with contextlib.suppress(KeyError):
                scale = self.catalog.currency(currency).scale
        return Money.from_minor(minor, currency, scale=scale)

    def owned(self, sku: str) -> int:
        """How many of ``sku`` the player has (uses in flight already subtracted)."""
        return 0 if self.inventory is None else self.inventory.quantity(sku)

    def item(self, sku: str) -> Item | None:
        """The catalog item ``sku``, if the catalog has loaded and has it."""
        if self.catalog is None:
            return None
        try:
            return self.catalog.item(sku)
        except KeyError:
            return None

    def _name(self, sku: str) -> str:
        item = self.item(sku)
        return item.name if item is not None else sku

    # --- buying ---------------------------------------------------------------------------------

    def buy(self, sku: str, currency: str | None = None, *, expected: Money | None = None) -> bool:
        """Start buying one ``sku``; False (with a toast) if it cannot start now."""
        item = self.item(sku)
        if item is None:
            self.notify("The store is still loading…", "info")
            return False
        if sku in self.buying:
            self.notify(f"Already buying {item.name}…", "info")
            return False
        # The player's own price (an offer's, or the list price): what the shop shows.
        price = expected or item.my_price(currency or item.prices[0].currency).price
        now = datetime.now(UTC)
        if item.available_from is not None and now < item.available_from:
            wait = countdown(item.available_from, now)
            self.notify(f"{item.name} is not on sale yet: the drop opens in {wait}", "warn")
            return False
        if item.kind == "durable" and self.owned(sku) > 0:
            self.notify(f"You already own the {item.name}", "info")
            return False
        self.buying[sku] = "sending"
        self._call(
            "purchase",
            self._bg.purchase(sku, currency=price.currency, expected_price=price),
            lambda result: self._on_bought(sku, result),
            lambda error: self._on_purchase_failed(sku, price, error),
        )
        return True

    def redeem(self, code: str) -> bool:
        """Start redeeming a promo code; its offer then shows in the shop, or what it grants
        lands in the wallet. False (with a toast) when there is no code to send."""
        code = code.strip()
        if not code:
            self.notify("Type a code first", "info")
            return False

        def redeemed(result: RedeemResult) -> None:
            if result.offer_id is not None:
                self.notify(f"Code {result.code} unlocked a new price in the shop!", "ok")
            else:
                got = ", ".join(
                    str(self.money(g.currency, g.amount))
                    if isinstance(g, Amount)
                    else f"{g.quantity} x {self._name(g.sku)}"
                    for g in result.granted
                )
                self.notify(f"Code {result.code}: you got {got}", "ok")
            self.refresh_all()

        def refused(error: BaseException) -> None:
            if isinstance(error, NotFound):
                self.notify(f"{code.upper()} is not a code you can use", "warn")
            elif isinstance(error, CodeAlreadyRedeemed):
                self.notify(f"You already used {code.upper()}", "info")
            elif isinstance(error, CodeExhausted):
                self.notify(f"{code.upper()} has been used up", "warn")
            else:
                self._on_read_error(error)

        self._call("redeem", self._bg.redeem_code(code), redeemed, refused)
        return True

    def answer_dialog(self, accept: bool) -> None:
        """The player's answer to the price-changed dialog."""
        dialog, self.dialog = self.dialog, None
        if dialog is not None and accept:
            self.buy(dialog.sku, dialog.new.currency, expected=dialog.new)

    def _on_bought(self, sku: str, result: PurchaseResult) -> None:
        self.buying.pop(sku, None)
        self.pending_purchases.pop(result.idempotency_key, None)
        if result.idempotency_key in self._reported:
            return
        self._reported.add(result.idempotency_key)
        self.purchases_made += 1
        item = self.item(sku)
        name = item.name if item is not None else sku
        price = self.money(result.purchase.price.currency, result.purchase.price.amount)
        if sku == "tip":
            self.notify(f"Thank you for the tip of {price}!", "ok")
        else:
            self.notify(f"Bought {name} for {price}", "ok")
        if not result.replayed:
            self.wallet = Wallet(result.balances)
        self.refresh_wallet()
        self.refresh_inventory()
        self.refresh_ledger()
        if item is not None and item.stock is not None:
            self.refresh_stock()

    def _on_purchase_failed(self, sku: str, price: Money, error: BaseException) -> None:
        key = error.idempotency_key if isinstance(error, ShopkeepError) else None
        if key is not None and key in self._reported:
            # A resume_pending() running meanwhile already settled this very purchase.
            self.buying.pop(sku, None)
            return
        if _unsettled(error) and key is not None:
            # The journal holds it; resume_pending() re-sends it with this key until it settles.
            self.buying[sku] = "pending"
            self.pending_purchases[key] = sku
            self.notify(
                f"Connection lost: your {self._name(sku)} will arrive when the store is back",
                "warn",
            )
            return
        self.buying.pop(sku, None)
        if key is not None:
            self.pending_purchases.pop(key, None)
            if key in self._reported:
                return
            self._reported.add(key)
        self._explain_refusal(sku, price, error)

    def _explain_refusal(self, sku: str, price: Money | None, error: BaseException) -> None:
        name = self._name(sku)
        if isinstance(error, PriceChanged) and error.current_price is not None:
            new = self.money(error.current_price.currency, error.current_price.amount)
            old = price or new
            self.dialog = PriceDialog(sku, name, old, new)
            self.refresh_catalog()
        elif isinstance(error, InsufficientFunds):
            if price is None:
                self.notify(f"Not enough funds for {name}", "error")
                return
            have = self.money(price.currency, self.balance(price.currency) or 0)
            self.notify(
                f"Not enough {price.currency}: {name} costs {price}, you have {have}", "error"
            )
        elif isinstance(error, SoldOut):
            self.stock[sku] = 0
            self.notify(f"{name} is sold out!", "error")
        elif isinstance(error, PurchaseLimitReached):
            item = self.item(sku)
            if item is not None and item.per_player_limit is not None and item.kind != "durable":
                limit = item.per_player_limit
                self.notify(f"Limit reached: {limit} {name} per player", "error")
            else:
                self.notify(f"You already have {name}: one per player", "error")
        elif isinstance(error, ItemUnavailable):
            self.notify(f"{name} is not on sale right now", "error")
        elif isinstance(error, BalanceCapExceeded):
            self.notify(f"Your wallet is full: {name} would overflow it", "error")
        elif isinstance(error, NotFound):
            self.notify(f"{name} is no longer sold", "error")
            self.refresh_catalog()
        elif isinstance(error, AuthenticationError):
            self._auth_failed()
        else:
            self.notify(f"Could not buy {name}: {error}", "error")

    def _resume(self) -> None:
        before = set(self.pending_purchases)

        def resumed(outcomes: list[PendingOutcome]) -> None:
            self._on_resumed(before, outcomes)

        self._call("resume", self._bg.resume_pending(), resumed)

    # --- topping up with real money (the TEST store) --------------------------------------------

    def top_up_products(self) -> list[Product]:
        """The catalog's products the TEST store can sell (empty without one)."""
        if self.catalog is None or self.test_store is None:
            return []
        return [p for p in self.catalog.products if self.test_store.sells(p)]

    def top_up(self, product: Product) -> bool:
        """Pay the TEST store for ``product`` and redeem its receipt; False if it cannot start."""
        if self.test_store is None:
            self.notify("This store sells top-ups only through a real app store", "warn")
            return False
        if self.topping_up is not None:
            self.notify("A top-up is already on its way…", "info")
            return False
        signed = self.test_store.pay(product)
        self.topping_up = product.id
        self._call(
            "topup",
            self._bg.redeem_receipt("app_store", {"signed_transaction": signed}),
            self._on_topped_up,
            self._on_topup_failed,
        )
        return True

    def _on_topped_up(self, result: ReceiptResult) -> None:
        self.topping_up = None
        self.pending_topups.discard(result.idempotency_key)
        if result.idempotency_key in self._reported:
            return
        self._reported.add(result.idempotency_key)
        got = ", ".join(
            str(self.money(g.currency, g.amount)) if isinstance(g, Amount) else g.sku
            for g in result.granted
        )
        self.notify(f"Topped up {result.receipt.product_id}: {got} (TEST store)", "ok")
        if result.repaid:
            self.notify("Part of it repaid what a refund left owed", "info")
        if not result.replayed:
            self.wallet = Wallet(result.balances)
        self.refresh_wallet()
        self.refresh_ledger()

    def _on_topup_failed(self, error: BaseException) -> None:
        self.topping_up = None
        key = error.idempotency_key if isinstance(error, ShopkeepError) else None
        if _unsettled(error) and key is not None:
            # The store has "charged": the journal holds the receipt until it is credited.
            self.pending_topups.add(key)
            self.notify("The top-up is paid; crediting it when the store answers…", "warn")
        elif isinstance(error, ReceiptInvalid):
            self.notify(f"The store refused the receipt ({error.reason})", "error")
        elif isinstance(error, AuthenticationError):
            self._auth_failed()
        else:
            self.notify(f"Could not top up: {error}", "error")

    def _on_topup_resumed(self, outcome: PendingOutcome) -> None:
        key = outcome.pending.idempotency_key
        if outcome.state == "completed" and isinstance(outcome.result, ReceiptResult):
            self._on_topped_up(outcome.result)
        elif outcome.state == "pending":
            self.pending_topups.add(key)
        else:
            self.pending_topups.discard(key)
            if outcome.error is not None and key not in self._reported:
                self._reported.add(key)
                self.notify(f"A paid top-up was refused: {outcome.error}", "error")

    def _on_resumed(self, before: set[str], outcomes: list[PendingOutcome]) -> None:
        still = {o.pending.idempotency_key for o in outcomes if o.state == "pending"}
        # A key we were waiting for that the journal no longer holds has settled elsewhere.
        for key in before - still:
            sku = self.pending_purchases.pop(key, None)
            if sku is not None and self.buying.get(sku) == "pending":
                self.buying.pop(sku, None)
        for outcome in outcomes:
            key = outcome.pending.idempotency_key
            if outcome.pending.path == RECEIPTS_PATH:
                self._on_topup_resumed(outcome)
                continue
            sku = outcome.pending.sku
            if outcome.state == "completed" and isinstance(outcome.result, PurchaseResult):
                self._on_bought(sku, outcome.result)
            elif outcome.state == "rejected" and outcome.error is not None:
                self.buying.pop(sku, None)
                self.pending_purchases.pop(key, None)
                if key not in self._reported:
                    self._reported.add(key)
                    expected = outcome.pending.body.get("expected_price")
                    price = (
                        self.money(expected["currency"], expected["amount"]) if expected else None
                    )
                    self._explain_refusal(sku, price, outcome.error)
            elif outcome.state == "expired":
                self.buying.pop(sku, None)
                self.pending_purchases.pop(key, None)
                self.notify(f"A purchase of {self._name(sku)} was too old to resume", "warn")
                self.refresh_all()
            else:
                self.pending_purchases[key] = sku
                self.buying[sku] = "pending"
                if outcome.error is not None and _unsettled(outcome.error):
                    self.online = False

    # --- using consumables ----------------------------------------------------------------------

    def use(self, sku: str) -> bool:
        """Use one ``sku`` now if the player has one; the store is told in the background.

        The effect starts at once (an arcade cannot wait for a round trip); the count drops
        at once too, so it can never be used twice. The consume is re-sent with the same key
        until the store confirms, so it is counted exactly once.
        """
        if self.inventory is None or self.owned(sku) <= 0:
            return False
        self.inventory = Inventory(
            tuple(
                ItemQuantity(e.sku, e.quantity - 1) if e.sku == sku else e
                for e in self.inventory.items
            )
        )
        order = ConsumeOrder(sku, f"consume-{uuid.uuid4()}")
        self.consume_outbox.append(order)
        self._send_consume(order)
        return True

    def _send_consume(self, order: ConsumeOrder) -> None:
        def ok(left: ItemQuantity) -> None:
            self.stalled.discard(order.key)
            self._drop_consume(order)
            if not any(o.sku == order.sku for o in self.consume_outbox):
                self._set_quantity(order.sku, left.quantity)

        def failed(error: BaseException) -> None:
            if _unsettled(error):
                self.stalled.add(order.key)
                return  # kept in the outbox; re-sent with the same key
            self.stalled.discard(order.key)
            self._drop_consume(order)
            if isinstance(error, NotEnoughItems):
                self.notify(f"You have no {self._name(order.sku)} left", "error")
            else:
                self.notify(f"Could not use {self._name(order.sku)}: {error}", "error")
            self.refresh_inventory()

        self._call("consume", self._bg.consume(order.sku, 1, idempotency_key=order.key), ok, failed)

    def _drop_consume(self, order: ConsumeOrder) -> None:
        if order in self.consume_outbox:
            self.consume_outbox.remove(order)

    def _set_quantity(self, sku: str, quantity: int) -> None:
        items = [e for e in (self.inventory.items if self.inventory else ()) if e.sku != sku]
        if quantity > 0:
            items.append(ItemQuantity(sku, quantity))
        self.inventory = Inventory(tuple(sorted(items, key=lambda e: e.sku)))

    # --- earning --------------------------------------------------------------------------------

    def bank_round(self, round_id: str, coins: int) -> None:
        """Ask the studio backend to pay ``coins`` for ``round_id`` (re-sent until it answers)."""
        if self.backend is None:
            self.payouts[round_id] = BackendError(None, "no_backend", "no studio backend")
            return
        order = RoundOrder(round_id, coins)
        self.round_outbox.append(order)
        self._send_round(order)

    def _send_round(self, order: RoundOrder) -> None:
        backend = self.backend
        assert backend is not None

        def ok(payout: RoundPayout) -> None:
            self.stalled.discard(order.round_id)
            if order in self.round_outbox:
                self.round_outbox.remove(order)
            self.payouts[order.round_id] = payout
            if payout.coins_granted:
                coins = self.money("COINS", payout.coins_granted)
                self.notify(f"+{coins} banked", "ok")
                self.refresh_wallet()
                self.refresh_ledger()

        def failed(error: BaseException) -> None:
            if isinstance(error, BackendError) and error.retryable:
                self.payouts[order.round_id] = error
                self.stalled.add(order.round_id)
                return  # kept in the outbox; the same round id pays once whenever it lands
            self.stalled.discard(order.round_id)
            if order in self.round_outbox:
                self.round_outbox.remove(order)
            if isinstance(error, BackendError):
                self.payouts[order.round_id] = error
                self.notify(f"Coins not banked: {error.message}", "error")
            else:
                self.notify(f"Coins not banked: {error}", "error")

        handle = self._backend_bg.submit(backend.finish_round, order.round_id, order.coins)
        self._call("round", handle, ok, failed)
