"""`shopkeep-server`: serve the store and run its maintenance commands."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import __version__
from .config import VARIABLES, Config, ConfigError
from .store.games import ALGORITHMS

if TYPE_CHECKING:  # the commands import the server lazily: `--help` stays fast
    import psycopg

    from .errors import StoreError
    from .store.games import GameKey

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT = {"help_option_names": ["-h", "--help"]}
# What every command that opens the database reads (config.VARIABLES says what each means).
DATABASE_VARIABLES = ("SHOPKEEP_DATABASE_URL", "SHOPKEEP_MIGRATE_DATABASE_URL", "SHOPKEEP_DATA_DIR")

# The store names a refused key field; the command line names the flag that set it.
KEY_FLAGS = {
    "game": "GAME_ID",
    "algorithm": "--algorithm",
    "public_key": "--public-key-file",
    "jwks_url": "--jwks-url",
}


class Command(click.Command):
    """A command whose help ends with the environment variables it reads, as config.VARIABLES
    states them (meaning and default), so the help never repeats them by hand."""

    def __init__(self, *args: Any, variables: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.variables = tuple(variables)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self.variables:
            with formatter.section("Environment variables"):
                formatter.write_dl([(name, describe_variable(name)) for name in self.variables])
        super().format_epilog(ctx, formatter)


def describe_variable(name: str) -> str:
    default, meaning = VARIABLES[name]
    return f"{meaning} [default: {default}]"


def _config() -> Config:
    try:
        return Config.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _database_url(config: Config) -> str:
    """The owner's URL: migrations and the maintenance commands run as the role that owns the
    tables (the server's pool logs in as a member of shopkeep_app instead, see `serve`)."""
    from .embedded import resolve_database_url

    return resolve_database_url(config.owner_database_url, config.data_dir)


def _connect(config: Config) -> psycopg.Connection:
    import psycopg

    from . import db

    url = _database_url(config)
    try:
        return db.connect(url, config)
    except psycopg.OperationalError as exc:
        # A wrong SHOPKEEP_DATABASE_URL is a user mistake: say so, without a traceback.
        where = (
            (
                "SHOPKEEP_MIGRATE_DATABASE_URL"
                if config.migrate_database_url
                else "SHOPKEEP_DATABASE_URL"
            )
            if config.owner_database_url
            else "the embedded PostgreSQL"
        )
        raise click.ClickException(f"cannot connect to the database ({where}): {exc}") from exc


def _refusal(exc: StoreError, flags: Mapping[str, str]) -> click.ClickException:
    """A store refusal in the command line's words: the flag, not the API's field name."""
    from .errors import ValidationFailed

    if isinstance(exc, ValidationFailed) and exc.details:
        field, messages = next(iter(exc.details.items()))
        return click.BadParameter(
            "; ".join(str(m) for m in messages), param_hint=flags.get(field, field)
        )
    return click.ClickException(exc.message)


def _migrate(conn: psycopg.Connection) -> list[str]:
    """db.migrate, with a migration history that does not fit the shipped files (an applied
    migration edited since) reported as a plain message rather than a traceback."""
    from . import db

    try:
        return db.migrate(conn)
    except db.MigrationError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "--version", "-V", prog_name="shopkeep-server")
def main() -> None:
    """Shopkeep store server: serve the store, manage games and their keys, mint tokens for
    development, check the books.

    Every command reads its settings from SHOPKEEP_* environment variables; `serve --help`
    lists them all.
    """
    from .logs import configure

    configure(_config().log_level)


@main.command(cls=Command, variables=VARIABLES)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on (0.0.0.0 for every interface).",
)
@click.option("--port", default=8000, show_default=True, type=int, help="TCP port to listen on.")
@click.option(
    "--workers",
    default=2,
    show_default=True,
    type=click.IntRange(1, 64),
    help="gunicorn worker processes (each runs SHOPKEEP_THREADS threads).",
)
@click.option(
    "--demo",
    is_flag=True,
    help="Seed the demo game and catalog (moving its limited drops forward when their"
    " windows have passed) and print tokens.",
)
def serve(host: str, port: int, workers: int, demo: bool) -> None:
    """Run the store with gunicorn (an embedded PostgreSQL unless SHOPKEEP_DATABASE_URL is
    set)."""
    from .serving import serve as run

    config = _config()
    owner_url = _database_url(config)
    config = config.replace(migrate_database_url=owner_url)  # the workers use the same
    with _connect(config) as conn:
        _migrate(conn)
        if demo:
            _seed_demo(conn, config, host, port)
    if config.database_url is None:
        # The embedded PostgreSQL: the pool logs in as the server's own member of shopkeep_app,
        # never as the superuser that owns the tables.
        from .embedded import app_login_url

        config = config.replace(database_url=app_login_url(owner_url))
    click.echo(f"Shopkeep serving on http://{host}:{port} (docs: http://{host}:{port}/docs)")
    run(config, host=host, port=port, workers=workers)


# Shell-quoted for the printed curl line: a fresh key per paste, with only Python to make it.
IDEMPOTENCY_KEY_SHELL = "$(python3 -c 'import uuid; print(uuid.uuid4())')"


def _seed_demo(conn: psycopg.Connection, config: Config, host: str, port: int) -> None:
    from .demo import DEMO_GAME, DEMO_PLAYER, demo_tokens, keep_drops_live, seed_demo

    created = seed_demo(conn, config)
    moved_to = keep_drops_live(conn, config)
    tokens = demo_tokens(conn, config)
    base = f"http://{host}:{port}"
    click.echo("")
    click.echo(f"Demo game '{DEMO_GAME}' {'created' if created else 'already there'}.")
    if moved_to is not None:
        click.echo(f"Its limited drops had closed: moved forward in catalog version {moved_to}.")
    click.echo(f"Player token ({DEMO_PLAYER}):\n  {tokens['player']}")
    click.echo(f"Service token:\n  {tokens['service']}")
    click.echo(f"Studio token:\n  {tokens['studio']}")
    click.echo("Buy a potion:")
    click.echo(
        f"  curl -s -X POST {base}/v1/purchases -H 'Authorization: Bearer {tokens['player']}'"
        f" -H 'Content-Type: application/json' -H \"Idempotency-Key: {IDEMPOTENCY_KEY_SHELL}\""
        ' -d \'{"sku": "potion"}\''
    )
    click.echo("")


@main.command(cls=Command, variables=DATABASE_VARIABLES)
@click.option(
    "--print-grants",
    is_flag=True,
    help="Print the SQL that makes the roles and grants the server's login needs (for a"
    " PostgreSQL the store does not manage) and exit, without connecting.",
)
def migrate(print_grants: bool) -> None:
    """Apply the database migrations not yet applied, as the role that owns the tables
    (SHOPKEEP_MIGRATE_DATABASE_URL, else SHOPKEEP_DATABASE_URL)."""
    if print_grants:
        from .roles import privileges_script

        click.echo(privileges_script(), nl=False)
        return
    with _connect(_config()) as conn:
        applied = _migrate(conn)
    click.echo("applied: " + ", ".join(applied) if applied else "up to date")


# ---------------------------------------------------------------------------------------------
# Games and their keys
# ---------------------------------------------------------------------------------------------


@main.group()
def game() -> None:
    """Games and their signing keys."""


def _key_options(command: F) -> F:
    """The options that describe a new signing key (game create, game keys rotate)."""
    for option in reversed(
        [
            click.option(
                "--algorithm",
                type=click.Choice(ALGORITHMS),
                default="HS256",
                show_default=True,
                help="HS256: the store makes a shared secret and prints it. The others verify"
                " tokens a studio signs itself: give --public-key-file or --jwks-url.",
            ),
            click.option(
                "--public-key-file",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="PEM public key that verifies the studio's tokens (RS256, ES256, EdDSA).",
            ),
            click.option("--jwks-url", help="The studio identity provider's JWKS URL."),
            click.option(
                "--issuer",
                help="Expected `iss` of the tokens this key signs."
                " [default: $SHOPKEEP_TOKEN_ISSUER,"
                f" else {VARIABLES['SHOPKEEP_TOKEN_ISSUER'][0]}]",
            ),
        ]
    ):
        command = option(command)
    return command


def _add_key(
    conn: psycopg.Connection,
    config: Config,
    game_id: str,
    *,
    algorithm: str,
    public_key_file: Path | None,
    jwks_url: str | None,
    issuer: str | None,
) -> GameKey:
    from .store import games

    public_key = None
    if public_key_file is not None:
        try:
            public_key = public_key_file.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(
                f"cannot read {public_key_file} as a PEM text file: {exc}",
                param_hint="--public-key-file",
            ) from exc
    return games.add_key(
        conn,
        game_id,
        algorithm=algorithm,
        issuer=issuer or config.token_issuer,
        public_key=public_key,
        jwks_url=jwks_url,
    )


def _echo_key(game_id: str, key: GameKey) -> None:
    click.echo(f"game: {game_id}")
    click.echo(f"kid: {key.kid or '(from the JWKS)'}")
    click.echo(f"algorithm: {key.algorithm}")
    click.echo(f"issuer: {key.issuer}")
    if key.secret:
        click.echo(f"secret: {key.secret}")


@game.command("create", cls=Command, variables=(*DATABASE_VARIABLES, "SHOPKEEP_TOKEN_ISSUER"))
@click.argument("game_id")
@click.option("--name", help="Display name. [default: the GAME_ID]")
@_key_options
def game_create(
    game_id: str,
    name: str | None,
    algorithm: str,
    public_key_file: Path | None,
    jwks_url: str | None,
    issuer: str | None,
) -> None:
    """Create the game GAME_ID with a signing key; prints the key id (and an HS256 secret).

    GAME_ID is lowercase letters, digits, '_' and '-', at most 64 characters.
    """
    from .errors import StoreError
    from .store import games

    config = _config()
    with _connect(config) as conn:
        _migrate(conn)
        try:
            with conn.transaction():
                if not games.create_game(conn, game_id, name=name):
                    raise click.ClickException(f"game {game_id} already exists")
                key = _add_key(
                    conn,
                    config,
                    game_id,
                    algorithm=algorithm,
                    public_key_file=public_key_file,
                    jwks_url=jwks_url,
                    issuer=issuer,
                )
        except StoreError as exc:
            raise _refusal(exc, KEY_FLAGS) from exc
    _echo_key(game_id, key)


@game.group("keys")
def game_keys() -> None:
    """List, rotate and revoke a game's signing keys."""


def _when(value: dt.datetime | None) -> str:
    return "-" if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@game_keys.command("list", cls=Command, variables=DATABASE_VARIABLES)
@click.argument("game_id")
def keys_list(game_id: str) -> None:
    """List GAME_ID's keys, oldest first (never their secrets). SIGNS marks the key that
    `shopkeep-server token` signs with."""
    from .errors import NotFound, StoreError
    from .store import games

    with _connect(_config()) as conn:
        try:
            keys = games.list_keys(conn, game_id)
        except StoreError as exc:
            raise _refusal(exc, KEY_FLAGS) from exc
        try:
            signing: str | None = games.signing_key(conn, game_id).kid
        except NotFound:
            signing = None
    rows = [("KID", "ALGORITHM", "CREATED", "REVOKED", "SIGNS", "ISSUER")]
    for key in keys:
        rows.append(
            (
                key.kid or f"(JWKS {key.jwks_url})",
                key.algorithm,
                _when(key.created_at),
                _when(key.revoked_at),
                "*" if key.kid is not None and key.kid == signing else "",
                key.issuer,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join([*(v.ljust(w) for v, w in zip(row, widths, strict=False)), row[-1]]))


@game_keys.command("rotate", cls=Command, variables=(*DATABASE_VARIABLES, "SHOPKEEP_TOKEN_ISSUER"))
@click.argument("game_id")
@_key_options
def keys_rotate(
    game_id: str,
    algorithm: str,
    public_key_file: Path | None,
    jwks_url: str | None,
    issuer: str | None,
) -> None:
    """Add a new signing key to GAME_ID. A new HS256 key becomes the one `token` signs with;
    tokens of the older keys stay valid until they expire (or their key is revoked)."""
    from .errors import StoreError

    config = _config()
    with _connect(config) as conn:
        try:
            key = _add_key(
                conn,
                config,
                game_id,
                algorithm=algorithm,
                public_key_file=public_key_file,
                jwks_url=jwks_url,
                issuer=issuer,
            )
        except StoreError as exc:
            raise _refusal(exc, KEY_FLAGS) from exc
    _echo_key(game_id, key)
    click.echo(
        f"Older keys still verify their tokens; revoke one with"
        f" `shopkeep-server game keys revoke {game_id} KID`."
    )


@game_keys.command(
    "revoke", cls=Command, variables=(*DATABASE_VARIABLES, "SHOPKEEP_KEY_CACHE_SECONDS")
)
@click.argument("game_id")
@click.argument("kid")
def keys_revoke(game_id: str, kid: str) -> None:
    """Revoke GAME_ID's key KID: the store refuses its tokens once each server process's key
    cache expires (SHOPKEEP_KEY_CACHE_SECONDS)."""
    from .errors import StoreError
    from .store import games

    config = _config()
    with _connect(config) as conn:
        try:
            keys = {key.kid: key for key in games.list_keys(conn, game_id)}
        except StoreError as exc:
            raise _refusal(exc, KEY_FLAGS) from exc
        found = keys.get(kid)
        if found is None:
            raise click.BadParameter(f"game {game_id} has no key {kid}", param_hint="KID")
        if not found.active:
            click.echo(f"key {kid} was already revoked at {_when(found.revoked_at)}")
            return
        games.revoke_key(conn, kid, game_id=game_id)
        left = [key for key in keys.values() if key.active and key.kid != kid]
    click.echo(
        f"revoked key {kid} of game {game_id}: its tokens are refused within"
        f" {config.key_cache_seconds} s (SHOPKEEP_KEY_CACHE_SECONDS)"
    )
    if not left:
        click.echo(
            f"game {game_id} has no active key now: add one with"
            f" `shopkeep-server game keys rotate {game_id}`"
        )


# ---------------------------------------------------------------------------------------------
# Tokens and maintenance
# ---------------------------------------------------------------------------------------------


def _account_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from .store.rules import ACCOUNT_ID, ACCOUNT_ID_PATTERN

    if not ACCOUNT_ID.fullmatch(value):
        raise click.BadParameter(f"must match {ACCOUNT_ID_PATTERN}")
    return value


@main.command(cls=Command, variables=DATABASE_VARIABLES)
@click.option("--game", "game_id", required=True, help="The game the token is for.")
@click.option(
    "--role",
    type=click.Choice(["player", "service", "studio"]),
    required=True,
    help="player: a game client; service: the studio's backend; studio: catalog tools.",
)
@click.option(
    "--sub", required=True, callback=_account_id, help="The account id (a player id for players)."
)
@click.option(
    "--ttl",
    default=3600,
    show_default=True,
    type=click.IntRange(1, 366 * 86400),
    help="Seconds until the token expires.",
)
def token(game_id: str, role: str, sub: str, ttl: int) -> None:
    """Print a token signed with the game's newest HS256 key (development and tests)."""
    from .auth import mint_token
    from .errors import NotFound
    from .store import games

    with _connect(_config()) as conn:
        try:
            key = games.signing_key(conn, game_id)
        except NotFound as exc:
            hint = (
                f"create it with `shopkeep-server game create {game_id}`"
                if not games.game_exists(conn, game_id)
                else f"add one with `shopkeep-server game keys rotate {game_id}`"
            )
            raise click.ClickException(f"{exc.message}; {hint}") from exc
    click.echo(mint_token(key, role=role, subject=sub, ttl=ttl))


@main.command(cls=Command, variables=DATABASE_VARIABLES)
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


@main.command("purge-idempotency", cls=Command, variables=DATABASE_VARIABLES)
def purge_idempotency() -> None:
    """Expire idempotency keys past their TTL (drop the days that are over, purge the rest)."""
    from .store.idempotency import purge_expired

    config = _config()
    with _connect(config) as conn:
        purged = purge_expired(conn, ttl_seconds=config.idempotency_ttl)
        click.echo(f"purged {purged} expired idempotency keys")


@main.command(
    "purge-events",
    cls=Command,
    variables=(*DATABASE_VARIABLES, "SHOPKEEP_EVENT_RETENTION"),
)
def purge_events() -> None:
    """Delete events older than SHOPKEEP_EVENT_RETENTION."""
    from .store import events

    config = _config()
    with _connect(config) as conn:
        purged = events.purge_expired(conn, retention_seconds=config.event_retention)
        click.echo(f"purged {purged} events past their retention")


STORE_POLL_VARIABLES = (
    *DATABASE_VARIABLES,
    "SHOPKEEP_GOOGLE_PLAY_API_URL",
    "SHOPKEEP_GOOGLE_OAUTH_TOKEN_URL",
    "SHOPKEEP_STEAM_API_URL",
    "SHOPKEEP_STORE_TIMEOUT",
)


@main.group()
def stores() -> None:
    """The app stores the games sell on (real money in)."""


@stores.command("poll", cls=Command, variables=STORE_POLL_VARIABLES)
def stores_poll() -> None:
    """Take back what Google Play voided and Steam refunded since the last poll (run it from
    cron, e.g. every 15 minutes); App Store refunds arrive as notifications instead."""
    from .store.chargebacks import poll_all

    config = _config()
    with _connect(config) as conn:
        results = poll_all(conn, config)
        conn.commit()
    for result in results:
        if result.error is None:
            click.echo(f"{result.store} {result.game}: {result.taken} receipt(s) taken back")
        else:
            click.echo(f"{result.store} {result.game}: {result.error} (try again later)", err=True)
    if any(result.error is not None for result in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
