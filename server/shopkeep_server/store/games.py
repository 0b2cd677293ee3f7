"""Games and their signing keys."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import secrets

import jwt
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


@dataclasses.dataclass(frozen=True, slots=True)
class KeyInfo:
    """What an operator may see of a key: never its secret."""

    kid: str | None
    algorithm: str
    issuer: str
    jwks_url: str | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


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
    """Adds a signing key. HS256 without a secret gets a fresh random one (256 bits). The
    newest HS256 key is the one `signing_key` returns; older keys keep verifying until revoked.
    Refusals name the field (``public_key``, ``jwks_url``, ...) so a caller can name its own."""
    _check_key(algorithm, secret, public_key, jwks_url)
    if algorithm == "HS256":
        secret = secret or secrets.token_urlsafe(32)
    # A JWKS names its own keys; ours get a kid the token header will carry.
    kid = None if jwks_url is not None else kid or f"{game_id}-{secrets.token_hex(4)}"
    if not game_exists(conn, game_id):
        raise NotFound(f"game {game_id} does not exist")
    cur = conn.cursor(row_factory=class_row(GameKey))
    row = cur.execute(
        f"INSERT INTO game_keys (game_id, kid, algorithm, secret, public_key, jwks_url, issuer)"
        f" VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_KEY_COLUMNS}",
        (game_id, kid, algorithm, secret, public_key, jwks_url, issuer),
    ).fetchone()
    assert row is not None
    return row


def _check_key(
    algorithm: str, secret: str | None, public_key: str | None, jwks_url: str | None
) -> None:
    """The table's CHECKs, as refusals in words: one kind of key material, fitting the
    algorithm, and a public key PyJWT can load (a bad one would only fail at the first token)."""
    if algorithm not in ALGORITHMS:
        raise ValidationFailed(details={"algorithm": [f"must be one of {', '.join(ALGORITHMS)}"]})
    if algorithm == "HS256":
        for field, value in (("public_key", public_key), ("jwks_url", jwks_url)):
            if value is not None:
                raise ValidationFailed(
                    details={field: ["HS256 keys are shared secrets: give no public key or JWKS"]}
                )
        if secret is not None and len(secret.encode()) < 32:
            raise ValidationFailed(details={"secret": ["must be at least 32 bytes"]})
        return
    if secret is not None:
        raise ValidationFailed(details={"secret": [f"{algorithm} keys have no secret"]})
    if public_key is not None and jwks_url is not None:
        raise ValidationFailed(details={"jwks_url": ["give a public key or a JWKS URL, not both"]})
    if public_key is None and jwks_url is None:
        raise ValidationFailed(
            details={"public_key": [f"{algorithm} needs a public key or a JWKS URL"]}
        )
    if public_key is not None:
        try:
            loaded = jwt.get_algorithm_by_name(algorithm).prepare_key(public_key)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise ValidationFailed(
                details={"public_key": [f"is not a PEM public key {algorithm} can use"]}
            ) from exc
        if not hasattr(loaded, "verify"):  # a private key: it must never sit in this table
            raise ValidationFailed(
                details={"public_key": ["is a private key: give its public half"]}
            )


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
        if not game_exists(conn, game_id):
            raise NotFound(f"game {game_id} does not exist")
        raise NotFound(f"game {game_id} has no active HS256 key to sign with")
    return row


def list_keys(conn: psycopg.Connection, game_id: str) -> list[KeyInfo]:
    """Every key of a game, oldest first, revoked ones included."""
    if not game_exists(conn, game_id):
        raise NotFound(f"game {game_id} does not exist")
    cur = conn.cursor(row_factory=class_row(KeyInfo))
    return cur.execute(
        "SELECT kid, algorithm, issuer, jwks_url, created_at, revoked_at FROM game_keys"
        " WHERE game_id = %s ORDER BY id",
        (game_id,),
    ).fetchall()


def revoke_key(conn: psycopg.Connection, kid: str, *, game_id: str | None = None) -> bool:
    """Marks a key revoked (``kid`` of ``game_id`` when given); False when there is no such
    active key. Verifiers stop accepting it once their key cache expires."""
    cur = conn.execute(
        "UPDATE game_keys SET revoked_at = now() WHERE kid = %s AND revoked_at IS NULL"
        " AND (%s::text IS NULL OR game_id = %s)",
        (kid, game_id, game_id),
    )
    return cur.rowcount == 1
