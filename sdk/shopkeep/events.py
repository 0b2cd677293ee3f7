"""The store's events, as the feed (``GET /v1/events``) and webhooks deliver them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .models import _int, _required_time

__all__ = ["Event"]


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One event: its per-game increasing ``id``, its ``type`` (``purchase.completed``, ...),
    the player it concerns (None for catalog and stock events), when it happened, and its
    ``data`` (the API's JSON of what changed)."""

    id: int
    type: str
    player_id: str | None
    created_at: datetime
    data: dict[str, Any] = dataclasses.field(hash=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Event:
        """Parse ``{id, type, player_id, created_at, data}``."""
        player_id = data["player_id"]
        if player_id is not None and not isinstance(player_id, str):
            raise TypeError(f"player_id: expected a string or null, got {player_id!r}")
        kind = data["type"]
        if not isinstance(kind, str):
            raise TypeError(f"type: expected a string, got {kind!r}")
        payload = data["data"]
        if not isinstance(payload, Mapping):
            raise TypeError(f"data: expected an object, got {payload!r}")
        return cls(
            id=_int(data["id"], "id"),
            type=kind,
            player_id=player_id,
            created_at=_required_time(data["created_at"]),
            data=dict(payload),
        )
