"""The studio's client, :class:`StudioClient`: the catalog draft, publishing, versions,
rollback, restock, and player support, on the SDK's own request engine.

::

    from shopkeep.studio import StudioClient

    with StudioClient("http://127.0.0.1:8000", studio_token) as studio:
        draft = studio.draft()                     # the draft and its ETag
        content = {**draft.content, "items": [...]}
        studio.put_draft(content, if_match=draft.etag)
        studio.publish(notes="spring prices")      # only the draft this client pushed

Tokens: ``token`` is a studio token (catalog, versions, stock). Player support (a player's
wallet, inventory, purchases and ledger, refunds) is the service role's in the API: pass
``service_token=`` for those calls; without it they are sent with ``token``, so a token whose
role the API refuses gets :class:`~shopkeep.errors.PermissionDenied` and nothing else happens.

:class:`AsyncStudioClient` has the same calls as coroutines, on
:class:`~shopkeep.AsyncStoreClient`'s engine.

Every call goes through the same engine as :class:`~shopkeep.StoreClient`: retries with jitter
honouring ``Retry-After``, an idempotency key made once per call and reused by every retry,
the SDK's typed errors. The draft is guarded by its ETag: :meth:`put_draft` needs one, and
:meth:`publish` sends the ETag of the draft this client last read or wrote unless told
otherwise, so a draft someone else changed in between is never published
(:class:`~shopkeep.errors.PreconditionFailed`, and nothing is published).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx

from ._core import (
    Jitter,
    Operation,
    Request,
    RequestHook,
    check_count,
    check_idempotency_key,
    op_stock,
    segment,
)
from .aio import AsyncStoreClient
from .catalog_diff import CATALOG_PARTS
from .client import StoreClient
from .models import (
    Inventory,
    LedgerEntry,
    Page,
    Purchase,
    StockLevel,
    Wallet,
    _int,
    _required_time,
)
from .webhook_endpoints import (
    Delivery,
    NewSecret,
    Webhook,
    op_add_webhook,
    op_delete_webhook,
    op_deliveries_page,
    op_redeliver,
    op_rotate_secret,
    op_set_enabled,
    op_webhook,
    op_webhooks,
)

__all__ = [
    "ANY_DRAFT",
    "AsyncStudioClient",
    "CatalogVersion",
    "Delivery",
    "Draft",
    "NewSecret",
    "PublishedVersion",
    "StoreAccount",
    "StudioClient",
    "Webhook",
]

DRAFT_PATH = "/v1/admin/catalog/draft"


@dataclasses.dataclass(frozen=True, slots=True)
class Draft:
    """The draft catalog as the store keeps it (``{currencies, items}``, every field present,
    amounts in minor units) and the ``etag`` to change or publish exactly this draft."""

    content: dict[str, Any] = dataclasses.field(hash=False)
    etag: str


@dataclasses.dataclass(frozen=True, slots=True)
class PublishedVersion:
    """What :meth:`StudioClient.publish` and :meth:`StudioClient.rollback` made."""

    version: int
    notes: str
    published_by: str
    published_at: datetime

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> PublishedVersion:
        """Parse ``{version, notes, published_by, published_at}``."""
        return cls(
            version=_int(data["version"], "version"),
            notes=str(data["notes"]),
            published_by=str(data["published_by"]),
            published_at=_required_time(data["published_at"]),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class CatalogVersion:
    """A published version: its summary, whether it is ``live``, and (from
    :meth:`StudioClient.version`, not from the list) its ``content``."""

    version: int
    notes: str
    published_by: str
    published_at: datetime
    live: bool
    content: dict[str, Any] | None = dataclasses.field(default=None, hash=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> CatalogVersion:
        """Parse a version's summary, with ``currencies`` and ``items`` when present."""
        content = None
        if "currencies" in data and "items" in data:
            content = {"currencies": list(data["currencies"]), "items": list(data["items"])}
            if "products" in data:
                content["products"] = list(data["products"])
            # A version's segments, offers and promo codes (issue 15), when it has the keys.
            for part in CATALOG_PARTS:
                if part in data:
                    content[part] = list(data[part])
        live = data["live"]
        if not isinstance(live, bool):
            raise TypeError(f"live: expected a boolean, got {live!r}")
        return cls(
            version=_int(data["version"], "version"),
            notes=str(data["notes"]),
            published_by=str(data["published_by"]),
            published_at=_required_time(data["published_at"]),
            live=live,
            content=content,
        )


def _catalog_document(content: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(content, Mapping):
        raise TypeError(f"a catalog is a mapping with currencies and items, not {content!r}")
    return dict(content)


def _draft(response: httpx.Response) -> Draft:
    etag = response.headers.get("ETag")
    if not etag:
        raise ValueError("the draft came without its ETag")
    return Draft(content=dict(response.json()), etag=etag)


def op_get_draft() -> Operation[Draft]:
    """``GET /v1/admin/catalog/draft``."""
    return Operation(Request("GET", DRAFT_PATH), _draft)


def op_put_draft(content: Mapping[str, Any], if_match: str) -> Operation[Draft]:
    """``PUT /v1/admin/catalog/draft`` with ``If-Match`` (safe to repeat: no key needed)."""
    if not isinstance(if_match, str) or not if_match:
        raise ValueError("put_draft needs the ETag of the draft it replaces (or '*')")
    request = Request(
        "PUT", DRAFT_PATH, body=_catalog_document(content), headers=(("If-Match", if_match),)
    )
    return Operation(request, _draft)


def op_validate(content: Mapping[str, Any], key: str) -> Operation[dict[str, Any]]:
    """``POST /v1/admin/catalog/validate``."""
    # It stores nothing, so it may be re-sent like a GET; a key (which the route does not
    # need) is what tells the engine that a POST is safe to re-send.
    request = Request(
        "POST", "/v1/admin/catalog/validate", body=_catalog_document(content), idempotency_key=key
    )
    return Operation(request, lambda r: dict(r.json()))


def op_publish(notes: str, if_match: str | None, key: str) -> Operation[PublishedVersion]:
    """``POST /v1/admin/catalog/publish``, with ``If-Match`` unless ``if_match`` is None."""
    if not isinstance(notes, str):
        raise TypeError("notes must be a str")
    headers = (("If-Match", if_match),) if if_match is not None else ()
    request = Request(
        "POST",
        "/v1/admin/catalog/publish",
        body={"notes": notes},
        idempotency_key=key,
        headers=headers,
    )
    return Operation(request, lambda r: PublishedVersion.from_wire(r.json()))


def op_rollback(version: int, key: str) -> Operation[PublishedVersion]:
    """``POST /v1/admin/catalog/rollback``."""
    request = Request(
        "POST",
        "/v1/admin/catalog/rollback",
        body={"version": check_count(version, "version")},
        idempotency_key=key,
    )
    return Operation(request, lambda r: PublishedVersion.from_wire(r.json()))


def op_versions() -> Operation[list[CatalogVersion]]:
    """``GET /v1/admin/catalog/versions``, newest first."""
    return Operation(
        Request("GET", "/v1/admin/catalog/versions"),
        lambda r: [CatalogVersion.from_wire(v) for v in r.json()["versions"]],
    )


def op_version(number: int) -> Operation[CatalogVersion]:
    """``GET /v1/admin/catalog/versions/{n}``, with its content."""
    path = f"/v1/admin/catalog/versions/{check_count(number, 'version')}"
    return Operation(Request("GET", path), lambda r: CatalogVersion.from_wire(r.json()))


def op_restock(sku: str, add: int, key: str) -> Operation[StockLevel]:
    """``POST /v1/admin/stock/{sku}``: returns what is left to sell now."""

    def parse(response: httpx.Response) -> StockLevel:
        data = response.json()
        return StockLevel(sku=str(data["sku"]), remaining=_int(data["remaining"], "remaining"))

    request = Request(
        "POST",
        f"/v1/admin/stock/{segment(sku)}",
        body={"add": check_count(add, "add")},
        idempotency_key=key,
    )
    return Operation(request, parse)


@dataclasses.dataclass(frozen=True, slots=True)
class StoreAccount:
    """How the game sells on one app store: its ``settings`` and the names of the secrets the
    server keeps (``secrets_set``; a secret itself is never sent back)."""

    store: str
    settings: dict[str, Any] = dataclasses.field(hash=False)
    secrets_set: tuple[str, ...]
    chargeback_policy: str
    updated_by: str
    updated_at: datetime

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> StoreAccount:
        """Parse a store account."""
        return cls(
            store=str(data["store"]),
            settings=dict(data["settings"]),
            secrets_set=tuple(str(name) for name in data["secrets_set"]),
            chargeback_policy=str(data["chargeback_policy"]),
            updated_by=str(data["updated_by"]),
            updated_at=_required_time(data["updated_at"]),
        )


def op_put_store(store: str, settings: Mapping[str, Any]) -> Operation[StoreAccount]:
    """``PUT /v1/admin/stores/{store}``: secrets left out are kept."""
    request = Request("PUT", f"/v1/admin/stores/{segment(store)}", body=dict(settings))
    return Operation(request, lambda r: StoreAccount.from_wire(r.json()))


def op_stores() -> Operation[list[StoreAccount]]:
    """``GET /v1/admin/stores``."""
    return Operation(
        Request("GET", "/v1/admin/stores"),
        lambda r: [StoreAccount.from_wire(entry) for entry in r.json()["stores"]],
    )


class _AnyDraft:
    """The type of :data:`ANY_DRAFT`."""

    def __repr__(self) -> str:
        return "ANY_DRAFT"


ANY_DRAFT = _AnyDraft()
"""``publish(if_match=ANY_DRAFT)``: publish whatever the draft is now, unchecked."""


def _publish_etag(if_match: str | _AnyDraft | None, remembered: str | None) -> str | None:
    """The If-Match of a publish: the ETag named, else the one remembered, or none at all for
    :data:`ANY_DRAFT`."""
    if if_match is ANY_DRAFT:
        return None
    if isinstance(if_match, str) and if_match:
        return if_match
    if if_match is None and remembered is not None:
        return remembered
    if if_match is None:
        raise ValueError(
            "publish needs the draft's ETag: read the draft (draft()) or push it "
            "(put_draft()) first, pass if_match=ETAG, or if_match=ANY_DRAFT"
        )
    raise TypeError(f"if_match must be an ETag or ANY_DRAFT, not {if_match!r}")


class StudioClient:
    """A blocking client of one store's studio calls, for a studio token.

    ``base_url`` and the keyword options (``timeout``, ``max_retries``, ``transport``,
    ``on_request``, ``jitter``, ``sleep``, ``backoff``, ``max_backoff``) mean what they mean for
    :class:`~shopkeep.StoreClient`. ``service_token`` is used for the player-support calls (the
    API gives them to the service role); without it they are sent with ``token``.

    The client remembers the ETag of the draft it last read (:meth:`draft`) or wrote
    (:meth:`put_draft`) in :attr:`draft_etag`; :meth:`publish` sends it as ``If-Match``.
    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        token: str | Callable[[], str],
        *,
        service_token: str | Callable[[], str] | None = None,
        timeout: float | httpx.Timeout = 30.0,
        max_retries: int = 3,
        transport: httpx.BaseTransport | None = None,
        on_request: RequestHook | None = None,
        jitter: Jitter | random.Random | None = None,
        sleep: Callable[[float], object] | None = None,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
    ) -> None:
        options: dict[str, Any] = {
            "timeout": timeout,
            "max_retries": max_retries,
            "transport": transport,
            "on_request": on_request,
            "jitter": jitter,
            "sleep": sleep,
            "backoff": backoff,
            "max_backoff": max_backoff,
        }
        self.base_url = base_url.rstrip("/")
        # The studio token's calls and the player-support calls each run on a StoreClient, so
        # there is one retry loop and one set of rules for every client of the SDK.
        self._studio = StoreClient(base_url, token, **options)
        self._support = (
            StoreClient(base_url, service_token, **options)
            if service_token is not None
            else self._studio
        )
        self.draft_etag: str | None = None

    # --- the draft ------------------------------------------------------------------------------

    def draft(self) -> Draft:
        """The draft and its ETag (remembered for :meth:`publish`)."""
        found = self._studio._run(op_get_draft())
        self.draft_etag = found.etag
        return found

    def put_draft(self, content: Mapping[str, Any], *, if_match: str) -> Draft:
        """Replace the whole draft with ``content`` if it still has the ETag ``if_match`` (the
        one it was read with; ``"*"`` replaces any draft). Returns the draft as stored, with its
        new ETag (remembered for :meth:`publish`). The store checks every rule:
        :class:`~shopkeep.errors.ValidationError` (``.fields`` maps paths like
        ``items.3.prices.0.amount`` to messages), or
        :class:`~shopkeep.errors.PreconditionFailed` when the draft changed since."""
        stored = self._studio._run(op_put_draft(content, if_match))
        self.draft_etag = stored.etag
        return stored

    def validate(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """``content`` as the store would keep it as the draft (defaults filled in, timestamps
        in UTC), checked by every rule :meth:`put_draft` runs; stores nothing. Raises
        :class:`~shopkeep.errors.ValidationError` with the same fields as :meth:`put_draft`."""
        return self._studio._run(op_validate(content, check_idempotency_key(None)))

    # --- versions -------------------------------------------------------------------------------

    def publish(
        self,
        *,
        notes: str = "",
        if_match: str | _AnyDraft | None = None,
        idempotency_key: str | None = None,
    ) -> PublishedVersion:
        """Publish the draft as the next version, live at once for every player.

        Only the draft this client last read or wrote is published: its ETag goes in
        ``If-Match``, and a draft someone changed since raises
        :class:`~shopkeep.errors.PreconditionFailed` with nothing published. ``if_match`` names
        another ETag (one a reviewer saw); :data:`ANY_DRAFT` publishes the draft unchecked. A
        client that has seen no draft must say one of the two (``ValueError``)."""
        etag = _publish_etag(if_match, self.draft_etag)
        key = check_idempotency_key(idempotency_key)
        return self._studio._run(op_publish(notes, etag, key))

    def rollback(self, version: int, *, idempotency_key: str | None = None) -> PublishedVersion:
        """Publish ``version``'s content again as a new version; the draft is left as it is."""
        key = check_idempotency_key(idempotency_key)
        return self._studio._run(op_rollback(version, key))

    def versions(self) -> list[CatalogVersion]:
        """Every published version, newest first, without content."""
        return self._studio._run(op_versions())

    def version(self, number: int) -> CatalogVersion:
        """One published version with its content."""
        return self._studio._run(op_version(number))

    def live(self) -> CatalogVersion | None:
        """The live version with its content, or None before the first publish."""
        live = next((v for v in self.versions() if v.live), None)
        return None if live is None else self.version(live.version)

    # --- stock ----------------------------------------------------------------------------------

    def restock(self, sku: str, add: int, *, idempotency_key: str | None = None) -> StockLevel:
        """Add ``add`` units to a published limited item; returns what is left to sell now."""
        key = check_idempotency_key(idempotency_key)
        return self._studio._run(op_restock(sku, add, key))

    def stock(self, skus: Iterable[str] = ()) -> list[StockLevel]:
        """Units left of the live catalog's limited items ``skus`` (all of them by default)."""
        return self._studio._run(op_stock(skus))

    # --- webhooks -------------------------------------------------------------------------------

    def add_webhook(
        self,
        url: str,
        *,
        types: Iterable[str] = (),
        description: str = "",
        idempotency_key: str | None = None,
    ) -> NewSecret:
        """Add an endpoint receiving ``types`` (none: every type) from now on. The answer holds
        its ``whsec_`` secret, which the store shows this once."""
        key = check_idempotency_key(idempotency_key)
        return self._studio._run(op_add_webhook(url, types, description, key))

    def webhooks(self) -> list[Webhook]:
        """The game's endpoints, oldest first."""
        return self._studio._run(op_webhooks())

    def webhook(self, webhook_id: str) -> Webhook:
        """One endpoint with its delivery state."""
        return self._studio._run(op_webhook(webhook_id))

    def delete_webhook(self, webhook_id: str) -> None:
        """Delete an endpoint and its delivery log."""
        self._studio._run(op_delete_webhook(webhook_id))

    def rotate_webhook_secret(
        self, webhook_id: str, *, idempotency_key: str | None = None
    ) -> NewSecret:
        """A new secret (shown this once); the old one keeps signing for 24 hours."""
        key = check_idempotency_key(idempotency_key)
        return self._studio._run(op_rotate_secret(webhook_id, key))

    def disable_webhook(self, webhook_id: str) -> Webhook:
        """Stop deliveries to an endpoint (its events wait for it)."""
        key = check_idempotency_key(None)
        return self._studio._run(op_set_enabled(webhook_id, enabled=False, key=key))

    def enable_webhook(self, webhook_id: str) -> Webhook:
        """Resume deliveries from the first event not delivered."""
        key = check_idempotency_key(None)
        return self._studio._run(op_set_enabled(webhook_id, enabled=True, key=key))

    def webhook_deliveries(
        self, webhook_id: str, *, limit: int | None = None, event_id: int | None = None
    ) -> Iterator[Delivery]:
        """An endpoint's delivery attempts, newest first, fetched lazily."""
        return self._studio._pages(
            lambda cursor: op_deliveries_page(webhook_id, limit, cursor, event_id)
        )

    def webhook_deliveries_page(
        self,
        webhook_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        event_id: int | None = None,
    ) -> Page[Delivery]:
        """One page of an endpoint's delivery attempts."""
        return self._studio._run(op_deliveries_page(webhook_id, limit, cursor, event_id))

    def redeliver_webhook(
        self,
        webhook_id: str,
        from_event_id: int,
        to_event_id: int | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> int:
        """Send delivered events again (one, or the range through ``to_event_id``); returns
        how many were queued."""
        key = check_idempotency_key(idempotency_key)
        return self._studio._run(op_redeliver(webhook_id, from_event_id, to_event_id, key))

    # --- selling for real money ---------------------------------------------------------------

    def set_store(self, store: str, settings: Mapping[str, Any]) -> StoreAccount:
        """Set how the game sells on ``store`` (``app_store``, ``google_play``, ``steam``; the
        fields are in docs/stores.md). A secret left out keeps the one stored before."""
        return self._studio._run(op_put_store(store, settings))

    def stores(self) -> list[StoreAccount]:
        """The stores the game sells on, without their secrets."""
        return self._studio._run(op_stores())

    # --- player support (the service role's calls) ---------------------------------------------

    def refund(
        self, purchase_id: str, *, reason: str, idempotency_key: str | None = None
    ) -> Purchase:
        """Refund a purchase: its price goes back, what it granted is taken back."""
        return self._support.refund(purchase_id, reason=reason, idempotency_key=idempotency_key)

    def purchase(self, purchase_id: str) -> Purchase:
        """One purchase of any player of the game."""
        return self._support.get_purchase(purchase_id)

    def player_wallet(self, player_id: str) -> Wallet:
        """A player's balances."""
        return self._support.player_wallet(player_id)

    def player_inventory(self, player_id: str) -> Inventory:
        """A player's items."""
        return self._support.player_inventory(player_id)

    def player_purchases(self, player_id: str, *, limit: int | None = None) -> Iterator[Purchase]:
        """A player's purchases, newest first, fetched lazily."""
        return self._support.player_purchases(player_id, limit=limit)

    def player_purchases_page(
        self, player_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Purchase]:
        """One page of a player's purchases."""
        return self._support.player_purchases_page(player_id, limit=limit, cursor=cursor)

    def player_ledger(self, player_id: str, *, limit: int | None = None) -> Iterator[LedgerEntry]:
        """A player's ledger, newest first, fetched lazily."""
        return self._support.player_ledger(player_id, limit=limit)

    # --- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connections."""
        self._studio.close()
        if self._support is not self._studio:
            self._support.close()

    def __enter__(self) -> StudioClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncStudioClient:
    """The asyncio twin of :class:`StudioClient`: the same calls as coroutines (the listing
    calls as async iterators), options as :class:`~shopkeep.AsyncStoreClient`."""

    def __init__(
        self,
        base_url: str,
        token: str | Callable[[], str],
        *,
        service_token: str | Callable[[], str] | None = None,
        timeout: float | httpx.Timeout = 30.0,
        max_retries: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
        on_request: RequestHook | None = None,
        jitter: Jitter | random.Random | None = None,
        sleep: Callable[[float], Awaitable[object]] | None = None,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
    ) -> None:
        options: dict[str, Any] = {
            "timeout": timeout,
            "max_retries": max_retries,
            "transport": transport,
            "on_request": on_request,
            "jitter": jitter,
            "sleep": sleep,
            "backoff": backoff,
            "max_backoff": max_backoff,
        }
        self.base_url = base_url.rstrip("/")
        self._studio = AsyncStoreClient(base_url, token, **options)
        self._support = (
            AsyncStoreClient(base_url, service_token, **options)
            if service_token is not None
            else self._studio
        )
        self.draft_etag: str | None = None

    async def draft(self) -> Draft:
        """See :meth:`StudioClient.draft`."""
        found = await self._studio._run(op_get_draft())
        self.draft_etag = found.etag
        return found

    async def put_draft(self, content: Mapping[str, Any], *, if_match: str) -> Draft:
        """See :meth:`StudioClient.put_draft`."""
        stored = await self._studio._run(op_put_draft(content, if_match))
        self.draft_etag = stored.etag
        return stored

    async def validate(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """See :meth:`StudioClient.validate`."""
        return await self._studio._run(op_validate(content, check_idempotency_key(None)))

    async def publish(
        self,
        *,
        notes: str = "",
        if_match: str | _AnyDraft | None = None,
        idempotency_key: str | None = None,
    ) -> PublishedVersion:
        """See :meth:`StudioClient.publish`: If-Match by default."""
        etag = _publish_etag(if_match, self.draft_etag)
        key = check_idempotency_key(idempotency_key)
        return await self._studio._run(op_publish(notes, etag, key))

    async def rollback(
        self, version: int, *, idempotency_key: str | None = None
    ) -> PublishedVersion:
        """See :meth:`StudioClient.rollback`."""
        key = check_idempotency_key(idempotency_key)
        return await self._studio._run(op_rollback(version, key))

    async def versions(self) -> list[CatalogVersion]:
        """See :meth:`StudioClient.versions`."""
        return await self._studio._run(op_versions())

    async def version(self, number: int) -> CatalogVersion:
        """See :meth:`StudioClient.version`."""
        return await self._studio._run(op_version(number))

    async def live(self) -> CatalogVersion | None:
        """See :meth:`StudioClient.live`."""
        live = next((v for v in await self.versions() if v.live), None)
        return None if live is None else await self.version(live.version)

    async def restock(
        self, sku: str, add: int, *, idempotency_key: str | None = None
    ) -> StockLevel:
        """See :meth:`StudioClient.restock`."""
        key = check_idempotency_key(idempotency_key)
        return await self._studio._run(op_restock(sku, add, key))

    async def stock(self, skus: Iterable[str] = ()) -> list[StockLevel]:
        """See :meth:`StudioClient.stock`."""
        return await self._studio._run(op_stock(skus))

    async def add_webhook(
        self,
        url: str,
        *,
        types: Iterable[str] = (),
        description: str = "",
        idempotency_key: str | None = None,
    ) -> NewSecret:
        """See :meth:`StudioClient.add_webhook`."""
        key = check_idempotency_key(idempotency_key)
        return await self._studio._run(op_add_webhook(url, types, description, key))

    async def webhooks(self) -> list[Webhook]:
        """See :meth:`StudioClient.webhooks`."""
        return await self._studio._run(op_webhooks())

    async def webhook(self, webhook_id: str) -> Webhook:
        """See :meth:`StudioClient.webhook`."""
        return await self._studio._run(op_webhook(webhook_id))

    async def delete_webhook(self, webhook_id: str) -> None:
        """See :meth:`StudioClient.delete_webhook`."""
        await self._studio._run(op_delete_webhook(webhook_id))

    async def rotate_webhook_secret(
        self, webhook_id: str, *, idempotency_key: str | None = None
    ) -> NewSecret:
        """See :meth:`StudioClient.rotate_webhook_secret`."""
        key = check_idempotency_key(idempotency_key)
        return await self._studio._run(op_rotate_secret(webhook_id, key))

    async def disable_webhook(self, webhook_id: str) -> Webhook:
        """See :meth:`StudioClient.disable_webhook`."""
        key = check_idempotency_key(None)
        return await self._studio._run(op_set_enabled(webhook_id, enabled=False, key=key))

    async def enable_webhook(self, webhook_id: str) -> Webhook:
        """See :meth:`StudioClient.enable_webhook`."""
        key = check_idempotency_key(None)
        return await self._studio._run(op_set_enabled(webhook_id, enabled=True, key=key))

    def webhook_deliveries(
        self, webhook_id: str, *, limit: int | None = None, event_id: int | None = None
    ) -> AsyncIterator[Delivery]:
        """See :meth:`StudioClient.webhook_deliveries`."""
        return self._studio._pages(
            lambda cursor: op_deliveries_page(webhook_id, limit, cursor, event_id)
        )

    async def redeliver_webhook(
        self,
        webhook_id: str,
        from_event_id: int,
        to_event_id: int | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> int:
        """See :meth:`StudioClient.redeliver_webhook`."""
        key = check_idempotency_key(idempotency_key)
        return await self._studio._run(op_redeliver(webhook_id, from_event_id, to_event_id, key))

    async def refund(
        self, purchase_id: str, *, reason: str, idempotency_key: str | None = None
    ) -> Purchase:
        """See :meth:`StudioClient.refund`."""
        return await self._support.refund(
            purchase_id, reason=reason, idempotency_key=idempotency_key
        )

    async def purchase(self, purchase_id: str) -> Purchase:
        """See :meth:`StudioClient.purchase`."""
        return await self._support.get_purchase(purchase_id)

    async def player_wallet(self, player_id: str) -> Wallet:
        """See :meth:`StudioClient.player_wallet`."""
        return await self._support.player_wallet(player_id)

    async def player_inventory(self, player_id: str) -> Inventory:
        """See :meth:`StudioClient.player_inventory`."""
        return await self._support.player_inventory(player_id)

    def player_purchases(
        self, player_id: str, *, limit: int | None = None
    ) -> AsyncIterator[Purchase]:
        """See :meth:`StudioClient.player_purchases`."""
        return self._support.player_purchases(player_id, limit=limit)

    def player_ledger(
        self, player_id: str, *, limit: int | None = None
    ) -> AsyncIterator[LedgerEntry]:
        """See :meth:`StudioClient.player_ledger`."""
        return self._support.player_ledger(player_id, limit=limit)

    async def aclose(self) -> None:
        """Close the connections."""
        await self._studio.aclose()
        if self._support is not self._studio:
            await self._support.aclose()

    async def __aenter__(self) -> AsyncStudioClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
