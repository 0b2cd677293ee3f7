"""Prometheus metrics an operator can alert on: requests and their latency per route (the
OpenAPI path), purchases by outcome, conflicts by code, idempotency keys stored, replayed and
purged, the connection pool, the database's errors by SQLSTATE class, and events written by
type, awaiting their feed position and purged.

Under gunicorn every worker writes its samples to PROMETHEUS_MULTIPROC_DIR (set by
`shopkeep-server serve`), and /metrics adds them up across workers: counters and histograms
sum, the pool's gauges sum over the live workers, the purge's timestamp takes the newest.
docs/operations.md lists every family; docs/prometheus-rules.yml alerts on them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Waiting for a connection is nothing on a healthy pool and up to SHOPKEEP_POOL_TIMEOUT on a
# starved one.
POOL_WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The metrics of one application instance, on a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        # The label is still called `endpoint` (the load tests and dashboards read it); its
        # value is the OpenAPI path, `/v1/players/{player_id}/grants`, or `unmatched`.
        self.requests = Counter(
            "shopkeep_http_requests",
            "HTTP requests by method, route (the OpenAPI path) and status",
            ["method", "endpoint", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "shopkeep_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route (the OpenAPI path)",
            ["method", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.queue = Histogram(
            "shopkeep_http_queue_seconds",
            "Time a request waited for a handler thread (part of the request duration)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.purchases = Counter(
            "shopkeep_purchases",
            "Purchase requests by outcome (completed, replayed or the error code)",
            ["outcome"],
            registry=registry,
        )
        self.risk_events = Counter(
            "shopkeep_risk_events",
            "Decisions of the risk controls: refusals (by rule, or account_frozen), breaker"
            " trips, and freezes, unfreezes, tier changes and breaker resets asked for",
            ["kind", "rule"],
            registry=registry,
        )
        self.conflicts = Counter(
            "shopkeep_http_conflicts",
            "409 answers by route and error code (replays of a stored 409 included)",
            ["endpoint", "code"],
            registry=registry,
        )
        self.idempotency_stored = Counter(
            "shopkeep_idempotency_keys_stored",
            "Idempotency keys stored with their final outcome (a 2xx or a final 409), by route",
            ["endpoint"],
            registry=registry,
        )
        self.idempotency_replays = Counter(
            "shopkeep_idempotency_replays",
            "Requests answered from a stored outcome (Idempotent-Replayed: true), by route",
            ["endpoint"],
            registry=registry,
        )
        self.idempotency_purged = Counter(
            "shopkeep_idempotency_keys_purged",
            "Expired idempotency keys deleted by the server's purge",
            registry=registry,
        )
        self.purges = Counter(
            "shopkeep_idempotency_purges",
            "Runs of the server's purge by result: done, skipped (another worker held the"
            " purge lock) or failed",
            ["result"],
            registry=registry,
        )
        self.last_purge = Gauge(
            "shopkeep_idempotency_last_purge_timestamp_seconds",
            "Unix time the last purge of expired idempotency keys finished (0: none yet)",
            registry=registry,
            multiprocess_mode="max",
        )
        self.idempotency_keys = Gauge(
            "shopkeep_idempotency_keys_estimated",
            "Rows of idempotency_keys as PostgreSQL estimates them, after the last purge",
            registry=registry,
            multiprocess_mode="max",
        )
        self.database_errors = Counter(
            "shopkeep_database_errors",
            "Database errors that reached a request (not the store's own refusals), by SQLSTATE"
            " class (`08` connection, `40` rollback, `53` resources, `57` operator"
            " intervention, ...; `none` for a broken connection without one)",
            ["sqlstate_class"],
            registry=registry,
        )
        self.pool_timeouts = Counter(
            "shopkeep_db_pool_timeouts",
            "Requests that got no connection within SHOPKEEP_POOL_TIMEOUT (answered 503)",
            registry=registry,
        )
        self.pool_wait = Histogram(
            "shopkeep_db_pool_wait_seconds",
            "Time a unit of work waited for a connection from the pool",
            buckets=POOL_WAIT_BUCKETS,
            registry=registry,
        )
        self.pool_size = Gauge(
            "shopkeep_db_pool_size",
            "Connections the pools hold (open, in use or idle)",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.pool_in_use = Gauge(
            "shopkeep_db_pool_in_use",
            "Connections lent to a unit of work right now",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.pool_waiting = Gauge(
            "shopkeep_db_pool_waiting",
            "Units of work waiting for a connection right now",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.pool_max = Gauge(
            "shopkeep_db_pool_max",
            "Most connections the pools may open (SHOPKEEP_POOL_MAX per process)",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.events_written = Counter(
            "shopkeep_events_written",
            "Events committed, by type: each counted once, when it gets its place in the feed",
            ["type"],
            registry=registry,
        )
        self.events_unpositioned = Gauge(
            "shopkeep_events_awaiting_position",
            "Committed events without a feed position yet, after the last sequencer pass"
            " (counted up to 100000)",
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.events_purged = Counter(
            "shopkeep_events_purged",
            "Events deleted by the server's purge (older than SHOPKEEP_EVENT_RETENTION)",
            registry=registry,
        )
        self.event_purges = Counter(
            "shopkeep_event_purges",
            "Runs of the server's event purge by result: done, skipped (another worker held"
            " the purge lock) or failed",
            ["result"],
            registry=registry,
        )
        self.webhook_deliveries = Counter(
            "shopkeep_webhook_deliveries",
            "Webhook attempts by outcome: delivered (2xx), refused (another status), timed_out"
            " or unreachable (no answer)",
            ["outcome"],
            registry=registry,
        )
        self.webhook_backlog = Gauge(
            "shopkeep_webhook_oldest_undelivered_seconds",
            "Age of the oldest event an enabled webhook endpoint has not had yet (0: caught"
            " up), by game and endpoint id",
            ["game", "webhook"],
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self._webhooks_shown: set[tuple[str, str]] = set()
        self._pool: ConnectionPool[Any] | None = None
        self._pool_lock = threading.Lock()
        self._pool_shown: tuple[int, int, int, int] | None = None
        # (method, route, status) -> the request counter's and latency histogram's children:
        # prometheus_client checks and looks the labels up under a lock on every call.
        self._per_request: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def request_series(self, method: str, route: str, status: int) -> tuple[Counter, Histogram]:
        """The request counter and the latency histogram of one method, route and status."""
        key = (method, route, status)
        found = self._per_request.get(key)
        if found is None:
            found = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            if len(self._per_request) < 10_000:  # a bound: any method a client sends is a label
                self._per_request[key] = found
        return found

    def count_events(self, positioned: Mapping[str, int]) -> None:
        """Counts events a sequencer pass positioned, by type."""
        for event_type, count in positioned.items():
            self.events_written.labels(event_type).inc(count)

    def watch_pool(self, pool: ConnectionPool[Any]) -> None:
        """Reports ``pool`` in the pool gauges (refreshed after every request and on a scrape)."""
        self._pool = pool
        self.refresh_pool()

    def refresh_pool(self) -> None:
        pool = self._pool
        if pool is None:
            return
        # get_stats() reads without resetting the pool's counters; its size figures are the
        # pool's own, taken under its lock.
        stats = pool.get_stats()
        size = stats.get("pool_size", 0)
        shown = (
            size,
            max(size - stats.get("pool_available", 0), 0),
            stats.get("requests_waiting", 0),
            stats.get("pool_max", pool.max_size),
        )
        with self._pool_lock:
            # Written only when they changed: this runs after every request, and most leave
            # the pool as they found it (each write is a multiprocess file's).
            if shown == self._pool_shown:
                return
            self._pool_shown = shown
            self.pool_size.set(shown[0])
            self.pool_in_use.set(shown[1])
            self.pool_waiting.set(shown[2])
            self.pool_max.set(shown[3])

    def show_webhook_backlog(self, ages: list[tuple[str, str, float]]) -> None:
        """Sets the backlog gauge to ``ages`` (game, webhook, seconds); endpoints no longer
        listed (deleted or disabled) leave it (at 0 where a worker's file keeps the series)."""
        listed = {(game, webhook) for game, webhook, _ in ages}
        for game, webhook in self._webhooks_shown - listed:
            self.webhook_backlog.labels(game, webhook).set(0)
            self.webhook_backlog.remove(game, webhook)
        for game, webhook, age in ages:
            self.webhook_backlog.labels(game, webhook).set(age)
        self._webhooks_shown = listed

    def exposition(self) -> tuple[bytes, str]:
        self.refresh_pool()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
