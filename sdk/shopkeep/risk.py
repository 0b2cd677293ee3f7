"""The store's fraud and abuse controls as a studio's backend calls them (service role): a
player's risk state, freezing and unfreezing it, and raising or lowering its trust tier.

``StoreClient`` and ``AsyncStoreClient`` expose these as ``player_risk``, ``freeze_player``,
``unfreeze_player`` and ``set_player_tier``; the limits themselves live in the catalog's
``risk`` policy (docs/api.md, "Risk"), and a refusal is :class:`~shopkeep.LimitExceededError`
or :class:`~shopkeep.AccountFrozenError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from ._core import Operation, Request, segment
from .models import _required_time, parse_time

__all__ = ["Freeze", "PlayerRisk", "RiskEvent", "TierSet"]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclasses.dataclass(frozen=True, slots=True)
class RiskEvent:
    """One decision on record: ``kind`` is ``refused``, ``frozen``, ``unfrozen`` or
    ``tier_changed``; a refusal names its ``operation``, ``code`` and ``rule``."""

    id: int
    kind: str
    operation: str | None
    code: str | None
    rule: str | None
    details: dict[str, Any]
    author: str | None
    reason: str | None
    created_at: datetime

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> RiskEvent:
        return cls(
            id=int(data["id"]),
            kind=str(data["kind"]),
            operation=_text(data.get("operation")),
            code=_text(data.get("code")),
            rule=_text(data.get("rule")),
            details=dict(data.get("details") or {}),
            author=_text(data.get("author")),
            reason=_text(data.get("reason")),
            created_at=_required_time(data["created_at"]),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class TierSet:
    """The tier the service set: a tier of the policy, ``trusted``, or None (placement)."""

    tier: str | None
    reason: str
    set_by: str
    set_at: datetime

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> TierSet:
        return cls(
            tier=_text(data.get("tier")),
            reason=str(data["reason"]),
            set_by=str(data["set_by"]),
            set_at=_required_time(data["set_at"]),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Freeze:
    """Why, by whom and since when a player is frozen."""

    reason: str
    frozen_by: str
    frozen_at: datetime

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Freeze:
        return cls(
            reason=str(data["reason"]),
            frozen_by=str(data["frozen_by"]),
            frozen_at=_required_time(data["frozen_at"]),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class PlayerRisk:
    """A player's risk state: the tier it is in now (None: none), the tier the service set,
    the freeze, and its most recent decisions, newest first."""

    player_id: str
    first_seen_at: datetime | None
    tier: str | None
    tier_until: datetime | None
    tier_set: TierSet | None
    frozen: bool
    freeze: Freeze | None
    events: tuple[RiskEvent, ...]

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> PlayerRisk:
        tier_set, freeze = data.get("tier_set"), data.get("freeze")
        return cls(
            player_id=str(data["player_id"]),
            first_seen_at=parse_time(data.get("first_seen_at")),
            tier=_text(data.get("tier")),
            tier_until=parse_time(data.get("tier_until")),
            tier_set=None if tier_set is None else TierSet.from_wire(tier_set),
            frozen=bool(data["frozen"]),
            freeze=None if freeze is None else Freeze.from_wire(freeze),
            events=tuple(RiskEvent.from_wire(e) for e in data.get("events") or ()),
        )


def _parse(response: httpx.Response) -> PlayerRisk:
    return PlayerRisk.from_wire(response.json())


def _reason(reason: str) -> str:
    if not isinstance(reason, str):
        raise TypeError("reason must be a str")
    return reason


def op_player_risk(player_id: str) -> Operation[PlayerRisk]:
    """``GET /v1/players/{player_id}/risk``."""
    return Operation(Request("GET", f"/v1/players/{segment(player_id)}/risk"), _parse)


def op_freeze(player_id: str, *, frozen: bool, reason: str, key: str) -> Operation[PlayerRisk]:
    """``POST /v1/players/{player_id}/freeze`` (or ``/unfreeze``)."""
    action = "freeze" if frozen else "unfreeze"
    return Operation(
        Request(
            "POST",
            f"/v1/players/{segment(player_id)}/{action}",
            body={"reason": _reason(reason)},
            idempotency_key=key,
        ),
        _parse,
    )


def op_set_tier(player_id: str, *, tier: str | None, reason: str) -> Operation[PlayerRisk]:
    """``PUT /v1/players/{player_id}/risk/tier`` (each call is a decision on record: not
    re-sent on a network failure)."""
    if tier is not None and not isinstance(tier, str):
        raise TypeError("tier must be a str or None")
    return Operation(
        Request(
            "PUT",
            f"/v1/players/{segment(player_id)}/risk/tier",
            body={"tier": tier, "reason": _reason(reason)},
        ),
        _parse,
    )
