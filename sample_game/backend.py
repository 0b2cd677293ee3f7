"""The studio backend: the one place that holds the SERVICE token and pays players for rounds.

A game client must never hold a service token (anyone can read it out of a game build, and
it can grant anything to anyone). So the client asks this small backend to bank a round::

    POST /v1/rounds/{round_id}/finish      Authorization: Bearer <the player's own token>
    {"coins": 84}

and the backend:

1. verifies the player token by calling the store with it (``GET /v1/wallet`` answers 200
   only for a valid player token) and takes the player id from its ``sub``; a token of another
   game is refused;
2. caps the reported coins at what one round can physically yield
   (:func:`sample_game.rules.max_coins_per_round`), so a tampered client earns no more than a
   perfect player;
3. grants the coins with the SDK (``StoreClient.grant``) under the Idempotency-Key
   ``round-{player}-{round_id}``, so a retried finish (a lost response, a store outage, a
   double click) pays exactly once: the store replays the first grant instead of paying again.

It also listens to the store's webhooks (``POST /v1/webhooks/shopkeep``, signed: checked with
``shopkeep.webhooks.verify``) and turns sales into announcements the game shows every player::

    GET /v1/announcements?after=N        {"announcements": [{"id", "text"}], "last": M}

("The last Dragon egg just sold!"). :meth:`StudioBackend.subscribe` adds the webhook with a
studio token; or add it yourself (``shopkeep webhooks add URL/v1/webhooks/shopkeep``) and pass
its secret as ``--webhook-secret``. Deliveries are at least once: an event id seen before is
answered 2xx and announced once.

Run it on its own with ``python -m sample_game.backend --server URL --service-token T``; the
game's launcher runs it on a thread. Stdlib ``http.server`` keeps the sample free of a web
framework; any framework works the same way.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import json
import logging
import os
import re
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from shopkeep import (
    AuthenticationError,
    BalanceCapExceeded,
    Catalog,
    IdempotencyConflict,
    PermissionDenied,
    ShopkeepError,
    StoreClient,
    ValidationError,
)
from shopkeep.events import Event
from shopkeep.studio import StudioClient
from shopkeep.webhooks import WebhookVerificationError, verify

from .rules import DEFAULT_ROUND_SECONDS, max_coins_per_round

__all__ = [
    "BackendClient",
    "BackendError",
    "RoundPayout",
    "StudioBackend",
    "jwt_claims",
    "main",
]

log = logging.getLogger("sample_game.backend")

ROUND_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
FINISH_PATH = re.compile(r"^/v1/rounds/([^/]+)/finish$")
WEBHOOK_PATH = "/v1/webhooks/shopkeep"
ANNOUNCEMENTS_PATH = re.compile(r"^/v1/announcements(?:\?after=(\d{1,18}))?$")
# The events the backend subscribes to: what a sale announcement is made of.
ANNOUNCED_TYPES = ("purchase.completed", "stock.sold_out")
# Announcements kept for players who poll late (older ones are dropped).
KEEP_ANNOUNCEMENTS = 100
MAX_BODY = 4096
MAX_WEBHOOK_BODY = 256 * 1024


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, read without checking its signature.

    Only ever used on a token the store has just accepted (or on our own service token): the
    store checked the signature, so reading ``sub`` and ``game`` here is safe.
    """
    try:
        payload = token.split(".")[1]
        padded = payload + "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (IndexError, ValueError) as exc:
        raise ValueError("not a JWT") from exc
    if not isinstance(claims, dict):
        raise ValueError("not a JWT")
    return claims


@dataclasses.dataclass(frozen=True, slots=True)
class RoundPayout:
    """What banking one round gave: ``coins_granted`` (after the cap) and the new balance."""

    round_id: str
    player_id: str
    coins_reported: int
    coins_granted: int
    capped: bool
    balance: int | None
    replayed: bool

    def to_json(self) -> dict[str, Any]:
        """The response body of a finish."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoundPayout:
        """Parse a finish's response body."""
        return cls(
            round_id=str(data["round_id"]),
            player_id=str(data["player_id"]),
            coins_reported=int(data["coins_reported"]),
            coins_granted=int(data["coins_granted"]),
            capped=bool(data["capped"]),
            balance=None if data.get("balance") is None else int(data["balance"]),
            replayed=bool(data.get("replayed", False)),
        )


class BackendError(Exception):
    """A finish the backend refused or could not complete.

    ``retryable`` is true when the same request may succeed later (the store or the backend is
    unreachable): re-send it with the same round id and it still pays once.
    """

    def __init__(self, status: int | None, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        """Whether re-sending the same finish later may succeed."""
        return self.status is None or self.status >= 500 or self.status == 429


class StudioBackend:
    """Pays players for their rounds from a service token; serves HTTP on ``host:port``.

    ``store_url`` and ``service_token`` name the store; ``round_seconds`` must match the
    game's, since the cap is computed from it. ``port=0`` picks a free port (see :attr:`url`).
    """

    def __init__(
        self,
        store_url: str,
        service_token: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        round_seconds: int = DEFAULT_ROUND_SECONDS,
        token_cache_seconds: float = 60.0,
        webhook_secret: str | None = None,
    ) -> None:
        self.store_url = store_url
        self.round_seconds = round_seconds
        self.max_coins = max_coins_per_round(round_seconds)
        self._game = str(jwt_claims(service_token).get("game", ""))
        # Few retries: the game retries a failed finish itself, with the same round id.
        self._store = StoreClient(store_url, service_token, timeout=5.0, max_retries=1)
        self._token_cache_seconds = token_cache_seconds
        self._verified: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self.webhook_secret = webhook_secret
        self._seen_events: set[int] = set()
        self._announcements: list[tuple[int, str]] = []
        self._catalog: Catalog | None = None
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None
        # shutdown() waits for serve_forever to return, so it may only be called once serving.
        self._serving = False

    @property
    def url(self) -> str:
        """The backend's base URL, e.g. ``http://127.0.0.1:54321``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> StudioBackend:
        """Serve on a daemon thread; returns self."""
        self._serving = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="studio-backend", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on this thread until interrupted."""
        self._serving = True
        self._httpd.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the store client."""
        if self._serving:
            self._httpd.shutdown()
            self._serving = False
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._store.close()

    # --- webhooks and announcements ------------------------------------------------------------

    def subscribe(self, studio_token: str) -> str:
        """Adds this backend as a webhook endpoint of the game (sales and sell-outs) with a
        studio token, and keeps the secret to check deliveries with; returns its id."""
        with StudioClient(self.store_url, studio_token, timeout=5.0) as studio:
            made = studio.add_webhook(
                self.url + WEBHOOK_PATH,
                types=ANNOUNCED_TYPES,
                description="sample game: sale announcements",
            )
        self.webhook_secret = made.secret
        return made.webhook.id

    def take_webhook(self, body: bytes, headers: dict[str, str]) -> int:
        """A delivery from the store: checked, announced once; the HTTP status to answer."""
        if self.webhook_secret is None:
            return HTTPStatus.NOT_FOUND
        try:
            event = verify(body, headers, self.webhook_secret)
        except WebhookVerificationError as exc:
            log.warning("refused a webhook delivery: %s", exc)
            return HTTPStatus.BAD_REQUEST
        with self._lock:
            if event.id in self._seen_events:
                return HTTPStatus.NO_CONTENT  # a retry of one already announced
            self._seen_events.add(event.id)
        text = self.announcement(event)
        if text is not None:
            with self._lock:
                self._announcements.append((event.id, text))
                del self._announcements[:-KEEP_ANNOUNCEMENTS]
        return HTTPStatus.NO_CONTENT

    def announcement(self, event: Event) -> str | None:
        """What players are told about ``event``: a limited item sold, or its last one."""
        sku = event.data.get("sku") if event.purchase is None else event.purchase.sku
        if not isinstance(sku, str):
            return None
        item = self._item(sku)
        name = item.name if item is not None else sku
        if event.type == "stock.sold_out":
            return f"The last {name} just sold!"
        if event.type == "purchase.completed" and item is not None and item.stock is not None:
            return f"{event.player_id} just bought a {name}."
        return None

    def _item(self, sku: str) -> Any:
        catalog = self._catalog
        if catalog is None or catalog.item(sku) is None:
            try:
                catalog = self._catalog = self._store.catalog()
            except ShopkeepError:
                return None
        return catalog.item(sku)

    def announcements(self, after: int = 0) -> dict[str, Any]:
        """The announcements after event id ``after``, oldest first."""
        with self._lock:
            found = [(i, text) for i, text in self._announcements if i > after]
        last = found[-1][0] if found else after
        return {"announcements": [{"id": i, "text": t} for i, t in found], "last": last}

    # --- the rules ------------------------------------------------------------------------------

    def verify_player(self, token: str) -> str:
        """The player id of ``token``, checked by the store; raises :class:`BackendError`."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            cached = self._verified.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            # The store is the authority on tokens: 200 means a valid token with role player.
            with StoreClient(self.store_url, token, timeout=5.0, max_retries=1) as as_player:
                as_player.wallet()
        except (AuthenticationError, PermissionDenied) as exc:
            raise BackendError(401, "unauthenticated", "not a valid player token") from exc
        except ShopkeepError as exc:
            raise BackendError(503, "store_unavailable", f"cannot reach the store: {exc}") from exc
        claims = jwt_claims(token)
        if claims.get("game") != self._game:
            # A valid token of another game on the same store must not earn coins here.
            raise BackendError(403, "forbidden", "this token belongs to another game")
        player = str(claims["sub"])
        with self._lock:
            self._verified[digest] = (now + self._token_cache_seconds, player)
        return player

    def finish_round(self, player_id: str, round_id: str, coins: int) -> RoundPayout:
        """Bank ``coins`` (capped) for ``player_id``'s round ``round_id``, exactly once."""
        if not ROUND_ID.fullmatch(round_id):
            raise BackendError(400, "bad_request", "round id must be 8..64 of [A-Za-z0-9_-]")
        if not isinstance(coins, int) or isinstance(coins, bool) or coins < 0:
            raise BackendError(400, "bad_request", "coins must be a non-negative integer")
        granted = min(coins, self.max_coins)
        if granted == 0:
            return RoundPayout(round_id, player_id, coins, 0, False, None, False)
        try:
            result = self._store.grant(
                player_id,
                currency="COINS",
                amount=granted,
                reason=f"round {round_id}",
                # The round id makes the key: a retried finish replays the first grant.
                idempotency_key=f"round-{player_id}-{round_id}",
            )
        except IdempotencyConflict as exc:
            # The same round banked before with another coin count: a tampered or buggy client.
            raise BackendError(409, "round_already_banked", "this round was already paid") from exc
        except BalanceCapExceeded as exc:
            raise BackendError(409, "balance_cap_exceeded", "the coin wallet is full") from exc
        except ValidationError as exc:
            raise BackendError(400, "bad_request", exc.message) from exc
        except ShopkeepError as exc:
            if exc.status is None or exc.status >= 500 or exc.status == 429:
                raise BackendError(503, "store_unavailable", f"store: {exc}") from exc
            raise BackendError(502, "store_error", f"store refused the grant: {exc}") from exc
        return RoundPayout(
            round_id=round_id,
            player_id=player_id,
            coins_reported=coins,
            coins_granted=granted,
            capped=granted < coins,
            balance=result.balance("COINS"),
            replayed=result.replayed,
        )


def _handler_for(backend: StudioBackend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "shopkeep-sample-backend/1"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, error: BackendError) -> None:
            self._reply(
                error.status or 500, {"error": {"code": error.code, "message": error.message}}
            )

        def do_GET(self) -> None:
            announcements = ANNOUNCEMENTS_PATH.fullmatch(self.path)
            if self.path == "/healthz":
                self._reply(200, {"ok": True, "max_coins_per_round": backend.max_coins})
            elif announcements is not None:
                self._reply(200, backend.announcements(int(announcements.group(1) or 0)))
            else:
                self._error(BackendError(404, "not_found", "no such route"))

        def _webhook(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_WEBHOOK_BODY:
                self._error(BackendError(413, "payload_too_large", "body too large"))
                return
            status = backend.take_webhook(self.rfile.read(length), dict(self.headers.items()))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            if self.path == WEBHOOK_PATH:
                self._webhook()
                return
            match = FINISH_PATH.fullmatch(self.path)
            if match is None:
                self._error(BackendError(404, "not_found", "no such route"))
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    raise BackendError(413, "payload_too_large", "body too large")
                body = json.loads(self.rfile.read(length) or b"{}")
                scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
                if scheme.lower() != "bearer" or not token:
                    raise BackendError(401, "unauthenticated", "send the player token")
                player = backend.verify_player(token.strip())
                coins = body.get("coins") if isinstance(body, dict) else None
                if not isinstance(coins, int) or isinstance(coins, bool):
                    raise BackendError(400, "bad_request", 'send {"coins": <integer>}')
                payout = backend.finish_round(player, match.group(1), coins)
            except BackendError as error:
                self._error(error)
            except ValueError:
                self._error(BackendError(400, "bad_request", "the body must be JSON"))
            except Exception:
                log.exception("finishing a round failed")
                self._error(BackendError(500, "internal_error", "internal error"))
            else:
                self._reply(HTTPStatus.CREATED, payout.to_json())

    return Handler


class BackendClient:
    """What the game calls: banks a round with the player's own token (blocking; run it on a
    worker, e.g. ``Background.submit``)."""

    def __init__(self, base_url: str, player_token: str, *, timeout: float = 5.0) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout)
        self._token = player_token

    def finish_round(self, round_id: str, coins: int) -> RoundPayout:
        """Bank ``coins`` for round ``round_id``; safe to repeat with the same arguments."""
        try:
            response = self._http.post(
                f"/v1/rounds/{round_id}/finish",
                json={"coins": coins},
                headers={"Authorization": f"Bearer {self._token}"},
            )
        except httpx.HTTPError as exc:
            raise BackendError(None, "unreachable", f"backend unreachable: {exc}") from exc
        if response.status_code == HTTPStatus.CREATED:
            return RoundPayout.from_json(response.json())
        try:
            error = response.json()["error"]
            raise BackendError(response.status_code, str(error["code"]), str(error["message"]))
        except (ValueError, KeyError, TypeError):
            raise BackendError(
                response.status_code, "error", f"HTTP {response.status_code}"
            ) from None

    def announcements(self, after: int = 0) -> tuple[list[str], int]:
        """The sale announcements after ``after`` and the id to ask after next time."""
        try:
            response = self._http.get(f"/v1/announcements?after={after}")
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise BackendError(None, "unreachable", f"backend unreachable: {exc}") from exc
        return [str(a["text"]) for a in data["announcements"]], int(data["last"])

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()


def main(argv: list[str] | None = None) -> None:
    """Run the backend in the foreground: ``python -m sample_game.backend``."""
    parser = argparse.ArgumentParser(description="The sample game's studio backend")
    parser.add_argument("--server", default=os.environ.get("SHOPKEEP_URL"), help="store URL")
    parser.add_argument(
        "--service-token",
        default=os.environ.get("SHOPKEEP_SERVICE_TOKEN"),
        help="service token (or SHOPKEEP_SERVICE_TOKEN)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--round-seconds", type=int, default=DEFAULT_ROUND_SECONDS)
    parser.add_argument(
        "--webhook-secret",
        default=os.environ.get("SHOPKEEP_WEBHOOK_SECRET"),
        help="the whsec_ secret of this backend's webhook (or SHOPKEEP_WEBHOOK_SECRET)",
    )
    args = parser.parse_args(argv)
    if not args.server or not args.service_token:
        parser.error("--server and --service-token (or SHOPKEEP_URL/SHOPKEEP_SERVICE_TOKEN)")
    logging.basicConfig(level=logging.INFO)
    backend = StudioBackend(
        args.server,
        args.service_token,
        host=args.host,
        port=args.port,
        round_seconds=args.round_seconds,
        webhook_secret=args.webhook_secret,
    )
    print(f"studio backend on {backend.url}, paying up to {backend.max_coins} coins a round")
    try:
        backend.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        backend.stop()


if __name__ == "__main__":
    main()
