"""Requests per account: one limit for the whole deployment, or per process.

``SHOPKEEP_RATE_LIMIT`` is a list of fixed windows in ``limits`` notation (``100/second;
1000/hour``). With ``SHOPKEEP_RATE_LIMIT_SCOPE=shared`` (the default) every window is counted
in PostgreSQL, in the unlogged table ``rate_limit_windows`` (migration 0013), so the limit holds
across every worker of every host: one statement per request updates the account's counter of
each window and returns it. With ``process`` each process counts by itself (the ``limits``
library, in memory): no database work, but the real limit is then the setting times the
processes behind the load balancer.
"""

from __future__ import annotations

import math
import time
from typing import Protocol

import psycopg
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from ..auth import Principal
from ..config import RATE_LIMIT_SCOPES
from ..db import Database, run_with_retry
from ..errors import RateLimited, StoreError

# One statement per request: each window's counter of the account, made or counted on, with a
# counter of a window that has ended starting again at 1; windows are aligned on the epoch, as
# the ``limits`` library aligns its fixed windows. The database's clock decides the window, so
# hosts whose clocks differ still share one. Returns, per window, the hits so far and the
# seconds until it ends (for Retry-After).
_HIT = """
INSERT INTO rate_limit_windows AS w (game_id, subject, rule, window_end, hits)
SELECT %s, %s, r.rule,
       to_timestamp((floor(extract(epoch FROM now()) / r.seconds) + 1) * r.seconds), 1
  FROM unnest(%s::text[], %s::integer[]) AS r(rule, seconds)
ON CONFLICT (game_id, subject, rule) DO UPDATE
   SET hits = CASE WHEN w.window_end = excluded.window_end THEN w.hits + 1 ELSE 1 END,
       window_end = excluded.window_end
RETURNING w.rule, w.hits, extract(epoch FROM w.window_end - now())::float8
"""


class RateLimiter(Protocol):
    """Counts a request of an account and refuses it (RateLimited, 429 with Retry-After)
    beyond the configured rate."""

    def check(self, principal: Principal) -> None: ...


def rate_limiter(spec: str | None, scope: str, database: Database) -> RateLimiter:
    """The limiter the configuration asks for; no limit at all when ``spec`` is None."""
    items: list[RateLimitItem] = parse_many(spec) if spec else []
    if not items:
        return NoRateLimit()
    if scope == "process":
        return ProcessRateLimiter(items)
    if scope == "shared":
        return SharedRateLimiter(items, database)
    raise ValueError(f"unknown rate limit scope {scope!r}: one of {', '.join(RATE_LIMIT_SCOPES)}")


class NoRateLimit:
    """SHOPKEEP_RATE_LIMIT=none."""

    def check(self, principal: Principal) -> None:
        return None


def _refusal(item: RateLimitItem, seconds_left: float) -> StoreError:
    return RateLimited(
        f"at most {item} per account",
        headers={"Retry-After": str(max(1, math.ceil(seconds_left)))},
    )


class ProcessRateLimiter:
    """Requests per principal per process (the ``limits`` library keeps the windows)."""

    def __init__(self, items: list[RateLimitItem]) -> None:
        self._items = items
        self._limiter = FixedWindowRateLimiter(MemoryStorage())

    def check(self, principal: Principal) -> None:
        for item in self._items:
            if not self._limiter.hit(item, principal.game, principal.subject):
                reset_at, _ = self._limiter.get_window_stats(
                    item, principal.game, principal.subject
                )
                raise _refusal(item, reset_at - time.time())


class SharedRateLimiter:
    """Requests per principal across every process sharing the database: a counter row per
    account and window, updated by one statement per request."""

    def __init__(self, items: list[RateLimitItem], database: Database) -> None:
        self._items = {str(item): item for item in items}
        self._rules = list(self._items)
        self._seconds = [item.get_expiry() for item in self._items.values()]
        self._database = database

    def check(self, principal: Principal) -> None:
        def hit(conn: psycopg.Connection) -> list[tuple[str, int, float]]:
            return conn.execute(
                _HIT, (principal.game, principal.subject, self._rules, self._seconds)
            ).fetchall()

        for rule, hits, seconds_left in run_with_retry(self._database, hit):
            item = self._items[rule]
            if hits > item.amount:
                raise _refusal(item, seconds_left)


def purge_ended_windows(conn: psycopg.Connection, *, batch: int = 10_000) -> int:
    """Deletes the counters of windows that have ended (an account's next request starts a
    new one either way), in batches; returns how many."""
    total = 0
    while True:
        cur = conn.execute(
            "DELETE FROM rate_limit_windows WHERE ctid IN ("
            " SELECT ctid FROM rate_limit_windows WHERE window_end < now() LIMIT %s)",
            (batch,),
            prepare=False,
        )
        total += cur.rowcount
        if cur.rowcount < batch:
            return total
