"""Events of a game: what the feed (``StoreClient.events``) and webhooks deliver.

An :class:`Event` is the wire's event object, ``{id, type, player_id, created_at, data}``,
with typed views of what ``data`` holds for its type: :attr:`Event.purchase` for
``purchase.completed`` and ``purchase.refunded``, :attr:`Event.grant` for ``grant.created``,
:attr:`Event.ledger` and :attr:`Event.item_ledger` for every event that moved money or items,
:attr:`Event.risk` for a decision about a player (``risk.limit_exceeded``,
``risk.player_frozen``, ``risk.player_unfrozen``, ``risk.tier_changed``).
``data`` itself is kept as sent, so a type this SDK does not know yet still arrives whole.

``id`` is the event's position in its game's feed: unique and increasing per game. A feed's
cursor is such an id as a decimal string, so ``client.events(after=str(event.id))`` goes on
after an event however it reached you.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import httpx

from ._core import Operation, Request
from .models import Grant, LedgerEntry, Purchase, parse_time
from .risk import RiskEvent

__all__ = [
    "EVENT_TYPES",
    "PLAYER_RISK_TYPES",
    "Event",
    "EventPage",
    "ItemLedgerEntry",
    "op_events_page",
    "parse_event",
]

# The types the store writes today (the server's store/events.py is their home; a test checks
# this mirror). An event of another type is still parsed: newer servers may add types.
EVENT_TYPES: tuple[str, ...] = (
    "purchase.completed",
    "purchase.refunded",
    "grant.created",
    "item.consumed",
    "stock.restocked",
    "stock.sold_out",
    "catalog.published",
    "catalog.rolled_back",
    "risk.limit_exceeded",
    "risk.breaker_tripped",
    "risk.breaker_reset",
    "risk.player_frozen",
    "risk.player_unfrozen",
    "risk.tier_changed",
    "receipt.redeemed",
    "receipt.charged_back",
    "code.redeemed",
)

# The types whose data is a risk event of the player, as StoreClient.player_risk lists them.
PLAYER_RISK_TYPES: frozenset[str] = frozenset(
    {"risk.limit_exceeded", "risk.player_frozen", "risk.player_unfrozen", "risk.tier_changed"}
)

# The page size StoreClient.events asks for by default.
DEFAULT_PAGE_SIZE = 100


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what}: expected an integer, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class ItemLedgerEntry:
    """One change of a player's items: ``delta`` units of ``sku``, ``quantity_after`` left."""

    id: str
    sku: str
    delta: int
    quantity_after: int
    kind: str
    reference: str
    created_at: datetime

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ItemLedgerEntry:
        """Parse one entry of an event's ``item_ledger``."""
        created = parse_time(data["created_at"])
        if created is None:
            raise ValueError("item ledger entry without created_at")
        return cls(
            id=str(data["id"]),
            sku=str(data["sku"]),
            delta=_int(data["delta"], "delta"),
            quantity_after=_int(data["quantity_after"], "quantity_after"),
            kind=str(data["kind"]),
            reference=str(data["reference"]),
            created_at=created,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One event: ``data`` as sent, with typed views of its parts (None where the type has
    none). ``player_id`` is the player it concerns, None for catalog and restock events."""

    id: int
    type: str
    player_id: str | None
    created_at: datetime
    data: dict[str, Any] = dataclasses.field(hash=False)
    purchase: Purchase | None = dataclasses.field(default=None, compare=False)
    grant: Grant | None = dataclasses.field(default=None, compare=False)
    ledger: tuple[LedgerEntry, ...] = dataclasses.field(default=(), compare=False)
    item_ledger: tuple[ItemLedgerEntry, ...] = dataclasses.field(default=(), compare=False)
    risk: RiskEvent | None = dataclasses.field(default=None, compare=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Event:
        """Parse an event object (a feed entry or a webhook's body)."""
        created = parse_time(data["created_at"])
        if created is None:
            raise ValueError("event without created_at")
        body = data["data"]
        if not isinstance(body, Mapping):
            raise TypeError(f"event data: expected an object, got {body!r}")
        player = data.get("player_id")
        kind = str(data["type"])
        return cls(
            id=_int(data["id"], "id"),
            type=kind,
            player_id=None if player is None else str(player),
            created_at=created,
            data=dict(body),
            purchase=Purchase.from_wire(body["purchase"]) if "purchase" in body else None,
            grant=Grant.from_wire(body["grant"]) if "grant" in body else None,
            ledger=tuple(LedgerEntry.from_wire(e) for e in body.get("ledger") or ()),
            item_ledger=tuple(ItemLedgerEntry.from_wire(e) for e in body.get("item_ledger") or ()),
            risk=RiskEvent.from_wire(body) if kind in PLAYER_RISK_TYPES else None,
        )

    @property
    def cursor(self) -> str:
        """This event as a feed cursor: ``events(after=event.cursor)`` goes on after it."""
        return str(self.id)


def parse_event(data: Mapping[str, Any]) -> Event:
    """An event object as an :class:`Event` (``ValueError``/``TypeError``/``KeyError`` when it
    is not one)."""
    return Event.from_wire(data)


@dataclasses.dataclass(frozen=True, slots=True)
class EventPage:
    """One page of the feed. ``next_cursor`` is never None: it is where to go on from (the
    last event's id, or the cursor sent when nothing new has come). A page shorter than the
    size asked for means the feed is at its end for now."""

    events: tuple[Event, ...]
    next_cursor: str

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> EventPage:
        """Parse the body of ``GET /v1/events``."""
        return cls(
            events=tuple(Event.from_wire(e) for e in data["events"]),
            next_cursor=str(data["next_cursor"]),
        )


def events_params(
    after: str | int | None, types: Iterable[str] | None, limit: int
) -> tuple[tuple[str, str], ...]:
    """The query of ``GET /v1/events``: ``type`` repeated once per type."""
    params: list[tuple[str, str]] = [("limit", str(_int(limit, "page_size")))]
    if after is not None:
        params.append(("after", str(after)))
    names = [types] if isinstance(types, str) else list(types or ())
    params.extend(("type", name) for name in names)
    return tuple(params)


def parse_event_page(response: httpx.Response) -> EventPage:
    """The parser of ``GET /v1/events``'s answer."""
    return EventPage.from_wire(response.json())


def op_events_page(
    after: str | int | None, types: Iterable[str] | None, limit: int
) -> Operation[EventPage]:
    """One page of ``GET /v1/events`` (service), oldest first."""
    return Operation(
        Request("GET", "/v1/events", params=events_params(after, types, limit)), parse_event_page
    )
