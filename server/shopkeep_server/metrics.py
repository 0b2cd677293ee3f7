"""Prometheus metrics: request counts and latency per endpoint, purchases by outcome.

Under gunicorn every worker writes its samples to PROMETHEUS_MULTIPROC_DIR (set by
`shopkeep-server serve`), and /metrics adds them up across workers.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The metrics of one application instance, on a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "shopkeep_http_requests",
            "HTTP requests by method, endpoint and status",
            ["method", "endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "shopkeep_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
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
            registry=self.registry,
        )

    def exposition(self) -> tuple[bytes, str]:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
