"""`shopkeep-server`: serve the store and run its maintenance commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .config import Config, ConfigError

if TYPE_CHECKING:  # the commands import the server lazily: `--help` stays fast
    import psycopg


def _config() -> Config:
    try:
        return Config.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _database_url(config: Config) -> str:
    from .embedded import resolve_database_url

    return resolve_database_url(config.database_url, config.data_dir)


def _connect(config: Config) -> psycopg.Connection:
    from . import db

    return db.connect(_database_url(config))


@click.group()
def main() -> None:
    """Shopkeep store server."""
    from .logs import configure

    configure(_config().log_level)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--demo", is_flag=True, help="Seed the demo game and catalog and print tokens.")
def serve(host: str, port: int, workers: int, demo: bool) -> None:
    """Run the store with gunicorn (embedded PostgreSQL unless SHOPKEEP_DATABASE_URL is set)."""
    from . import db
    from .serving import serve as run

    config = _config()
    url = _database_url(config)
    config = config.replace(database_url=url)
    with db.connect(url) as conn:
        db.migrate(conn)
        if demo:
            _seed_demo(conn, config, host, port)
    click.echo(f"Shopkeep serving on http://{host}:{port} (docs: http://{host}:{port}/docs)")
    run(config, host=host, port=port, workers=workers)


def _seed_demo(conn: psycopg.Connection, config: Config, host: str, port: int) -> None:
    from .demo import DEMO_GAME, DEMO_PLAYER, demo_tokens, seed_demo

    created = seed_demo(conn, config)
    tokens = demo_tokens(conn, config)
    base = f"http://{host}:{port}"
    click.echo("")
    click.echo(f"Demo game '{DEMO_GAME}' {'created' if created else 'already there'}.")
    click.echo(f"Player token ({DEMO_PLAYER}):\n  {tokens['player']}")
    click.echo(f"Service token:\n  {tokens['service']}")
    click.echo(f"Studio token:\n  {tokens['studio']}")
    click.echo("Buy a potion:")
    click.echo(
        f"  curl -s -X POST {base}/v1/purchases -H 'Authorization: Bearer {tokens['player']}'"
        " -H 'Content-Type: application/json' -H \"Idempotency-Key: $(uuidgen || date +%s%N)-key\""
        ' -d \'{"sku": "potion"}\''
    )
    click.echo("")


@main.command()
def migrate() -> None:
    """Apply the database migrations not yet applied."""
    from . import db

    with _connect(_config()) as conn:
        applied = db.migrate(conn)
    click.echo("applied: " + ", ".join(applied) if applied else "up to date")


@main.group()
def game() -> None:
    """Games and their signing keys."""


@game.command("create")
@click.argument("game_id")
@click.option("--name", help="Display name (defaults to the id).")
@click.option(
    "--algorithm",
    type=click.Choice(["HS256", "RS256", "ES256", "EdDSA"]),
    default="HS256",
    show_default=True,
)
@click.option("--public-key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--jwks-url", help="The studio identity provider's JWKS URL.")
@click.option("--issuer", help="Expected `iss` of tokens (default: SHOPKEEP_TOKEN_ISSUER).")
def game_create(
    game_id: str,
    name: str | None,
    algorithm: str,
    public_key_file: Path | None,
    jwks_url: str | None,
    issuer: str | None,
) -> None:
    """Create a game with a signing key; prints the key id (and an HS256 secret)."""
    from . import db
    from .errors import StoreError
    from .store import games

    config = _config()
    with _connect(config) as conn:
        db.migrate(conn)
        try:
            with conn.transaction():
                if not games.create_game(conn, game_id, name=name):
                    raise click.ClickException(f"game {game_id} already exists")
                key = games.add_key(
                    conn,
                    game_id,
                    algorithm=algorithm,
                    issuer=issuer or config.token_issuer,
                    public_key=public_key_file.read_text() if public_key_file else None,
                    jwks_url=jwks_url,
                )
        except StoreError as exc:
            raise click.ClickException(f"{exc.message}: {exc.details}") from exc
    click.echo(f"game: {game_id}")
    click.echo(f"kid: {key.kid or '(from the JWKS)'}")
    click.echo(f"algorithm: {key.algorithm}")
    click.echo(f"issuer: {key.issuer}")
    if key.secret:
        click.echo(f"secret: {key.secret}")


@main.command()
@click.option("--game", "game_id", required=True)
@click.option("--role", type=click.Choice(["player", "service", "studio"]), required=True)
@click.option("--sub", required=True, help="The account id (a player id for players).")
@click.option("--ttl", default=3600, show_default=True, type=click.IntRange(1, 366 * 86400))
def token(game_id: str, role: str, sub: str, ttl: int) -> None:
    """Print a token signed with the game's newest HS256 key (dev and tests)."""
    from .auth import mint_token
    from .errors import StoreError
    from .store import games
    from .store.rules import ACCOUNT_ID

    if not ACCOUNT_ID.fullmatch(sub):
        raise click.BadParameter("must match ^[A-Za-z0-9_.:@-]{1,128}$", param_hint="--sub")
    with _connect(_config()) as conn:
        try:
            key = games.signing_key(conn, game_id)
        except StoreError as exc:
            raise click.ClickException(exc.message) from exc
    click.echo(mint_token(key, role=role, subject=sub, ttl=ttl))


@main.command()
def audit() -> None:
    """Check every wallet, limited stock and purchase; exit 1 on any violation."""
    from .store.audit import CHECKS
    from .store.audit import audit as run_audit

    with _connect(_config()) as conn:
        violations = run_audit(conn)
    if violations:
        click.echo(f"AUDIT FAILED: {len(violations)} violation(s)")
        for line in violations:
            click.echo(f"  - {line}")
        sys.exit(1)
    click.echo(f"audit passed: {len(CHECKS)} checks, no violation")


@main.command("purge-idempotency")
def purge_idempotency() -> None:
    """Delete idempotency keys past their TTL."""
    from .store.idempotency import purge_expired

    with _connect(_config()) as conn:
        click.echo(f"purged {purge_expired(conn)} expired idempotency keys")


if __name__ == "__main__":
    main()
