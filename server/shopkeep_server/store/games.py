"""Games and their signing keys."""

from __future__ import annotations

import dataclasses
import re
import secrets

import psycopg
from psycopg.rows import class_row

from ..errors import NotFound, ValidationFailed

GAME_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ALGORITHMS = ("HS256", "RS256", "ES256", "EdDSA")


@dataclasses.dataclass(frozen=True, slots=True)
class GameKey:
    """One way a game's tokens may be signed; the algorithm is pinned to the key."""

    id: int
    game_id: str
    kid: str | None
    algorithm: str
    secret: str | None
    public_key: str | None
    jwks_url: str | None
    issuer: str


_KEY_COLUMNS = "id, game_id, kid, algorithm, secret, public_key, jwks_url, issuer"


def create_game(conn: psycopg.Connection, game_id: str, *, name: str | None = None) -> bool:
    """Creates the game; False when it already exists."""
    if not GAME_ID.fullmatch(game_id):
        raise ValidationFailed(details={"game": ["must match ^[a-z0-9][a-z0-9_-]{0,63}$"]})
    cur = conn.execute(
        "INSERT INTO games (id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (game_id, name or game_id),
    )
    return cur.rowcount == 1


def game_exists(conn: psycopg.Connection, game_id: str) -> bool:
    return conn.execute("SELECT 1 FROM games WHERE id = %s", (game_id,)).fetchone() is not None


def add_key(
    conn: psycopg.Connection,
    game_id: str,
    *,
    algorithm: str = "HS256",
    issuer: str,
    secret: str | None = None,
    public_key: str | None = None,
    jwks_url: str | None = None,
    kid: str | None = None,
) -> GameKey:
    """Adds a signing key. HS256 without a secret gets a fresh random one (256 bits)."""
    if algorithm not in ALGORITHMS:
        raise ValidationFailed(details={"algorithm": [f"must be one of {', '.join(ALGORITHMS)}"]})
    if algorithm == "HS256":
        secret = secret or secrets.token_urlsafe(32)
        if len(secret.encode()) < 32:
            raise ValidationFailed(details={"secret": ["must be at least 32 bytes"]})
    elif not (public_key or jwks_url):
        raise ValidationFailed(
            details={"public_key": [f"{algorithm} needs a public key or a JWKS URL"]}
        )
    # A JWKS names its own keys; ours get a kid the token header will carry.
    kid = None if jwks_url is not None else kid or f"{game_id}-{secrets.token_hex(4)}"
    if not game_exists(conn, game_id):
        raise NotFound(f"no game {game_id}")
    cur = conn.cursor(row_factory=class_row(GameKey))
    row = cur.execute(
        f"INSERT INTO game_keys (game_id, kid, algorithm, secret, public_key, jwks_url, issuer)"
        f" VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_KEY_COLUMNS}",
        (game_id, kid, algorithm, secret, public_key, jwks_url, issuer),
    ).fetchone()
    assert row is not None
    return row


def key_by_kid(conn: psycopg.Connection, kid: str) -> GameKey | None:
    cur = conn.cursor(row_factory=class_row(GameKey))
    return cur.execute(
        f"SELECT {_KEY_COLUMNS} FROM game_keys WHERE kid = %s AND revoked_at IS NULL", (kid,)
    ).fetchone()


def jwks_keys(conn: psycopg.Connection, game_id: str) -> list[GameKey]:
    cur = conn.cursor(row_factory=class_row(GameKey))
    return cur.execute(
        f"SELECT {_KEY_COLUMNS} FROM game_keys"
        " WHERE game_id = %s AND jwks_url IS NOT NULL AND revoked_at IS NULL ORDER BY id",
        (game_id,),
    ).fetchall()


def signing_key(conn: psycopg.Connection, game_id: str) -> GameKey:
    """The newest HS256 key of a game: what `shopkeep-server token` signs with."""
    cur = conn.cursor(row_factory=class_row(GameKey))
    row = cur.execute(
        f"SELECT {_KEY_COLUMNS} FROM game_keys WHERE game_id = %s AND algorithm = 'HS256'"
        " AND revoked_at IS NULL ORDER BY id DESC LIMIT 1",
        (game_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"game {game_id} has no HS256 key to sign with")
    return row


def revoke_key(conn: psycopg.Connection, kid: str) -> bool:
    cur = conn.execute(
        "UPDATE game_keys SET revoked_at = now() WHERE kid = %s AND revoked_at IS NULL", (kid,)
    )
    return cur.rowcount == 1
