"""The studio's webhook endpoints as the SDK reads them, and the requests that manage them
(``/v1/admin/webhooks``); :class:`~shopkeep.studio.StudioClient` makes the calls."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import httpx

from ._core import Operation, Request, _list_params, _page, check_count, segment
from .models import Page, _int, _opt_int, _required_time, parse_time

__all__ = ["Delivery", "NewSecret", "Webhook"]

WEBHOOKS_PATH = "/v1/admin/webhooks"


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what}: expected a string, got {value!r}")
    return value


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{what}: expected a boolean, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class Webhook:
    """An endpoint: where events go, which ``types`` (empty: all), whether it is ``enabled``
    (and if not, why), and how far delivery has come."""

    id: str
    url: str
    types: tuple[str, ...]
    description: str
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    previous_secret_expires_at: datetime | None
    delivered_through: int
    failed_attempts: int
    failing_since: datetime | None
    next_attempt_at: datetime

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Webhook:
        """Parse an endpoint of ``/v1/admin/webhooks``."""
        reason = data["disabled_reason"]
        return cls(
            id=_text(data["id"], "id"),
            url=_text(data["url"], "url"),
            types=tuple(_text(t, "types") for t in data["types"]),
            description=_text(data["description"], "description"),
            enabled=_flag(data["enabled"], "enabled"),
            disabled_reason=None if reason is None else _text(reason, "disabled_reason"),
            created_at=_required_time(data["created_at"]),
            previous_secret_expires_at=parse_time(data["previous_secret_expires_at"]),
            delivered_through=_int(data["delivered_through"], "delivered_through"),
            failed_attempts=_int(data["failed_attempts"], "failed_attempts"),
            failing_since=parse_time(data["failing_since"]),
            next_attempt_at=_required_time(data["next_attempt_at"]),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class NewSecret:
    """An endpoint just made or rotated, with its ``secret`` (``whsec_...``): shown this once."""

    webhook: Webhook
    secret: str = dataclasses.field(repr=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> NewSecret:
        return cls(
            webhook=Webhook.from_wire(data["webhook"]), secret=_text(data["secret"], "secret")
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt to deliver an event: its status (None: no answer), latency, the start of
    the answer and, without one, the error."""

    id: int
    event_id: int
    attempt: int
    status_code: int | None
    latency_ms: int
    response_excerpt: str
    error: str | None
    attempted_at: datetime
    succeeded: bool

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Delivery:
        error = data["error"]
        return cls(
            id=_int(data["id"], "id"),
            event_id=_int(data["event_id"], "event_id"),
            attempt=_int(data["attempt"], "attempt"),
            status_code=_opt_int(data["status_code"], "status_code"),
            latency_ms=_int(data["latency_ms"], "latency_ms"),
            response_excerpt=_text(data["response_excerpt"], "response_excerpt"),
            error=None if error is None else _text(error, "error"),
            attempted_at=_required_time(data["attempted_at"]),
            succeeded=_flag(data["succeeded"], "succeeded"),
        )


def _one(path: str) -> str:
    return f"{WEBHOOKS_PATH}/{segment(path)}"


def _webhook(response: httpx.Response) -> Webhook:
    return Webhook.from_wire(response.json()["webhook"])


def op_add_webhook(
    url: str, types: Iterable[str], description: str, key: str
) -> Operation[NewSecret]:
    """``POST /v1/admin/webhooks``."""
    if isinstance(types, str):
        raise TypeError("types is a list of event types, not one string")
    body = {"url": _text(url, "url"), "types": list(types), "description": description}
    return Operation(
        Request("POST", WEBHOOKS_PATH, body=body, idempotency_key=key),
        lambda r: NewSecret.from_wire(r.json()),
    )


def op_webhooks() -> Operation[list[Webhook]]:
    """``GET /v1/admin/webhooks``."""
    return Operation(
        Request("GET", WEBHOOKS_PATH),
        lambda r: [Webhook.from_wire(w) for w in r.json()["webhooks"]],
    )


def op_webhook(webhook_id: str) -> Operation[Webhook]:
    """``GET /v1/admin/webhooks/{id}``."""
    return Operation(Request("GET", _one(webhook_id)), _webhook)


def op_delete_webhook(webhook_id: str) -> Operation[None]:
    """``DELETE /v1/admin/webhooks/{id}``."""
    return Operation(Request("DELETE", _one(webhook_id)), lambda r: None)


def op_rotate_secret(webhook_id: str, key: str) -> Operation[NewSecret]:
    """``POST /v1/admin/webhooks/{id}/rotate-secret``."""
    return Operation(
        Request("POST", f"{_one(webhook_id)}/rotate-secret", idempotency_key=key),
        lambda r: NewSecret.from_wire(r.json()),
    )


def op_set_enabled(webhook_id: str, *, enabled: bool, key: str) -> Operation[Webhook]:
    """``POST /v1/admin/webhooks/{id}/enable`` or ``/disable`` (the key only marks the call as
    safe to re-send: enabling twice is enabling once)."""
    action = "enable" if enabled else "disable"
    return Operation(Request("POST", f"{_one(webhook_id)}/{action}", idempotency_key=key), _webhook)


def op_deliveries_page(
    webhook_id: str, limit: int | None, cursor: str | None, event_id: int | None = None
) -> Operation[Page[Delivery]]:
    """One page of ``GET /v1/admin/webhooks/{id}/deliveries``, newest first."""
    params = _list_params(limit, cursor)
    if event_id is not None:
        params += (("event_id", str(check_count(event_id, "event_id"))),)
    return Operation(
        Request("GET", f"{_one(webhook_id)}/deliveries", params=params),
        _page(Delivery.from_wire, "deliveries"),
    )


def op_redeliver(
    webhook_id: str, from_event_id: int, to_event_id: int | None, key: str
) -> Operation[int]:
    """``POST /v1/admin/webhooks/{id}/redeliver``: how many events were queued."""
    body: dict[str, Any] = {"from_event_id": check_count(from_event_id, "from_event_id")}
    if to_event_id is not None:
        body["to_event_id"] = check_count(to_event_id, "to_event_id")
    return Operation(
        Request("POST", f"{_one(webhook_id)}/redeliver", body=body, idempotency_key=key),
        lambda r: _int(r.json()["queued"], "queued"),
    )
