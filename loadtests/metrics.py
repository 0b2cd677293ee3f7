"""The store's own view of a run: the change in its Prometheus metrics between two scrapes.

Client-side latencies (Locust's) include the client's own queueing: a Python generator on a
shared machine is busy during a spike, and a request waits for it before and after the
store. The store's latency histogram (``shopkeep_http_request_duration_seconds``, from the
first to the last line of the handler) says what the store itself spent, so the two side by
side tell which side was slow. Its buckets are coarse: a quantile is reported as the upper
bound of the bucket it falls in ("at most 25 ms").
"""

from __future__ import annotations

import collections
import dataclasses
import math

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .common import route_name

LATENCY = "shopkeep_http_request_duration_seconds"
REQUESTS = "shopkeep_http_requests"
PURCHASES = "shopkeep_purchases"


@dataclasses.dataclass
class Scrape:
    """The counters of one ``GET /metrics``."""

    # "GET /v1/catalog" -> {bucket upper bound in seconds: cumulative count}
    buckets: dict[str, dict[float, float]] = dataclasses.field(default_factory=dict)
    # ("POST /v1/purchases", "409") -> count
    requests: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)
    # purchase outcome ("completed", "replayed", "sold_out", ...) -> count
    purchases: dict[str, float] = dataclasses.field(default_factory=dict)


def scrape(url: str) -> Scrape:
    """Read the store's metrics (every worker's, summed by the store)."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    result = Scrape()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == f"{LATENCY}_bucket":
                name = f"{labels['method']} {route_name(labels['endpoint'])}"
                result.buckets.setdefault(name, {})[float(labels["le"])] = sample.value
            elif sample.name == f"{REQUESTS}_total":
                name = f"{labels['method']} {route_name(labels['endpoint'])}"
                result.requests[(name, labels["status"])] = sample.value
            elif sample.name == f"{PURCHASES}_total":
                result.purchases[labels["outcome"]] = sample.value
    return result


@dataclasses.dataclass
class Latency:
    """The store's time for one endpoint: count and bucket bounds (ms; ``inf`` past the last)."""

    count: int
    p50: float
    p95: float
    p99: float


@dataclasses.dataclass
class ServerView:
    """What the store counted between two scrapes."""

    latency: dict[str, Latency]
    statuses: collections.Counter[tuple[str, str]]
    purchases: collections.Counter[str]

    @property
    def server_errors(self) -> int:
        """Answers with a 5xx status, as the store counted them (dropped ones included)."""
        return sum(n for (_, status), n in self.statuses.items() if status.startswith("5"))


def _quantile(cumulative: list[tuple[float, float]], q: float) -> float:
    total = cumulative[-1][1]
    for bound, count in cumulative:
        if count >= q * total:
            return bound * 1000
    return math.inf


def difference(before: Scrape, after: Scrape) -> ServerView:
    """The counts between ``before`` and ``after``, and latency quantiles from the buckets."""
    latency: dict[str, Latency] = {}
    for name, buckets in after.buckets.items():
        earlier = before.buckets.get(name, {})
        cumulative = sorted((le, n - earlier.get(le, 0.0)) for le, n in buckets.items())
        total = int(cumulative[-1][1]) if cumulative else 0
        if total > 0:
            latency[name] = Latency(
                count=total,
                p50=_quantile(cumulative, 0.50),
                p95=_quantile(cumulative, 0.95),
                p99=_quantile(cumulative, 0.99),
            )
    statuses: collections.Counter[tuple[str, str]] = collections.Counter()
    for key, n in after.requests.items():
        delta = int(n - before.requests.get(key, 0.0))
        if delta:
            statuses[key] = delta
    purchases: collections.Counter[str] = collections.Counter()
    for outcome, n in after.purchases.items():
        delta = int(n - before.purchases.get(outcome, 0.0))
        if delta:
            purchases[outcome] = delta
    return ServerView(latency=latency, statuses=statuses, purchases=purchases)
