"""Configuration: one frozen object built from the environment at start-up and passed down."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

import platformdirs

# Every variable the server reads, with its default and meaning; the README's table mirrors this.
VARIABLES: dict[str, tuple[str, str]] = {
    "SHOPKEEP_DATABASE_URL": (
        "(unset)",
        "PostgreSQL the server connects to, as a member of shopkeep_app; unset starts an"
        " embedded PostgreSQL",
    ),
    "SHOPKEEP_MIGRATE_DATABASE_URL": (
        "SHOPKEEP_DATABASE_URL",
        "the same database as the role that owns the tables: migrations and the maintenance"
        " commands use it",
    ),
    "SHOPKEEP_DATA_DIR": (
        "the user data dir (e.g. ~/.local/share/shopkeep)",
        "where the embedded PostgreSQL keeps its data",
    ),
    "SHOPKEEP_POOL_MIN": ("1", "connections each process keeps open"),
    "SHOPKEEP_POOL_MAX": ("threads per worker + 2", "most connections one process opens"),
    "SHOPKEEP_POOL_TIMEOUT": ("5", "seconds a request waits for a connection before 503"),
    "SHOPKEEP_POOL_MAX_WAITING": (
        "0",
        "requests of one process that may wait for a connection at once; beyond, 503 at once"
        " (0: no bound)",
    ),
    "SHOPKEEP_POOL_RECONNECT_TIMEOUT": (
        "10",
        "seconds the pool keeps re-trying a failed connection (waits of 1, 2, 4 s...) before it"
        " starts again at 1 s: the longest wait between attempts is about half of it",
    ),
    "SHOPKEEP_STATEMENT_TIMEOUT_MS": ("10000", "longest any statement may run"),
    "SHOPKEEP_IDEMPOTENCY_TTL": ("86400", "seconds an idempotency key is kept (at least 24 h)"),
    "SHOPKEEP_IDEMPOTENCY_WAIT_MS": (
        "5000",
        "how long a duplicate waits for its in-flight twin before 409 idempotency_key_in_use",
    ),
    "SHOPKEEP_TOKEN_ISSUER": ("shopkeep", "`iss` of tokens minted by `shopkeep-server token`"),
    "SHOPKEEP_KEY_CACHE_SECONDS": ("30", "how long a process caches a game's signing keys"),
    "SHOPKEEP_RATE_LIMIT": (
        "100/second",
        "requests per principal (game, sub), `limits` notation; `none` disables",
    ),
    "SHOPKEEP_RATE_LIMIT_SCOPE": (
        "shared",
        "`shared`: one limit for every process and host, counted in PostgreSQL; `process`: each"
        " process counts by itself (the real limit is then the setting times the processes)",
    ),
    "SHOPKEEP_PURGE_INTERVAL": (
        "3600",
        "seconds between purges of expired idempotency keys by the server; 0 disables",
    ),
    "SHOPKEEP_EVENT_RETENTION": (
        "2592000",
        "seconds events are kept for the feed (30 days); the server purges older ones",
    ),
    "SHOPKEEP_EVENT_POLL_MS": (
        "100",
        "how often each worker's event sequencer gives committed events their feed position",
    ),
    "SHOPKEEP_MAX_BODY_BYTES": ("65536", "largest request body (413 beyond)"),
    "SHOPKEEP_MAX_CATALOG_BYTES": ("1048576", "largest catalog body (PUT draft and validate)"),
    "SHOPKEEP_STOCK_BUCKETS": ("16", "rows a limited item's stock is spread over"),
    "SHOPKEEP_HOLD_SECONDS": (
        "600",
        "how long a hold (POST /v1/holds) keeps units of a limited item for its player",
    ),
    "SHOPKEEP_THREADS": ("8", "threads per gunicorn worker"),
    "SHOPKEEP_LOG_LEVEL": ("INFO", "log level of the server"),
    "SHOPKEEP_PREPARED_STATEMENTS": (
        "on",
        "`off` behind PgBouncer < 1.21 in transaction mode, which cannot keep prepared statements",
    ),
    "SHOPKEEP_CATALOG_LISTEN": (
        "on",
        "each worker LISTENs for publishes and serves the live catalog from memory; `off` behind"
        " a pooler in transaction mode (it does not deliver notifications): each read then asks"
        " the database which version is live",
    ),
    "SHOPKEEP_WEBHOOK_DELIVERY": (
        "on",
        "each worker delivers webhooks (endpoints are shared out with FOR UPDATE SKIP LOCKED);"
        " `off` leaves delivery to other processes",
    ),
    "SHOPKEEP_WEBHOOK_POLL_MS": (
        "500",
        "how often an idle delivery worker looks for events (its process's sequencer also wakes"
        " it when it positions some)",
    ),
    "SHOPKEEP_WEBHOOK_TIMEOUT_MS": ("10000", "longest one webhook attempt may take"),
    "SHOPKEEP_WEBHOOK_BACKOFF_BASE_MS": (
        "5000",
        "wait after a webhook's first failed attempt; doubled per failure, with jitter",
    ),
    "SHOPKEEP_WEBHOOK_BACKOFF_CAP_MS": ("3600000", "longest wait between two webhook attempts"),
    "SHOPKEEP_WEBHOOK_GIVE_UP_SECONDS": (
        "259200",
        "how long an endpoint may keep failing (3 days) before the store disables it",
    ),
    "SHOPKEEP_GOOGLE_PLAY_API_URL": (
        "https://androidpublisher.googleapis.com",
        "base URL of the Google Play Developer API (receipts, voided purchases)",
    ),
    "SHOPKEEP_GOOGLE_OAUTH_TOKEN_URL": (
        "(the service account's token_uri)",
        "where the Google service accounts get their access tokens",
    ),
    "SHOPKEEP_GOOGLE_PUBSUB_CERTS_URL": (
        "https://www.googleapis.com/oauth2/v1/certs",
        "Google's certificates that Pub/Sub push tokens (Play notifications) are checked with",
    ),
    "SHOPKEEP_STEAM_API_URL": (
        "https://partner.steam-api.com",
        "base URL of the Steam Web API (ISteamMicroTxn)",
    ),
    "SHOPKEEP_STORE_TIMEOUT": (
        "10",
        "seconds a call to an app store may take before the receipt answers 503 store_unavailable",
    ),
    "SHOPKEEP_PROXY_HOPS": (
        "0",
        "reverse proxies in front that set X-Forwarded-*; trusted for scheme, host and client",
    ),
}

MIN_IDEMPOTENCY_TTL = 24 * 3600
# A feed consumer that was away for an hour must still find what it missed.
MIN_EVENT_RETENTION = 3600
# Where the rate limit is counted (runtime/rate_limit.py); the first is the default.
RATE_LIMIT_SCOPES = ("shared", "process")


class ConfigError(ValueError):
    """A variable of the environment has a value the server cannot use."""


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _switch(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw not in ("on", "off"):
        raise ConfigError(f"{name} must be on or off, got {raw!r}")
    return raw == "on"


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``, the first when unset."""
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return choices[0]
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("shopkeep", appauthor=False))


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    """Settings of one server process."""

    database_url: str | None = None
    migrate_database_url: str | None = None
    data_dir: Path = dataclasses.field(default_factory=default_data_dir)
    pool_min: int = 1
    pool_max: int = 10
    pool_timeout: float = 5.0
    pool_max_waiting: int = 0
    pool_reconnect_timeout: float = 10.0
    statement_timeout_ms: int = 10_000
    idempotency_ttl: int = MIN_IDEMPOTENCY_TTL
    idempotency_wait_ms: int = 5_000
    purge_interval: int = 3600
    event_retention: int = 30 * 24 * 3600
    event_poll_ms: int = 100
    token_issuer: str = "shopkeep"
    key_cache_seconds: int = 30
    rate_limit: str | None = "100/second"
    rate_limit_scope: str = "shared"
    max_body_bytes: int = 65_536
    max_catalog_bytes: int = 1_048_576
    stock_buckets: int = 16
    hold_seconds: int = 600
    threads: int = 8
    log_level: str = "INFO"
    proxy_hops: int = 0
    prepared_statements: bool = True
    catalog_listen: bool = True
    webhook_delivery: bool = True
    webhook_poll_ms: int = 500
    webhook_timeout_ms: int = 10_000
    webhook_backoff_base_ms: int = 5_000
    webhook_backoff_cap_ms: int = 3_600_000
    webhook_give_up_seconds: int = 3 * 24 * 3600
    google_play_api_url: str = "https://androidpublisher.googleapis.com"
    google_token_url: str | None = None
    google_pubsub_certs_url: str = "https://www.googleapis.com/oauth2/v1/certs"
    steam_api_url: str = "https://partner.steam-api.com"
    store_timeout: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        threads = _int(env, "SHOPKEEP_THREADS", 8, minimum=1)
        rate_limit = env.get("SHOPKEEP_RATE_LIMIT", "100/second").strip()
        data_dir = env.get("SHOPKEEP_DATA_DIR")
        database_url = env.get("SHOPKEEP_DATABASE_URL") or None
        migrate_database_url = env.get("SHOPKEEP_MIGRATE_DATABASE_URL") or None
        if migrate_database_url and not database_url:
            raise ConfigError(
                "SHOPKEEP_MIGRATE_DATABASE_URL is set but SHOPKEEP_DATABASE_URL is not: set both"
                " (the server's login and the owner's) or neither (the embedded PostgreSQL)"
            )
        return cls(
            database_url=database_url,
            migrate_database_url=migrate_database_url,
            data_dir=Path(data_dir).expanduser() if data_dir else default_data_dir(),
            pool_min=_int(env, "SHOPKEEP_POOL_MIN", 1, minimum=0),
            pool_max=_int(env, "SHOPKEEP_POOL_MAX", threads + 2, minimum=1),
            pool_timeout=float(_int(env, "SHOPKEEP_POOL_TIMEOUT", 5, minimum=1)),
            pool_max_waiting=_int(env, "SHOPKEEP_POOL_MAX_WAITING", 0, minimum=0),
            pool_reconnect_timeout=float(
                _int(env, "SHOPKEEP_POOL_RECONNECT_TIMEOUT", 10, minimum=2)
            ),
            statement_timeout_ms=_int(env, "SHOPKEEP_STATEMENT_TIMEOUT_MS", 10_000, minimum=100),
            idempotency_ttl=_int(
                env, "SHOPKEEP_IDEMPOTENCY_TTL", MIN_IDEMPOTENCY_TTL, minimum=MIN_IDEMPOTENCY_TTL
            ),
            idempotency_wait_ms=_int(env, "SHOPKEEP_IDEMPOTENCY_WAIT_MS", 5_000, minimum=0),
            purge_interval=_int(env, "SHOPKEEP_PURGE_INTERVAL", 3600, minimum=0),
            event_retention=_int(
                env, "SHOPKEEP_EVENT_RETENTION", 30 * 24 * 3600, minimum=MIN_EVENT_RETENTION
            ),
            event_poll_ms=_int(env, "SHOPKEEP_EVENT_POLL_MS", 100, minimum=10),
            token_issuer=env.get("SHOPKEEP_TOKEN_ISSUER", "shopkeep"),
            key_cache_seconds=_int(env, "SHOPKEEP_KEY_CACHE_SECONDS", 30, minimum=0),
            rate_limit=None if rate_limit.lower() in ("", "none", "off") else rate_limit,
            rate_limit_scope=_choice(env, "SHOPKEEP_RATE_LIMIT_SCOPE", RATE_LIMIT_SCOPES),
            max_body_bytes=_int(env, "SHOPKEEP_MAX_BODY_BYTES", 65_536, minimum=1024),
            max_catalog_bytes=_int(env, "SHOPKEEP_MAX_CATALOG_BYTES", 1_048_576, minimum=1024),
            stock_buckets=_int(env, "SHOPKEEP_STOCK_BUCKETS", 16, minimum=1),
            hold_seconds=_int(env, "SHOPKEEP_HOLD_SECONDS", 600, minimum=1),
            threads=threads,
            log_level=env.get("SHOPKEEP_LOG_LEVEL", "INFO").upper(),
            proxy_hops=_int(env, "SHOPKEEP_PROXY_HOPS", 0, minimum=0),
            prepared_statements=_switch(env, "SHOPKEEP_PREPARED_STATEMENTS", default=True),
            catalog_listen=_switch(env, "SHOPKEEP_CATALOG_LISTEN", default=True),
            webhook_delivery=_switch(env, "SHOPKEEP_WEBHOOK_DELIVERY", default=True),
            webhook_poll_ms=_int(env, "SHOPKEEP_WEBHOOK_POLL_MS", 500, minimum=10),
            webhook_timeout_ms=_int(env, "SHOPKEEP_WEBHOOK_TIMEOUT_MS", 10_000, minimum=10),
            webhook_backoff_base_ms=_int(env, "SHOPKEEP_WEBHOOK_BACKOFF_BASE_MS", 5_000, minimum=1),
            webhook_backoff_cap_ms=_int(
                env, "SHOPKEEP_WEBHOOK_BACKOFF_CAP_MS", 3_600_000, minimum=1
            ),
            webhook_give_up_seconds=_int(
                env, "SHOPKEEP_WEBHOOK_GIVE_UP_SECONDS", 3 * 24 * 3600, minimum=1
            ),
            google_play_api_url=env.get(
                "SHOPKEEP_GOOGLE_PLAY_API_URL", "https://androidpublisher.googleapis.com"
            ).rstrip("/"),
            google_token_url=env.get("SHOPKEEP_GOOGLE_OAUTH_TOKEN_URL") or None,
            google_pubsub_certs_url=env.get(
                "SHOPKEEP_GOOGLE_PUBSUB_CERTS_URL", "https://www.googleapis.com/oauth2/v1/certs"
            ),
            steam_api_url=env.get("SHOPKEEP_STEAM_API_URL", "https://partner.steam-api.com").rstrip(
                "/"
            ),
            store_timeout=float(_int(env, "SHOPKEEP_STORE_TIMEOUT", 10, minimum=1)),
        )

    @property
    def owner_database_url(self) -> str | None:
        """The URL migrations and the maintenance commands connect with."""
        return self.migrate_database_url or self.database_url

    def replace(self, **changes: object) -> Config:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
