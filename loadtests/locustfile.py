"""Locust users that play the store through the SDK, and the load shapes of a drop.

Users (every HTTP attempt the SDK makes is reported to Locust through its ``on_request`` hook,
as its method and templated path, e.g. ``POST /v1/players/{player_id}/grants``):

- :class:`BrowsingPlayer`: catalog (ETag, so mostly 304), wallet, inventory, the drop's stock.
- :class:`BuyingPlayer`: buys common consumables at the price it saw, and uses them up.
- :class:`DropHunter`: waits for the limited drop's window (read from the catalog), then
  presses buy; a timeout or a lost answer is re-sent with the same idempotency key until the
  store gives a definite answer (bought, sold out). ``FLOW drop: press buy -> answer`` in the
  statistics is the time a player waited for that answer, retries included.
- :class:`StudioBackend`: the studio's server with a service token, granting daily coins.

Shapes, picked by ``SHOPKEEP_LOADTEST_SHAPE`` (headless Locust runs the first shape it finds,
so the other one is marked abstract; ``all`` keeps both for the web UI's ``--class-picker``,
``none`` keeps neither, for plain ``-u``/``-r``):

- ``peak_event`` (default): the baseline mix until the drop, then within seconds ten times the
  users (all new ones hunting the drop), held a little, then decaying back to the baseline.
- ``steady``: the baseline mix for the whole run.

Configuration comes from the seed file named by ``SHOPKEEP_LOADTEST_SEED`` (see
:mod:`loadtests.seed`); keyed calls are recorded under ``SHOPKEEP_LOADTEST_RECORDS`` (default:
``records/`` beside the seed) for the runner's checks. With several Locust processes or
machines, set ``SHOPKEEP_LOADTEST_WORKERS`` to their number so each takes its own players.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import math
import os
import random
import ssl
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import gevent
import httpx
from locust import LoadTestShape, User, between, task
from locust.env import Environment

from loadtests.common import (
    CURRENCY,
    GRANT_COINS,
    RECORDS_ENV,
    SEED_ENV,
    SHAPE_ENV,
    CallKind,
    RecordWriter,
    Seed,
    template,
    unsettled,
)
from shopkeep import (
    BusinessRejection,
    ItemUnavailable,
    Money,
    PurchaseResult,
    ShopkeepError,
    StoreClient,
    Timeout,
)

T = TypeVar("T")

SHAPE = os.environ.get(SHAPE_ENV, "peak_event")
DROP_FLOW = "drop: press buy -> answer"

# One TLS context for every user: httpx builds a new one per client otherwise, loading the CA
# bundle each time (about 20 ms of CPU), which a spike of a thousand users would spend in the
# generator instead of the store.
_SSL = ssl.create_default_context()

# httpx logs every request at INFO, and Locust turns INFO on: formatting and writing thirteen
# thousand log lines is generator CPU taken from the run (and a log nobody reads).
logging.getLogger("httpx").setLevel(logging.WARNING)

_seed: Seed | None = None
_records: RecordWriter | None = None
# Hunters take players from the bottom of the roster and everyone else from the top, so the
# drop's crowd is distinct players for as long as there are enough of them.
_hunters = itertools.count()
_others = itertools.count()


def seed() -> Seed:
    """The run's seed, read once per process."""
    global _seed
    if _seed is None:
        path = os.environ.get(SEED_ENV)
        if not path:
            raise RuntimeError(f"set {SEED_ENV} to the seed.json written by loadtests.seed")
        _seed = Seed.load(path)
    return _seed


def records() -> RecordWriter:
    """This process's call records."""
    global _records
    if _records is None:
        default = Path(os.environ[SEED_ENV]).parent / "records"
        _records = RecordWriter(Path(os.environ.get(RECORDS_ENV) or default))
    return _records


def new_key() -> str:
    """A fresh idempotency key (a uuid4, like the SDK's own)."""
    return str(uuid.uuid4())


class StoreFailure(Exception):
    """A request without a 2xx, as Locust's failure table shows it: ``409 sold_out``."""

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.label = label

    def __repr__(self) -> str:
        # Locust groups failures by repr: the label alone makes the table read by code.
        return self.label


def failure_label(status: int | None, error: ShopkeepError) -> str:
    """``409 sold_out``, ``no response: timeout`` or ``no response: connection`` (refused, reset
    or closed, as the fault proxy does)."""
    if status is None:
        return "no response: timeout" if isinstance(error, Timeout) else "no response: connection"
    return f"{status} {error.code or 'error'}"


def tolerant(method: Callable[..., None]) -> Callable[..., None]:
    """A task whose store errors were already reported by the hook: Locust should not count
    them a second time as task exceptions."""

    @functools.wraps(method)
    def run(self: Any, *args: Any, **kwargs: Any) -> None:
        with contextlib.suppress(ShopkeepError):
            method(self, *args, **kwargs)

    return run


def _slot(environment: Environment, counter: itertools.count[int]) -> int:
    runner = environment.runner
    index = getattr(runner, "worker_index", 0) if runner is not None else 0
    stride = max(1, int(os.environ.get("SHOPKEEP_LOADTEST_WORKERS", "1")))
    return next(counter) * stride + index


class ShopkeepUser(User):
    """A user with its own SDK client (its own connections, like a game on a phone)."""

    abstract = True
    hunts: ClassVar[bool] = False

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.player = ""
        self.client: StoreClient | None = None

    def on_start(self) -> None:
        s = seed()
        self.player, token = self.pick_account(s)
        self.client = StoreClient(
            self.host or s.host,
            token,
            timeout=s.client_timeout,
            max_retries=s.max_retries,
            transport=httpx.HTTPTransport(verify=_SSL),
            on_request=self._report,
            sleep=gevent.sleep,
        )

    def pick_account(self, s: Seed) -> tuple[str, str]:
        """This user's player: hunters from the bottom of the roster, others from the top."""
        if self.hunts:
            return s.players[_slot(self.environment, _hunters) % len(s.players)]
        return s.players[-1 - _slot(self.environment, _others) % len(s.players)]

    def on_stop(self) -> None:
        if self.client is not None:
            self.client.close()

    @property
    def store(self) -> StoreClient:
        """The SDK client (set in ``on_start``)."""
        assert self.client is not None
        return self.client

    def _report(
        self,
        method: str,
        path: str,
        status: int | None,
        elapsed: float,
        error: ShopkeepError | None,
    ) -> None:
        self.environment.events.request.fire(
            request_type=method,
            name=template(path),
            response_time=elapsed * 1000,
            response_length=0,
            exception=None if error is None else StoreFailure(failure_label(status, error)),
            context={"player": self.player},
        )

    def keyed(
        self,
        kind: CallKind,
        flow: str,
        body: dict[str, Any],
        call: Callable[[str], T],
        *,
        key: str | None = None,
        status: int = 201,
        purchase_id: Callable[[T], str | None] = lambda _: None,
        replayed: Callable[[T], bool] = lambda _: False,
    ) -> T:
        """Run a keyed call, recording it before it is sent and when its answer is definite;
        an answer left open (no response, 5xx) stays unsettled for the runner to settle."""
        key = key or new_key()
        records().sent(kind, key, player=self.player, flow=flow, body=body)
        try:
            result = call(key)
        except ShopkeepError as error:
            if not unsettled(error) and error.status is not None:
                records().final(key, status=error.status, code=error.code)
            raise
        records().final(
            key, status=status, purchase_id=purchase_id(result), replayed=replayed(result)
        )
        return result

    def buy(self, sku: str, price: Money, flow: str, *, key: str | None = None) -> PurchaseResult:
        """Buy one ``sku`` at the ``price`` the player saw."""
        body = {"sku": sku, "quantity": 1, "expected_price": price.to_wire()}
        return self.keyed(
            "purchase",
            flow,
            body,
            lambda k: self.store.purchase(sku, expected_price=price, idempotency_key=k),
            key=key,
            purchase_id=lambda r: r.purchase.id,
            replayed=lambda r: r.replayed,
        )


class BrowsingPlayer(ShopkeepUser):
    """Opens the store now and then: catalog (cached by ETag), wallet, inventory, stock."""

    weight = 5
    wait_time = between(1, 3)

    @task(3)
    @tolerant
    def catalog(self) -> None:
        self.store.catalog()

    @task(2)
    @tolerant
    def wallet(self) -> None:
        self.store.wallet()

    @task(1)
    @tolerant
    def inventory(self) -> None:
        self.store.inventory()

    @task(1)
    @tolerant
    def drop_stock(self) -> None:
        self.store.stock([seed().drop_sku])


class BuyingPlayer(ShopkeepUser):
    """Buys common consumables at the price it saw, and uses them."""

    weight = 3
    wait_time = between(1, 4)

    @task(3)
    @tolerant
    def buy_common(self) -> None:
        catalog = self.store.cached_catalog or self.store.catalog()
        commons = [i for i in catalog.items if i.stock is None and i.kind == "consumable"]
        item = random.choice(commons)
        # A refusal is a final answer (recorded): the player shrugs and plays on.
        with contextlib.suppress(BusinessRejection):
            self.buy(item.sku, item.price(), "common")

    @task(1)
    @tolerant
    def use_item(self) -> None:
        owned = [i for i in self.store.inventory() if i.quantity > 0 and i.sku != seed().drop_sku]
        if not owned:
            return
        sku = random.choice(owned).sku
        # not_enough_items: another session of this player used it first.
        with contextlib.suppress(BusinessRejection):
            self.keyed(
                "consume",
                "consume",
                {"sku": sku, "quantity": 1},
                lambda k: self.store.consume(sku, 1, idempotency_key=k),
                status=200,
            )

    @task(1)
    @tolerant
    def wallet(self) -> None:
        self.store.wallet()


class DropHunter(ShopkeepUser):
    """Waits for the limited drop, then buys it once, whatever the network does."""

    weight = 2
    hunts = True

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.done = False
        self.drop_at = 0.0
        self.price: Money | None = None

    def on_start(self) -> None:
        super().on_start()
        s = seed()
        self.drop_at = s.drop_at
        self.price = Money.from_minor(s.drop_price, CURRENCY, scale=0)
        try:
            # What a player sees: the window and the price, from the live catalog.
            item = self.store.catalog().item(s.drop_sku)
        except ShopkeepError:
            return  # the seed says the same; a slow store must not keep a hunter home
        if item.available_from is not None:
            self.drop_at = item.available_from.timestamp()
        self.price = item.price()

    def wait_time(self) -> float:
        if self.done:
            return random.uniform(5, 10)
        until = self.drop_at - time.time()
        if until <= 0:
            return 0.0
        # Poll every few seconds, but be there when the window opens (plus a human's reaction).
        return min(random.uniform(2, 5), until + random.uniform(0, 0.3))

    @task
    @tolerant
    def hunt(self) -> None:
        if self.done:
            self.store.inventory()
        elif time.time() < self.drop_at:
            self.store.stock([seed().drop_sku])
        else:
            self.press_buy()

    def press_buy(self) -> None:
        """Buy the drop until the store answers for sure; report how long the player waited."""
        assert self.price is not None
        sku = seed().drop_sku
        started = time.perf_counter()
        key = new_key()
        outcome: str | None = None
        while outcome is None:
            try:
                self.buy(sku, self.price, "drop", key=key)
                outcome = "bought"
            except ItemUnavailable:
                # Pressed a moment before the store's clock opened the window: that answer is
                # final for this key, so the next press is a new purchase.
                if time.time() > self.drop_at + 30:
                    outcome = "409 item_unavailable"
                gevent.sleep(random.uniform(0.2, 0.5))
                key = new_key()
            except ShopkeepError as error:
                if unsettled(error):
                    # The SDK's own retries are spent and the answer is still unknown: press
                    # again, with the same key, so it can only ever buy once.
                    gevent.sleep(random.uniform(0.5, 1.5))
                else:
                    outcome = failure_label(error.status, error)
        self.done = True
        self.environment.events.request.fire(
            request_type="FLOW",
            name=DROP_FLOW,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=None if outcome == "bought" else StoreFailure(outcome),
            context={"player": self.player},
        )


class StudioBackend(ShopkeepUser):
    """The studio's game server: grants daily coins to random players, reads wallets."""

    fixed_count = 1
    wait_time = between(0.5, 1.5)

    def pick_account(self, s: Seed) -> tuple[str, str]:
        return "studio-backend", s.service_token

    @task(3)
    @tolerant
    def grant_coins(self) -> None:
        player = random.choice(seed().players)[0]
        reason = "daily reward"
        body = {"player": player, "currency": CURRENCY, "amount": GRANT_COINS, "reason": reason}
        self.keyed(
            "grant",
            "grant",
            body,
            lambda k: self.store.grant(
                player, currency=CURRENCY, amount=GRANT_COINS, reason=reason, idempotency_key=k
            ),
        )

    @task(1)
    @tolerant
    def player_wallet(self) -> None:
        self.store.player_wallet(random.choice(seed().players)[0])


BASELINE = [BrowsingPlayer, BuyingPlayer, DropHunter, StudioBackend]


class SteadyShape(LoadTestShape):
    """The baseline mix, ``baseline_users`` users, until the seed's end time."""

    abstract = SHAPE not in ("steady", "all")

    def tick(self) -> tuple[int, float, list[type[User]]] | None:
        s = seed()
        if time.time() >= s.end_at:
            return None
        return s.baseline_users, max(1.0, s.baseline_users / 2), list(BASELINE)


class PeakEventShape(LoadTestShape):
    """Baseline, then at the drop ten times the users within ``ramp_seconds``, held for a fifth
    of what is left, then an exponential decay back towards the baseline until the end.

    The timetable is wall-clock (the seed's ``drop_at``), not Locust's run time, so the spike
    meets the catalog's window however long Locust took to start, on every machine.
    """

    abstract = SHAPE not in ("peak_event", "all")

    def tick(self) -> tuple[int, float, list[type[User]]] | None:
        s = seed()
        now = time.time()
        if now >= s.end_at:
            return None
        since_drop = now - s.drop_at
        if since_drop < 0:
            return s.baseline_users, max(1.0, s.baseline_users / 2), list(BASELINE)
        surge = s.peak_users - s.baseline_users
        after = s.end_at - s.drop_at
        hold = max(1.0, 0.2 * after)
        if since_drop < s.ramp_seconds + hold:
            # The crowd arrives within ramp_seconds.
            return s.peak_users, max(1.0, surge / s.ramp_seconds), [DropHunter]
        tau = max(1.0, (after - s.ramp_seconds - hold) / 3)
        fading = math.exp(-(since_drop - s.ramp_seconds - hold) / tau)
        users = s.baseline_users + round(surge * fading)
        # Only hunters come and go: the crowd is the drop's. Leaving is gentler than arriving
        # (this rate only caps it; the target itself moves slowly).
        return users, max(1.0, min(100.0, surge / 5)), [DropHunter]
