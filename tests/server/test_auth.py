"""Tokens: keys per game, pinned algorithms, claims checked, roles and game isolation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shopkeep_server.store import games
from support import Game, buy, grant, make_game, new_key, post, snapshot


def _claims(owner: Game, **changes) -> dict:
    now = int(time.time())
    claims = {
        "sub": "p1",
        "game": owner.id,
        "role": "player",
        "aud": "shopkeep",
        "iss": "shopkeep",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _hs256(owner: Game, *, secret: str | None = None, kid: str | None = None, **changes) -> str:
    return jwt.encode(
        _claims(owner, **changes),
        secret or owner.key.secret,
        algorithm="HS256",
        headers={"kid": kid or owner.key.kid},
    )


def _wallet(client, token: str):
    return client.get("/v1/wallet", headers={"Authorization": f"Bearer {token}"})


def _unauthenticated(response) -> None:
    assert response.status_code == 401, response.get_json()
    assert response.get_json()["error"]["code"] == "unauthenticated"


def test_valid_token(client, game: Game) -> None:
    assert _wallet(client, _hs256(game)).status_code == 200


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer not.a.jwt", "Token x"]
)
def test_missing_or_malformed(client, game: Game, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    _unauthenticated(client.get("/v1/wallet", headers=headers))


def test_forged_signature(client, game: Game) -> None:
    _unauthenticated(_wallet(client, _hs256(game, secret="x" * 40)))


def test_expired(client, game: Game) -> None:
    expired = _hs256(game, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    response = _wallet(client, expired)
    _unauthenticated(response)
    assert response.get_json()["error"]["message"] == "the token has expired"


def test_missing_exp(client, game: Game) -> None:
    _unauthenticated(_wallet(client, _hs256(game, exp=None)))


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_alg_none(client, game: Game) -> None:
    unsigned = f"{_b64({'alg': 'none', 'kid': game.key.kid})}.{_b64(_claims(game))}."
    _unauthenticated(_wallet(client, unsigned))
    none_upper = f"{_b64({'alg': 'NONE', 'kid': game.key.kid})}.{_b64(_claims(game))}."
    _unauthenticated(_wallet(client, none_upper))


def test_wrong_audience_and_issuer(client, game: Game) -> None:
    _unauthenticated(_wallet(client, _hs256(game, aud="someone-else")))
    _unauthenticated(_wallet(client, _hs256(game, iss="evil")))


def test_unknown_kid(client, game: Game) -> None:
    _unauthenticated(_wallet(client, _hs256(game, kid="no-such-kid")))


def test_token_claiming_another_game(client, conn, game: Game) -> None:
    other = make_game(conn)
    # Signed with this game's key but claiming the other game.
    _unauthenticated(_wallet(client, _hs256(game, game=other.id)))


def test_bad_role_and_subject_claims(client, game: Game) -> None:
    _unauthenticated(_wallet(client, _hs256(game, role="admin")))
    _unauthenticated(_wallet(client, _hs256(game, sub="has spaces")))


def test_revoked_key(client, conn, game: Game) -> None:
    token = _hs256(game)
    assert games.revoke_key(conn, game.key.kid)
    _unauthenticated(_wallet(client, token))


@pytest.mark.parametrize(
    "role, method, path",
    [
        ("service", "GET", "/v1/wallet"),
        ("studio", "GET", "/v1/inventory"),
        ("player", "GET", "/v1/players/p2/wallet"),
        ("player", "GET", "/v1/players/p1/wallet"),
        ("player", "GET", "/v1/admin/catalog/draft"),
        ("service", "GET", "/v1/admin/catalog/versions"),
        ("studio", "POST", "/v1/purchases"),
        ("player", "POST", "/v1/players/p1/grants"),
        ("studio", "POST", "/v1/players/p1/grants"),
        ("player", "POST", "/v1/admin/catalog/publish"),
    ],
)
def test_wrong_role_is_forbidden(client, conn, game: Game, role: str, method: str, path: str):
    before = snapshot(conn, game.id)
    response = client.open(
        path,
        method=method,
        json={"sku": "potion"} if method == "POST" else None,
        headers=game.headers(role, "p1", **{"Idempotency-Key": new_key()}),
    )
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
    assert snapshot(conn, game.id) == before


def test_player_cannot_read_another_players_purchase(client, game: Game) -> None:
    grant(client, game, "p2", "COINS", 100)
    purchase = buy(client, game, "potion", sub="p2").get_json()["purchase"]
    response = client.get(f"/v1/purchases/{purchase['id']}", headers=game.headers("player", "p1"))
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_games_are_isolated(client, conn, game: Game) -> None:
    other = make_game(conn)
    grant(client, other, "p1", "COINS", 100)
    purchase = buy(client, other, "potion").get_json()["purchase"]
    # The first game's service cannot see or refund the other game's purchase: 404, not 403.
    read = client.get(f"/v1/purchases/{purchase['id']}", headers=game.headers("service", "b"))
    assert read.status_code == 404
    refund = post(
        client, f"/v1/purchases/{purchase['id']}/refund", {"reason": "x"}, game, role="service"
    )
    assert refund.status_code == 404
    # Same player id, different game: a different wallet.
    wallet = client.get("/v1/wallet", headers=game.headers("player", "p1")).get_json()
    assert {b["amount"] for b in wallet["balances"]} == {0}


def _pem(private_key) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_rs256_public_key_and_algorithm_confusion(client, conn, game: Game) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = games.add_key(
        conn, game.id, algorithm="RS256", issuer="studio-idp", public_key=_pem(private)
    )
    claims = _claims(game, iss="studio-idp")
    good = jwt.encode(claims, private, algorithm="RS256", headers={"kid": key.kid})
    assert _wallet(client, good).status_code == 200
    # HS256 signed with the public key as the secret: the key pins RS256, so it is refused.
    # PyJWT itself refuses to sign that, so the attacker's token is assembled by hand.
    signing_input = f"{_b64({'alg': 'HS256', 'kid': key.kid})}.{_b64(claims)}".encode()
    mac = hmac.new(_pem(private).encode(), signing_input, hashlib.sha256).digest()
    confused = f"{signing_input.decode()}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    _unauthenticated(_wallet(client, confused))


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, ec.EllipticCurvePrivateKey]]:
    """A studio identity provider's JWKS endpoint on loopback."""
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    jwk.update({"kid": "idp-key-1", "use": "sig", "alg": "ES256"})
    body = json.dumps({"keys": [jwk]}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", private
    finally:
        server.shutdown()


def test_jwks_url_key(client, conn, game: Game, jwks_server) -> None:
    url, private = jwks_server
    games.add_key(conn, game.id, algorithm="ES256", issuer="https://idp.example", jwks_url=url)
    claims = _claims(game, iss="https://idp.example")
    token = jwt.encode(claims, private, algorithm="ES256", headers={"kid": "idp-key-1"})
    assert _wallet(client, token).status_code == 200
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": "idp-key-1"})
    _unauthenticated(_wallet(client, forged))


def test_unauthenticated_request_changes_nothing(client, conn, game: Game) -> None:
    before = snapshot(conn, game.id)
    response = client.post(
        "/v1/players/p1/grants",
        json={"currency": "COINS", "amount": 100, "reason": "free money"},
        headers={
            "Authorization": f"Bearer {_hs256(game, role='service', secret='y' * 40)}",
            "Idempotency-Key": new_key(),
        },
    )
    _unauthenticated(response)
    assert snapshot(conn, game.id) == before


class _Clock:
    """Stands in for the time module inside auth.py: both clocks move only when told."""

    def __init__(self) -> None:
        self.wall = time.time()
        self.mono = 1_000.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    from shopkeep_server import auth

    fake = _Clock()
    monkeypatch.setattr(auth, "time", fake)
    return fake


def test_cached_token_stops_with_its_key(conn, game: Game, clock: _Clock) -> None:
    from shopkeep_server.auth import Authenticator, Principal
    from shopkeep_server.errors import Unauthenticated

    authenticator = Authenticator(auth_database(conn), cache_seconds=30)
    token = _hs256(game, iat=int(clock.wall), exp=int(clock.wall) + 100)
    who = Principal(game=game.id, subject="p1", role="player")
    assert authenticator.authenticate(f"Bearer {token}") == who
    # Revoked: the key and the tokens it verified are remembered for cache_seconds, no longer.
    assert games.revoke_key(conn, game.key.kid)
    clock.advance(29)
    assert authenticator.authenticate(f"Bearer {token}") == who
    clock.advance(2)
    with pytest.raises(Unauthenticated):
        authenticator.authenticate(f"Bearer {token}")


def test_cached_token_is_verified_again_after_its_expiry(
    conn, game: Game, clock: _Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shopkeep_server import auth

    verified: list[str] = []
    decode = jwt.decode

    def counting(token: str, *args, **kwargs):
        verified.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(auth.jwt, "decode", counting)
    authenticator = auth.Authenticator(auth_database(conn), cache_seconds=30)
    token = _hs256(game, iat=int(clock.wall), exp=int(clock.wall) + 5)
    for _ in range(3):
        authenticator.authenticate(f"Bearer {token}")
    assert verified == [token]  # once, then remembered
    # Past exp + the leeway decode allows, the token is checked again (PyJWT's own clock, the
    # real one, still accepts it; a cached answer would not have asked).
    clock.advance(auth.LEEWAY_SECONDS + 6)
    authenticator.authenticate(f"Bearer {token}")
    assert verified == [token, token]


def auth_database(conn):
    from shopkeep_server.db import SingleConnectionDatabase

    return SingleConnectionDatabase(conn)
