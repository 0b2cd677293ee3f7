"""Webhook endpoints of a game, their secrets, their delivery log, and the claims the delivery
workers (``shopkeep_server.delivery``) make on them.

An endpoint is delivered in event order (the events' per-game ``id``), one process at a time:
a worker claims the endpoint's progress row ``FOR UPDATE SKIP LOCKED`` in a transaction that
stays open while it sends the endpoint's next batch, so another process skips the endpoint
rather than sending the same events beside it. What the worker learns (delivered, failed, the
log of each attempt) is written in that transaction: a worker that dies mid-batch leaves the
events to be sent again (at least once; receivers deduplicate by ``webhook-id``).

Secrets follow Standard Webhooks: random bytes, shown once as ``whsec_<base64>``. The store
keeps the raw bytes (it signs with them); after a rotation the previous secret still signs,
beside the new one, for :data:`ROTATION_OVERLAP`.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import secrets
import uuid
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ..errors import NotFound, ValidationFailed
from . import events
from .rules import format_timestamp

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
# How long the previous secret keeps signing after a rotation.
ROTATION_OVERLAP = dt.timedelta(hours=24)
# The delivery log keeps this much of each answer's body.
EXCERPT_CHARS = 1000
DISABLED_BY_STUDIO = "disabled by the studio"

_ENDPOINT_COLUMNS = (
    "e.id, e.url, e.types, e.description, e.enabled, e.disabled_reason, e.created_at,"
    " e.previous_secret_expires_at, p.delivered_through, p.failed_attempts, p.failing_since,"
    " p.next_attempt_at"
)


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def shown_secret(secret: bytes) -> str:
    """A secret as Standard Webhooks writes it (what the studio copies into its receiver)."""
    return SECRET_PREFIX + base64.b64encode(secret).decode("ascii")


def _endpoint(row: dict[str, Any]) -> dict[str, Any]:
    """An endpoint as the API shows it (api/schemas.py WebhookSchema)."""
    rotation_ends = row["previous_secret_expires_at"]
    if rotation_ends is not None and rotation_ends <= dt.datetime.now(dt.UTC):
        rotation_ends = None
    return {
        "id": str(row["id"]),
        "url": row["url"],
        "types": list(row["types"]),
        "description": row["description"],
        "enabled": row["enabled"],
        "disabled_reason": row["disabled_reason"],
        "created_at": format_timestamp(row["created_at"]),
        "previous_secret_expires_at": format_timestamp(rotation_ends),
        "delivered_through": row["delivered_through"],
        "failed_attempts": row["failed_attempts"],
        "failing_since": format_timestamp(row["failing_since"]),
        "next_attempt_at": format_timestamp(row["next_attempt_at"]),
    }


def _webhook_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise NotFound("no such webhook") from exc


def _find(
    conn: psycopg.Connection, game: str, webhook_id: str, *, lock: bool = False
) -> dict[str, Any]:
    query = (
        f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints e"
        " JOIN webhook_progress p ON p.game_id = e.game_id AND p.webhook_id = e.id"
        " WHERE e.game_id = %s AND e.id = %s"
    )
    if lock:
        query += " FOR UPDATE OF e"
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(query, (game, _webhook_id(webhook_id))).fetchone()
    if row is None:
        raise NotFound("no such webhook")
    return row


def create(
    conn: psycopg.Connection, game: str, *, url: str, types: list[str], description: str
) -> dict[str, Any]:
    """A new endpoint, delivered every event committed from now on; its secret is in the answer
    and nowhere else."""
    webhook_id = uuid.uuid4()
    secret = new_secret()
    # Events committed before now get their positions first, so the endpoint starts after
    # them (as the feed does before a read: positioned now, or by the pass holding the lock).
    events.position_all(conn, wait_ms=events.FEED_POSITION_WAIT_MS)
    with conn.transaction():
        conn.execute(
            "INSERT INTO webhook_endpoints (game_id, id, url, types, description, secret)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (game, webhook_id, url, types, description, secret),
        )
        # Events already in the feed are history: the endpoint starts after the newest one
        # (the feed replays older ones).
        conn.execute(
            "INSERT INTO webhook_progress (game_id, webhook_id, delivered_through)"
            " SELECT %s, %s, coalesce((SELECT last_id FROM event_positions WHERE game_id = %s), 0)",
            (game, webhook_id, game),
        )
        found = _find(conn, game, str(webhook_id))
    return {"webhook": _endpoint(found), "secret": shown_secret(secret)}


def list_webhooks(conn: psycopg.Connection, game: str) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints e"
            " JOIN webhook_progress p ON p.game_id = e.game_id AND p.webhook_id = e.id"
            " WHERE e.game_id = %s ORDER BY e.created_at, e.id",
            (game,),
        ).fetchall()
    return [_endpoint(row) for row in rows]


def get(conn: psycopg.Connection, game: str, webhook_id: str) -> dict[str, Any]:
    return _endpoint(_find(conn, game, webhook_id))


def delete(conn: psycopg.Connection, game: str, webhook_id: str) -> None:
    """Deletes the endpoint with its progress and log (a worker delivering it right now finishes
    its batch first: the delete waits for the progress row)."""
    deleted = conn.execute(
        "DELETE FROM webhook_endpoints WHERE game_id = %s AND id = %s",
        (game, _webhook_id(webhook_id)),
    )
    if deleted.rowcount == 0:
        raise NotFound("no such webhook")


def rotate_secret(conn: psycopg.Connection, game: str, webhook_id: str) -> dict[str, Any]:
    """A new secret, shown once; the one it replaces signs too for ROTATION_OVERLAP."""
    secret = new_secret()
    with conn.transaction():
        _find(conn, game, webhook_id, lock=True)
        conn.execute(
            "UPDATE webhook_endpoints SET previous_secret = secret,"
            " previous_secret_expires_at = now() + %s, secret = %s"
            " WHERE game_id = %s AND id = %s",
            (ROTATION_OVERLAP, secret, game, _webhook_id(webhook_id)),
        )
        found = _find(conn, game, webhook_id)
    return {"webhook": _endpoint(found), "secret": shown_secret(secret)}


def set_enabled(
    conn: psycopg.Connection, game: str, webhook_id: str, *, enabled: bool
) -> dict[str, Any]:
    """Disables (by the studio) or enables an endpoint. Enabling starts afresh where delivery
    stopped: the next undelivered event is tried at once, with a new give-up horizon."""
    with conn.transaction():
        _find(conn, game, webhook_id, lock=True)
        key = _webhook_id(webhook_id)
        if enabled:
            conn.execute(
                "UPDATE webhook_endpoints SET enabled = true, disabled_reason = NULL"
                " WHERE game_id = %s AND id = %s",
                (game, key),
            )
            conn.execute(
                "UPDATE webhook_progress SET failed_attempts = 0, failing_since = NULL,"
                " next_attempt_at = now() WHERE game_id = %s AND webhook_id = %s",
                (game, key),
            )
        else:
            conn.execute(
                "UPDATE webhook_endpoints SET enabled = false,"
                " disabled_reason = coalesce(disabled_reason, %s)"
                " WHERE game_id = %s AND id = %s AND enabled",
                (DISABLED_BY_STUDIO, game, key),
            )
        return _endpoint(_find(conn, game, webhook_id))


def redeliver(
    conn: psycopg.Connection,
    game: str,
    webhook_id: str,
    *,
    from_event_id: int,
    to_event_id: int | None,
) -> dict[str, Any]:
    """Queues the delivered events of [from, to] (one event without ``to``) that the endpoint's
    types select, to be sent once more before its next new event. Events not delivered yet are
    on their way already; events past the feed's retention are gone."""
    last = from_event_id if to_event_id is None else to_event_id
    with conn.transaction():
        found = _find(conn, game, webhook_id)
        queued = conn.execute(
            "INSERT INTO webhook_resends (game_id, webhook_id, event_id)"
            " SELECT %(game)s, %(webhook)s, ev.id FROM events ev"
            " WHERE ev.game_id = %(game)s AND ev.id BETWEEN %(first)s AND %(last)s"
            " AND ev.id <= %(through)s"
            " AND (cardinality(%(types)s::text[]) = 0 OR ev.type = ANY(%(types)s::text[]))"
            " ON CONFLICT DO NOTHING",
            {
                "game": game,
                "webhook": found["id"],
                "first": from_event_id,
                "last": last,
                "through": found["delivered_through"],
                "types": list(found["types"]),
            },
        ).rowcount
    if queued == 0 and from_event_id > found["delivered_through"]:
        raise ValidationFailed(
            details={
                "from_event_id": [
                    f"event {from_event_id} has not been delivered yet (delivered through"
                    f" {found['delivered_through']}): it will be sent without asking"
                ]
            }
        )
    return {"queued": queued}


def deliveries(
    conn: psycopg.Connection,
    game: str,
    webhook_id: str,
    *,
    limit: int,
    cursor: str | None,
    event_id: int | None = None,
) -> dict[str, Any]:
    """The endpoint's delivery log, newest first, keyset-paginated by the attempt's id."""
    found = _find(conn, game, webhook_id)
    before = _cursor(cursor)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT id, event_id, attempt, status_code, latency_ms, response_excerpt, error,"
            " attempted_at FROM webhook_deliveries"
            " WHERE game_id = %s AND webhook_id = %s AND (%s::bigint IS NULL OR id < %s)"
            " AND (%s::bigint IS NULL OR event_id = %s)"
            " ORDER BY id DESC LIMIT %s",
            (game, found["id"], before, before, event_id, event_id, limit + 1),
        ).fetchall()
    page = rows[:limit]
    return {
        "deliveries": [
            {
                "id": row["id"],
                "event_id": row["event_id"],
                "attempt": row["attempt"],
                "status_code": row["status_code"],
                "latency_ms": row["latency_ms"],
                "response_excerpt": row["response_excerpt"],
                "error": row["error"],
                "attempted_at": format_timestamp(row["attempted_at"]),
                "succeeded": row["status_code"] is not None and 200 <= row["status_code"] < 300,
            }
            for row in page
        ],
        "next_cursor": str(page[-1]["id"]) if len(rows) > limit else None,
    }


def _cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 19:
        raise ValidationFailed(details={"cursor": ["not a cursor this list gave out"]})
    return int(cursor)


# ---------------------------------------------------------------------------------------------
# What the delivery workers use
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Claim:
    """An endpoint claimed by this transaction: no other worker delivers it until it ends."""

    game: str
    webhook_id: uuid.UUID
    url: str
    types: list[str]
    secrets: list[bytes]  # signing now: the current secret, then the previous one
    delivered_through: int
    failed_attempts: int
    failing_since: dt.datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class Pending:
    """One event to send: ``resend`` when the studio asked for it again."""

    event: dict[str, Any]
    resend: bool

    @property
    def event_id(self) -> int:
        return int(self.event["id"])


# Events of the feed an endpoint is due: positioned (an id), after its progress, of its types.
_DUE = (
    "EXISTS (SELECT 1 FROM webhook_resends r"
    "  WHERE r.game_id = p.game_id AND r.webhook_id = p.webhook_id)"
    " OR EXISTS (SELECT 1 FROM events ev WHERE ev.game_id = p.game_id"
    "  AND ev.id > p.delivered_through"
    "  AND (cardinality(e.types) = 0 OR ev.type = ANY(e.types)))"
)


def claim_due(conn: psycopg.Connection) -> Claim | None:
    """Claims the enabled endpoint that has waited longest with events due, in the caller's
    transaction; None when every due endpoint is being delivered by another worker."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT p.game_id, p.webhook_id, p.delivered_through, p.failed_attempts,"
            " p.failing_since, e.url, e.types, e.secret,"
            " CASE WHEN e.previous_secret_expires_at > now() THEN e.previous_secret END"
            "  AS previous_secret"
            " FROM webhook_progress p JOIN webhook_endpoints e"
            "  ON e.game_id = p.game_id AND e.id = p.webhook_id"
            f" WHERE e.enabled AND p.next_attempt_at <= now() AND ({_DUE})"
            " ORDER BY p.next_attempt_at LIMIT 1"
            " FOR UPDATE OF p SKIP LOCKED",
            prepare=False,
        ).fetchone()
    if row is None:
        return None
    signing = [bytes(row["secret"])]
    if row["previous_secret"] is not None:
        signing.append(bytes(row["previous_secret"]))
    return Claim(
        game=row["game_id"],
        webhook_id=row["webhook_id"],
        url=row["url"],
        types=list(row["types"]),
        secrets=signing,
        delivered_through=row["delivered_through"],
        failed_attempts=row["failed_attempts"],
        failing_since=row["failing_since"],
    )


def pending(conn: psycopg.Connection, claim: Claim, *, limit: int) -> list[Pending]:
    """What the claimed endpoint is to be sent next, in order: events asked for again first,
    then new events after its progress."""
    with conn.cursor(row_factory=dict_row) as cur:
        resends = cur.execute(
            f"SELECT {EVENT_COLUMNS} FROM webhook_resends r JOIN events ev"
            "  ON ev.game_id = r.game_id AND ev.id = r.event_id"
            " WHERE r.game_id = %s AND r.webhook_id = %s ORDER BY r.event_id LIMIT %s",
            (claim.game, claim.webhook_id, limit),
        ).fetchall()
        found = [Pending(row["event"], resend=True) for row in resends]
        if len(found) < limit:
            fresh = cur.execute(
                f"SELECT {EVENT_COLUMNS} FROM events ev"
                " WHERE ev.game_id = %s AND ev.id > %s"
                " AND (cardinality(%s::text[]) = 0 OR ev.type = ANY(%s::text[]))"
                " ORDER BY ev.id LIMIT %s",
                (
                    claim.game,
                    claim.delivered_through,
                    claim.types,
                    claim.types,
                    limit - len(found),
                ),
            ).fetchall()
            found += [Pending(row["event"], resend=False) for row in fresh]
    # Resends whose event has left the feed (retention) are dropped: nothing is left to send.
    conn.execute(
        "DELETE FROM webhook_resends r WHERE r.game_id = %s AND r.webhook_id = %s"
        " AND NOT EXISTS (SELECT 1 FROM events ev WHERE ev.game_id = r.game_id"
        "  AND ev.id = r.event_id)",
        (claim.game, claim.webhook_id),
    )
    return found


@dataclasses.dataclass(frozen=True, slots=True)
class Attempt:
    """What one HTTP attempt got: a status (None when no answer came), how long it took, the
    start of the answer's body and, without an answer, why."""

    status_code: int | None
    latency_ms: int
    excerpt: str
    error: str | None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def record(
    conn: psycopg.Connection, claim: Claim, item: Pending, attempt: Attempt, *, number: int
) -> None:
    """Logs one attempt, and on success moves the endpoint on past the event."""
    conn.execute(
        "INSERT INTO webhook_deliveries (game_id, webhook_id, event_id, attempt, status_code,"
        " latency_ms, response_excerpt, error) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            claim.game,
            claim.webhook_id,
            item.event_id,
            number,
            attempt.status_code,
            attempt.latency_ms,
            attempt.excerpt[:EXCERPT_CHARS],
            attempt.error,
        ),
    )
    if not attempt.succeeded:
        return
    if item.resend:
        conn.execute(
            "DELETE FROM webhook_resends WHERE game_id = %s AND webhook_id = %s AND event_id = %s",
            (claim.game, claim.webhook_id, item.event_id),
        )
        conn.execute(
            "UPDATE webhook_progress SET failed_attempts = 0, failing_since = NULL"
            " WHERE game_id = %s AND webhook_id = %s",
            (claim.game, claim.webhook_id),
        )
    else:
        conn.execute(
            "UPDATE webhook_progress SET delivered_through = %s, failed_attempts = 0,"
            " failing_since = NULL WHERE game_id = %s AND webhook_id = %s",
            (item.event_id, claim.game, claim.webhook_id),
        )


def delivered_batch(conn: psycopg.Connection, claim: Claim) -> None:
    """The batch went out whole: the endpoint's failures are over, and it is due again now."""
    conn.execute(
        "UPDATE webhook_progress SET failed_attempts = 0, failing_since = NULL,"
        " next_attempt_at = now() WHERE game_id = %s AND webhook_id = %s",
        (claim.game, claim.webhook_id),
    )


def failed(
    conn: psycopg.Connection,
    claim: Claim,
    *,
    retry_in: dt.timedelta,
    give_up_after: dt.timedelta,
    why: str,
) -> bool:
    """Schedules the next attempt after a failure, or, when the endpoint has been failing for
    longer than ``give_up_after``, disables it with the reason. True when it was disabled."""
    row = conn.execute(
        "UPDATE webhook_progress SET failed_attempts = failed_attempts + 1,"
        " failing_since = coalesce(failing_since, now()), next_attempt_at = now() + %s"
        " WHERE game_id = %s AND webhook_id = %s"
        " RETURNING failed_attempts, failing_since, now() - failing_since >= %s",
        (retry_in, claim.game, claim.webhook_id, give_up_after),
    ).fetchone()
    assert row is not None
    attempts, since, expired = row
    if not expired:
        return False
    conn.execute(
        "UPDATE webhook_endpoints SET enabled = false, disabled_reason = %s"
        " WHERE game_id = %s AND id = %s",
        (
            f"deliveries failed for {_duration(give_up_after)} ({attempts} attempts since"
            f" {format_timestamp(since)}); last: {why}",
            claim.game,
            claim.webhook_id,
        ),
    )
    return True


def _duration(span: dt.timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400} days" if seconds != 86400 else "1 day"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} hours"
    return f"{seconds} seconds"


def backlog(conn: psycopg.Connection) -> list[tuple[str, str, float]]:
    """(game, webhook id, age in seconds of its oldest undelivered event) of every enabled
    endpoint; 0 for one that is caught up."""
    rows = conn.execute(
        "SELECT p.game_id, p.webhook_id::text, coalesce(extract(epoch FROM now() - ("
        "  SELECT ev.created_at FROM events ev WHERE ev.game_id = p.game_id"
        "   AND ev.id > p.delivered_through"
        "   AND (cardinality(e.types) = 0 OR ev.type = ANY(e.types))"
        "  ORDER BY ev.id LIMIT 1)), 0)::float8"
        " FROM webhook_progress p JOIN webhook_endpoints e"
        "  ON e.game_id = p.game_id AND e.id = p.webhook_id WHERE e.enabled",
        prepare=False,
    ).fetchall()
    return [(game, webhook, max(float(age), 0.0)) for game, webhook, age in rows]


# The event as the feed shows it (sk_event_json, sql/70_events.sql: one shape for both).
EVENT_COLUMNS = "ev.id, sk_event_json(ev) AS event"
