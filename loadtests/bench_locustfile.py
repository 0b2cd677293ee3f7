"""The benchmark's generator when wrk is not installed: one request per task, no think time.

``FastHttpUser`` (geventhttpclient) costs the generator several times less CPU per request
than the SDK's httpx, and ``loadtests.bench`` runs it in one process per core. The case comes
from ``SHOPKEEP_BENCH_CASE`` (JSON), player tokens from the seed file ``SHOPKEEP_LOADTEST_SEED``.
"""

from __future__ import annotations

import itertools
import json
import os
import uuid
from typing import Any

from locust import FastHttpUser, constant, task

from loadtests.common import SEED_ENV, Seed

CASE: dict[str, Any] = json.loads(os.environ.get("SHOPKEEP_BENCH_CASE", "{}"))
_counter = itertools.count()
_tokens: list[str] = []


def tokens() -> list[str]:
    """The players' tokens, read once per process."""
    if not _tokens:
        _tokens.extend(token for _, token in Seed.load(os.environ[SEED_ENV]).players)
    return _tokens


class BenchUser(FastHttpUser):
    """Sends the case's request again and again, rotating players, a fresh key per POST."""

    wait_time = constant(0)

    @task
    def one(self) -> None:
        headers: dict[str, str] = {}
        if CASE.get("player"):
            every = tokens()
            headers["Authorization"] = f"Bearer {every[next(_counter) % len(every)]}"
        if CASE.get("etag"):
            headers["If-None-Match"] = CASE["etag"]
        body = CASE.get("body")
        if body is not None:
            headers["Idempotency-Key"] = f"bench-{uuid.uuid4()}"
        self.client.request(
            CASE["method"], CASE["path"], json=body, headers=headers, name=CASE["name"]
        )
