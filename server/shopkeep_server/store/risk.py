"""Fraud and abuse controls outside the money path: a player's risk state (first seen, tier,
freeze) and its recorded decisions, the service's tier changes, freezes and unfreezes, and the
game's mint breakers.

The limits themselves are enforced by the money operations' own SQL (sql/65_risk.sql), under
the wallet lock; the policy they read is the live catalog version's ``risk`` object, whose
field rules are ``rules.RiskSchema``. A player's tier and freeze are on its one player row
(``player_profiles``, migration 0014), beside when it was first seen. Every change made here
writes its ``risk_events`` row (or ``risk_breaker_log`` row) in the same transaction, with its
author and reason, through the SQL that also emits it as an event (``sk_risk_record``,
``sk_risk_log_breaker``); the API shows those rows in the shape their events carry
(``sk_risk_event_json``, ``sk_risk_breaker_log_json``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ..errors import NotFound, ValidationFailed
from . import rules

EVENTS_SHOWN = 50

_POLICY_LISTS_WITH_CURRENCY = ("spend_limits", "earn_limits", "mint_breakers")


def policy_reference_errors(
    policy: Mapping[str, Any] | None, currencies: set[str]
) -> Iterator[tuple[str, str]]:
    """(field path, message) for every currency a loaded policy names that the catalog does
    not hold, so a limit can never silently apply to nothing."""
    if not policy:
        return
    for name in _POLICY_LISTS_WITH_CURRENCY:
        for index, limit in enumerate(policy.get(name, [])):
            if limit["currency"] not in currencies:
                yield f"risk.{name}.{index}.currency", "not a currency of this catalog"
    for index, tier in enumerate(policy.get("tiers", [])):
        for p_index, price in enumerate(tier.get("max_price", [])):
            if price["currency"] not in currencies:
                yield (
                    f"risk.tiers.{index}.max_price.{p_index}.currency",
                    "not a currency of this catalog",
                )


# ---------------------------------------------------------------------------------------------
# A player's risk state
# ---------------------------------------------------------------------------------------------


def player_risk(
    conn: psycopg.Connection, game: str, player: str, *, events: int = EVENTS_SHOWN
) -> dict[str, Any]:
    """The player's tier (as the live policy places it now), the tier the service set, the
    freeze and the most recent decisions, newest first. A player the store has not seen yet
    has no tier override, no freeze and no events."""
    row = conn.execute(
        "SELECT pp.first_seen, pp.tier, pp.tier_reason, pp.tier_set_by, pp.tier_set_at,"
        " pp.frozen_at, pp.frozen_by, pp.frozen_reason, t.tier ->> 'name', t.until"
        " FROM games g LEFT JOIN player_profiles pp"
        " ON pp.game_id = g.id AND pp.player_id = %(player)s"
        " LEFT JOIN LATERAL sk_risk_tier(g.id, %(player)s, sk_risk_policy(g.live_version_id))"
        " t ON true WHERE g.id = %(game)s",
        {"game": game, "player": player},
    ).fetchone()
    if row is None:
        raise NotFound("no such game")
    (first_seen, override, tier_reason, tier_by, tier_at, frozen_at, frozen_by, frozen_reason) = (
        row[:8]
    )
    tier, tier_until = row[8], row[9]
    found = conn.execute(
        "SELECT sk_risk_event_json(e) FROM risk_events e"
        " WHERE e.game_id = %s AND e.player_id = %s ORDER BY e.id DESC LIMIT %s",
        (game, player, events),
    ).fetchall()
    return {
        "player_id": player,
        "first_seen_at": rules.format_timestamp(first_seen),
        "tier": tier,
        "tier_until": rules.format_timestamp(tier_until),
        "tier_set": None
        if tier_at is None
        else {
            "tier": override,
            "reason": tier_reason,
            "set_by": tier_by,
            "set_at": rules.format_timestamp(tier_at),
        },
        "frozen": frozen_at is not None,
        "freeze": None
        if frozen_at is None
        else {
            "reason": frozen_reason,
            "frozen_by": frozen_by,
            "frozen_at": rules.format_timestamp(frozen_at),
        },
        "events": [event for (event,) in found],
    }


def _record(
    conn: psycopg.Connection,
    game: str,
    player: str,
    kind: str,
    *,
    author: str,
    reason: str,
    details: Mapping[str, Any],
) -> None:
    conn.execute(
        "SELECT sk_risk_record(%s, %s, %s, NULL, NULL, NULL, %s, %s, %s)",
        (game, player, kind, Jsonb(dict(details)), author, reason),
    )


def _locked_player(conn: psycopg.Connection, game: str, player: str) -> tuple[Any, ...]:
    """The player's row, made if new (the player is seen) and locked against a concurrent
    freeze or tier change."""
    conn.execute("SELECT sk_player_seen(%s, %s, NULL)", (game, player))
    row = conn.execute(
        "SELECT frozen_at, tier, tier_set_at FROM player_profiles"
        " WHERE game_id = %s AND player_id = %s FOR UPDATE",
        (game, player),
    ).fetchone()
    assert row is not None
    return tuple(row)


def freeze(
    conn: psycopg.Connection, game: str, player: str, *, actor: str, reason: str
) -> dict[str, Any]:
    """Freezes a player: purchases, consumes, grants, code redemptions, holds and receipt
    redemptions are refused (403 account_frozen), reads and refunds still work. Freezing a
    frozen player changes nothing."""
    with conn.transaction():
        frozen_at, _, _ = _locked_player(conn, game, player)
        if frozen_at is None:
            conn.execute(
                "UPDATE player_profiles SET frozen_at = now(), frozen_by = %s, frozen_reason = %s"
                " WHERE game_id = %s AND player_id = %s",
                (actor, reason, game, player),
            )
            _record(conn, game, player, "frozen", author=actor, reason=reason, details={})
        return player_risk(conn, game, player)


def unfreeze(
    conn: psycopg.Connection, game: str, player: str, *, actor: str, reason: str
) -> dict[str, Any]:
    """Lifts a freeze; unfreezing a player who is not frozen changes nothing."""
    with conn.transaction():
        frozen_at, _, _ = _locked_player(conn, game, player)
        if frozen_at is not None:
            conn.execute(
                "UPDATE player_profiles SET frozen_at = NULL, frozen_by = NULL,"
                " frozen_reason = NULL WHERE game_id = %s AND player_id = %s",
                (game, player),
            )
            _record(
                conn,
                game,
                player,
                "unfrozen",
                author=actor,
                reason=reason,
                details={"frozen_at": rules.format_timestamp(frozen_at)},
            )
        return player_risk(conn, game, player)


def live_tier_names(conn: psycopg.Connection, game: str) -> list[str]:
    """The tiers of the live policy, in its order."""
    row = conn.execute(
        "SELECT coalesce(jsonb_agg(e ->> 'name'), '[]') FROM games g,"
        " sk_risk_rules(sk_risk_policy(g.live_version_id), 'tiers', NULL) e WHERE g.id = %s",
        (game,),
    ).fetchone()
    return list(row[0]) if row else []


def set_tier(
    conn: psycopg.Connection,
    game: str,
    player: str,
    *,
    tier: str | None,
    actor: str,
    reason: str,
) -> dict[str, Any]:
    """Raises or lowers a player's tier: a tier of the live policy by name (kept there whatever
    its age and history), ``trusted`` (no tier restrictions) or None (placed by age and history
    again). A name a later policy drops falls back to placement."""
    with conn.transaction():
        if tier is not None and tier != rules.TRUSTED_TIER:
            names = live_tier_names(conn, game)
            if tier not in names:
                choices = ", ".join([*names, rules.TRUSTED_TIER])
                raise ValidationFailed(
                    details={"tier": [f"not a tier of the live policy: one of {choices} or null"]}
                )
        _, was, was_set_at = _locked_player(conn, game, player)
        conn.execute(
            "UPDATE player_profiles SET tier = %s, tier_reason = %s, tier_set_by = %s,"
            " tier_set_at = now() WHERE game_id = %s AND player_id = %s",
            (tier, reason, actor, game, player),
        )
        _record(
            conn,
            game,
            player,
            "tier_changed",
            author=actor,
            reason=reason,
            details={"from": was if was_set_at is not None else None, "to": tier},
        )
        return player_risk(conn, game, player)


# ---------------------------------------------------------------------------------------------
# Mint breakers
# ---------------------------------------------------------------------------------------------


def breakers(conn: psycopg.Connection, game: str) -> list[dict[str, Any]]:
    """Every mint breaker of the live policy with its state, and any tripped breaker a later
    policy dropped (it still stops nothing, but its trip is on record until reset)."""
    rows = conn.execute(
        "WITH configured AS ("
        "  SELECT e ->> 'currency' AS currency, (e ->> 'window_seconds')::integer AS window,"
        "         (e ->> 'max_amount')::bigint AS max_amount"
        "  FROM games g, sk_risk_rules(sk_risk_policy(g.live_version_id), 'mint_breakers', NULL)"
        "  e WHERE g.id = %(game)s)"
        " SELECT coalesce(c.currency, b.currency), c.window, c.max_amount, b.tripped_at,"
        " b.reset_at, b.reset_by FROM configured c FULL JOIN ("
        "  SELECT * FROM risk_breakers WHERE game_id = %(game)s) b ON b.currency = c.currency"
        " WHERE c.currency IS NOT NULL OR b.tripped_at IS NOT NULL ORDER BY 1, 2",
        {"game": game},
    ).fetchall()
    return [
        {
            "currency": currency,
            "window_seconds": window,
            "max_amount": max_amount,
            "tripped": tripped_at is not None,
            "tripped_at": rules.format_timestamp(tripped_at),
            "reset_at": rules.format_timestamp(reset_at),
            "reset_by": reset_by,
        }
        for currency, window, max_amount, tripped_at, reset_at, reset_by in rows
    ]


def reset_breaker(
    conn: psycopg.Connection, game: str, currency: str, *, actor: str, reason: str
) -> dict[str, Any]:
    """Resets a tripped breaker: grants of ``currency`` resume, counted afresh from now.
    Resetting a breaker that is not tripped changes nothing."""
    with conn.transaction():
        row = conn.execute(
            "SELECT tripped_at FROM risk_breakers WHERE game_id = %s AND currency = %s FOR UPDATE",
            (game, currency),
        ).fetchone()
        if row is not None and row[0] is not None:
            conn.execute(
                "UPDATE risk_breakers SET tripped_at = NULL, reset_at = now(), reset_by = %s"
                " WHERE game_id = %s AND currency = %s",
                (actor, game, currency),
            )
            conn.execute(
                "SELECT sk_risk_log_breaker(%s, %s, 'reset', NULL, %s, %s, %s)",
                (
                    game,
                    currency,
                    actor,
                    reason,
                    Jsonb({"tripped_at": rules.format_timestamp(row[0])}),
                ),
            )
        found = [b for b in breakers(conn, game) if b["currency"] == currency]
        if not found:
            raise NotFound(f"no mint breaker for {currency}")
        return found[0]


def breaker_log(conn: psycopg.Connection, game: str, *, limit: int = 50) -> list[dict[str, Any]]:
    """Trips and resets of the game's breakers, newest first."""
    rows = conn.execute(
        "SELECT sk_risk_breaker_log_json(l) FROM risk_breaker_log l"
        " WHERE l.game_id = %s ORDER BY l.id DESC LIMIT %s",
        (game, limit),
    ).fetchall()
    return [entry for (entry,) in rows]
