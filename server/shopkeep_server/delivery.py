"""Webhook delivery inside the server processes: a thread per worker, like the Janitor.

Any number of processes on any number of hosts run one each. A deliverer claims one endpoint
at a time (store.webhooks.claim_due: its progress row, FOR UPDATE SKIP LOCKED), sends its due
events in order over HTTP, signed the Standard Webhooks way with the ``standardwebhooks``
package, and records every attempt in the same transaction. A 2xx moves the endpoint on; any
other answer, a timeout or no answer schedules a retry of the same event after an exponential
back-off with jitter, capped; an endpoint failing for longer than the give-up horizon is
disabled with the reason.

Headers: ``webhook-id`` is the event's id (the same on every attempt, so a receiver drops a
repeat by it), ``webhook-timestamp`` the attempt's Unix time, ``webhook-signature`` one
``v1,<base64>`` per secret signing now (two during a rotation), space-separated.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
from standardwebhooks.webhooks import Webhook

from . import __version__
from .config import Config
from .store import webhooks
from .store.webhooks import Attempt, Claim, Pending

if TYPE_CHECKING:
    from .metrics import Metrics

log = logging.getLogger(__name__)

# Events sent per claim: the claim's transaction stays open while they go out, so it is kept
# short, in count and in time (a slow receiver ends its batch early; the rest go next claim).
BATCH = 20
BATCH_SECONDS = 5.0
# How much of an answer is read at most (the log keeps EXCERPT_CHARS of it).
READ_AT_MOST = 4096
# How often the backlog gauge is refreshed.
BACKLOG_EVERY = 5.0
USER_AGENT = f"Shopkeep-Webhooks/{__version__}"


def body_of(event: dict[str, Any]) -> bytes:
    """The delivered body: the event object as the feed serves it (compact JSON, UTF-8)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def signature_header(secrets: list[bytes], msg_id: str, at: dt.datetime, body: bytes) -> str:
    """``webhook-signature``: one ``v1,<base64>`` per secret, space-separated."""
    text = body.decode()
    return " ".join(Webhook(secret).sign(msg_id, at, text) for secret in secrets)


def backoff(config: Config, failures: int, *, rng: random.Random | None = None) -> dt.timedelta:
    """The wait after the ``failures``-th failure in a row: base * 2**(failures - 1), capped,
    then a random 50 to 100 % of it (jitter, so endpoints that failed together do not retry
    together)."""
    rng = rng or random.Random()
    exponent = min(max(failures - 1, 0), 40)
    ceiling = min(config.webhook_backoff_cap_ms, config.webhook_backoff_base_ms * 2**exponent)
    return dt.timedelta(milliseconds=ceiling * rng.uniform(0.5, 1.0))


class Deliverer(threading.Thread):
    """Delivers webhooks from inside a server worker until stopped."""

    def __init__(self, config: Config, metrics: Metrics | None = None) -> None:
        super().__init__(name="shopkeep-webhooks", daemon=True)
        assert config.database_url is not None
        self.config = config
        self.metrics = metrics
        self._stopping = threading.Event()
        # Set by wake() (this process's sequencer, after it positioned events) or stop():
        # ends the wait between polls early.
        self._woken = threading.Event()
        # Set once it has looked and is waiting for its next turn (tests wait for it).
        self.waiting = threading.Event()
        self._conn: psycopg.Connection | None = None
        self._http = httpx.Client(
            timeout=config.webhook_timeout_ms / 1000,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
        )
        self._backlog_at = 0.0

    def stop(self) -> None:
        self._stopping.set()
        self._woken.set()

    def wake(self) -> None:
        """New events have positions: look for due endpoints now, not at the next poll."""
        self._woken.set()

    def run(self) -> None:
        while not self._stopping.is_set():
            # Cleared before looking: a wake that comes while this pass runs makes the next
            # wait return at once, so no positioned event waits for a poll.
            self._woken.clear()
            try:
                busy = self.deliver_once()
            except Exception:
                log.exception("webhook delivery failed; trying again shortly")
                self._drop_connection()
                busy = False
            if not busy:
                self.waiting.set()
                self._woken.wait(self.config.webhook_poll_ms / 1000 * random.uniform(0.8, 1.2))
        self._drop_connection()
        self._http.close()

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            from . import db

            assert self.config.database_url is not None
            self._conn = db.connect(self.config.database_url, self.config)
            self._conn.execute("SET TimeZone = 'UTC'")
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def deliver_once(self) -> bool:
        """Claims one due endpoint and sends its next batch; False when none was due (or every
        due one is being delivered by another worker)."""
        conn = self._connection()
        self._refresh_backlog(conn)
        with conn.transaction():
            claim = webhooks.claim_due(conn)
            if claim is None:
                return False
            batch = webhooks.pending(conn, claim, limit=BATCH)
            started = time.monotonic()
            # Failures in a row so far: of the next event, until one is delivered.
            failures = claim.failed_attempts
            for item in batch:
                if time.monotonic() - started > BATCH_SECONDS:
                    break
                attempt = self._send(claim, item)
                webhooks.record(conn, claim, item, attempt, number=failures + 1)
                self._count(attempt)
                if not attempt.succeeded:
                    self._failed(conn, claim, attempt, failures=failures + 1)
                    return True
                failures = 0
            webhooks.delivered_batch(conn, claim)
        return True

    def _failed(
        self, conn: psycopg.Connection, claim: Claim, attempt: Attempt, *, failures: int
    ) -> None:
        why = (
            f"HTTP {attempt.status_code}" if attempt.status_code is not None else attempt.error
        ) or "no answer"
        disabled = webhooks.failed(
            conn,
            claim,
            retry_in=backoff(self.config, failures),
            give_up_after=dt.timedelta(seconds=self.config.webhook_give_up_seconds),
            why=why,
        )
        if disabled:
            log.warning(
                "webhook %s of %s disabled: failing since %s",
                claim.webhook_id,
                claim.game,
                claim.failing_since,
            )

    def _send(self, claim: Claim, item: Pending) -> Attempt:
        body = body_of(item.event)
        msg_id = str(item.event_id)
        now = dt.datetime.now(dt.UTC)
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature_header(claim.secrets, msg_id, now, body),
        }
        started = time.perf_counter()
        try:
            with self._http.stream("POST", claim.url, content=body, headers=headers) as answer:
                excerpt = _read_some(answer)
                status: int | None = answer.status_code
                error = None
        except httpx.TimeoutException:
            status, excerpt, error = None, "", "timed out"
        except httpx.HTTPError as exc:
            status, excerpt, error = None, "", f"no answer: {type(exc).__name__}: {exc}"[:500]
        latency = int((time.perf_counter() - started) * 1000)
        return Attempt(status_code=status, latency_ms=latency, excerpt=excerpt, error=error)

    def _count(self, attempt: Attempt) -> None:
        if self.metrics is None:
            return
        if attempt.succeeded:
            outcome = "delivered"
        elif attempt.status_code is not None:
            outcome = "refused"
        elif attempt.error == "timed out":
            outcome = "timed_out"
        else:
            outcome = "unreachable"
        self.metrics.webhook_deliveries.labels(outcome).inc()

    def _refresh_backlog(self, conn: psycopg.Connection) -> None:
        if self.metrics is None or time.monotonic() - self._backlog_at < BACKLOG_EVERY:
            return
        self._backlog_at = time.monotonic()
        self.metrics.show_webhook_backlog(webhooks.backlog(conn))


def _read_some(answer: httpx.Response) -> str:
    """The start of an answer's body (READ_AT_MOST bytes), as text; the rest is not read."""
    received = b""
    for chunk in answer.iter_bytes():
        received += chunk
        if len(received) >= READ_AT_MOST:
            break
    return received[:READ_AT_MOST].decode("utf-8", errors="replace")
