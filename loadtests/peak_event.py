"""The minute a limited drop opens, on one machine, and an audit that nothing was lost.

``python -m loadtests.peak_event [--players N] [--stock S] [--duration T] [--workers W]
[--faults RATE] [--out DIR]``:

1. starts a private store (embedded PostgreSQL in a temporary directory, or
   ``SHOPKEEP_DATABASE_URL``; ``shopkeep-server serve --workers W``; no rate limit);
2. seeds it through the API (:mod:`loadtests.seed`): a game, the load-test catalog, N funded
   players; then announces the drop a quarter of the way into the run;
3. runs Locust headless (:mod:`loadtests.locustfile`, shape ``peak_event``) for T seconds,
   through the fault proxy when ``--faults`` > 0, writing ``report.html`` and ``locust_*.csv``;
4. re-sends every keyed call that was left without a definite answer, with its own key (what
   a game's pending journal does at its next start);
5. checks the invariants below, runs ``shopkeep-server audit``, prints one summary table
   (also in ``summary.txt`` and ``summary.json``) and exits 1 if any invariant failed.

The store and its database are stopped when the run ends, however it ends.

Invariants (the clients' side comes from the call records the users write, the store's from
the service API and, for idempotency keys, which the API does not show, the database):

- no 5xx answer, and every request reached the store;
- the drop: units sold <= stock, and sold + remaining = stock;
- the drop: sold == min(stock, players who pressed buy): no unit stranded, none oversold;
- the drop: sold == keys answered 201 == distinct buyers: every unit acknowledged once;
- every keyed call ended with one definite answer (after the re-sends), never two;
- each idempotency key made at most one purchase, the one its answers named, and the store
  holds no purchase that no client was told of;
- every wallet equals the sum of its ledger, and its start plus the grants less the
  purchases the clients were answered 2xx for;
- ``shopkeep-server audit`` passes.

``--verify-only --out DIR`` runs steps 4 and 5 alone against ``SHOPKEEP_DATABASE_URL``, for a
run made elsewhere (distributed Locust against a deployment, see the README, "Load tests").
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import csv
import dataclasses
import datetime as dt
import itertools
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

from shopkeep import Amount, ShopkeepError, StoreClient

from .common import (
    CURRENCY,
    RECORDS_ENV,
    SEED_ENV,
    SHAPE_ENV,
    Call,
    Seed,
    endpoint,
    read_calls,
    unsettled,
)
from .faultproxy import FaultProxy, ProxyStats
from .metrics import ServerView, difference, scrape
from .seed import announce_drop, create_and_seed, plan
from .stack import CpuMeter, PrivateStore, process_tree, signals_raise, stop_group
from .webhooks import EventReceiver

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
# Seconds between announcing the drop and the first tick of the shape: Locust's own start.
LOCUST_STARTUP = 4.0
STOP_TIMEOUT = 10
_SSL = ssl.create_default_context()


@dataclasses.dataclass
class Check:
    """One invariant and whether it held."""

    name: str
    ok: bool
    detail: str


@dataclasses.dataclass
class EndpointStats:
    """One row of Locust's statistics."""

    kind: str
    name: str
    requests: int
    failures: int
    p50: float | None
    p95: float | None
    p99: float | None
    rps: float


# ---------------------------------------------------------------------------------------------
# Locust
# ---------------------------------------------------------------------------------------------


def run_locust(
    *,
    host: str,
    out: Path,
    seed: Seed,
    shape: str,
    processes: int,
    cpu_groups: dict[str, list[psutil.Process]],
) -> int:
    """Run Locust headless until the shape ends; returns its exit code. Its processes are
    stopped whatever happens here (Ctrl-C included)."""
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--host", host, "--csv", str(out / "locust"), "--html", str(out / "report.html"),
        "--stop-timeout", str(STOP_TIMEOUT), "--exit-code-on-error", "0", "--only-summary",
        "--csv-full-history",
    ]  # fmt: skip
    if processes > 1:
        command += ["--processes", str(processes)]
    env = {
        **os.environ,
        SEED_ENV: str(out / "seed.json"),
        SHAPE_ENV: shape,
        RECORDS_ENV: str(out / "records"),
        "SHOPKEEP_LOADTEST_WORKERS": str(processes),
    }
    with (out / "locust.log").open("wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        # The processes are found while they run; the meter reads them until they exit.
        cpu_groups["locust"] = process_tree(process.pid)
        deadline = seed.end_at + STOP_TIMEOUT + 60
        while process.poll() is None:
            if time.time() > deadline:
                raise TimeoutError(f"Locust ran past its end; see {out / 'locust.log'}")
            cpu_groups["locust"] = process_tree(process.pid) or cpu_groups["locust"]
            time.sleep(0.5)
        return process.returncode
    finally:
        stop_group(process)


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def read_locust_stats(out: Path) -> list[EndpointStats]:
    """Rows of ``locust_stats.csv`` (the Aggregated row left out: it mixes in the FLOW rows)."""
    rows = []
    with (out / "locust_stats.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated":
                continue
            count = int(row["Request Count"])
            rows.append(
                EndpointStats(
                    kind=row["Type"],
                    name=row["Name"],
                    requests=count,
                    failures=int(row["Failure Count"]),
                    p50=_number(row["50%"]) if count else None,
                    p95=_number(row["95%"]) if count else None,
                    p99=_number(row["99%"]) if count else None,
                    rps=float(row["Requests/s"]),
                )
            )
    return sorted(rows, key=lambda r: (r.kind == "FLOW", r.name, r.kind))


def read_peak_rate(out: Path) -> tuple[float, int]:
    """The busiest second of HTTP attempts (from Locust's per-second history of every
    endpoint, FLOW rows left out) and the users running then; (0, 0) without a history."""
    path = out / "locust_stats_history.csv"
    if not path.exists():
        return 0.0, 0
    totals: dict[int, int] = collections.defaultdict(int)
    users: dict[int, int] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated" or row["Type"] in ("", "FLOW"):
                continue
            second = int(row["Timestamp"])
            totals[second] += int(row["Total Request Count"])
            users[second] = int(row["User Count"])
    seconds = sorted(totals)
    best = (0.0, 0)
    for earlier, later in itertools.pairwise(seconds):
        # A name has no row before its first request; its count was 0 then, as the sum says.
        rate = (totals[later] - totals[earlier]) / (later - earlier)
        best = max(best, (rate, users[later]))
    return best


def read_locust_failures(out: Path) -> collections.Counter[str]:
    """Failed HTTP attempts by label (``409 sold_out``, ``no response: timeout``)."""
    failures: collections.Counter[str] = collections.Counter()
    path = out / "locust_failures.csv"
    if path.exists():
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                if row["Method"] != "FLOW":
                    failures[row["Error"]] += int(row["Occurrences"])
    return failures


# ---------------------------------------------------------------------------------------------
# Settling what the run left open
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Recovery:
    """What re-sending the unsettled calls found."""

    unsettled: int = 0
    replayed: int = 0
    ran_now: int = 0
    refused: int = 0
    still_open: int = 0


class _Clients:
    """One SDK client per token, straight to the store (not through the fault proxy)."""

    def __init__(self, host: str, seed: Seed) -> None:
        self._host = host
        self._tokens = dict(seed.players)
        self._service = seed.service_token
        self._clients: dict[str, StoreClient] = {}
        self._lock = threading.Lock()

    def for_call(self, call: Call) -> StoreClient:
        token = self._service if call.kind == "grant" else self._tokens[call.player]
        with self._lock:
            client = self._clients.get(token)
            if client is None:
                client = self._clients[token] = StoreClient(
                    self._host,
                    token,
                    timeout=30,
                    max_retries=5,
                    transport=httpx.HTTPTransport(verify=_SSL),
                )
            return client

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def _resend(client: StoreClient, call: Call) -> tuple[int, str | None, str | None, bool | None]:
    """Send ``call`` again with its own key: (status, code, purchase id, replayed or None)."""
    body = call.body
    if call.kind == "purchase":
        price = body.get("expected_price")
        result = client.purchase(
            body["sku"],
            quantity=body["quantity"],
            currency=body.get("currency"),
            expected_price=Amount.from_wire(price) if price else None,
            idempotency_key=call.key,
        )
        return 201, None, result.purchase.id, result.replayed
    if call.kind == "grant":
        granted = client.grant(
            body["player"],
            currency=body["currency"],
            amount=body["amount"],
            reason=body["reason"],
            idempotency_key=call.key,
        )
        return 201, None, None, granted.replayed
    # The SDK's consume result does not say whether it was a replay.
    client.consume(body["sku"], body["quantity"], idempotency_key=call.key)
    return 200, None, None, None


def settle(calls: dict[str, Call], host: str, seed: Seed) -> Recovery:
    """Re-send every call without a definite answer, with its own idempotency key: the store
    replays what it did, or does it now if the request never reached it."""
    open_calls = [c for c in calls.values() if not c.settled]
    recovery = Recovery(unsettled=len(open_calls))
    if not open_calls:
        return recovery
    clients = _Clients(host, seed)
    lock = threading.Lock()

    def one(call: Call) -> None:
        try:
            status, code, purchase_id, replayed = _resend(clients.for_call(call), call)
        except ShopkeepError as error:
            if unsettled(error) or error.status is None:
                with lock:
                    recovery.still_open += 1
                return
            # A final refusal (sold out, say): stored with the key, so the same answer the
            # first attempt got, had it arrived.
            call.settle(error.status, error.code, None, False, time.time())
            with lock:
                recovery.refused += 1
        else:
            call.settle(status, code, purchase_id, bool(replayed), time.time())
            with lock:
                if replayed:
                    recovery.replayed += 1
                elif replayed is False:
                    recovery.ran_now += 1
        call.recovered = True

    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(one, open_calls))
    finally:
        clients.close()
    return recovery


# ---------------------------------------------------------------------------------------------
# What the store holds
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class StoreState:
    """The store's side of the books, read after the load."""

    balances: dict[str, int]
    ledger_sums: dict[str, int]
    remaining: int
    purchases_by_key: dict[str, list[str]]  # idempotency key -> purchase ids (DB)
    drop_sold: int
    drop_buyers: int
    purchases_total: int
    busiest_second: int
    drop_last_sale: float | None  # epoch seconds of the drop's last sale


def read_store(host: str, database_url: str, seed: Seed) -> StoreState:
    """Wallets, ledgers and stock through the service API (what a studio sees), purchases and
    their idempotency keys from the database (the API does not show keys)."""
    balances: dict[str, int] = {}
    ledger_sums: dict[str, int] = {}
    transport = httpx.HTTPTransport(verify=_SSL, limits=httpx.Limits(max_connections=8))
    with StoreClient(host, seed.service_token, timeout=30, transport=transport) as service:

        def player(player_id: str) -> None:
            balances[player_id] = service.player_wallet(player_id).balance(CURRENCY)
            ledger_sums[player_id] = sum(
                e.delta
                for e in service.player_ledger(player_id, limit=200)
                if e.currency == CURRENCY
            )

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(player, [p for p, _ in seed.players]))
        remaining = service.stock([seed.drop_sku])[0].remaining

    purchases_by_key: dict[str, list[str]] = collections.defaultdict(list)
    with psycopg.connect(database_url) as conn:
        for key, purchase_id in conn.execute(
            "SELECT idempotency_key, id::text FROM purchases WHERE game_id = %s", (seed.game,)
        ):
            purchases_by_key[key].append(purchase_id)
        sold, buyers = conn.execute(
            "SELECT coalesce(sum(quantity), 0), count(DISTINCT player_id) FROM purchases"
            " WHERE game_id = %s AND sku = %s AND status = 'completed'",
            (seed.game, seed.drop_sku),
        ).fetchone() or (0, 0)
        last_sale = conn.execute(
            "SELECT extract(epoch FROM max(created_at))::float8 FROM purchases"
            " WHERE game_id = %s AND sku = %s",
            (seed.game, seed.drop_sku),
        ).fetchone()
        busiest = conn.execute(
            "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM purchases"
            " WHERE game_id = %s GROUP BY date_trunc('second', created_at)) s",
            (seed.game,),
        ).fetchone()
    return StoreState(
        balances=balances,
        ledger_sums=ledger_sums,
        remaining=remaining,
        purchases_by_key=dict(purchases_by_key),
        drop_sold=int(sold),
        drop_buyers=int(buyers),
        purchases_total=sum(len(ids) for ids in purchases_by_key.values()),
        busiest_second=int(busiest[0]) if busiest else 0,
        drop_last_sale=last_sale[0] if last_sale else None,
    )


# ---------------------------------------------------------------------------------------------
# The invariants
# ---------------------------------------------------------------------------------------------


def check_all(
    *,
    seed: Seed,
    calls: dict[str, Call],
    state: StoreState,
    failures: collections.Counter[str],
    proxy: ProxyStats | None,
    server: ServerView | None,
    recovery: Recovery,
    audit: subprocess.CompletedProcess[str],
) -> list[Check]:
    """Every invariant of the run, each with the figures it was judged on."""
    checks: list[Check] = []
    drop = [c for c in calls.values() if c.kind == "purchase" and c.flow == "drop"]
    drop_bought = [c for c in drop if c.succeeded]
    tried = {c.player for c in drop}
    sold = state.drop_sold

    client_5xx = sum(n for label, n in failures.items() if label[:1] == "5")
    store_5xx = server.server_errors if server is not None else 0
    bad_gateway = proxy.upstream_errors if proxy else 0
    checks.append(
        Check(
            "no 5xx",
            client_5xx == store_5xx == bad_gateway == 0,
            f"clients saw {client_5xx}, the store's metrics count {store_5xx}"
            f" (answers dropped on the way included); {bad_gateway} requests unanswered",
        )
    )
    checks.append(
        Check(
            "drop: sold never exceeds stock, and stock adds up",
            sold <= seed.stock and sold + state.remaining == seed.stock,
            f"sold {sold} <= stock {seed.stock}; {sold} sold + {state.remaining} remaining",
        )
    )
    expected = min(seed.stock, len(tried))
    checks.append(
        Check(
            "drop: sold == min(stock, players who pressed buy)",
            sold == expected,
            f"sold {sold}, min({seed.stock}, {len(tried)}) = {expected}",
        )
    )
    players_bought = {c.player for c in drop_bought}
    checks.append(
        Check(
            "drop: sold == buyers who got 201, one unit each",
            sold == len(drop_bought) == len(players_bought) == state.drop_buyers,
            f"sold {sold}; {len(drop_bought)} keys got 201, for {len(players_bought)} players;"
            f" {state.drop_buyers} distinct buyers in the store",
        )
    )
    open_calls = [c for c in calls.values() if not c.settled]
    conflicts = [c for c in calls.values() if c.conflicts]
    checks.append(
        Check(
            "every keyed call got one definite answer",
            not open_calls and not conflicts,
            f"{len(calls)} calls; {recovery.unsettled} open at the end, re-sent with their keys;"
            f" {len(open_calls)} still open; {len(conflicts)} keys answered two ways",
        )
    )
    duplicated = {k: ids for k, ids in state.purchases_by_key.items() if len(ids) > 1}
    client_keys = {c.key for c in calls.values() if c.kind == "purchase" and c.succeeded}
    mismatched = [
        c.key
        for c in calls.values()
        if c.kind == "purchase"
        and c.succeeded
        and c.purchase_ids != set(state.purchases_by_key.get(c.key, []))
    ]
    unknown = set(state.purchases_by_key) - client_keys
    checks.append(
        Check(
            "each idempotency key made at most one purchase",
            not duplicated and not mismatched and not unknown,
            f"{state.purchases_total} purchases for {len(state.purchases_by_key)} keys;"
            f" {len(duplicated)} keys with several; {len(mismatched)} keys whose answers named"
            f" another purchase; {len(unknown)} purchases no client was told of",
        )
    )
    off_ledger = [p for p, b in state.balances.items() if b != state.ledger_sums.get(p)]
    checks.append(
        Check(
            "every wallet equals its ledger",
            not off_ledger,
            f"{len(state.balances)} wallets; {len(off_ledger)} differ from the sum of their ledger",
        )
    )
    told = told_balances(seed, calls.values())
    off_told = [p for p, b in state.balances.items() if b != told.get(p, seed.start_coins)]
    checks.append(
        Check(
            "every wallet equals its start plus what clients were told",
            not off_told,
            f"start {seed.start_coins} + grants - purchases answered 2xx;"
            f" {len(off_told)} of {len(state.balances)} wallets differ",
        )
    )
    audit_line = (audit.stdout.strip().splitlines() or ["(no output)"])[0]
    checks.append(Check("shopkeep-server audit", audit.returncode == 0, audit_line))
    return checks


def check_webhooks(receiver: EventReceiver, state: StoreState, seed: Seed) -> list[Check]:
    """The studio's receiver got one ``purchase.completed`` per sale and, when the drop sold
    out, one ``stock.sold_out`` (waiting a while for the last deliveries)."""
    sold_out = seed.drop_sku if state.remaining == 0 else None
    receiver.wait_for(state.purchases_total, sold_out=sold_out, timeout=60)
    sales = sorted(pid for ids in state.purchases_by_key.values() for pid in ids)
    got = sorted(receiver.purchase_ids())
    outs = receiver.sold_out(seed.drop_sku)
    return [
        Check(
            "webhooks: one purchase.completed per sale",
            got == sales and receiver.refused == 0,
            f"{len(got)} events for {len(sales)} purchases; {receiver.refused} refused",
        ),
        Check(
            "webhooks: one stock.sold_out when the drop sold out",
            outs == (1 if sold_out else 0),
            f"{outs} sold-out events, {state.remaining} left",
        ),
    ]


def told_balances(seed: Seed, calls: Iterable[Call]) -> dict[str, int]:
    """Each player's coins as the clients' answers add up: start, plus grants, less purchases."""
    balances = {p: seed.start_coins for p, _ in seed.players}
    for call in calls:
        if not call.succeeded:
            continue
        if call.kind == "grant" and call.body["currency"] == CURRENCY:
            balances[call.body["player"]] += call.body["amount"]
        elif call.kind == "purchase":
            price = call.body["expected_price"]
            if price["currency"] == CURRENCY:
                balances[call.player] -= price["amount"] * call.body["quantity"]
    return balances


# ---------------------------------------------------------------------------------------------
# The summary
# ---------------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _bound(value: float) -> str:
    return ">10k" if value == float("inf") else f"{value:g}"


def render(summary: dict[str, Any], rows: list[EndpointStats], checks: list[Check]) -> str:
    """The one table the run prints."""
    run = summary["run"]
    lines = [
        f"Shopkeep peak event: {run['players']} players, drop of {run['stock']} x"
        f" {run['drop_sku']}, {run['duration']:.0f} s of load,"
        f" {run['workers'] or '?'} server workers, faults {run['faults']:.1%},"
        f" client timeout {run['client_timeout']:g} s",
        "",
        f"{'':<36}{'':>8}{'':>6}{'client ms':>18}{'':>8}{'store ms <=':>13}",
        f"{'endpoint':<36}{'requests':>8}{'fails':>6}{'p50':>6}{'p95':>6}{'p99':>6}"
        f"{'req/s':>8}{'p50':>7}{'p99':>6}",
    ]
    store = summary.get("server", {}).get("latency_ms", {})
    http = [r for r in rows if r.kind != "FLOW"]
    for r in http:
        own = store.get(f"{r.kind} {r.name}")
        lines.append(
            f"{r.kind + ' ' + r.name:<36}{r.requests:>8}{r.failures:>6}{_ms(r.p50):>6}"
            f"{_ms(r.p95):>6}{_ms(r.p99):>6}{r.rps:>8.1f}"
            + (f"{_bound(own['p50']):>7}{_bound(own['p99']):>6}" if own else "")
        )
    total = sum(r.requests for r in http)
    lines.append(
        f"{'all HTTP attempts':<36}{total:>8}{sum(r.failures for r in http):>6}"
        f"{'':>18}{sum(r.rps for r in http):>8.1f}"
    )
    for r in rows:
        if r.kind == "FLOW":
            lines.append(
                f"{r.name:<36}{r.requests:>8}{r.failures:>6}{_ms(r.p50):>6}"
                f"{_ms(r.p95):>6}{_ms(r.p99):>6}"
            )
    lines.append(
        "(client ms: per HTTP attempt as Locust saw it, its own queueing included; store ms:"
        " the store's histogram bucket the quantile falls in; the drop flow is a player's"
        " wait from pressing buy to a definite answer, retries in)"
    )
    lines += ["", "failed attempts by code:"]
    for label, count in sorted(summary["failures"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  {label:<36}{count:>8}")
    if not summary["failures"]:
        lines.append("  (none)")
    proxy = summary.get("proxy")
    if proxy:
        lines.append(
            f"  fault proxy: {proxy['dropped']} of {proxy['forwarded']} answers dropped after the"
            f" store replied ({proxy['dropped_purchases']} of them purchases)"
        )
    p = summary["purchases"]
    lines += [
        "",
        f"busiest second: {summary['peak']['attempts_per_second']:.0f} HTTP attempts/s with"
        f" {summary['peak']['users']} users",
        f"purchases: {p['completed']} completed, {p['per_second']:.1f}/s over the load,"
        f" {p['busiest_second']} in the busiest second",
        f"drop: sold {p['drop_sold']} / stock {run['stock']}"
        + (
            f", the last unit {p['drop_last_sale_after_opening']:.1f} s after opening"
            if p["drop_last_sale_after_opening"] is not None
            else ""
        )
        + f"; {p['drop_players']} players pressed buy: {p['drop_answers']}",
        f"retries: {p['replays']} 2xx answers were replays of an attempt whose answer was lost;"
        f" {p['recovery']['unsettled']} calls open when the load stopped, re-sent with their keys:"
        f" {p['recovery']['replayed']} replayed, {p['recovery']['ran_now']} ran then,"
        f" {p['recovery']['refused']} refused, {p['recovery']['still_open']} still open",
    ]
    if "server" in summary:
        outcomes = summary["server"]["purchase_outcomes"]
        lines.append(
            "the store's purchase outcomes: "
            + ", ".join(
                f"{n} {what}" for what, n in sorted(outcomes.items(), key=lambda kv: -kv[1])
            )
        )
    cpu = summary["cpu_seconds"]
    if cpu:
        per_worker = " + ".join(f"{v:.1f}" for v in summary["server_processes_cpu_seconds"])
        lines.append(
            "CPU seconds during the load: "
            + ", ".join(
                f"{name} {seconds:.1f}" + (f" ({per_worker})" if name == "server" else "")
                for name, seconds in cpu.items()
            )
        )
    lines += ["", "invariants:"]
    for check in checks:
        lines.append(f"  {'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
    failed = [c for c in checks if not c.ok]
    lines.append("")
    lines.append(
        f"RESULT: every invariant held ({len(checks)}/{len(checks)})"
        if not failed
        else f"RESULT: {len(failed)} of {len(checks)} invariants FAILED"
    )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class LoadPhase:
    """What the load phase leaves for the verification."""

    seed: Seed
    workers: int | None = None
    faults: float = 0.0
    proxy: ProxyStats | None = None
    server: ServerView | None = None
    cpu: dict[str, float] = dataclasses.field(default_factory=dict)
    server_processes: list[float] = dataclasses.field(default_factory=list)
    load_seconds: float = 0.0
    locust_exit: int = 0
    receiver: EventReceiver | None = None


def run(args: argparse.Namespace) -> int:
    """One whole run on a private store; returns the exit code."""
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    store = PrivateStore(workers=args.workers, log_dir=out)
    proxy: FaultProxy | None = None
    # The studio's backend: subscribed to the game's webhooks before the load.
    receiver = EventReceiver().start()
    try:
        print(f"starting a private store ({args.workers} workers); output in {out}", flush=True)
        store.start()
        seed = seed_private(store, args, out)
        receiver.subscribe(store.url, seed.studio_token)
        host = store.url
        if args.faults > 0:
            proxy = FaultProxy(store.url, rate=args.faults, seed=args.random_seed).start()
            host = proxy.url
        opens = dt.datetime.fromtimestamp(seed.drop_at).strftime("%H:%M:%S")
        crowd = f"{seed.peak_users} at" if args.shape == "peak_event" else "steady through"
        print(
            f"load: {seed.baseline_users} users, {crowd} the drop ({opens}),"
            f" {args.duration:.0f} s" + (f", via fault proxy ({args.faults:.1%})" if proxy else ""),
            flush=True,
        )
        runner = psutil.Process()
        groups: dict[str, list[psutil.Process]] = {"locust": []}
        meter = CpuMeter(
            {
                "locust": lambda: groups["locust"],
                "server": store.server_processes,
                "database": store.database_processes,
                "runner+proxy": lambda: [runner],
            }
        ).start()
        before = scrape(store.url)
        started = time.time()
        try:
            code = run_locust(
                host=host,
                out=out,
                seed=seed,
                shape=args.shape,
                processes=args.locust_processes,
                cpu_groups=groups,
            )
        finally:
            cpu = meter.stop()
        workers_cpu = [round(v, 1) for v in meter.per_process("server") if v >= 0.05]
        load_seconds = time.time() - started
        server = difference(before, scrape(store.url))
        if code != 0:
            print(f"locust exited with {code}; see {out / 'locust.log'}", file=sys.stderr)
        if proxy is not None:
            proxy.stop()
        phase = LoadPhase(
            seed=seed,
            workers=args.workers,
            faults=args.faults,
            proxy=proxy.stats if proxy else None,
            server=server,
            cpu=cpu,
            server_processes=workers_cpu,
            load_seconds=load_seconds,
            locust_exit=code,
            receiver=receiver,
        )
        return verify(out, phase, database_url=store.database_url, audit_env=store.env())
    finally:
        if proxy is not None:
            proxy.stop()
        receiver.stop()
        store.stop()


def seed_private(store: PrivateStore, args: argparse.Namespace, out: Path) -> Seed:
    """Make the game and its tokens with the CLI, seed through the API, announce the drop."""
    game = f"lt{uuid.uuid4().hex[:12]}"
    print(f"seeding game {game}: {args.players} players, drop of {args.stock}", flush=True)
    made = create_and_seed(store.cli, store.url, game=game, players=args.players, stock=args.stock)
    seed = plan(
        host=store.url,
        game=game,
        service_token=made.service_token,
        studio_token=made.studio_token,
        roster=made.roster,
        stock=args.stock,
        start_in=LOCUST_STARTUP,
        baseline_seconds=max(2.0, args.duration / 4),
        duration=args.duration,
        client_timeout=args.timeout,
    )
    announce_drop(store.url, made.studio_token, stock=args.stock, drop_at=seed.drop_at)
    seed.save(out / "seed.json")
    return seed


def verify(out: Path, phase: LoadPhase, *, database_url: str, audit_env: dict[str, str]) -> int:
    """Settle the open calls, check every invariant, audit, print and save the summary;
    returns the exit code (1 when an invariant failed)."""
    seed = phase.seed
    calls = read_calls(out / "records")
    print(f"settling {sum(not c.settled for c in calls.values())} open calls", flush=True)
    recovery = settle(calls, seed.host, seed)
    state = read_store(seed.host, database_url, seed)
    audit = subprocess.run(
        [sys.executable, "-m", "shopkeep_server.cli", "audit"],
        env=audit_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    rows = read_locust_stats(out)
    failures = read_locust_failures(out)
    peak_rate, peak_users = read_peak_rate(out)
    checks = check_all(
        seed=seed,
        calls=calls,
        state=state,
        failures=failures,
        proxy=phase.proxy,
        server=phase.server,
        recovery=recovery,
        audit=audit,
    )
    if phase.locust_exit != 0:
        checks.append(Check("locust ran to its end", False, f"exit code {phase.locust_exit}"))
    if phase.receiver is not None:
        checks += check_webhooks(phase.receiver, state, seed)
    summary = build_summary(phase, calls, state, rows, failures, recovery)
    if phase.receiver is not None:
        summary["webhooks"] = {
            "events": len(phase.receiver.arrivals),
            "deliveries": phase.receiver.deliveries,
            "drop_lag_ms": phase.receiver.lag_ms(seed.drop_sku),
        }
    summary["peak"] = {"attempts_per_second": peak_rate, "users": peak_users}
    summary["checks"] = [dataclasses.asdict(c) for c in checks]
    summary["ok"] = all(c.ok for c in checks)
    text = render(summary, rows, checks)
    if "webhooks" in summary:
        hooks = summary["webhooks"]
        lag = hooks["drop_lag_ms"]
        text += (
            f"\nwebhooks: {hooks['events']} events in {hooks['deliveries']} deliveries;"
            f" delivery lag of the drop's events p50 {_ms(lag['p50'])} ms, p99 {_ms(lag['p99'])} ms"
        )
    (out / "summary.txt").write_text(text + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "audit.txt").write_text(audit.stdout + audit.stderr)
    print()
    print(text, flush=True)
    return 0 if summary["ok"] else 1


def build_summary(
    phase: LoadPhase,
    calls: dict[str, Call],
    state: StoreState,
    rows: list[EndpointStats],
    failures: collections.Counter[str],
    recovery: Recovery,
) -> dict[str, Any]:
    """Everything the table shows, as JSON (``summary.json``) for scripts and tests."""
    seed = phase.seed
    drop = [c for c in calls.values() if c.kind == "purchase" and c.flow == "drop"]
    answers = collections.Counter(
        "bought" if c.succeeded else f"{c.status} {c.code}" for c in drop if c.settled
    )
    load_seconds = phase.load_seconds or (seed.end_at - seed.start_at)
    summary: dict[str, Any] = {
        "run": {
            "players": len(seed.players),
            "stock": seed.stock,
            "drop_sku": seed.drop_sku,
            "duration": seed.end_at - seed.start_at,
            "workers": phase.workers,
            "faults": phase.faults,
            "client_timeout": seed.client_timeout,
            "baseline_users": seed.baseline_users,
            "peak_users": seed.peak_users,
        },
        "endpoints": [dataclasses.asdict(r) for r in rows],
        "failures": dict(failures),
        "purchases": {
            "completed": state.purchases_total,
            "per_second": state.purchases_total / load_seconds if load_seconds else 0.0,
            "busiest_second": state.busiest_second,
            "drop_sold": state.drop_sold,
            "drop_remaining": state.remaining,
            "drop_last_sale_after_opening": (
                round(state.drop_last_sale - seed.drop_at, 2)
                if state.drop_last_sale is not None
                else None
            ),
            "drop_players": len({c.player for c in drop}),
            "drop_outcomes": dict(answers),
            "drop_answers": ", ".join(f"{n} {what}" for what, n in answers.most_common()),
            "replays": sum(c.replays for c in calls.values()),
            "recovery": dataclasses.asdict(recovery),
        },
        "cpu_seconds": {name: round(seconds, 1) for name, seconds in phase.cpu.items()},
        "server_processes_cpu_seconds": phase.server_processes,
    }
    if phase.server is not None:
        summary["server"] = {
            "latency_ms": {n: dataclasses.asdict(v) for n, v in phase.server.latency.items()},
            "statuses": {f"{n} {status}": c for (n, status), c in phase.server.statuses.items()},
            "purchase_outcomes": dict(phase.server.purchases),
            "errors_5xx": phase.server.server_errors,
        }
    if phase.proxy is not None:
        stats = phase.proxy
        summary["proxy"] = {
            "forwarded": stats.total_forwarded,
            "dropped": stats.total_dropped,
            "dropped_purchases": stats.dropped.get(endpoint("POST", "/v1/purchases"), 0),
            "upstream_errors": stats.upstream_errors,
        }
    return summary


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run, stopping the store on any exit."""
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.peak_event",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--players", type=int, default=2000, help="funded player accounts")
    parser.add_argument("--stock", type=int, default=200, help="units of the limited drop")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--faults", type=float, default=0.0, help="share of answers dropped")
    parser.add_argument("--out", type=Path, default=None, help="report directory")
    parser.add_argument(
        "--timeout",
        type=float,
        default=1.0,
        help="client timeout per attempt (short, so the spike's queue makes clients time out"
        " and retry as a real crowd's would against its longer queue)",
    )
    parser.add_argument("--shape", choices=["peak_event", "steady"], default="peak_event")
    parser.add_argument("--locust-processes", type=int, default=1)
    parser.add_argument("--random-seed", type=int, default=None, help="fault proxy's seed")
    parser.add_argument(
        "--verify-only",
        action="store_true",
        help="start nothing: check a finished run whose seed.json, records/ and locust_*.csv"
        " are in --out, against SHOPKEEP_DATABASE_URL (e.g. after a distributed run)",
    )
    args = parser.parse_args(argv)
    if args.players < 1 or args.stock < 1 or args.duration <= 0 or not 0 <= args.faults < 1:
        parser.error("--players and --stock must be >= 1, --duration > 0, 0 <= --faults < 1")
    if args.verify_only:
        database_url = os.environ.get("SHOPKEEP_DATABASE_URL")
        if args.out is None or not database_url:
            parser.error("--verify-only needs --out DIR and SHOPKEEP_DATABASE_URL")
        phase = LoadPhase(seed=Seed.load(args.out / "seed.json"))
        return verify(args.out, phase, database_url=database_url, audit_env=dict(os.environ))
    if args.out is None:
        args.out = Path("out") / f"peak-event-{time.strftime('%Y%m%d-%H%M%S')}"
    with signals_raise():
        try:
            return run(args)
        except KeyboardInterrupt:
            print("\ninterrupted: the store and its database were stopped", file=sys.stderr)
            return 130


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
