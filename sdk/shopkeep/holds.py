"""Holds: units of a limited item set aside for the player for a few minutes while the player
pays (at an app store, say); ``client.purchase(sku, hold_id=hold.id)`` then buys exactly those
units. ``POST /v1/holds``, ``GET`` and ``DELETE /v1/holds/{id}``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from ._core import Operation, Request, check_count, segment
from .models import parse_time

__all__ = ["Hold", "op_get_hold", "op_place_hold", "op_release_hold"]


@dataclasses.dataclass(frozen=True, slots=True)
class Hold:
    """A hold on ``quantity`` units of ``sku`` until ``expires_at``. ``status`` is ``active``
    until it is bought with (``consumed``), released (``released``) or past ``expires_at``
    (``expired``, its units back on sale)."""

    id: str
    sku: str
    quantity: int
    status: str
    expires_at: datetime
    created_at: datetime

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Hold:
        """Parse a ``hold`` object."""
        expires_at, created_at = parse_time(data["expires_at"]), parse_time(data["created_at"])
        if expires_at is None or created_at is None:
            raise ValueError("a hold needs expires_at and created_at")
        return cls(
            id=str(data["id"]),
            sku=str(data["sku"]),
            quantity=check_count(data["quantity"], "quantity"),
            status=str(data["status"]),
            expires_at=expires_at,
            created_at=created_at,
        )


def _hold(response: httpx.Response) -> Hold:
    return Hold.from_wire(response.json()["hold"])


def op_place_hold(sku: str, quantity: int, key: str) -> Operation[Hold]:
    """``POST /v1/holds``: exactly once per key, like a purchase."""
    if not isinstance(sku, str) or not sku:
        raise ValueError(f"sku must be a non-empty str, got {sku!r}")
    body = {"sku": sku, "quantity": check_count(quantity, "quantity")}
    return Operation(Request("POST", "/v1/holds", body=body, idempotency_key=key), _hold)


def op_get_hold(hold_id: str) -> Operation[Hold]:
    """``GET /v1/holds/{id}``."""
    return Operation(Request("GET", f"/v1/holds/{segment(hold_id)}"), _hold)


def op_release_hold(hold_id: str) -> Operation[Hold]:
    """``DELETE /v1/holds/{id}``: idempotent, so the SDK may re-send it."""
    return Operation(Request("DELETE", f"/v1/holds/{segment(hold_id)}"), _hold)
