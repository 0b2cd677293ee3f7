"""The peak event's webhook receiver: the studio's backend as the store's webhooks see it.

The runner subscribes an endpoint on 127.0.0.1 to the drop's game (``purchase.completed`` and
``stock.sold_out``) before the load, checks every delivery with ``shopkeep.webhooks.verify``,
keeps each event once by id (deliveries are at least once), and notes when it first arrived,
so the run can check that the receiver got one ``purchase.completed`` per sale and one
``stock.sold_out``, and print the delivery lag (commit to arrival) at the peak.
"""

from __future__ import annotations

import dataclasses
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from shopkeep.studio import StudioClient
from shopkeep.webhooks import WebhookVerificationError, verify

TYPES = ("purchase.completed", "stock.sold_out")


@dataclasses.dataclass(frozen=True, slots=True)
class Arrival:
    """One event, as it first arrived: its type, what it was about, and the lag (seconds from
    its commit to its arrival here)."""

    type: str
    purchase_id: str | None
    sku: str | None
    lag: float


class EventReceiver:
    """An HTTP receiver on 127.0.0.1 that keeps the verified events by id."""

    def __init__(self) -> None:
        self.secret = ""
        self.arrivals: dict[int, Arrival] = {}
        self.deliveries = 0
        self.refused = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.take(body, dict(self.headers.items()))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/shopkeep"

    def start(self) -> EventReceiver:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def subscribe(self, host: str, studio_token: str) -> str:
        """Adds this receiver as a webhook endpoint of the studio token's game."""
        with StudioClient(host, studio_token, timeout=30) as studio:
            made = studio.add_webhook(self.url, types=TYPES, description="peak event receiver")
        self.secret = made.secret
        return made.webhook.id

    def take(self, body: bytes, headers: dict[str, str]) -> int:
        arrived = time.time()
        try:
            event = verify(body, headers, self.secret)
        except WebhookVerificationError:
            with self._lock:
                self.refused += 1
            return 400
        purchase = event.purchase
        sku = purchase.sku if purchase is not None else event.data.get("sku")
        with self._lock:
            self.deliveries += 1
            if event.id not in self.arrivals:
                self.arrivals[event.id] = Arrival(
                    type=event.type,
                    purchase_id=purchase.id if purchase is not None else None,
                    sku=sku if isinstance(sku, str) else None,
                    lag=max(arrived - event.created_at.timestamp(), 0.0),
                )
        return 204

    def purchase_ids(self) -> list[str]:
        """The purchases of every ``purchase.completed`` received (one per event)."""
        with self._lock:
            return [
                a.purchase_id
                for a in self.arrivals.values()
                if a.type == "purchase.completed" and a.purchase_id is not None
            ]

    def sold_out(self, sku: str) -> int:
        """How many ``stock.sold_out`` events of ``sku`` arrived."""
        with self._lock:
            return sum(
                1 for a in self.arrivals.values() if a.type == "stock.sold_out" and a.sku == sku
            )

    def wait_for(self, purchases: int, *, sold_out: str | None, timeout: float) -> bool:
        """Waits until ``purchases`` purchase events (and the sell-out of ``sold_out``) came."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.purchase_ids()) >= purchases and (
                sold_out is None or self.sold_out(sold_out) >= 1
            ):
                return True
            time.sleep(0.1)
        return False

    def lag_ms(self, sku: str) -> dict[str, float | None]:
        """p50 and p99 of the delivery lag of ``sku``'s purchases (the drop), in ms."""
        with self._lock:
            lags = sorted(a.lag for a in self.arrivals.values() if a.sku == sku)
        if not lags:
            return {"p50": None, "p99": None, "events": 0}
        cuts = statistics.quantiles(lags, n=100, method="inclusive") if len(lags) > 1 else lags * 99
        return {
            "p50": round(cuts[49] * 1000, 1),
            "p99": round(cuts[98] * 1000, 1),
            "events": len(lags),
        }
