"""What the locustfile, the runner and the benchmark share: the seed file, the call records,
endpoint names and the load-test catalog.

This module imports neither Locust nor the server: the locustfile imports it under gevent's
monkey-patching, and the runner imports it without.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from shopkeep.errors import ErrorCategory, ShopkeepError

SEED_ENV = "SHOPKEEP_LOADTEST_SEED"
SHAPE_ENV = "SHOPKEEP_LOADTEST_SHAPE"
RECORDS_ENV = "SHOPKEEP_LOADTEST_RECORDS"

DROP_SKU = "dragon_egg"
DROP_PRICE = 800
CURRENCY = "COINS"
# Consumables a buying player picks from, with their prices in COINS (scale 0).
COMMON_ITEMS: dict[str, int] = {"potion": 50, "shield": 120, "torch": 10}
# Enough that no player runs dry in a run of a few minutes (buyers spend at most a few
# thousand), so an insufficient_funds never hides a lost unit of the drop.
START_COINS = 100_000
GRANT_COINS = 100

CallKind = Literal["purchase", "consume", "grant"]

# Concrete paths to the templated names Locust's statistics are kept under, so a thousand
# players' grants are one row, not a thousand. The names are the server's route parameters,
# so these rows meet the server's own metrics (see `route_name`).
_TEMPLATES: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"^/v1/players/[^/]+/(grants|wallet|inventory|ledger|purchases)$"),
        r"/v1/players/{player_id}/\1",
    ),
    (re.compile(r"^/v1/inventory/[^/]+/consume$"), "/v1/inventory/{sku}/consume"),
    (re.compile(r"^/v1/purchases/[^/]+/refund$"), "/v1/purchases/{purchase_id}/refund"),
    (re.compile(r"^/v1/purchases/[0-9a-fA-F-]{36}$"), "/v1/purchases/{purchase_id}"),
    (re.compile(r"^/v1/admin/stock/[^/]+$"), "/v1/admin/stock/{sku}"),
]


def template(path: str) -> str:
    """``/v1/players/{player_id}/grants`` for ``/v1/players/p-00017/grants?x=1``."""
    path = path.split("?", 1)[0]
    for pattern, replacement in _TEMPLATES:
        if pattern.match(path):
            return pattern.sub(replacement, path)
    return path


_ROUTE_PARAM = re.compile(r"<(?:[a-z]+:)?(\w+)>")


def route_name(rule: str) -> str:
    """``/v1/players/{player_id}/grants`` for the Flask rule
    ``/v1/players/<string:player_id>/grants`` (the ``endpoint`` label of the store's metrics)."""
    return _ROUTE_PARAM.sub(r"{\1}", rule)


def endpoint(method: str, path: str) -> str:
    """``POST /v1/players/{player_id}/grants``: how the tables name an endpoint."""
    return f"{method} {template(path)}"


def unsettled(error: ShopkeepError) -> bool:
    """Whether the store may or may not have acted (no response, 429, 5xx, key in flight): the
    SDK's transient category, so re-sending with the same key is then the only safe move."""
    return error.category is ErrorCategory.TRANSIENT


def rfc3339(epoch: float) -> str:
    """``2026-11-21T15:08:47Z``: whole seconds, as the catalog's windows are written."""
    moment = dt.datetime.fromtimestamp(int(epoch), dt.UTC)
    return moment.isoformat().replace("+00:00", "Z")


def load_catalog(
    drop_at: float, stock: int, *, risk: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The catalog of a load test: a few cheap consumables and one limited drop opening at
    ``drop_at`` (epoch seconds), one per player; with ``risk``, that risk policy on."""

    def item(sku: str, kind: str, price: int, **extra: Any) -> dict[str, Any]:
        return {
            "sku": sku,
            "name": sku.replace("_", " ").capitalize(),
            "kind": kind,
            "prices": [{"currency": CURRENCY, "amount": price}],
            **extra,
        }

    catalog: dict[str, Any] = {
        "currencies": [{"code": CURRENCY, "name": "Coins", "scale": 0, "max_balance": None}],
        "items": [
            *(item(sku, "consumable", price) for sku, price in COMMON_ITEMS.items()),
            item(
                DROP_SKU,
                "durable",
                DROP_PRICE,
                stock=stock,
                per_player_limit=1,
                available_from=rfc3339(drop_at),
                available_until=rfc3339(drop_at + 86_400),
                description="Limited drop",
                tags=["limited"],
            ),
        ],
    }
    if risk is not None:
        catalog["risk"] = risk
    return catalog


@dataclasses.dataclass(frozen=True)
class Seed:
    """Everything the Locust users need, written by the seeding step as JSON.

    ``host`` is the store itself (the runner's checks and the recovery go there); Locust's
    ``--host`` may differ (the fault proxy). Times are epoch seconds of the machine's clock:
    on several machines keep them in sync (NTP), as a real drop does.
    """

    host: str
    game: str
    service_token: str
    studio_token: str
    players: list[tuple[str, str]]  # (player id, player token)
    start_coins: int
    drop_sku: str
    drop_price: int
    stock: int
    start_at: float
    drop_at: float
    end_at: float
    baseline_users: int
    peak_users: int
    ramp_seconds: float
    client_timeout: float
    max_retries: int

    def save(self, path: Path) -> None:
        """Write the seed as JSON (it holds tokens: keep it private)."""
        path.write_text(json.dumps(dataclasses.asdict(self), indent=1))
        path.chmod(0o600)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Seed:
        """Read a seed written by :meth:`save`."""
        data = json.loads(Path(path).read_text())
        data["players"] = [tuple(p) for p in data["players"]]
        return cls(**data)


# ---------------------------------------------------------------------------------------------
# Call records: every keyed call the users made, so the runner can settle and check them
# ---------------------------------------------------------------------------------------------


class RecordWriter:
    """Appends one JSON line per event of a keyed call to a file of this process.

    A call is recorded as ``sent`` (with its exact body) before its first byte leaves, and as
    ``final`` when the store gave a definite answer; a call with no ``final`` is unsettled and
    the runner re-sends it with the same key. Lines are small and flushed at once, so a user
    stopped mid-call still leaves its ``sent`` behind.
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{socket.gethostname()}-{os.getpid()}.jsonl"
        self._file = self.path.open("a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()

    def _write(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":")) + "\n"
        with self._lock:
            self._file.write(line)

    def sent(
        self, kind: CallKind, key: str, *, player: str, flow: str, body: dict[str, Any]
    ) -> None:
        """The call ``key`` is about to be sent (again, if it was before)."""
        self._write(
            {"e": "sent", "t": time.time(), "kind": kind, "key": key, "player": player,
             "flow": flow, "body": body}
        )  # fmt: skip

    def final(
        self,
        key: str,
        *,
        status: int,
        code: str | None = None,
        purchase_id: str | None = None,
        replayed: bool = False,
    ) -> None:
        """The store's definite answer to ``key``: a 2xx, or an error that is not transient."""
        self._write(
            {"e": "final", "t": time.time(), "key": key, "status": status, "code": code,
             "purchase_id": purchase_id, "replayed": replayed}
        )  # fmt: skip

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._file.close()


@dataclasses.dataclass
class Call:
    """One keyed call as the records tell it (and, after recovery, as the runner settled it)."""

    kind: CallKind
    key: str
    player: str
    flow: str
    body: dict[str, Any]
    first_sent: float
    sends: int = 0
    status: int | None = None
    code: str | None = None
    purchase_ids: set[str] = dataclasses.field(default_factory=set)
    replays: int = 0
    answered_at: float | None = None
    recovered: bool = False
    # Answers for this key that disagree with the first one (must stay empty).
    conflicts: list[tuple[int, str | None]] = dataclasses.field(default_factory=list)

    @property
    def settled(self) -> bool:
        """Whether the client learned the outcome."""
        return self.status is not None

    @property
    def succeeded(self) -> bool:
        """Whether the outcome was a 2xx."""
        return self.status is not None and 200 <= self.status < 300

    def settle(
        self,
        status: int,
        code: str | None,
        purchase_id: str | None,
        replayed: bool,
        at: float | None,
    ) -> None:
        """Record a definite answer; a second one for the same key must agree with the first."""
        if self.status is not None and (self.status, self.code) != (status, code):
            # Two different final answers for one key would break exactly-once: keep the
            # first, and let the checks see the conflict through `conflicts`.
            self.conflicts.append((status, code))
            return
        self.status, self.code = status, code
        if purchase_id:
            self.purchase_ids.add(purchase_id)
        self.replays += int(replayed)
        if self.answered_at is None:
            self.answered_at = at


def _events(directory: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(directory.glob("*.jsonl")):
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                # A process killed mid-write leaves at most one torn last line; every line
                # before it is whole (each is written in one call).
                if line.endswith("\n"):
                    yield json.loads(line)


def read_calls(directory: Path) -> dict[str, Call]:
    """Every keyed call recorded under ``directory``, by idempotency key."""
    calls: dict[str, Call] = {}
    finals: list[dict[str, Any]] = []
    for event in _events(directory):
        if event["e"] == "sent":
            call = calls.get(event["key"])
            if call is None:
                call = calls[event["key"]] = Call(
                    kind=event["kind"],
                    key=event["key"],
                    player=event["player"],
                    flow=event["flow"],
                    body=event["body"],
                    first_sent=event["t"],
                )
            call.sends += 1
        else:
            finals.append(event)
    for event in finals:
        call = calls.get(event["key"])
        if call is not None:
            call.settle(
                event["status"], event["code"], event["purchase_id"], event["replayed"], event["t"]
            )
    return calls
