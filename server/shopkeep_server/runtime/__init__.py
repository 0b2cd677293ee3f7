"""What the HTTP API (api/) and the studio page (web/) share, below both of them.

- ``services``: the per-process objects (config, pool, authenticator, caches, rate limiter,
  metrics), built once by create_app, and how a request finds them.
- ``unit_of_work``: one unit of store work on a pooled connection, retried on transient
  conflicts.
- ``idempotency``: the store's idempotency record of a request, built at the edge from the
  Flask request (fingerprint of method, path and canonical body).
- ``rate_limit``: requests per account, counted in PostgreSQL for the whole deployment (or
  per process).

Nothing here knows routes, schemas of responses or pages; api/ and web/ import from here and
never from each other.
"""

from .idempotency import fingerprint, idempotent_request, json_body
from .rate_limit import RateLimiter
from .services import Services, install, services
from .unit_of_work import with_connection

__all__ = [
    "RateLimiter",
    "Services",
    "fingerprint",
    "idempotent_request",
    "install",
    "json_body",
    "services",
    "with_connection",
]
