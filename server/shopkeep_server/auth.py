"""Bearer tokens (PyJWT): per-game keys picked by ``kid``, pinned algorithms, aud/iss/exp."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import jwt
import psycopg

from .db import Database
from .errors import Unauthenticated
from .store import games
from .store.games import GAME_ID, GameKey
from .store.rules import ACCOUNT_ID_PATTERN, COUNTRY_PATTERN, matches

T = TypeVar("T")

AUDIENCE = "shopkeep"
ROLES = ("player", "service", "studio")
LEEWAY_SECONDS = 10
# What the keys table admits as a kid (migrations/0001_schema.sql): any other kid names no key,
# and is not sent to the database (a NUL in it would fail there as an internal error).
KID_PATTERN = r"^[A-Za-z0-9_.-]{1,128}$"
# Verified tokens remembered per process: a game client sends the same token with every
# request, and verifying it (base64, JSON, HMAC, claims) was a tenth of a purchase's CPU.
TOKEN_CACHE_SIZE = 10_000


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an account (`sub`) of one game, in one role."""

    game: str
    subject: str
    role: str
    # The token's optional `country` claim (ISO 3166 alpha-2), which segment rules can use;
    # any other value is not a country and is ignored.
    country: str | None = None


def mint_token(key: GameKey, *, role: str, subject: str, ttl: int = 3600) -> str:
    """Signs a token with a game's HS256 key (dev tools, the demo and tests)."""
    if key.secret is None:
        raise ValueError("only HS256 keys can sign here")
    now = int(time.time())
    claims = {
        "sub": subject,
        "game": key.game_id,
        "role": role,
        "aud": AUDIENCE,
        "iss": key.issuer,
        "iat": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, key.secret, algorithm="HS256", headers={"kid": key.kid})


class Authenticator:
    """Verifies tokens against the game's keys, cached per process for a short while."""

    def __init__(self, db: Database, *, cache_seconds: int) -> None:
        self._db = db
        self._cache_seconds = cache_seconds
        self._keys: dict[str, tuple[float, GameKey | None]] = {}
        self._jwks: dict[str, tuple[float, list[GameKey]]] = {}
        self._jwks_clients: dict[str, jwt.PyJWKClient] = {}
        # token -> (monotonic deadline of the key that verified it, wall-clock expiry, who)
        self._tokens: dict[str, tuple[float, float, Principal]] = {}
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthenticated("missing Authorization: Bearer token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        token = token.strip()
        cached = self._tokens.get(token)
        if cached is not None:
            key_deadline, expires_at, known = cached
            # Only as long as the key that verified it is cached (a revoked key stops its
            # tokens within cache_seconds, as before) and the token itself has not expired.
            if key_deadline > time.monotonic() and expires_at > time.time():
                return known
            self._tokens.pop(token, None)
        try:
            header = jwt.get_unverified_header(token)
            algorithm = header.get("alg")
            if not isinstance(algorithm, str) or algorithm.lower() == "none":
                raise Unauthenticated("unsigned tokens are refused")
            claims, key_deadline = self._verify(token, header)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("malformed token") from exc
        except RecursionError as exc:
            # PyJWT parses a token's JSON with the standard json module, which recurses.
            raise Unauthenticated("malformed token") from exc
        role = claims.get("role")
        subject = claims.get("sub")
        if role not in ROLES:
            raise Unauthenticated("the token's role must be player, service or studio")
        # The whole string: "bp-rich\n" is not the account "bp-rich".
        if not isinstance(subject, str) or not matches(ACCOUNT_ID_PATTERN, subject):
            raise Unauthenticated("the token's sub is not a valid account id")
        country = claims.get("country")
        if not (isinstance(country, str) and matches(COUNTRY_PATTERN, country)):
            country = None
        found = Principal(game=claims["game"], subject=subject, role=role, country=country)
        self._remember(token, key_deadline, claims, found)
        return found

    def _remember(
        self, token: str, key_deadline: float, claims: dict[str, Any], found: Principal
    ) -> None:
        """Caches a verified token until the earlier of its expiry (with the leeway decode
        allows) and ``key_deadline``, when the cached key it was checked with is read again."""
        if self._cache_seconds <= 0:
            return
        expires_at = float(claims["exp"]) + LEEWAY_SECONDS
        with self._lock:
            if len(self._tokens) >= TOKEN_CACHE_SIZE:  # many players' tokens: start again
                self._tokens.clear()
            self._tokens[token] = (key_deadline, expires_at, found)

    def _verify(self, token: str, header: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """The token's claims, and until when (monotonic) the key that verified them is
        cached."""
        kid = header.get("kid")
        key, deadline = (
            self._cached(self._keys, kid, games.key_by_kid)
            if isinstance(kid, str) and matches(KID_PATTERN, kid)
            else (None, 0.0)
        )
        if key is not None:
            return self._decode(token, key, key.secret or key.public_key), deadline
        # No key of ours by that kid: the game may trust an identity provider's JWKS.
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise Unauthenticated("malformed token") from exc
        game = unverified.get("game")
        if isinstance(game, str) and GAME_ID.fullmatch(game):
            candidates, deadline = self._cached(self._jwks, game, games.jwks_keys)
            for candidate in candidates:
                assert candidate.jwks_url is not None
                try:
                    signing = self._jwks_client(candidate.jwks_url).get_signing_key_from_jwt(token)
                except jwt.PyJWTError:
                    continue
                return self._decode(token, candidate, signing.key), deadline
        raise Unauthenticated("no key of this game signed the token")

    def _decode(self, token: str, key: GameKey, material: Any) -> dict[str, Any]:
        try:
            claims = jwt.decode(
                token,
                material,
                algorithms=[key.algorithm],
                audience=AUDIENCE,
                issuer=key.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("the token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated("the token is not for this audience") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("the token is not valid") from exc
        if claims.get("game") != key.game_id:
            raise Unauthenticated("the token's game does not match its key")
        return claims

    def _cached(
        self,
        cache: dict[str, tuple[float, T]],
        name: str,
        load: Callable[[psycopg.Connection, str], T],
    ) -> tuple[T, float]:
        """A short-lived per-process cache: keys are read once per ``cache_seconds``, so auth
        costs no round trip, and a revoked key stops working within that time. Returns the
        value and its monotonic deadline."""
        now = time.monotonic()
        cached = cache.get(name)
        if cached is not None and cached[0] > now:
            return cached[1], cached[0]
        with self._db.connection() as conn:
            value = load(conn, name)
        with self._lock:
            if len(cache) > 10_000:  # forged kids and game ids must not grow this without bound
                cache.clear()
            cache[name] = (now + self._cache_seconds, value)
        return value, now + self._cache_seconds

    def _jwks_client(self, url: str) -> jwt.PyJWKClient:
        with self._lock:
            client = self._jwks_clients.get(url)
            if client is None:
                client = jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=5)
                self._jwks_clients[url] = client
            return client
