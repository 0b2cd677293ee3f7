"""`shopkeep-server game keys list|rotate|revoke`, with real tokens against the live server.

The live server runs with SHOPKEEP_KEY_CACHE_SECONDS=0, so a revocation is seen by the next
request; with the default cache it is seen within that many seconds (auth.Authenticator).
The command line runs in-process (click's CliRunner) on the live server's database.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shopkeep_server.auth import mint_token
from shopkeep_server.cli import main
from shopkeep_server.errors import NotFound, ValidationFailed
from shopkeep_server.store import games
from support import Game, LiveServer, make_game


def run(database_url: str, *args: str) -> Result:
    env = {"SHOPKEEP_DATABASE_URL": database_url, "SHOPKEEP_KEY_CACHE_SECONDS": "30"}
    return CliRunner().invoke(main, list(args), env=env)


def wallet_status(server: LiveServer, token: str) -> tuple[int, str | None]:
    response = httpx.get(f"{server.url}/v1/wallet", headers={"Authorization": f"Bearer {token}"})
    code = response.json()["error"]["code"] if response.status_code != 200 else None
    return response.status_code, code


def printed(result: Result, field: str) -> str:
    match = re.search(rf"^{field}: (\S+)$", result.stdout, re.M)
    assert match, result.output
    return match.group(1)


def token_of(database_url: str, game_id: str) -> str:
    made = run(database_url, "token", "--game", game_id, "--role", "player", "--sub", "p1")
    assert made.exit_code == 0, made.output
    return made.stdout.strip()


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def test_rotate_keeps_old_tokens_and_revoke_stops_them(live_server: LiveServer) -> None:
    url = live_server.database_url
    game_id = f"keys-{uuid.uuid4().hex[:8]}"
    created = run(url, "game", "create", game_id)
    assert created.exit_code == 0, created.output
    first_kid = printed(created, "kid")
    old_token = token_of(url, game_id)
    assert kid_of(old_token) == first_kid

    rotated = run(url, "game", "keys", "rotate", game_id)
    assert rotated.exit_code == 0, rotated.output
    second_kid = printed(rotated, "kid")
    assert second_kid != first_kid
    assert re.search(r"^secret: \S{32,}$", rotated.stdout, re.M)
    new_token = token_of(url, game_id)
    assert kid_of(new_token) == second_kid  # the rotated-in key is the one `token` signs with

    # Rotation alone: the old key's tokens stay valid until they expire.
    assert wallet_status(live_server, old_token) == (200, None)
    assert wallet_status(live_server, new_token) == (200, None)

    listed = run(url, "game", "keys", "list", game_id)
    assert listed.exit_code == 0, listed.output
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert rows[0] == ["KID", "ALGORITHM", "CREATED", "REVOKED", "SIGNS", "ISSUER"]
    # CREATED is a date and a time (two words); SIGNS marks the key `token` uses.
    assert [(r[0], r[1], r[4], r[5:]) for r in rows[1:]] == [
        (first_kid, "HS256", "-", ["shopkeep"]),
        (second_kid, "HS256", "-", ["*", "shopkeep"]),
    ]
    for secret in (printed(created, "secret"), printed(rotated, "secret")):
        assert secret not in listed.stdout

    revoked = run(url, "game", "keys", "revoke", game_id, first_kid)
    assert revoked.exit_code == 0, revoked.output
    assert revoked.stdout == (
        f"revoked key {first_kid} of game {game_id}: its tokens are refused within 30 s"
        " (SHOPKEEP_KEY_CACHE_SECONDS)\n"
    )
    # The live server caches keys for 0 s: the next request already refuses the old token.
    assert wallet_status(live_server, old_token) == (401, "unauthenticated")
    assert wallet_status(live_server, new_token) == (200, None)
    assert kid_of(token_of(url, game_id)) == second_kid

    relisted = run(url, "game", "keys", "list", game_id).stdout.splitlines()
    first_row = relisted[1].split()
    assert first_row[0] == first_kid
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", first_row[4])  # REVOKED holds a date now

    again = run(url, "game", "keys", "revoke", game_id, first_kid)
    assert again.exit_code == 0
    assert again.stdout.startswith(f"key {first_kid} was already revoked at ")
    unknown = run(url, "game", "keys", "revoke", game_id, "no-such-kid")
    assert unknown.exit_code == 2
    assert f"Invalid value for KID: game {game_id} has no key no-such-kid" in unknown.stderr

    last = run(url, "game", "keys", "revoke", game_id, second_kid)
    assert last.exit_code == 0
    assert last.stdout.splitlines()[-1] == (
        f"game {game_id} has no active key now: add one with"
        f" `shopkeep-server game keys rotate {game_id}`"
    )
    assert wallet_status(live_server, new_token) == (401, "unauthenticated")
    no_key = run(url, "token", "--game", game_id, "--role", "player", "--sub", "p1")
    assert no_key.exit_code == 1
    assert no_key.stderr == (
        f"Error: game {game_id} has no active HS256 key to sign with; add one with"
        f" `shopkeep-server game keys rotate {game_id}`\n"
    )


def test_a_missing_game_is_named_as_missing(database_url: str) -> None:
    token = run(database_url, "token", "--game", "no-such-game", "--role", "player", "--sub", "p1")
    assert token.exit_code == 1
    assert token.stderr == (
        "Error: game no-such-game does not exist;"
        " create it with `shopkeep-server game create no-such-game`\n"
    )
    for command in ("list", "rotate"):
        answer = run(database_url, "game", "keys", command, "no-such-game")
        assert answer.exit_code == 1
        assert answer.stderr == "Error: game no-such-game does not exist\n"


def _pem(private: ec.EllipticCurvePrivateKey, *, public: bool = True) -> str:
    if public:
        return (
            private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.mark.parametrize(
    "args, flag, message",
    [
        (
            ["--algorithm", "RS256"],
            "--public-key-file",
            "RS256 needs a public key or a JWKS URL",
        ),
        (
            ["--jwks-url", "https://idp.example/jwks"],
            "--jwks-url",
            "HS256 keys are shared secrets: give no public key or JWKS",
        ),
        (
            ["--algorithm", "ES256", "--public-key-file", "{garbage}"],
            "--public-key-file",
            "is not a PEM public key ES256 can use",
        ),
        (
            ["--algorithm", "ES256", "--public-key-file", "{private}"],
            "--public-key-file",
            "is a private key: give its public half",
        ),
        (
            ["--algorithm", "ES256", "--public-key-file", "{binary}"],
            "--public-key-file",
            "cannot read {binary} as a PEM text file: 'ascii' codec can't decode byte 0xff"
            " in position 0: ordinal not in range(128)",
        ),
        (
            ["--algorithm", "ES256", "--public-key-file", "{public}", "--jwks-url", "https://x"],
            "--jwks-url",
            "give a public key or a JWKS URL, not both",
        ),
    ],
)
def test_key_options_are_refused_by_their_flag(
    database_url: str, tmp_path: Path, args: list[str], flag: str, message: str
) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    files = {"garbage": "not a key\n", "private": _pem(private, public=False)}
    files["public"] = _pem(private)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "binary").write_bytes(b"\xff\xfe not text")
    paths = {n: str(tmp_path / n) for n in [*files, "binary"]}
    args = [a.format(**paths) for a in args]
    message = message.format(**paths)
    new_game = f"flags-{uuid.uuid4().hex[:8]}"
    kept_game = f"flags-{uuid.uuid4().hex[:8]}"
    assert run(database_url, "game", "create", kept_game).exit_code == 0
    keys_before = run(database_url, "game", "keys", "list", kept_game).stdout
    for command in (["game", "create", new_game], ["game", "keys", "rotate", kept_game]):
        refused = run(database_url, *command, *args)
        assert refused.exit_code == 2, refused.output
        assert refused.stderr.splitlines()[-1] == f"Error: Invalid value for {flag}: {message}"
        assert "{" not in refused.stderr and "Traceback" not in refused.output
    # Nothing was made: no game without its key, no key added to the kept game.
    missing = run(database_url, "game", "keys", "list", new_game)
    assert missing.stderr == f"Error: game {new_game} does not exist\n"
    assert run(database_url, "game", "keys", "list", kept_game).stdout == keys_before


def test_a_bad_game_id_names_the_argument(database_url: str) -> None:
    refused = run(database_url, "game", "create", "Not A Game")
    assert refused.exit_code == 2
    assert refused.stderr.splitlines()[-1] == (
        "Error: Invalid value for GAME_ID: must match ^[a-z0-9][a-z0-9_-]{0,63}$"
    )


def test_rotate_to_a_studio_signed_key(live_server: LiveServer, tmp_path: Path) -> None:
    url = live_server.database_url
    game_id = f"es-{uuid.uuid4().hex[:8]}"
    assert run(url, "game", "create", game_id).exit_code == 0
    private = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "studio.pem").write_text(_pem(private))
    rotated = run(
        url,
        "game",
        "keys",
        "rotate",
        game_id,
        "--algorithm",
        "ES256",
        "--public-key-file",
        str(tmp_path / "studio.pem"),
        "--issuer",
        "studio-idp",
    )
    assert rotated.exit_code == 0, rotated.output
    assert "secret:" not in rotated.stdout
    kid = printed(rotated, "kid")
    claims = {
        "sub": "p1",
        "game": game_id,
        "role": "player",
        "aud": "shopkeep",
        "iss": "studio-idp",
        "iat": int(time.time()),
        "exp": int(time.time()) + 600,
    }
    studio_token = jwt.encode(claims, private, algorithm="ES256", headers={"kid": kid})
    assert wallet_status(live_server, studio_token) == (200, None)
    # `token` still signs with the game's HS256 key: an ES256 key has no secret to sign with.
    assert kid_of(token_of(url, game_id)) != kid


def test_rotation_and_revocation_through_the_store(client, conn) -> None:  # type: ignore[no-untyped-def]
    game: Game = make_game(conn)
    other: Game = make_game(conn)
    old_token = game.token("player", "p1")
    newer = games.add_key(conn, game.id, issuer="shopkeep")
    assert games.signing_key(conn, game.id).kid == newer.kid
    new_token = mint_token(newer, role="player", subject="p1")

    def status(token: str) -> int:
        return client.get("/v1/wallet", headers={"Authorization": f"Bearer {token}"}).status_code

    assert (status(old_token), status(new_token)) == (200, 200)
    assert game.key.kid is not None
    # A kid names one game's key: revoking it under another game changes nothing.
    assert not games.revoke_key(conn, game.key.kid, game_id=other.id)
    assert status(old_token) == 200
    assert games.revoke_key(conn, game.key.kid, game_id=game.id)
    assert not games.revoke_key(conn, game.key.kid, game_id=game.id)  # once
    assert (status(old_token), status(new_token)) == (401, 200)
    listed = {info.kid: info for info in games.list_keys(conn, game.id)}
    assert listed[game.key.kid].revoked_at is not None and not listed[game.key.kid].active
    assert listed[newer.kid].active
    with pytest.raises(NotFound, match=r"^game no-such-game does not exist$"):
        games.list_keys(conn, "no-such-game")
    with pytest.raises(ValidationFailed):
        games.add_key(conn, game.id, issuer="shopkeep", secret="short")
