"""Serving with gunicorn: workers fork from a master that owns the (embedded) database."""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import selectors
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from gunicorn import glogging, util
from gunicorn.app.base import BaseApplication
from gunicorn.http import errors as http_errors
from gunicorn.workers.gthread import TConn, ThreadWorker

from . import logs
from .config import Config
from .errors import BadRequest, IdempotencyKeyInvalid, StoreError, error_body

if TYPE_CHECKING:
    import psycopg

    from .metrics import Metrics

log = logging.getLogger(__name__)

# The HTTP server's limits, sized so the contract's largest requests fit: `GET /v1/stock` with
# 100 skus of 64 characters is a request line of about 7,000 bytes (gunicorn's default is 4,094
# and 8,190 its most), and a bearer token from a studio's identity provider may carry many
# claims. A request past them is answered 400 bad_request in the API's envelope.
LIMIT_REQUEST_LINE = 8190
LIMIT_REQUEST_FIELD_SIZE = 16_384
LIMIT_REQUEST_FIELDS = 100
# The environ key create_app sets to have the connection closed after its answer.
CLOSE_CONNECTION = "shopkeep.close_connection"
# The environ key of when (time.perf_counter) the worker found the request ready to read and
# queued it for a handler thread: the latency histogram starts there, not when a thread
# picked it up, and the wait in between is measured by itself (metrics.queue).
ARRIVED = "shopkeep.arrived"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Malformed requests gunicorn refuses before the application sees them.
_MALFORMED = (
    http_errors.InvalidRequestLine,
    http_errors.InvalidRequestMethod,
    http_errors.InvalidHTTPVersion,
    http_errors.InvalidHeader,
    http_errors.InvalidHeaderName,
    http_errors.ObsoleteFolding,
    http_errors.InvalidSchemeHeaders,
    http_errors.InvalidChunkSize,
    http_errors.ChunkMissingTerminator,
    http_errors.InvalidChunkExtension,
)


class Janitor(threading.Thread):
    """Expires idempotency keys every ``interval`` seconds from inside a worker (makes their
    day partitions ahead, drops the days that are over, purges the default partition), tidies
    holds and expires events the same way past their retention (and the webhook delivery log);
    an advisory lock per purge makes one worker of the whole deployment do each."""

    def __init__(self, config: Config, metrics: Metrics) -> None:
        super().__init__(name="shopkeep-janitor", daemon=True)
        self.config = config
        self.metrics = metrics

    def run(self) -> None:
        # The day partitions of idempotency keys for this server's TTL, before the first key
        # (migrate made them for the shortest TTL only), and the events' days ahead.
        self.add_partitions()
        while True:
            # Spread the workers out so they do not all wake at once.
            time.sleep(self.config.purge_interval * random.uniform(0.9, 1.1))
            self.purge_once()
            self.tidy_holds()
            self.purge_events_once()

    def add_partitions(self) -> None:
        """Makes the missing partitions of idempotency keys and events (several workers may at
        once: a partition another made is skipped); a failure is logged, the next purge tries
        again."""
        from . import db
        from .store import events
        from .store.idempotency import add_partitions

        assert self.config.database_url is not None
        try:
            with db.connect(self.config.database_url, self.config) as conn:
                add_partitions(conn, self.config.idempotency_ttl)
                events.add_partitions(conn)
        except Exception:
            log.exception("making the partitions of idempotency keys and events failed")

    def purge_once(self) -> int | None:
        """One purge (None when another process held the purge lock), in the metrics; a
        failure is logged and retried next time, the worker goes on."""
        from . import db
        from .runtime.rate_limit import purge_ended_windows
        from .store.idempotency import purge_if_free

        assert self.config.database_url is not None
        try:
            with db.connect(self.config.database_url, self.config) as conn:
                purged = purge_if_free(conn, ttl_seconds=self.config.idempotency_ttl)
                if purged is not None:
                    self.metrics.idempotency_purged.inc(purged)
                    self.metrics.last_purge.set_to_current_time()
                    self.metrics.idempotency_keys.set(estimated_keys(conn))
                    # The shared rate limit's counters of windows that ended, by the same one.
                    purge_ended_windows(conn)
        except Exception:
            self.metrics.purges.labels("failed").inc()
            log.exception("purging expired idempotency keys failed")
            return None
        self.metrics.purges.labels("skipped" if purged is None else "done").inc()
        if purged:
            log.info("purged %d expired idempotency keys", purged)
        return purged

    def tidy_holds(self) -> None:
        """Puts back the units of expired holds and deletes holds that ended longer ago than
        an idempotency key lives (a replayed answer may still name them). Tidiness only: an
        expired hold's units are on sale again without it."""
        from . import db
        from .store.holds import tidy

        assert self.config.database_url is not None
        try:
            with db.connect(self.config.database_url, self.config) as conn:
                returned, deleted = tidy(conn, keep_seconds=self.config.idempotency_ttl)
        except Exception:
            log.exception("tidying the holds failed")
            return
        if returned or deleted:
            log.info("holds: %d expired units put back, %d ended holds deleted", returned, deleted)

    def purge_events_once(self) -> int | None:
        """One purge of the events past SHOPKEEP_EVENT_RETENTION (None when another process
        held its lock, or it failed: logged, counted and tried again next time)."""
        from . import db
        from .store import events

        assert self.config.database_url is not None
        try:
            with db.connect(self.config.database_url, self.config) as conn:
                purged = events.purge_if_free(conn, retention_seconds=self.config.event_retention)
        except Exception:
            self.metrics.event_purges.labels("failed").inc()
            log.exception("purging expired events failed")
            return None
        self.metrics.event_purges.labels("skipped" if purged is None else "done").inc()
        if purged:
            self.metrics.events_purged.inc(purged)
            log.info("purged %d events past their retention", purged)
        return purged


def estimated_keys(conn: psycopg.Connection) -> int:
    """PostgreSQL's estimate of the rows of idempotency_keys (kept by autovacuum and ANALYZE):
    the table's size for the metrics without a count(*) over millions of rows. The table is
    partitioned (migration 0012): its partitions hold the rows and the estimates."""
    row = conn.execute(
        "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'idempotency_keys'::regclass"
    ).fetchone()
    return int(row[0]) if row else 0


def _child_exit(_server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def refusal_for(exc: BaseException) -> StoreError | None:
    """The API error for a request gunicorn could not parse, or None to leave it to gunicorn
    (the statuses that are not the client's malformed request: 417, 501, ...)."""
    if isinstance(exc, http_errors.LimitRequestLine):
        return BadRequest(f"the request line may be at most {LIMIT_REQUEST_LINE} bytes")
    if isinstance(exc, http_errors.LimitRequestHeaders):
        return BadRequest(
            f"at most {LIMIT_REQUEST_FIELDS} request headers of at most"
            f" {LIMIT_REQUEST_FIELD_SIZE} bytes each"
        )
    if isinstance(exc, http_errors.InvalidHeader) and str(exc.hdr).lower() == "idempotency-key":
        return IdempotencyKeyInvalid()
    if isinstance(exc, _MALFORMED):
        return BadRequest(f"the HTTP request is malformed: {exc}")
    return None


class StoreWorker(ThreadWorker):
    """gunicorn's threaded worker, with two things the application cannot do by itself: it
    answers requests refused before the application (too long, malformed) in the API's error
    envelope with an X-Request-Id, and it closes a connection when the application asks."""

    _current = threading.local()  # the gunicorn request this thread is serving

    def accept(self, listener: Any) -> None:
        # gunicorn hands a new connection to a handler thread at once, and the thread waits
        # there (up to 5 s) for the first request: a client that connects before it has
        # anything to send (a browser's pre-connection, a paced client) held one of the
        # worker's few threads meanwhile, and requests that had arrived queued behind it (the
        # paced benchmark's p99 of 200 ms at a third of the CPU). Here a new connection waits
        # in the poller, as a kept-alive one does, and reaches a thread with its first bytes;
        # gunicorn's pending connections are exactly that (closed after `keepalive` seconds
        # without a request, like an idle kept-alive connection).
        try:
            client, address = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, client, address, listener.getsockname())  # non-blocking
        conn.timeout = time.monotonic() + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(
            conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn)
        )

    def enqueue_req(self, conn: Any) -> None:
        # Every request reaches a handler thread through here, once its first bytes have come:
        # on a new connection (see accept) or on a kept-alive one that became readable.
        conn.shopkeep_ready_at = time.perf_counter()
        super().enqueue_req(conn)

    def load_wsgi(self) -> None:
        super().load_wsgi()
        loaded: WSGIApp = self.wsgi  # type: ignore[has-type]
        self.wsgi = _closing_when_asked(loaded, self._current)

    def handle_request(self, req: Any, conn: Any) -> Any:
        self._current.request = req
        self._current.ready_at = getattr(conn, "shopkeep_ready_at", None)
        try:
            return super().handle_request(req, conn)
        finally:
            self._current.request = None
            self._current.ready_at = None

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        error = refusal_for(exc)
        if error is None:
            super().handle_error(req, client, addr, exc)
            return
        request_id = uuid.uuid4().hex
        body = json.dumps(error_body(error.code, error.message, {}, request_id)).encode()
        head = (
            f"HTTP/1.1 {error.status} Bad Request\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"X-Request-Id: {request_id}\r\n\r\n"
        ).encode("latin-1")
        token = logs.request_id_var.set(request_id)
        try:
            log.warning("refused before the application: %s", exc)
            logs.access(
                method=getattr(req, "method", None) or "-",
                route="unparsed",
                path=getattr(req, "path", None) or "-",
                status=error.status,
                duration_ms=0.0,
                game=None,
                subject=None,
            )
        finally:
            logs.request_id_var.reset(token)
        try:
            util.write_nonblock(client, head + body)
        except OSError:
            log.debug("the client left before its error answer was written")


def _closing_when_asked(app: WSGIApp, current: threading.local) -> WSGIApp:
    """Marks gunicorn's request to be closed when the application set CLOSE_CONNECTION: the
    answer then says `Connection: close` and the worker closes the socket after it (an
    application may not send hop-by-hop headers itself)."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        ready_at = getattr(current, "ready_at", None)
        if ready_at is not None:
            environ[ARRIVED] = ready_at

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            request = getattr(current, "request", None)
            if environ.get(CLOSE_CONNECTION) and request is not None:
                request.must_close = True
            return start_response(status, headers, exc_info)

        return app(environ, start)

    return wrapped


class StoreLogger(glogging.Logger):
    """gunicorn's logger without its access log: the application writes one access line per
    request (logs.py). gunicorn's own was still formatted for every request, because a
    logconfig_dict is set, and then dropped (3% of a purchase's CPU)."""

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return None


class StoreServer(BaseApplication):
    """gunicorn running create_app in each worker (after the fork, so every worker has its own
    connection pool)."""

    def __init__(self, config: Config, *, host: str, port: int, workers: int) -> None:
        self.store_config = config
        self.options = {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": StoreWorker,
            "threads": config.threads,
            "timeout": 60,
            "graceful_timeout": 10,
            "keepalive": 5,
            "loglevel": config.log_level.lower(),
            "accesslog": None,  # the application writes one access line per request (logs.py)
            "logger_class": StoreLogger,
            "logconfig_dict": logs.gunicorn_config(config.log_level),
            "limit_request_line": LIMIT_REQUEST_LINE,
            "limit_request_field_size": LIMIT_REQUEST_FIELD_SIZE,
            "limit_request_fields": LIMIT_REQUEST_FIELDS,
            "child_exit": _child_exit,
            "proc_name": "shopkeep-server",
            # Several stores may run on one machine (tests, load tests): no shared control socket.
            "control_socket_disable": True,
            # A listening socket per worker (SO_REUSEPORT), the kernel spreading connections
            # over them: with one shared socket, whichever worker woke first took a whole
            # burst of new connections, and in about half of the benchmark's runs one worker
            # served every connection while the other core idled. (Port 0 means "any free
            # port", which each worker would pick differently: the shared socket then.)
            "reuse_port": port != 0,
        }
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self) -> Any:
        from .app import create_app
        from .runtime.services import EXTENSION
        from .sequencer import EventSequencer

        app = create_app(self.store_config)
        if self.store_config.purge_interval:
            Janitor(self.store_config, app.extensions[EXTENSION].metrics).start()
        metrics = app.extensions[EXTENSION].metrics
        wake_deliverer = None
        if self.store_config.webhook_delivery and self.store_config.database_url:
            from .delivery import Deliverer

            deliverer = Deliverer(self.store_config, metrics)
            deliverer.start()
            wake_deliverer = deliverer.wake
        if self.store_config.database_url:
            EventSequencer(self.store_config, metrics, on_positioned=wake_deliverer).start()
        # The worker hears of publishes, so GET /v1/catalog needs no round trip. Not through a
        # pooler in transaction mode, which does not deliver notifications to an idle client:
        # there SHOPKEEP_CATALOG_LISTEN=off, and each read asks which version is live.
        if self.store_config.database_url and self.store_config.catalog_listen:
            app.extensions[EXTENSION].catalog_cache.listen(self.store_config.database_url)
        return app


def check_port_free(host: str, port: int) -> None:
    """Exits (status 1) when something already listens on host:port. With ``reuse_port`` the
    workers bind, each a socket of its own, not the master: a port held by another program
    would have them fail and be started again for ever, and a port held by another store
    with ``reuse_port`` would be shared with it silently. A plain bind (no SO_REUSEPORT)
    fails in both cases, as gunicorn's master did before."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
            probe.bind(address)
    except OSError as exc:
        log.error("Can't listen on %s:%s: %s", host, port, exc)
        raise SystemExit(1) from exc


def serve(config: Config, *, host: str, port: int, workers: int) -> None:
    """Serves until SIGINT/SIGTERM. The metrics of all workers are summed through a
    multiprocess directory made for this run."""
    if port != 0:
        check_port_free(host, port)
    metrics_dir = tempfile.mkdtemp(prefix="shopkeep-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        StoreServer(config, host=host, port=port, workers=workers).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
