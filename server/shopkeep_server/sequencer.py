"""The events sequencer of a server process: gives committed events their feed position.

Every server worker runs one (:class:`EventSequencer`, a thread started by
``serving.StoreServer.load``); an advisory lock inside ``sk_position_events`` lets one pass run
at a time across the deployment, and the others find the lock taken and try again at their
next turn. A worker passes every ``SHOPKEEP_EVENT_POLL_MS`` (and again at once while a pass
fills a whole batch); the feed also passes by itself when events are waiting, so a reader sees
an event as soon as it is committed.

The sequencer polls rather than LISTENs: a ``pg_notify`` in each event's transaction would make
every purchase take PostgreSQL's notification-queue lock at commit, which is held through the
commit's WAL flush and so puts all purchases of the database in single file. Measured with
pgbench (16 clients, sk_purchase, fsync on): 130 to 170 purchases a second with the notify,
490 to 570 without it, 590 to 610 without events at all.

A pass that positioned events wakes the webhook deliverer of its own process, so a delivery
starts right after the pass rather than at the deliverer's next poll
(``SHOPKEEP_WEBHOOK_POLL_MS``); the deliverers of the other processes still poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from .config import Config
from .metrics import Metrics
from .store import events

log = logging.getLogger(__name__)


class EventSequencer(threading.Thread):
    """Positions events in the background, for good (a daemon thread); :meth:`stop` ends it
    (tests)."""

    def __init__(
        self,
        config: Config,
        metrics: Metrics,
        on_positioned: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name="shopkeep-event-sequencer", daemon=True)
        assert config.database_url is not None
        self.url = config.database_url
        self.poll_seconds = config.event_poll_ms / 1000
        self.metrics = metrics
        # Called after a pass that positioned events: the process's webhook deliverer
        # (Deliverer.wake), which would otherwise find them only at its next poll.
        self.on_positioned = on_positioned
        self._stopping = threading.Event()
        # Set once it has passed and is waiting for its next turn (tests wait for it).
        self.waiting = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        delay = 1.0
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    delay = 1.0
                    while not self._stopping.is_set():
                        if self.pass_once(conn) < events.POSITION_BATCH:
                            self.waiting.set()
                            self._stopping.wait(self.poll_seconds)
            except psycopg.Error as exc:
                log.warning("event sequencer: %s (retrying in %.0f s)", exc, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, 30.0)

    def pass_once(self, conn: psycopg.Connection) -> int:
        """One pass; returns how many events it positioned (0 when another process holds the
        lock). The metrics count them by type, and the backlog left behind."""
        positioned = events.position_pending(conn)
        if positioned is None:
            return 0
        self.metrics.count_events(positioned)
        self.metrics.events_unpositioned.set(events.unpositioned(conn))
        total = positioned.total()
        if total and self.on_positioned is not None:
            self.on_positioned()
        return total
