"""The per-process objects every request uses, built once by create_app."""

from __future__ import annotations

import dataclasses

from flask import Flask, current_app

from ..auth import Authenticator
from ..config import Config
from ..db import Database
from ..metrics import Metrics
from ..store.catalog import CatalogCache
from .rate_limit import RateLimiter, rate_limiter

# The key of the Services in ``app.extensions``.
EXTENSION = "shopkeep"


@dataclasses.dataclass(frozen=True)
class Services:
    """The per-process objects a handler or a page uses."""

    config: Config
    db: Database
    authenticator: Authenticator
    catalog_cache: CatalogCache
    rate_limiter: RateLimiter
    metrics: Metrics

    @classmethod
    def build(cls, config: Config, database: Database) -> Services:
        return cls(
            config=config,
            db=database,
            authenticator=Authenticator(database, cache_seconds=config.key_cache_seconds),
            catalog_cache=CatalogCache(),
            rate_limiter=rate_limiter(config.rate_limit, config.rate_limit_scope, database),
            metrics=Metrics(),
        )


def install(app: Flask, built: Services) -> None:
    """Makes ``built`` the services of every request ``app`` serves."""
    app.extensions[EXTENSION] = built


def services() -> Services:
    """The services of the application serving the current request."""
    found: Services = current_app.extensions[EXTENSION]
    return found
