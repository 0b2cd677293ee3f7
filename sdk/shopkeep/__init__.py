"""Shopkeep SDK: buy and manage in-game items from a Shopkeep store server.

::

    from shopkeep import StoreClient, InsufficientFunds

    with StoreClient("http://127.0.0.1:8000", token) as client:
        catalog = client.catalog()
        bought = client.purchase("sword", expected_price=catalog.item("sword").price())

Purchases are exactly-once (an idempotency key per call, reused by every retry); amounts are
integers of a currency's minor unit (:class:`Money` formats them); errors are the classes of
:mod:`shopkeep.errors`; ``client.background()`` never blocks a frame loop; a ``pending_path``
journal lets a purchase survive a crash. httpx is the only dependency.
"""

from ._version import __version__
from .aio import AsyncStoreClient
from .background import Background, Handle
from .client import StoreClient
from .errors import (
    ERROR_CODES,
    AuthenticationError,
    BadRequest,
    BalanceCapExceeded,
    BusinessRejection,
    CodeAlreadyRedeemed,
    CodeExhausted,
    ConnectionError,
    DebtOutstanding,
    HoldExpired,
    HoldLimitReached,
    IdempotencyConflict,
    InsufficientFunds,
    ItemUnavailable,
    NotEnoughItems,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    PreconditionFailed,
    PreconditionRequired,
    PriceChanged,
    PurchaseLimitReached,
    RateLimited,
    ReceiptAlreadyUsed,
    ReceiptInvalid,
    ServerError,
    ServiceUnavailable,
    ShopkeepError,
    SoldOut,
    StoreUnavailable,
    Timeout,
    UnsupportedMediaType,
    ValidationError,
)
from .events import Event, EventPage
from .holds import Hold
from .journal import PendingOutcome, PendingPurchase
from .models import (
    Amount,
    Catalog,
    Currency,
    Grant,
    Granted,
    GrantResult,
    Inventory,
    Item,
    ItemQuantity,
    LedgerEntry,
    OfferPrice,
    Page,
    Product,
    Purchase,
    PurchaseResult,
    Receipt,
    ReceiptResult,
    RedeemResult,
    StockLevel,
    Wallet,
)
from .money import Money

__all__ = [
    "ERROR_CODES",
    "Amount",
    "AsyncStoreClient",
    "AuthenticationError",
    "Background",
    "BadRequest",
    "BalanceCapExceeded",
    "BusinessRejection",
    "Catalog",
    "CodeAlreadyRedeemed",
    "CodeExhausted",
    "ConnectionError",
    "Currency",
    "DebtOutstanding",
    "Event",
    "EventPage",
    "Grant",
    "GrantResult",
    "Granted",
    "Handle",
    "Hold",
    "HoldExpired",
    "HoldLimitReached",
    "IdempotencyConflict",
    "InsufficientFunds",
    "Inventory",
    "Item",
    "ItemQuantity",
    "ItemUnavailable",
    "LedgerEntry",
    "Money",
    "NotEnoughItems",
    "NotFound",
    "OfferPrice",
    "Page",
    "PayloadTooLarge",
    "PendingOutcome",
    "PendingPurchase",
    "PermissionDenied",
    "PreconditionFailed",
    "PreconditionRequired",
    "PriceChanged",
    "Product",
    "Purchase",
    "PurchaseLimitReached",
    "PurchaseResult",
    "RateLimited",
    "Receipt",
    "ReceiptAlreadyUsed",
    "ReceiptInvalid",
    "ReceiptResult",
    "RedeemResult",
    "ServerError",
    "ServiceUnavailable",
    "ShopkeepError",
    "SoldOut",
    "StockLevel",
    "StoreClient",
    "StoreUnavailable",
    "Timeout",
    "UnsupportedMediaType",
    "ValidationError",
    "Wallet",
    "__version__",
]
