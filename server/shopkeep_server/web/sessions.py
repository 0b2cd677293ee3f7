"""Server-side sessions of the studio page: a random id in a cookie, a row in studio_sessions.

Only the sha256 of the id is stored (a copy of the table opens no session). A session belongs to
one game and one studio account, carries its CSRF token, and ends at its expiry, which is never
later than the expiry of the token it was opened with, or when its owner signs out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import secrets
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

# A session lasts at most this long, even when the token it was opened with lives longer.
MAX_SESSION = dt.timedelta(hours=12)


@dataclasses.dataclass(frozen=True, slots=True)
class Session:
    """A signed-in studio account on the page."""

    game: str
    subject: str
    csrf_token: str
    expires_at: dt.datetime

    def csrf_ok(self, sent: str | None) -> bool:
        """Constant-time comparison, so the token cannot be guessed a character at a time."""
        return bool(sent) and hmac.compare_digest(self.csrf_token, sent or "")


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def create(
    conn: psycopg.Connection, *, game: str, subject: str, token_expires_at: dt.datetime
) -> tuple[str, Session]:
    """Opens a session; returns the id for the cookie (never stored) and the session."""
    session_id = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    with conn.transaction():
        # Sign-ins are rare: clearing expired rows here keeps the table small without a job.
        conn.execute("DELETE FROM studio_sessions WHERE expires_at < now()")
        row = conn.execute(
            "INSERT INTO studio_sessions (id_hash, game_id, subject, csrf_token, expires_at)"
            " VALUES (%s, %s, %s, %s, least(%s, now() + %s)) RETURNING expires_at",
            (_hash(session_id), game, subject, csrf_token, token_expires_at, MAX_SESSION),
        ).fetchone()
    assert row is not None
    return session_id, Session(game, subject, csrf_token, row[0])


def find(conn: psycopg.Connection, session_id: str | None) -> Session | None:
    """The session of a cookie, if it exists and has not expired."""
    if not session_id or len(session_id) > 100:
        return None
    row = conn.execute(
        "SELECT game_id, subject, csrf_token, expires_at FROM studio_sessions"
        " WHERE id_hash = %s AND expires_at > now()",
        (_hash(session_id),),
    ).fetchone()
    return None if row is None else Session(*row)


def delete(conn: psycopg.Connection, session_id: str) -> None:
    conn.execute("DELETE FROM studio_sessions WHERE id_hash = %s", (_hash(session_id),))


def set_flash(conn: psycopg.Connection, session_id: str, message: dict[str, Any]) -> None:
    """Keeps a message for the next page the session sees (after a redirect)."""
    conn.execute(
        "UPDATE studio_sessions SET flash = %s WHERE id_hash = %s",
        (Jsonb(message), _hash(session_id)),
    )


def take_flash(conn: psycopg.Connection, session_id: str) -> dict[str, Any] | None:
    """The kept message, cleared in the same statement so it shows once."""
    row = conn.execute(
        "UPDATE studio_sessions s SET flash = NULL FROM studio_sessions old"
        " WHERE s.id_hash = %s AND old.id_hash = s.id_hash AND old.flash IS NOT NULL"
        " RETURNING old.flash",
        (_hash(session_id),),
    ).fetchone()
    return None if row is None else row[0]
