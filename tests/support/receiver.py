"""A real webhook receiver on 127.0.0.1 for the tests: an HTTP server in a thread that checks
every delivery's signature (with the `standardwebhooks` package and with the SDK's
``shopkeep.webhooks.verify``), keeps each event once by id (deliveries are at least once), and
can misbehave on purpose: answer 500 to a share of deliveries, answer too late to a share,
and be down (its socket closed) for a stretch."""

from __future__ import annotations

import contextlib
import dataclasses
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as PackageRefusal

from shopkeep.events import Event
from shopkeep.webhooks import WebhookVerificationError, verify


@dataclasses.dataclass
class Misbehaviour:
    """What share of deliveries the receiver fails (500) and answers too late (after
    ``slow_seconds``: past the deliverer's timeout, though the event was taken)."""

    fail_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 0.0
    seed: int = 12


class Receiver:
    """Holds what arrived: ``events`` (first arrival of each id), ``order`` (ids in the order
    they were first taken), ``wire`` (every verified delivery's id, repeats included),
    ``refused`` (deliveries whose signature did not verify) and ``most_at_once`` (the most
    deliveries it was handling at the same time)."""

    def __init__(self, secrets: list[str], misbehaviour: Misbehaviour | None = None) -> None:
        self.secrets = list(secrets)
        self.misbehaviour = misbehaviour or Misbehaviour()
        self._random = random.Random(self.misbehaviour.seed)
        self._lock = threading.Lock()
        self.events: dict[int, Event] = {}
        self.order: list[int] = []
        self.wire: list[int] = []
        self.answers: list[int] = []
        self.refused: list[str] = []
        self._in_flight = 0
        self.most_at_once = 0
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.take(body, dict(self.headers.items()))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                # The deliverer may have given up waiting (a late answer), as with a real one.
                with contextlib.suppress(OSError):
                    self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return None

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: the socket is closed, so deliveries get no answer at all."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def take(self, body: bytes, headers: dict[str, str]) -> int:
        with self._lock:
            self._in_flight += 1
            self.most_at_once = max(self.most_at_once, self._in_flight)
            roll = self._random.random()
        try:
            return self._take(body, headers, roll)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _take(self, body: bytes, headers: dict[str, str], roll: float) -> int:
        try:
            events = [verify(body, headers, secret) for secret in self.secrets]
            for secret in self.secrets:
                Webhook(secret).verify(body, headers)
        except (WebhookVerificationError, PackageRefusal) as exc:
            with self._lock:
                self.refused.append(f"{type(exc).__name__}: {exc}")
            return 400
        event = events[0]
        bad = self.misbehaviour
        if roll < bad.fail_rate:
            self._answered(event, 500)
            return 500
        with self._lock:
            self.wire.append(event.id)
            if event.id not in self.events:  # a repeat of one already taken is answered 2xx
                self.events[event.id] = event
                self.order.append(event.id)
        if roll < bad.fail_rate + bad.slow_rate:
            time.sleep(bad.slow_seconds)
        self._answered(event, 200)
        return 200

    def _answered(self, event: Event, status: int) -> None:
        with self._lock:
            self.answers.append(status)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
