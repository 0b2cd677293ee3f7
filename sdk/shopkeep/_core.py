"""What the sync and async clients share: requests, parsers, retry decisions, the catalog cache.

Nothing here does I/O except the pending journal's small file writes, so both clients run the
same rules and differ only in how they send a request and sleep.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from ._version import __version__
from .errors import (
    ConnectionError,
    ErrorCategory,
    ServerError,
    ShopkeepError,
    Timeout,
    error_from_body,
    parse_retry_after,
)
from .journal import PendingJournal, PendingPurchase
from .models import (
    Amount,
    Catalog,
    Grant,
    GrantResult,
    Inventory,
    ItemQuantity,
    LedgerEntry,
    Page,
    Purchase,
    PurchaseResult,
    Receipt,
    ReceiptResult,
    RedeemResult,
    StockLevel,
    Wallet,
    parse_granted,
)
from .money import Money, check_currency_code, check_minor

T = TypeVar("T")

log = logging.getLogger("shopkeep")

RequestHook = Callable[[str, str, "int | None", float, "ShopkeepError | None"], object]
"""``on_request(method, path, status, elapsed_seconds, error)``, once per HTTP attempt."""

Jitter = Callable[[float], float]
"""Maps a backoff ceiling in seconds to the delay actually slept."""

USER_AGENT = f"shopkeep-python/{__version__} httpx/{httpx.__version__}"
MAX_RETRY_AFTER = 60.0


def new_idempotency_key() -> str:
    """A fresh key: a uuid4 string, 36 characters (the API allows 16..255)."""
    return str(uuid.uuid4())


def check_idempotency_key(key: str | None) -> str:
    """The caller's key if valid, else a new one."""
    if key is None:
        return new_idempotency_key()
    if not isinstance(key, str):
        raise TypeError(f"idempotency_key must be a str, not {type(key).__name__}")
    if not 16 <= len(key) <= 255 or any(not 0x20 <= ord(c) <= 0x7E for c in key):
        raise ValueError("idempotency_key must be 16..255 printable ASCII characters")
    return key


def check_count(value: object, what: str) -> int:
    """An int count (quantity); floats and bools are refused before they reach the wire."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    return value


def segment(value: str) -> str:
    """One path segment, escaped so an id can never add a path or query of its own."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty str, got {value!r}")
    return quote(value, safe="")


def equal_jitter(rng: random.Random) -> Jitter:
    """Sleep between half and all of the backoff: spreads a herd yet always backs off."""
    return lambda ceiling: ceiling / 2 + rng.uniform(0, ceiling / 2)


def is_unsettled(error: ShopkeepError) -> bool:
    """Whether ``error`` leaves the outcome open (its category is transient: no response, 429,
    5xx, or a key in flight). Such a request may be re-sent with the same key; any other error
    is a definite answer."""
    return error.category is ErrorCategory.TRANSIENT


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """One logical call: retries re-send exactly this, idempotency key included."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    body: Mapping[str, Any] | None = None
    idempotency_key: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    # Purchases go through the pending journal when the client has one.
    journaled: bool = False

    @property
    def retry_safe(self) -> bool:
        """GETs change nothing, a DELETE (releasing a hold) is idempotent and a keyed POST runs
        at most once, so all may be re-sent."""
        return self.method in ("GET", "DELETE") or self.idempotency_key is not None


@dataclasses.dataclass(frozen=True, slots=True)
class Operation(Generic[T]):
    """A request and how to read its successful response."""

    request: Request
    parse: Callable[[httpx.Response], T]


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    """What to do after one attempt: return ``response``, or sleep ``delay`` and retry, or raise."""

    response: httpx.Response | None = None
    error: ShopkeepError | None = None
    delay: float | None = None


def _body(response: httpx.Response) -> Any:
    return response.json()


def _replayed(response: httpx.Response) -> bool:
    return bool(response.headers.get("Idempotent-Replayed", "").lower() == "true")


def _request_id(response: httpx.Response) -> str | None:
    value: str | None = response.headers.get("X-Request-Id")
    return value


def _page(parse: Callable[[Mapping[str, Any]], T], key: str) -> Callable[[httpx.Response], Page[T]]:
    def read(response: httpx.Response) -> Page[T]:
        data = _body(response)
        cursor = data.get("next_cursor")
        return Page(items=tuple(parse(e) for e in data[key]), next_cursor=cursor or None)

    return read


def _list_params(limit: int | None, cursor: str | None) -> tuple[tuple[str, str], ...]:
    params: list[tuple[str, str]] = []
    if limit is not None:
        params.append(("limit", str(check_count(limit, "limit"))))
    if cursor is not None:
        params.append(("cursor", cursor))
    return tuple(params)


def _player(player_id: str | None, tail: str) -> str:
    return f"/v1/players/{segment(player_id)}/{tail}" if player_id is not None else ""


# --- operations ---------------------------------------------------------------------------------


def op_stock(skus: Iterable[str]) -> Operation[list[StockLevel]]:
    """``GET /v1/stock?sku=...``."""
    # A bare str is iterable too; "sword" must not become s, w, o, r, d.
    names = [skus] if isinstance(skus, str) else list(skus)

    def parse(response: httpx.Response) -> list[StockLevel]:
        return [
            StockLevel(sku=str(e["sku"]), remaining=check_count(e["remaining"], "remaining"))
            for e in _body(response)["stock"]
        ]

    return Operation(Request("GET", "/v1/stock", params=tuple(("sku", s) for s in names)), parse)


def op_wallet(player_id: str | None = None) -> Operation[Wallet]:
    """``GET /v1/wallet`` or a player's, for the service role."""
    path = _player(player_id, "wallet") or "/v1/wallet"
    return Operation(Request("GET", path), lambda r: Wallet.from_wire(_body(r)))


def op_inventory(player_id: str | None = None) -> Operation[Inventory]:
    """``GET /v1/inventory`` or a player's, for the service role."""
    path = _player(player_id, "inventory") or "/v1/inventory"
    return Operation(Request("GET", path), lambda r: Inventory.from_wire(_body(r)))


def op_ledger_page(
    player_id: str | None, limit: int | None, cursor: str | None
) -> Operation[Page[LedgerEntry]]:
    """One page of ``GET /v1/wallet/ledger`` (or a player's ledger), newest first."""
    path = _player(player_id, "ledger") or "/v1/wallet/ledger"
    return Operation(
        Request("GET", path, params=_list_params(limit, cursor)),
        _page(LedgerEntry.from_wire, "entries"),
    )


def op_purchases_page(
    player_id: str | None, limit: int | None, cursor: str | None
) -> Operation[Page[Purchase]]:
    """One page of ``GET /v1/purchases`` (or a player's purchases), newest first."""
    path = _player(player_id, "purchases") or "/v1/purchases"
    return Operation(
        Request("GET", path, params=_list_params(limit, cursor)),
        _page(Purchase.from_wire, "purchases"),
    )


def op_get_purchase(purchase_id: str) -> Operation[Purchase]:
    """``GET /v1/purchases/{id}``."""
    return Operation(
        Request("GET", f"/v1/purchases/{segment(purchase_id)}"),
        lambda r: Purchase.from_wire(_body(r)["purchase"]),
    )


def _price(value: Money | Amount) -> dict[str, Any]:
    if isinstance(value, Money | Amount):
        return value.to_wire()
    raise TypeError(f"expected_price must be Money or Amount, not {type(value).__name__}")


def purchase_body(
    sku: str,
    quantity: int,
    currency: str | None,
    expected_price: Money | Amount | None,
    hold_id: str | None = None,
) -> dict[str, Any]:
    """The JSON body of ``POST /v1/purchases``; the journal stores exactly this."""
    if not isinstance(sku, str) or not sku:
        raise ValueError(f"sku must be a non-empty str, got {sku!r}")
    body: dict[str, Any] = {"sku": sku, "quantity": check_count(quantity, "quantity")}
    if currency is not None:
        body["currency"] = check_currency_code(currency)
    if expected_price is not None:
        body["expected_price"] = _price(expected_price)
    if hold_id is not None:
        if not isinstance(hold_id, str) or not hold_id:
            raise ValueError(f"hold_id must be a non-empty str, got {hold_id!r}")
        body["hold_id"] = hold_id
    return body


def parse_purchase_result(response: httpx.Response, key: str) -> PurchaseResult:
    """Read a purchase's 201 (or its replay)."""
    data = _body(response)
    purchase = Purchase.from_wire(data["purchase"])
    return PurchaseResult(
        purchase=purchase,
        balances=tuple(Amount.from_wire(b) for b in data.get("balances") or ()),
        granted=purchase.granted if data.get("granted") is None else parse_granted(data["granted"]),
        replayed=_replayed(response),
        idempotency_key=key,
        request_id=_request_id(response),
    )


def op_purchase_body(body: Mapping[str, Any], key: str) -> Operation[PurchaseResult]:
    """``POST /v1/purchases`` with a body built before (a fresh call, or the journal's)."""
    return Operation(
        Request("POST", "/v1/purchases", body=body, idempotency_key=key, journaled=True),
        lambda r: parse_purchase_result(r, key),
    )


# What each store's proof is made of (the server's api/receipts.py holds the same list).
RECEIPT_PROOFS: dict[str, tuple[str, ...]] = {
    "app_store": ("signed_transaction",),
    "google_play": ("product_id", "purchase_token"),
    "steam": ("order_id",),
}
RECEIPTS_PATH = "/v1/receipts"


def receipt_body(
    store: str, proof: Mapping[str, Any], hold_id: str | None = None
) -> dict[str, Any]:
    """The JSON body of ``POST /v1/receipts``; the journal stores exactly this. ``hold_id``
    names the player's hold the payment buys (the product must grant the held item)."""
    fields = RECEIPT_PROOFS.get(store)
    if fields is None:
        raise ValueError(f"store must be one of {', '.join(RECEIPT_PROOFS)}, not {store!r}")
    if set(proof) != set(fields):
        raise ValueError(f"a {store} receipt is {', '.join(fields)}, got {sorted(proof)}")
    body = {"store": store, **{name: str(proof[name]) for name in fields}}
    return body if hold_id is None else {**body, "hold_id": str(hold_id)}


def parse_receipt_result(response: httpx.Response, key: str) -> ReceiptResult:
    """Read a receipt's 201 (or its replay)."""
    data = _body(response)
    return ReceiptResult(
        receipt=Receipt.from_wire(data["receipt"]),
        balances=_amount_list(data.get("balances")),
        granted=parse_granted(data.get("granted")),
        repaid=_amount_list(data.get("repaid")),
        debts=_amount_list(data.get("debts")),
        replayed=_replayed(response),
        idempotency_key=key,
        request_id=_request_id(response),
    )


def _amount_list(entries: Any) -> tuple[Amount, ...]:
    return tuple(Amount.from_wire(e) for e in entries or ())


def op_receipt_body(body: Mapping[str, Any], key: str) -> Operation[ReceiptResult]:
    """``POST /v1/receipts`` with a body built before (a fresh call, or the journal's)."""
    return Operation(
        Request("POST", RECEIPTS_PATH, body=body, idempotency_key=key, journaled=True),
        lambda r: parse_receipt_result(r, key),
    )


def op_journaled(entry: PendingPurchase) -> Operation[PurchaseResult | ReceiptResult]:
    """The request a journal entry re-sends: a purchase, or a receipt to redeem."""
    if entry.path == RECEIPTS_PATH:
        return op_receipt_body(entry.body, entry.idempotency_key)  # type: ignore[return-value]
    return op_purchase_body(entry.body, entry.idempotency_key)  # type: ignore[return-value]


def op_steam_order(product_id: str, steam_id: str, language: str) -> Operation[dict[str, str]]:
    """``POST /v1/receipts/steam/orders``: ``{order_id, trans_id}`` to approve in the overlay."""
    return Operation(
        Request(
            "POST",
            "/v1/receipts/steam/orders",
            body={"product_id": product_id, "steam_id": steam_id, "language": language},
        ),
        lambda r: {k: str(v) for k, v in _body(r).items()},
    )


def op_consume(sku: str, quantity: int, key: str) -> Operation[ItemQuantity]:
    """``POST /v1/inventory/{sku}/consume``: returns what is left."""
    return Operation(
        Request(
            "POST",
            f"/v1/inventory/{segment(sku)}/consume",
            body={"quantity": check_count(quantity, "quantity")},
            idempotency_key=key,
        ),
        lambda r: ItemQuantity.from_wire(_body(r)),
    )


def op_redeem_code(code: str, key: str) -> Operation[RedeemResult]:
    """``POST /v1/promo-codes/redeem``: unlocks the code's offer or grants its contents."""
    if not isinstance(code, str) or not code:
        raise ValueError("code must be a non-empty string")
    return Operation(
        Request("POST", "/v1/promo-codes/redeem", body={"code": code}, idempotency_key=key),
        lambda r: RedeemResult.from_wire(_body(r), replayed=_replayed(r)),
    )


def op_grant(
    player_id: str,
    *,
    currency: str | None,
    amount: int | Money | None,
    sku: str | None,
    quantity: int | None,
    reason: str,
    key: str,
) -> Operation[GrantResult]:
    """``POST /v1/players/{player_id}/grants`` of currency or of items."""
    if isinstance(amount, Money):
        if currency is not None and currency != amount.currency:
            raise ValueError(f"currency {currency} does not match the amount's {amount.currency}")
        currency, amount = amount.currency, amount.minor
    gives_money = currency is not None or amount is not None
    gives_items = sku is not None or quantity is not None
    if gives_money == gives_items:
        raise ValueError("grant either currency= and amount=, or sku= and quantity=")
    if not isinstance(reason, str):
        raise TypeError("reason must be a str")
    body: dict[str, Any] = {"reason": reason}
    if gives_money:
        if currency is None or amount is None:
            raise ValueError("a currency grant needs both currency= and amount=")
        body["currency"] = check_currency_code(currency)
        body["amount"] = check_minor(amount)
    else:
        if sku is None or quantity is None:
            raise ValueError("an item grant needs both sku= and quantity=")
        body["sku"] = sku
        body["quantity"] = check_count(quantity, "quantity")

    def parse(response: httpx.Response) -> GrantResult:
        data = _body(response)
        return GrantResult(
            grant=Grant.from_wire(data["grant"]),
            balances=tuple(Amount.from_wire(b) for b in data.get("balances") or ()),
            inventory=Inventory.from_wire({"items": data.get("inventory") or []}),
            replayed=_replayed(response),
            idempotency_key=key,
            request_id=_request_id(response),
        )

    return Operation(
        Request("POST", f"/v1/players/{segment(player_id)}/grants", body=body, idempotency_key=key),
        parse,
    )


def op_refund(purchase_id: str, *, reason: str, key: str) -> Operation[Purchase]:
    """``POST /v1/purchases/{id}/refund``."""
    if not isinstance(reason, str):
        raise TypeError("reason must be a str")
    return Operation(
        Request(
            "POST",
            f"/v1/purchases/{segment(purchase_id)}/refund",
            body={"reason": reason},
            idempotency_key=key,
        ),
        lambda r: Purchase.from_wire(_body(r)["purchase"]),
    )


class CatalogCache:
    """The last catalog and its ETag, so an unchanged catalog costs a 304 and no parsing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._catalog: Catalog | None = None

    @property
    def catalog(self) -> Catalog | None:
        """The last catalog fetched, if any."""
        return self._catalog

    def operation(self) -> Operation[Catalog]:
        """``GET /v1/catalog`` with ``If-None-Match`` when a catalog is cached."""
        with self._lock:
            cached = self._catalog
        headers = (("If-None-Match", cached.etag),) if cached and cached.etag else ()

        def parse(response: httpx.Response) -> Catalog:
            if response.status_code == 304:
                if cached is None:
                    raise ValueError("304 Not Modified for a catalog this client never fetched")
                return cached
            catalog = Catalog.from_wire(_body(response), etag=response.headers.get("ETag"))
            with self._lock:
                # Two concurrent fetches may finish out of order; keep the newest version.
                if self._catalog is None or catalog.version >= self._catalog.version:
                    self._catalog = catalog
            return catalog

        return Operation(Request("GET", "/v1/catalog", headers=headers), parse)


class Engine:
    """The rules around each HTTP attempt: headers, retry decisions, the hook, the journal."""

    def __init__(
        self,
        *,
        token: str | Callable[[], str],
        max_retries: int,
        jitter: Jitter | random.Random | None,
        on_request: RequestHook | None,
        pending_path: str | os.PathLike[str] | None,
        backoff: float,
        max_backoff: float,
    ) -> None:
        if not isinstance(token, str) and not callable(token):
            raise TypeError("token must be a str or a callable returning one")
        if check_count(max_retries, "max_retries") < 0:
            raise ValueError("max_retries must be >= 0")
        self.token = token
        self.max_retries = max_retries
        if jitter is None:
            jitter = random.Random()
        self.jitter: Jitter = equal_jitter(jitter) if isinstance(jitter, random.Random) else jitter
        self.on_request = on_request
        self.journal = PendingJournal(pending_path) if pending_path is not None else None
        self.backoff = backoff
        self.max_backoff = max_backoff

    def headers(self, request: Request) -> dict[str, str]:
        """Headers of one attempt; a token callable is asked each time so it may refresh."""
        token = self.token() if callable(self.token) else self.token
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if request.idempotency_key is not None:
            headers["Idempotency-Key"] = request.idempotency_key
        headers.update(request.headers)
        return headers

    def before(self, request: Request) -> None:
        """Journal a purchase before its first byte leaves, so a crash cannot lose it."""
        if request.journaled and self.journal is not None:
            assert request.idempotency_key is not None and request.body is not None
            self.journal.add(
                PendingPurchase.new(request.idempotency_key, dict(request.body), path=request.path)
            )

    def _settled(self, request: Request) -> None:
        if request.journaled and self.journal is not None:
            assert request.idempotency_key is not None
            self.journal.remove(request.idempotency_key)

    def _hook(
        self,
        request: Request,
        status: int | None,
        elapsed: float,
        error: ShopkeepError | None,
    ) -> None:
        if self.on_request is None:
            return
        try:
            self.on_request(request.method, request.path, status, elapsed, error)
        except Exception:
            # Telemetry must never turn a purchase that succeeded into an exception.
            log.exception("shopkeep on_request hook failed")

    def _delay(self, attempt: int, retry_after: float | None) -> float | None:
        if attempt >= self.max_retries:
            return None
        if retry_after is not None and retry_after > MAX_RETRY_AFTER:
            # The server wants us gone for longer than any game would hold a call open.
            return None
        backoff = self.jitter(min(self.max_backoff, self.backoff * 2**attempt))
        return max(retry_after or 0.0, backoff)

    def after_response(
        self, request: Request, response: httpx.Response, elapsed: float, attempt: int
    ) -> Step:
        """Decide on an attempt that got an HTTP response."""
        status = response.status_code
        if 200 <= status < 300 or status == 304:
            self._hook(request, status, elapsed, None)
            self._settled(request)
            return Step(response=response)
        error = error_from_body(
            status,
            response.content,
            request_id=_request_id(response),
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            idempotency_key=request.idempotency_key,
        )
        self._hook(request, status, elapsed, error)
        if not is_unsettled(error):
            # A definite answer: the purchase happened (2xx) or never will with this key.
            self._settled(request)
            return Step(error=error)
        delay = self._delay(attempt, error.retry_after) if request.retry_safe else None
        return Step(error=error, delay=delay)

    def after_exception(
        self, request: Request, exc: httpx.RequestError, elapsed: float, attempt: int
    ) -> Step:
        """Decide on an attempt that got no response; the journal entry stays."""
        if isinstance(exc, httpx.TimeoutException):
            error: ShopkeepError = Timeout(
                f"{type(exc).__name__}: {exc}", idempotency_key=request.idempotency_key
            )
            transient = True
        else:
            error = ConnectionError(
                f"{type(exc).__name__}: {exc}", idempotency_key=request.idempotency_key
            )
            # A bad URL, an unsupported scheme or an undecodable body fails the same way every
            # time; only a broken connection may go better on the next attempt.
            transient = isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError)
        error.__cause__ = exc
        self._hook(request, None, elapsed, error)
        delay = self._delay(attempt, None) if transient and request.retry_safe else None
        return Step(error=error, delay=delay)


def parse(operation: Operation[T], response: httpx.Response) -> T:
    """Run ``operation``'s parser, turning a malformed body into a :class:`ServerError`."""
    try:
        return operation.parse(response)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ServerError(
            f"unexpected response body for {operation.request.method} "
            f"{operation.request.path}: {exc!r}",
            status=response.status_code,
            request_id=_request_id(response),
            idempotency_key=operation.request.idempotency_key,
        ) from exc
